"""Allele counting straight from BAM records: the ``records`` engine of ``count_alleles``.

:func:`carmscope.ctdna.alleles.count_alleles` reads each cluster of nearby sites with one pass
over its reads. Through pysam that pass costs a Python object and several attribute lookups
per read; here it costs none. For a BAM with a ``.bai`` index, :class:`RecordScanner` finds
where a cluster's reads start from the index's linear index, inflates the BGZF blocks from there
(:mod:`carmscope.bam.bgzf`) and walks the raw records with the package's compiled kernel
(``count_observations`` in :mod:`carmscope.bam._native`, C) that applies the read filters, finds
what each read shows at every site it spans (the same rules as the observers of the pysam
engine, :mod:`carmscope.ctdna.pileup`) and writes one observation per read and site into flat
arrays. A second kernel (``tally_fragments``) groups the observations by site and read name
(mates of a fragment) with a hash table and applies the one-fragment-one-count rule. Nothing
is kept per read beyond those arrays.

Anything this path does not handle gives ``None`` and the caller counts the cluster with pysam
instead: CRAM, a ``.csi`` index (htslib prefers it, and it has no linear index), a record whose
CIGAR is kept in a ``CG`` tag (more than 65,535 operations; htslib moves it back on reading), a
malformed or truncated record (pysam then raises its own error).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence

import numpy as np

from carmscope.bam import _native, bgzf
from carmscope.bam.index import find_index

KIND_CODES = {"snv": 0, "insertion": 1, "deletion": 2}
BASE_CODES = {"A": 1, "C": 2, "G": 4, "T": 8}
"""4-bit BAM codes of the bases (``=ACMGRSVTWYHKDBN``)."""
ALLELES = ("ref", "alt", "other")
"""Allele codes 0, 1, 2 of the kernels."""

_NEED_DATA, _DONE, _FULL, _UNSUPPORTED, _MALFORMED = 0, 1, 2, 3, 4
"""Status codes of ``count_observations`` (more data needed, done, output arrays full,
unsupported record, malformed record)."""
_MAX_CHUNK_BLOCKS = 64
"""BGZF blocks (up to 64 KiB inflated each) handed to the kernel at once, at most; a cluster
starts with one and doubles, so small clusters inflate little beyond their reads."""
_READ_BYTES = 1 << 18
"""Compressed bytes read at once: a cluster of a sparse panel needs a block or two."""


class UnsupportedError(Exception):
    """The record scan cannot count this cluster; pysam will."""


# --- the index --------------------------------------------------------------------------------


def bai_path(bam_path: str | os.PathLike) -> str | None:
    """The ``.bai`` index htslib would use for ``bam_path``, or None (no index, or a ``.csi``,
    which htslib prefers and which has no linear index): see
    :func:`carmscope.bam.index.find_index`."""
    index = find_index(bam_path)
    return index if index is not None and index.endswith(".bai") else None


def read_linear_index(path: str) -> list[np.ndarray]:
    """Per reference, the BAI linear index: the virtual file offset of the first read that
    overlaps each 16 kb window (htslib fills empty windows with an earlier offset)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:4] != b"BAI\x01":
        raise UnsupportedError(f"{path} is not a BAI index")
    (n_references,) = struct.unpack_from("<i", data, 4)
    at = 8
    linear = []
    for _ in range(n_references):
        (n_bins,) = struct.unpack_from("<i", data, at)
        at += 4
        for _ in range(n_bins):
            (n_chunks,) = struct.unpack_from("<i", data, at + 4)
            at += 8 + 16 * n_chunks
        (n_windows,) = struct.unpack_from("<i", data, at)
        at += 4
        linear.append(np.frombuffer(data, dtype="<u8", count=n_windows, offset=at))
        at += 8 * n_windows
    return linear


# --- BGZF -------------------------------------------------------------------------------------


def _inflated_chunks(path: str, virtual_offset: int) -> Iterator[list[bytes]]:
    """Inflated blocks from a BGZF virtual offset on: 1, 2, 4, ... blocks at a time."""
    blocks = bgzf.iter_blocks(path, virtual_offset >> 16, read_bytes=_READ_BYTES)
    skip = virtual_offset & 0xFFFF
    wanted = 1
    pieces: list[bytes] = []
    try:
        for block in blocks:
            pieces.append(block.data[skip:] if skip else block.data)
            skip = 0
            if len(pieces) == wanted:
                yield pieces
                pieces = []
                wanted = min(2 * wanted, _MAX_CHUNK_BLOCKS)
    except bgzf.ReadsError as error:  # pysam reads the cluster and reports the damage
        raise UnsupportedError(str(error)) from None
    finally:
        blocks.close()
    if pieces:
        yield pieces


# --- the scanner ------------------------------------------------------------------------------


