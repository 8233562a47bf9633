"""The pysam engine of allele counting: one pass of ``fetch`` per cluster of sites.

:func:`count_cluster` hands each read of a cluster to the sites whose anchor base it spans;
each site's observer (:func:`observer`) says what the read shows there (REF, ALT, other, or
nothing) with its base quality; :func:`tally` keeps one observation per fragment (see
:attr:`~carmscope.ctdna.filters.AlleleFilters.count_overlapping_mates_once`). The record scan
(:mod:`carmscope.ctdna.bamscan`) applies the same rules in C and is checked against this engine.
It reads anything htslib reads (BAM with ``.bai`` or ``.csi``, CRAM).
"""

from __future__ import annotations

import zlib
from bisect import bisect_left
from collections import Counter, defaultdict

import numpy as np
import pysam

from carmscope.ctdna.filters import (
    COUNT_COLUMNS,
    MAX_COMBINED_QUALITY,
    AlleleFilters,
    excluded_flags,
)

_ALIGNED_OPS = (0, 7, 8)  # M, =, X
_INSERTION_OP = 1
_GAP_OPS = (2, 3)  # D, N


_Observation = tuple[str, int, bool]
"""What one read shows at a site: allele ("ref", "alt" or "other"), base quality, reverse
strand (a plain tuple: one is made per read and site)."""


def count_cluster(
    bam: pysam.AlignmentFile,
    contig: str,
    start: int,
    stop: int,
    sites: list,  # of carmscope.ctdna.alleles._Site: index, anchor, observe
    filters: AlleleFilters,
) -> dict[int, dict[str, int]]:
    """Counts of the sorted sites of one cluster from one pass over its reads.

    A site only ever observes reads aligned over its anchor base (``reference_start <= anchor
    < reference_end``), so each read goes to the sites with an anchor in that interval (found
    by bisection on the sorted anchors, behind a pointer that drops sites left of the
    coordinate-sorted reads); reads reach each site in file order, as a per-site fetch
    would give them.
    """
    anchors = [site.anchor for site in sites]
    observers = [site.observe for site in sites]
    fragments: list[dict[object, list[_Observation]]] = [defaultdict(list) for _ in sites]
    excluded = excluded_flags(filters)
    min_mapping_quality = filters.min_mapping_quality
    improper = filters.exclude_improper_pairs
    by_name = filters.count_overlapping_mates_once
    first, last = 0, len(sites)
    for order, read in enumerate(bam.fetch(contig, start, stop)):
        read_start = read.reference_start
        while first < last and anchors[first] < read_start:
            first += 1
        if first == last:
            break  # reads come sorted by start: none of the rest covers a site
        read_end = read.reference_end
        if read_end is None or read_end <= anchors[first]:
            continue
        end = bisect_left(anchors, read_end, first)
        flag = read.flag
        if (
            flag & excluded
            or (improper and flag & 0x1 and not flag & 0x2)
            or read.mapping_quality < min_mapping_quality
        ):
            continue
        sequence = read.query_sequence
        if sequence is None:
            continue
        alignment = _Alignment(read, sequence, read_start, read_end)
        key = read.query_name if by_name else order
        for number in range(first, end):
            observation = observers[number](alignment)
            if observation is not None:
                fragments[number][key].append(observation)
    return {site.index: tally(found, filters) for site, found in zip(sites, fragments, strict=True)}


def tally(fragments: dict[object, list[_Observation]], filters: AlleleFilters) -> dict[str, int]:
    min_base_quality = filters.min_base_quality
    chosen = [
        found[0] if len(found) == 1 else _resolve_fragment(name, found)
        for name, found in fragments.items()
    ]
    seen = Counter(
        (allele, reverse)
        for allele, quality, reverse in filter(None, chosen)
        if quality >= min_base_quality
    )
    tally = dict.fromkeys(COUNT_COLUMNS, 0)
    for (allele, reverse), number in seen.items():
        tally[f"{allele}_count"] += number
        if allele != "other":
            tally[f"{allele}_{'rev' if reverse else 'fwd'}"] += number
    tally["depth"] = tally["ref_count"] + tally["alt_count"] + tally["other_count"]
    return tally


def _resolve_fragment(name: object, observations: list[_Observation]) -> _Observation | None:
    """One observation per fragment (see :attr:`AlleleFilters.count_overlapping_mates_once`)."""
    if len(observations) == 1:
        return observations[0]
    if len({allele for allele, _, _ in observations}) == 1:
        quality = min(sum(o[1] for o in observations), MAX_COMBINED_QUALITY)
        # the mate whose strand is counted: pseudo-random by read name, never always the
        # later (mostly reverse) mate, which would fake a strand bias
        allele, _, reverse = observations[zlib.crc32(str(name).encode()) % len(observations)]
        return allele, quality, reverse
    best = max(o[1] for o in observations)
    top = [o for o in observations if o[1] == best]
    if len({o[0] for o in top}) > 1:
        return None
    return top[-1]


_NO_INSERTIONS: dict[int, tuple[int, int]] = {}  # shared by reads without insertions; never changed


