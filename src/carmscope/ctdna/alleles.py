"""Tumour variants and their allele counts in cfDNA BAMs.

:func:`read_tumour_variants` reads a patient's tumour-variant VCF into one row per ALT allele;
:func:`count_alleles` counts, in a coordinate-sorted and indexed plasma BAM, the DNA fragments
that show each variant's REF allele, its ALT allele or something else at the site, one read
at a time (reads are streamed from the index, never loaded as a whole).
:func:`count_alleles_bcftools` counts the same SNVs with ``bcftools mpileup`` as an
independent check. Allele representation: alleles are upper-cased and trimmed to their
minimal form (shared trailing, then leading bases removed, keeping the one VCF anchor base of
an indel), so ``REF=GAT ALT=GCT`` is the SNV ``A>C`` one base on; indels are expected
left-aligned, as aligners report them (``bcftools norm -f reference.fa``).
"""

from __future__ import annotations

import gzip
import os
import tempfile
import zlib
from bisect import bisect_left
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pysam
import pysam.bcftools

from carmscope.ctdna import bamscan
from carmscope.errors import LocatedInputError

VARIANT_KEY = ["chrom", "pos", "ref", "alt"]
"""Columns that identify a variant (1-based ``pos``, minimal alleles)."""

VARIANT_COLUMNS = [*VARIANT_KEY, "kind", "evaluable", "reason"]
"""Columns of :func:`read_tumour_variants`."""

COUNT_COLUMNS = [
    "ref_count",
    "alt_count",
    "other_count",
    "depth",
    "ref_fwd",
    "ref_rev",
    "alt_fwd",
    "alt_rev",
]
"""Fragment counts per variant (pandas ``Int64``; missing where the site was not counted)."""

ALLELE_COUNT_COLUMNS = [*VARIANT_COLUMNS, *COUNT_COLUMNS, "vaf"]
"""Columns of :func:`count_alleles`, :func:`count_alleles_bcftools` and the vendor reader."""

BASES = frozenset("ACGT")
MAX_COMBINED_QUALITY = 200
"""Cap on the summed base quality of two agreeing mates (as in htslib)."""

_ALIGNED_OPS = (0, 7, 8)  # M, =, X
_INSERTION_OP = 1
_GAP_OPS = (2, 3)  # D, N


class CtdnaInputError(LocatedInputError):
    """An input of the ctDNA analysis that cannot be used; the message names the file (and the
    line and column of a text file, when known)."""


@dataclass(frozen=True)
class AlleleFilters:
    """Which reads and bases count as evidence at a variant site.

    Unmapped reads never count. A fragment is counted once at most (see
    ``count_overlapping_mates_once``), and only if its base quality at the site reaches
    ``min_base_quality``.
    """

    min_base_quality: int = 20
    """Minimum Phred base quality of the base read at an SNV (the anchor base of an indel;
    for an insertion, the lowest of the anchor and inserted bases)."""
    min_mapping_quality: int = 20
    """Minimum mapping quality of a read."""
    exclude_duplicates: bool = True
    """Skip reads flagged as PCR/optical duplicates (0x400)."""
    exclude_secondary: bool = True
    """Skip secondary alignments (0x100)."""
    exclude_supplementary: bool = True
    """Skip supplementary alignments (0x800)."""
    exclude_qc_fail: bool = True
    """Skip reads failing vendor quality checks (0x200)."""
    exclude_improper_pairs: bool = True
    """Skip paired reads not flagged as a proper pair (0x1 set, 0x2 unset), as samtools and
    bcftools mpileup do by default (their ``-A`` keeps them)."""
    min_indel_flank: int = 10
    """Aligned reference bases a read needs on each side of an indel (up to and including the
    anchor; after the inserted or deleted bases) to count there, whatever allele it shows.
    Aligners soft-clip indels near read ends, so without this symmetric rule reads ending
    close to an indel would count as REF but never as ALT (a bias towards REF)."""
    count_overlapping_mates_once: bool = True
    """Count the two mates of a fragment that both cover the site as one observation: if they
    agree, once, with the sum of their base qualities (capped at 200; two independent reads of
    one molecule), on the strand of one mate chosen pseudo-randomly by read name (CRC32 parity,
    so overlaps add no strand bias); if they disagree, the mate with the higher base quality;
    if they disagree with equal quality, neither."""