class RecordScanner:
    """Counts clusters of sites from the raw records of one BAM (see the module docstring).

    Parameters
    ----------
    bam_path
        The BAM.
    index_path
        Its ``.bai`` index (:func:`bai_path`).
    first_record
        Virtual offset of the first record (after the header), a lower bound for every start.
    """

    def __init__(self, bam_path: str, index_path: str, first_record: int) -> None:
        self.linear = read_linear_index(index_path)
        self.first_record = first_record
        self.path = str(bam_path)

    def close(self) -> None:
        """Nothing to release (each cluster opens the file for its own pass); kept so the
        scanner can be used as a context manager."""

    def __enter__(self) -> RecordScanner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def count(
        self,
        tid: int,
        start: int,
        stop: int,
        anchors: Sequence[int],
        kinds: Sequence[str],
        refs: Sequence[str],
        alts: Sequence[str],
        filters,
        excluded: int,
    ) -> np.ndarray | None:
        """Counts (one row per site, columns as ``alleles.COUNT_COLUMNS``) of the sorted sites
        of one cluster on reference ``tid``, spanning [start, stop); None when the cluster
        must be counted with pysam."""
        try:
            return self._count(tid, start, stop, anchors, kinds, refs, alts, filters, excluded)
        except UnsupportedError:
            return None

    def _count(self, tid, start, stop, anchors, kinds, refs, alts, filters, excluded):
        n_sites = len(anchors)
        counts = np.zeros((n_sites, 8), dtype=np.int64)
        linear = self.linear[tid] if tid < len(self.linear) else None
        if linear is None or linear.size == 0:
            return counts  # no reads on this contig
        virtual_offset = max(int(linear[min(start >> 14, linear.size - 1)]), self.first_record)
        sites = _site_arrays(anchors, kinds, refs, alts)
        capacity = 1 << 16
        out = _outputs(capacity)
        state = np.zeros(3, dtype=np.int64)
        pending = b""
        status = _NEED_DATA
        for blocks in _inflated_chunks(self.path, virtual_offset):
            pending = b"".join([pending, *blocks])
            buffer = np.frombuffer(pending, dtype=np.uint8)
            while True:
                reached, status = _native.count_observations(
                    buffer, tid, stop, *sites, filters.min_indel_flank, excluded,
                    filters.exclude_improper_pairs, filters.min_mapping_quality,
                    filters.count_overlapping_mates_once, state, *out,
                )  # fmt: skip
                if status != _FULL:
                    break
                capacity *= 2
                out = _grow(out, capacity, int(state[2]))
                buffer = buffer[reached:]
                pending = pending[reached:]
            if status != _NEED_DATA:
                break
            pending = pending[reached:]
        if status in (_UNSUPPORTED, _MALFORMED) or (status == _NEED_DATA and pending):
            raise UnsupportedError("record the scan cannot read")
        n_out = int(state[2])
        site, allele, quality, reverse, key, crc = (array[:n_out] for array in out)
        _native.tally_fragments(
            site, allele, quality, reverse, key, crc, filters.min_base_quality, counts
        )
        return counts


def _site_arrays(anchors, kinds, refs, alts) -> tuple:
    n_sites = len(anchors)
    kind_codes = np.array([KIND_CODES[kind] for kind in kinds], dtype=np.int8)
    ref_codes = np.zeros(n_sites, dtype=np.int8)
    alt_codes = np.zeros(n_sites, dtype=np.int8)
    inserted_at = np.zeros(n_sites, dtype=np.int64)
    inserted_length = np.zeros(n_sites, dtype=np.int64)
    deleted_length = np.zeros(n_sites, dtype=np.int64)
    inserted: list[int] = []
    for number, (kind, ref, alt) in enumerate(zip(kinds, refs, alts, strict=True)):
        if kind == "snv":
            ref_codes[number], alt_codes[number] = BASE_CODES[ref], BASE_CODES[alt]
        elif kind == "insertion":
            inserted_at[number], inserted_length[number] = len(inserted), len(alt) - 1
            inserted.extend(BASE_CODES[base] for base in alt[1:])
        else:
            deleted_length[number] = len(ref) - 1
    return (
        np.asarray(anchors, dtype=np.int64),
        kind_codes,
        ref_codes,
        alt_codes,
        inserted_at,
        inserted_length,
        np.array(inserted, dtype=np.uint8),
        deleted_length,
    )


_OUTPUT_TYPES = (np.int64, np.int8, np.int16, np.bool_, np.uint64, np.uint32)
"""site, allele, quality, reverse strand, fragment key, CRC32 of the read name."""


def _outputs(capacity: int) -> list[np.ndarray]:
    return [np.empty(capacity, dtype=dtype) for dtype in _OUTPUT_TYPES]


def _grow(arrays: list[np.ndarray], capacity: int, used: int) -> list[np.ndarray]:
    grown = _outputs(capacity)
    for old, new in zip(arrays, grown, strict=True):
        new[:used] = old[:used]
    return grown