class _Alignment:
    """Aligned blocks and gaps of one read, for looking up reference positions (built once
    per read, shared by all the sites the read covers)."""

    __slots__ = (
        "blocks",
        "end",
        "gaps",
        "insertions",
        "qualities",
        "reverse",
        "sequence",
        "simple",
        "start",
    )

    def __init__(self, read: pysam.AlignedSegment, sequence: str, start: int, end: int) -> None:
        self.start = start
        self.end = end
        self.reverse = read.is_reverse
        self.sequence = sequence  # BAM and CRAM store bases upper-case
        cigar = read.cigartuples or ()
        # one aligned block (most reads): reference position p is query position p - start
        self.simple = len(cigar) == 1 and cigar[0][0] in _ALIGNED_OPS
        # (ref start, ref end, query start) of aligned blocks; inserted bases by the reference
        # position that follows them: (query start, length); deleted or skipped (start, end)
        self.blocks: list[tuple[int, int, int]] = [(start, end, 0)]
        self.insertions: dict[int, tuple[int, int]] = _NO_INSERTIONS
        self.gaps: list[tuple[int, int]] = []
        if not self.simple:
            self.blocks, self.insertions = [], {}
            ref, query = start, 0
            for op, length in cigar:
                if op in _ALIGNED_OPS:
                    self.blocks.append((ref, ref + length, query))
                    ref += length
                    query += length
                elif op == _INSERTION_OP:
                    self.insertions[ref] = (query, length)
                    query += length
                elif op in _GAP_OPS:
                    self.gaps.append((ref, ref + length))
                    ref += length
                elif op == 4:  # soft clip
                    query += length
        qualities = read.query_qualities
        self.qualities = (
            qualities if qualities is not None else np.zeros(len(sequence), dtype=np.uint8)
        )

    def query_position(self, ref_pos: int) -> int | None:
        """Query index aligned to a reference position, or None (gap, clip or not covered)."""
        for start, end, query in self.blocks:
            if start <= ref_pos < end:
                return query + ref_pos - start
        return None

    def gap_overlaps(self, start: int, end: int) -> bool:
        return any(g_start < end and start < g_end for g_start, g_end in self.gaps)


def _with_flank(observe, anchor: int, after: int, flank: int):
    """An indel observer that ignores reads with fewer than ``flank`` aligned bases on either
    side (reference positions ``..anchor`` and ``after..``)."""

    def observe_with_flank(alignment: _Alignment) -> _Observation | None:
        if anchor - alignment.start + 1 < flank or alignment.end - after < flank:
            return None
        return observe(alignment)

    return observe_with_flank


def _snv_observer(site: int, ref: str, alt: str):
    def observe(alignment: _Alignment) -> _Observation | None:
        # reads reach a site only if they span it (start <= site < end)
        if alignment.simple:
            query = site - alignment.start
        else:
            query = alignment.query_position(site)
            if query is None:
                return None
        base = alignment.sequence[query]
        allele = "ref" if base == ref else "alt" if base == alt else "other"
        return (allele, int(alignment.qualities[query]), alignment.reverse)

    return observe


def _insertion_observer(anchor: int, inserted: str):
    def observe(alignment: _Alignment) -> _Observation | None:
        query = alignment.query_position(anchor)
        if query is None:
            return None
        quality = int(alignment.qualities[query])
        deleted_next = alignment.gap_overlaps(anchor + 1, anchor + 2)
        if not deleted_next and alignment.query_position(anchor + 1) is None:
            return None  # the read ends (or is clipped) right after the anchor
        if anchor + 1 in alignment.insertions:
            start, length = alignment.insertions[anchor + 1]
            bases = alignment.sequence[start : start + length]
            quality = min(quality, int(min(alignment.qualities[start : start + length])))
            return ("alt" if bases == inserted else "other", quality, alignment.reverse)
        return ("other" if deleted_next else "ref", quality, alignment.reverse)

    return observe


def _deletion_observer(anchor: int, length: int):
    after = anchor + length + 1  # first reference base after the deleted bases

    def observe(alignment: _Alignment) -> _Observation | None:
        query = alignment.query_position(anchor)
        if query is None:
            return None
        quality = int(alignment.qualities[query])
        if (anchor + 1, after) in alignment.gaps:
            return ("alt", quality, alignment.reverse)
        indel_inside = alignment.gap_overlaps(anchor + 1, after) or any(
            anchor < position <= after for position in alignment.insertions
        )
        if indel_inside:
            return ("other", quality, alignment.reverse)
        if alignment.query_position(after) is None:
            return None
        return ("ref", quality, alignment.reverse)

    return observe


def observer(kind: str, anchor: int, ref: str, alt: str, flank: int):
    """What a read shows at one site, and the end of the reference span the site looks at.

    Parameters
    ----------
    kind
        ``snv``, ``insertion`` or ``deletion`` (minimal alleles).
    anchor
        0-based position of the SNV or of the indel's anchor base.
    ref, alt
        The alleles.
    flank
        :attr:`~carmscope.ctdna.filters.AlleleFilters.min_indel_flank` (indels only).

    Returns
    -------
    observe, stop
        ``observe(alignment)`` gives ``(allele, base quality, reverse)`` or None; ``stop`` is
        the exclusive end of the span it reads.
    """
    if kind == "snv":
        return _snv_observer(anchor, ref, alt), anchor + 1
    if kind == "insertion":
        observe, stop = _insertion_observer(anchor, alt[1:]), anchor + 2
    else:
        length = len(ref) - 1
        observe, stop = _deletion_observer(anchor, length), anchor + length + 2
    return _with_flank(observe, anchor, stop - 1, flank), stop