_Observation = tuple[str, int, bool]
"""What one read shows at a site: allele ("ref", "alt" or "other"), base quality, reverse
strand (a plain tuple: one is made per read and site)."""


# --- variants ---------------------------------------------------------------------------------


def normalise_alleles(pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """Minimal representation of one REF/ALT pair.

    Upper-cases both alleles, trims shared trailing bases, then shared leading bases (moving
    ``pos`` on), always leaving at least one base in each allele.

    Parameters
    ----------
    pos
        1-based position of the first REF base.
    ref, alt
        Alleles as written in the VCF.

    Returns
    -------
    tuple
        ``(pos, ref, alt)`` after trimming. Symbolic alleles (``<DEL>``, ``*``, breakends) are
        returned unchanged.
    """
    ref, alt = ref.upper(), alt.upper()
    if not (set(ref) <= BASES | {"N"} and set(alt) <= BASES | {"N"}):
        return pos, ref, alt
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt


def classify_alleles(ref: str, alt: str) -> tuple[str, bool, str]:
    """Kind of a (minimal) REF/ALT pair and whether :func:`count_alleles` can count it.

    Returns
    -------
    tuple
        ``(kind, evaluable, reason)``: kind is ``snv``, ``insertion``, ``deletion`` or
        ``complex``; reason is '' when evaluable.
    """
    if not alt or alt == ".":
        return "complex", False, "record has no ALT allele"
    if not set(alt) <= BASES or not set(ref) <= BASES:
        if alt.startswith("<") or alt == "*" or "[" in alt or "]" in alt:
            return "complex", False, f"symbolic ALT allele {alt!r} is not counted"
        return "complex", False, f"alleles {ref}>{alt} contain bases other than A, C, G, T"
    if ref == alt:
        return "complex", False, "ALT equals REF"
    if len(ref) == 1 and len(alt) == 1:
        return "snv", True, ""
    if len(ref) == 1 and alt[0] == ref:
        return "insertion", True, ""
    if len(alt) == 1 and ref[0] == alt:
        return "deletion", True, ""
    return (
        "complex",
        False,
        f"complex allele {ref}>{alt} (MNV or deletion-insertion) is not counted; "
        "split it into SNVs and indels (bcftools norm --atomize)",
    )


def read_tumour_variants(
    vcf_path: str | os.PathLike,
    reference: str | os.PathLike | None = None,
    pass_only: bool = True,
) -> pd.DataFrame:
    """Read a patient's tumour-variant VCF, one row per ALT allele.

    Parameters
    ----------
    vcf_path
        VCF (``.vcf``, ``.vcf.gz``) or BCF of the patient's tumour-specific variants.
        Genotypes and INFO are ignored.
    reference
        Optional FASTA (indexed, or in a writable folder so pysam can index it); each record's
        REF must then match it.
    pass_only
        Records whose FILTER is neither ``PASS`` nor ``.`` are kept but marked not evaluable.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`VARIANT_COLUMNS`: ``chrom``, ``pos`` (1-based), ``ref``, ``alt``
        (minimal alleles, see :func:`normalise_alleles`), ``kind`` (snv, insertion, deletion,
        complex), ``evaluable`` and ``reason`` (why not evaluable; '' otherwise). Multi-allelic
        records give one row per ALT; a variant listed twice is kept once as evaluable.

    Raises
    ------
    CtdnaInputError
        The file cannot be read as VCF/BCF, has no records, or a REF disagrees with the
        reference (the message gives the record's line, for text VCFs, and position).
    """
    path = Path(vcf_path)
    header_lines = _vcf_header_line_count(path)
    try:
        vcf = pysam.VariantFile(str(path))
    except (OSError, ValueError) as error:
        raise CtdnaInputError(path, f"cannot be read as VCF/BCF: {error}") from error
    fasta = _open_fasta(reference) if reference is not None else None
    rows: list[dict[str, object]] = []
    seen: set[tuple] = set()
    number = 0
    try:
        with vcf:
            records = iter(vcf)
            while True:
                where = _record_location(number + 1, header_lines)
                try:
                    record = next(records)
                except StopIteration:
                    break
                except (OSError, ValueError) as error:
                    raise CtdnaInputError(
                        path, f"{where} (after {number} good records): cannot be parsed: {error}"
                    ) from error
                number += 1
                where = f"{where} ({record.chrom}:{record.pos})"
                if fasta is not None:
                    _check_reference(fasta, reference, path, record, where)
                filters = list(record.filter.keys())
                failed = pass_only and bool(filters) and filters != ["PASS"]
                for alt in record.alts or (".",):
                    pos, ref, alt_allele = normalise_alleles(record.pos, record.ref, alt)
                    kind, evaluable, reason = classify_alleles(ref, alt_allele)
                    key = (record.chrom, pos, ref, alt_allele)
                    if evaluable and failed:
                        evaluable, reason = False, f"FILTER is {';'.join(filters)}"
                    if evaluable and key in seen:
                        evaluable, reason = False, "duplicate of an earlier record"
                    seen.add(key)
                    rows.append(
                        {
                            "chrom": record.chrom,
                            "pos": pos,
                            "ref": ref,
                            "alt": alt_allele,
                            "kind": kind,
                            "evaluable": evaluable,
                            "reason": reason,
                        }
                    )
    finally:
        if fasta is not None:
            fasta.close()
    if not rows:
        raise CtdnaInputError(path, "contains no variant records")
    table = pd.DataFrame(rows, columns=VARIANT_COLUMNS)
    table["pos"] = table["pos"].astype("int64")
    table["evaluable"] = table["evaluable"].astype(bool)
    return table


def _vcf_header_line_count(path: Path) -> int | None:
    """Header lines of a text VCF (plain or gzip/BGZF), or None for BCF or unreadable files."""
    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            count = 0
            for line in handle:
                if count == 0 and line.startswith("BCF"):
                    return None
                if not line.startswith("#"):
                    break
                count += 1
            return count
    except (OSError, EOFError, UnicodeError):
        return None


def _record_location(number: int, header_lines: int | None) -> str:
    if header_lines is None:
        return f"record {number}"
    return f"line {header_lines + number} (record {number})"


def _open_fasta(reference: str | os.PathLike) -> pysam.FastaFile:
    try:
        return pysam.FastaFile(str(reference))
    except (OSError, ValueError) as error:
        raise CtdnaInputError(
            reference, f"cannot open the reference FASTA (or build its .fai): {error}"
        ) from error


def _check_reference(
    fasta: pysam.FastaFile,
    reference: str | os.PathLike | None,
    path: Path,
    record: pysam.VariantRecord,
    where: str,
) -> None:
    if record.chrom not in fasta.references:
        raise CtdnaInputError(
            path, f"{where}: contig {record.chrom!r} is not in the reference {reference}"
        )
    start = record.pos - 1
    expected = fasta.fetch(record.chrom, start, start + len(record.ref)).upper()
    if expected != record.ref.upper():
        raise CtdnaInputError(
            path,
            f"{where}: REF {record.ref} disagrees with the reference {reference} "
            f"({expected or 'beyond the contig end'}); was the VCF called on another assembly?",
        )


# --- BAM checks -------------------------------------------------------------------------------


def _sort_advice(bam_path: str | os.PathLike) -> str:
    return f"samtools sort -o sorted.bam {bam_path} && samtools index sorted.bam"


def _check_sorted(bam: pysam.AlignmentFile, bam_path: str | os.PathLike) -> None:
    order = bam.header.to_dict().get("HD", {}).get("SO")
    if order != "coordinate":
        raise CtdnaInputError(
            bam_path,
            f"is not coordinate-sorted (header SO: {order or 'missing'}); sort and index it: "
            + _sort_advice(bam_path),
        )


def _open_bam(
    bam_path: str | os.PathLike, reference: str | os.PathLike | None = None
) -> pysam.AlignmentFile:
    """Open a BAM (or, with its ``reference`` FASTA, a ``.cram``) checked to be
    coordinate-sorted (header ``SO``) and indexed."""
    cram = str(bam_path).lower().endswith(".cram")
    try:
        if cram:
            bam = pysam.AlignmentFile(
                str(bam_path),
                "rc",
                reference_filename=None if reference is None else str(reference),
            )
        else:
            bam = pysam.AlignmentFile(str(bam_path), "rb")
    except (OSError, ValueError) as error:
        kind = "CRAM" if cram else "BAM"
        raise CtdnaInputError(bam_path, f"cannot be read as {kind}: {error}") from error
    try:
        _check_sorted(bam, bam_path)
        if not bam.has_index():
            raise CtdnaInputError(
                bam_path,
                f"has no index (.bai/.csi); index it: samtools index {bam_path} "
                "(or carmscope.ctdna.alleles.ensure_index)",
            )
    except CtdnaInputError:
        bam.close()
        raise
    return bam


def ensure_index(bam_path: str | os.PathLike) -> str:
    """Index a coordinate-sorted BAM whose index is missing.

    Parameters
    ----------
    bam_path
        BAM whose header declares ``SO:coordinate``. The index is written next to it.

    Returns
    -------
    str
        Path of the index (existing or new: ``<bam>.bai``, or ``<bam>.csi`` if only that
        exists).

    Raises
    ------
    CtdnaInputError
        The BAM cannot be read, is not coordinate-sorted, or indexing fails.
    """
    path = str(bam_path)
    for suffix in (".bai", ".csi"):
        for candidate in (path + suffix, os.path.splitext(path)[0] + suffix):
            if os.path.exists(candidate):
                return candidate
    try:
        bam = pysam.AlignmentFile(path, "rb")
    except (OSError, ValueError) as error:
        raise CtdnaInputError(path, f"cannot be read as BAM: {error}") from error
    with bam:
        _check_sorted(bam, path)
    try:
        pysam.index(path)
    except pysam.SamtoolsError as error:
        raise CtdnaInputError(
            path, f"samtools index failed ({error}); re-sort it: {_sort_advice(path)}"
        ) from error
    return path + ".bai"


def _check_contigs(bam: pysam.AlignmentFile, bam_path: str | os.PathLike, variants) -> None:
    lengths = dict(zip(bam.references, bam.lengths, strict=True))
    for chrom, pos in variants[["chrom", "pos"]].drop_duplicates().itertuples(index=False):
        if chrom not in lengths:
            raise CtdnaInputError(
                bam_path,
                f"variant contig {chrom!r} is not in the BAM header (its contigs: "
                f"{', '.join(list(lengths)[:10])}{', ...' if len(lengths) > 10 else ''}); "
                "were the variants called on another assembly or naming (chr1 vs 1)?",
            )
        if pos > lengths[chrom]:
            raise CtdnaInputError(
                bam_path, f"variant {chrom}:{pos} lies beyond the contig end ({lengths[chrom]})"
            )


# --- counting ---------------------------------------------------------------------------------


def as_variants(variants: pd.DataFrame) -> pd.DataFrame:
    """A copy of a variants table with ``kind``, ``evaluable`` and ``reason``.

    Parameters
    ----------
    variants
        Table with at least :data:`VARIANT_KEY` (minimal alleles); the three columns are
        derived with :func:`classify_alleles` when absent.

    Returns
    -------
    pandas.DataFrame
        The table with a fresh 0-based index, ``pos`` as int64 and ``evaluable`` as bool.
    """
    missing = [column for column in VARIANT_KEY if column not in variants.columns]
    if missing:
        raise ValueError(f"variants lack column(s) {', '.join(missing)}")
    table = variants.reset_index(drop=True).copy()
    if not {"kind", "evaluable", "reason"} <= set(table.columns):
        classified = [
            classify_alleles(r, a) for r, a in zip(table["ref"], table["alt"], strict=True)
        ]
        table["kind"] = [c[0] for c in classified]
        table["evaluable"] = [c[1] for c in classified]
        table["reason"] = [c[2] for c in classified]
    table["pos"] = table["pos"].astype("int64")
    table["evaluable"] = table["evaluable"].astype(bool)
    table["reason"] = table["reason"].fillna("").astype(str)
    return table


def _finish(table: pd.DataFrame, counts: dict[int, dict[str, int]]) -> pd.DataFrame:
    """Attach counts (by row) and VAF; rows without counts get missing values."""
    for column in COUNT_COLUMNS:
        values = [counts[i][column] if i in counts else pd.NA for i in range(len(table))]
        table[column] = pd.array(values, dtype="Int64")
    depth = table["depth"].astype("Float64")
    table["vaf"] = (table["alt_count"].astype("Float64") / depth.where(depth > 0)).astype(float)
    extra = [c for c in table.columns if c not in ALLELE_COUNT_COLUMNS]
    return table[[*ALLELE_COUNT_COLUMNS, *extra]]


def count_alleles(
    bam_path: str | os.PathLike,
    variants: pd.DataFrame,
    filters: AlleleFilters | None = None,
    reference: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Count REF, ALT and other fragments at each variant in a cfDNA BAM.

    SNVs are read from the base aligned to the site. Indels are read from each read's CIGAR:
    a read carries the ALT if it has exactly this insertion (same inserted bases) or deletion
    (same length) right after the anchor base; it carries the REF if it is aligned without a
    gap from the anchor base to the first base after the indel (an insertion: the anchor and
    the next base; a deletion: the anchor, the deleted bases and the next base); a read with a
    different indel there is ``other``; reads that do not reach both sides, or have fewer than
    ``filters.min_indel_flank`` aligned bases on either side, are not counted. A read with a
    deletion over an SNV site is not counted (as in bcftools allele depths).

    Reads are streamed once per cluster of nearby sites (sites sorted by contig and position;
    sites less than :data:`CLUSTER_GAP` apart share one pass), and each read is handed to
    every site it covers, so neighbouring sites do not decode the same reads again. A BAM with
    a ``.bai`` index is read record by record in compiled code (:mod:`carmscope.ctdna.bamscan`,
    see :data:`SCAN_RECORDS`); CRAM, a ``.csi`` index and records that scan cannot read go
    through pysam (``fetch``), with the same rules and counts.

    Parameters
    ----------
    bam_path
        Coordinate-sorted (header ``SO:coordinate``), indexed, duplicate-marked BAM (or CRAM,
        with ``reference``).
    variants
        Variants with columns chrom, pos, ref, alt (minimal alleles, e.g. from
        :func:`read_tumour_variants`); kind/evaluable/reason are derived when absent.
        Extra columns are kept.
    filters
        Read and base filters; default :class:`AlleleFilters`.
    reference
        FASTA the reads were aligned to; needed only to decode a ``.cram`` file (ignored for
        BAM).

    Returns
    -------
    pandas.DataFrame
        The variants with :data:`COUNT_COLUMNS` (``depth`` = ref + alt + other fragments;
        strand columns split the REF and ALT counts by the strand of the counted read) and
        ``vaf`` = alt / depth (NaN at depth 0). Rows that are not evaluable have missing counts.

    Raises
    ------
    CtdnaInputError
        The BAM is unreadable, not coordinate-sorted, unindexed, or lacks a variant's contig.
    """
    filters = filters or AlleleFilters()
    table = as_variants(variants)
    counts: dict[int, dict[str, int]] = {}
    with _open_bam(bam_path, reference) as bam:
        _check_contigs(bam, bam_path, table)
        contig_order = {name: i for i, name in enumerate(bam.references)}
        sites = sorted(
            (_site(index, row, filters) for index, row in table.iterrows() if row["evaluable"]),
            key=lambda site: (contig_order[site.chrom], site.anchor, site.index),
        )
        scanner = _record_scanner(bam, bam_path) if sites else None
        try:
            for contig, start, stop, cluster in _clusters(sites):
                found = None
                if scanner is not None:
                    found = _scan_cluster(
                        scanner, contig_order[contig], start, stop, cluster, filters
                    )
                if found is None:
                    found = _count_cluster(bam, contig, start, stop, cluster, filters)
                counts.update(found)
        finally:
            if scanner is not None:
                scanner.close()
    return _finish(table, counts)


SCAN_RECORDS = True
"""Count BAMs with a ``.bai`` index from their raw records (:mod:`carmscope.ctdna.bamscan`);
False, or a file the scan cannot read, counts through pysam (:func:`_count_cluster`), with the
same rules and results."""


def _record_scanner(bam: pysam.AlignmentFile, bam_path: str | os.PathLike):
    """A :class:`~carmscope.ctdna.bamscan.RecordScanner` for a BAM with a ``.bai`` index, else
    None (CRAM, ``.csi`` index, or ``SCAN_RECORDS`` off)."""
    if not SCAN_RECORDS or not bam.is_bam:
        return None
    index = bamscan.bai_path(bam_path)
    if index is None:
        return None
    try:
        return bamscan.RecordScanner(str(bam_path), index, bam.tell())
    except (OSError, ValueError, bamscan.UnsupportedError):
        return None


def _scan_cluster(
    scanner, tid: int, start: int, stop: int, sites: list[_Site], filters: AlleleFilters
) -> dict[int, dict[str, int]] | None:
    """Counts of one cluster from the record scan, or None (count it with pysam)."""
    found = scanner.count(
        tid,
        start,
        stop,
        [site.anchor for site in sites],
        [site.kind for site in sites],
        [site.ref for site in sites],
        [site.alt for site in sites],
        filters,
        _excluded_flags(filters),
    )
    if found is None:
        return None
    return {
        site.index: dict(zip(COUNT_COLUMNS, map(int, row), strict=True))
        for site, row in zip(sites, found, strict=True)
    }


CLUSTER_GAP = 16_384
"""Sites closer than this (bp, one BAI linear-index window) are counted from one ``fetch``."""


class _Site(NamedTuple):
    index: int  # row of the variants table
    chrom: str
    anchor: int  # 0-based position of the SNV or indel anchor base
    stop: int  # end (exclusive) of the reference span the site looks at
    observe: object  # _Alignment -> _Observation | None
    kind: str
    ref: str
    alt: str


def _site(index: int, variant: pd.Series, filters: AlleleFilters) -> _Site:
    anchor = int(variant["pos"]) - 1
    kind = variant["kind"]
    if kind == "snv":
        observe, stop = _snv_observer(anchor, variant["ref"], variant["alt"]), anchor + 1
    elif kind == "insertion":
        observe, stop = _insertion_observer(anchor, variant["alt"][1:]), anchor + 2
    else:
        length = len(variant["ref"]) - 1
        observe, stop = _deletion_observer(anchor, length), anchor + length + 2
    if kind != "snv":
        observe = _with_flank(observe, anchor, stop - 1, filters.min_indel_flank)
    return _Site(
        index, variant["chrom"], anchor, stop, observe, kind, variant["ref"], variant["alt"]
    )


def _clusters(sites: list[_Site]):
    """``(contig, start, stop, sites)`` of runs of sorted sites less than CLUSTER_GAP apart."""
    cluster: list[_Site] = []
    stop = 0
    for site in sites:
        if cluster and (site.chrom != cluster[0].chrom or site.anchor >= stop + CLUSTER_GAP):
            yield cluster[0].chrom, cluster[0].anchor, stop, cluster
            cluster = []
        stop = max(stop, site.stop) if cluster else site.stop
        cluster.append(site)
    if cluster:
        yield cluster[0].chrom, cluster[0].anchor, stop, cluster


def _excluded_flags(filters: AlleleFilters) -> int:
    mask = 0x4  # unmapped
    for wanted, flag in (
        (filters.exclude_secondary, 0x100),
        (filters.exclude_qc_fail, 0x200),
        (filters.exclude_duplicates, 0x400),
        (filters.exclude_supplementary, 0x800),
    ):
        if wanted:
            mask |= flag
    return mask


def _count_cluster(
    bam: pysam.AlignmentFile,
    contig: str,
    start: int,
    stop: int,
    sites: list[_Site],
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
    excluded = _excluded_flags(filters)
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
    return {
        site.index: _tally(found, filters) for site, found in zip(sites, fragments, strict=True)
    }


def _tally(fragments: dict[object, list[_Observation]], filters: AlleleFilters) -> dict[str, int]:
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


# --- bcftools cross-check ---------------------------------------------------------------------


def count_alleles_bcftools(
    bam_path: str | os.PathLike,
    variants: pd.DataFrame,
    reference_fasta: str | os.PathLike,
    filters: AlleleFilters | None = None,
) -> pd.DataFrame:
    """Count SNV alleles with ``bcftools mpileup -a AD,ADF,ADR`` (htslib pileup) instead.

    The filters map onto mpileup options: ``-q`` (mapping quality), ``-Q`` (base quality),
    ``--ff`` (UNMAP plus the excluded flags), ``-A`` when improper pairs are kept, ``-x`` when
    overlapping mates are counted twice; BAQ is off (``-B``; :func:`count_alleles` does not
    recompute base qualities), the per-file depth cap is lifted (``-d``), neighbour-based
    quality capping is off (``--delta-BQ``) and indels are skipped (``-I``); sites come from a
    regions file (``-R``).

    Residual differences from :func:`count_alleles` (see ``docs/ctdna.md``), all about
    overlapping mates: htslib keeps the higher-quality of two disagreeing mates at 80% of its
    quality (so a kept base of quality < 25 falls below ``-Q 20``) and one of two equal ones;
    it picks the mate of two agreeing ones by its own read-name hash (so allele counts agree,
    the strand split of such fragments may not); it only pairs up mates flagged as a proper
    pair (relevant only when improper pairs are kept).

    Parameters
    ----------
    bam_path
        Coordinate-sorted, indexed BAM.
    variants
        As for :func:`count_alleles`; only evaluable SNVs are counted, other rows are marked
        not evaluable ("bcftools path counts SNVs only").
    reference_fasta
        The FASTA the BAM was aligned to (indexed); SNV REF bases must match it.
    filters
        As for :func:`count_alleles`.

    Returns
    -------
    pandas.DataFrame
        The same columns as :func:`count_alleles`.
    """
    filters = filters or AlleleFilters()
    table = as_variants(variants)
    not_snv = table["evaluable"] & (table["kind"] != "snv")
    table.loc[not_snv, "evaluable"] = False
    table.loc[not_snv, "reason"] = "bcftools path counts SNVs only"
    with _open_bam(bam_path) as bam:
        _check_contigs(bam, bam_path, table)
        contig_order = {name: i for i, name in enumerate(bam.references)}
    snvs = table[table["evaluable"]]
    counts: dict[int, dict[str, int]] = {}
    if snvs.empty:
        return _finish(table, counts)
    sites = snvs[["chrom", "pos"]].drop_duplicates()
    sites = sites.assign(order=sites["chrom"].map(contig_order)).sort_values(["order", "pos"])
    with tempfile.TemporaryDirectory(prefix="carmscope-mpileup-") as folder:
        regions = os.path.join(folder, "sites.tsv")
        output = os.path.join(folder, "pileup.vcf")
        sites[["chrom", "pos", "pos"]].to_csv(regions, sep="\t", header=False, index=False)
        try:
            pysam.bcftools.mpileup(
                *_mpileup_options(filters, reference_fasta, regions, output),
                str(bam_path),
                catch_stdout=False,
            )
        except pysam.SamtoolsError as error:
            raise CtdnaInputError(bam_path, f"bcftools mpileup failed: {error}") from error
        with pysam.VariantFile(output) as pileup:
            records = {(r.chrom, r.pos): _allele_depths(r) for r in pileup}
    for index, row in snvs.iterrows():
        found = records.get((row["chrom"], int(row["pos"])))
        if found is not None and found[0] != row["ref"]:
            raise CtdnaInputError(
                reference_fasta,
                f"has {found[0]} at {row['chrom']}:{row['pos']}, the variant's REF is {row['ref']}",
            )
        counts[index] = _parse_depths(found, row["alt"])
    return _finish(table, counts)


def _mpileup_options(
    filters: AlleleFilters, reference: str | os.PathLike, regions: str, output: str
) -> list[str]:
    skip = ["UNMAP"]
    for wanted, flag in (
        (filters.exclude_secondary, "SECONDARY"),
        (filters.exclude_qc_fail, "QCFAIL"),
        (filters.exclude_duplicates, "DUP"),
        (filters.exclude_supplementary, "SUPPLEMENTARY"),
    ):
        if wanted:
            skip.append(flag)
    options = [
        "--fasta-ref", str(reference),
        "--annotate", "AD,ADF,ADR",
        "--min-MQ", str(filters.min_mapping_quality),
        "--min-BQ", str(filters.min_base_quality),
        "--ff", ",".join(skip),
        "--no-BAQ",
        "--max-depth", "100000000",
        "--delta-BQ", "255",
        "--max-BQ", "255",
        "--skip-indels",
        "--regions-file", regions,
        "--no-version",
        "--output-type", "v",
        "--output", output,
    ]  # fmt: skip
    if not filters.exclude_improper_pairs:
        options.append("--count-orphans")
    if not filters.count_overlapping_mates_once:
        options.append("--ignore-overlaps")
    return options


def _allele_depths(record: pysam.VariantRecord) -> tuple[str, dict[str, tuple[int, int, int]]]:
    """REF base and ``{allele: (AD, ADF, ADR)}`` of a one-sample mpileup record."""
    sample = next(iter(record.samples.values()))
    depths = {
        allele: (sample["AD"][i], sample["ADF"][i], sample["ADR"][i])
        for i, allele in enumerate(record.alleles)
        if allele != "<*>"
    }
    return record.ref.upper(), depths


def _parse_depths(
    found: tuple[str, dict[str, tuple[int, int, int]]] | None, alt: str
) -> dict[str, int]:
    tally = dict.fromkeys(COUNT_COLUMNS, 0)
    if found is None:
        return tally
    ref, depths = found
    for allele, (total, forward, reverse) in depths.items():
        total = total or 0
        if allele == ref:
            tally.update(ref_count=total, ref_fwd=forward or 0, ref_rev=reverse or 0)
        elif allele == alt:
            tally.update(alt_count=total, alt_fwd=forward or 0, alt_rev=reverse or 0)
        else:
            tally["other_count"] += total
    tally["depth"] = tally["ref_count"] + tally["alt_count"] + tally["other_count"]
    return tally
