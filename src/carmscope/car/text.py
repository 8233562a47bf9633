"""Compiled scans of text reads: FASTQ chunks and batches of sequences.

Both flag the reads that share at least one k-mer with the specific k-mer lookup (on the
read's forward strand: the lookup holds both strands of every specific k-mer), looking every
k-mer up. :mod:`carmscope.car.evidence` then decides each flagged read.
"""

from __future__ import annotations

from array import array

from carmscope.bam import _native
from carmscope.car.kmers import KmerLookup, lookup_args


def flag_sequences(sequences: list[str], lookup: KmerLookup) -> list[int]:
    """Indices of the ``sequences`` (ACGTN text) that share a k-mer with ``lookup``."""
    if not sequences:
        return []
    flags = array("q", bytes(8 * len(sequences)))
    _native.flag_lines("\n".join(sequences).encode("ascii"), *lookup_args(lookup), lookup.k, flags)
    return [i for i, flag in enumerate(flags) if flag]


def scan_fastq_chunk(
    buffer, final, table, bits, byte_filter, filter_bits, k, candidates
) -> tuple[int, int, int, int]:
    """Walk the FASTQ records of ``buffer`` and flag those whose sequence has a k-mer hit.

    Parameters
    ----------
    buffer
        Inflated FASTQ text, starting at a record.
    final
        True if ``buffer`` ends the file (a last line may then lack its newline).
    candidates
        Output (``int64``, at least ``len(buffer) // 4 + 1`` slots): offsets of the flagged
        records.

    Returns
    -------
    consumed, n_records, n_candidates, error
        Bytes of whole records walked, records, flagged records, and 0 or the offset of a
        malformed record plus one.
    """
    return _native.scan_fastq_chunk(
        buffer, bool(final), table, bits, byte_filter, filter_bits, k, candidates
    )


def fastq_chunk_args(lookup: KmerLookup) -> tuple:
    """The lookup arguments of :func:`scan_fastq_chunk` after ``buffer`` and ``final``."""
    return (*lookup_args(lookup), lookup.k)
