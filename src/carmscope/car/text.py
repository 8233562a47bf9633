"""Compiled scans of text reads: FASTQ chunks and batches of sequences.

Both flag the reads that share at least one k-mer with the specific k-mer lookup (on the
read's forward strand: the lookup holds both strands of every specific k-mer), looking every
k-mer up. :mod:`carmscope.car.evidence` then decides each flagged read.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from carmscope.car.kmers import KmerLookup, ascii_hits, lookup_args

NEWLINE = 10
AT = 64
PLUS = 43


@njit(cache=True, nogil=True)
def _line_end(buffer: np.ndarray, start: int) -> int:
    """Offset of the newline ending the line at ``start`` (-1 if the buffer ends first)."""
    for position in range(start, buffer.size):
        if buffer[position] == NEWLINE:
            return position
    return -1


@njit(cache=True, nogil=True)
def _flag_lines(buffer, table, bits, byte_filter, filter_bits, k, flags) -> int:
    """Set ``flags[i]`` for each newline-terminated line ``i`` with a k-mer hit; lines seen."""
    start = 0
    line = 0
    while start < buffer.size:
        end = _line_end(buffer, start)
        if end < 0:
            end = buffer.size
        flags[line] = ascii_hits(buffer, start, end, table, bits, byte_filter, filter_bits, k, 1)
        line += 1
        start = end + 1
    return line


def flag_sequences(sequences: list[str], lookup: KmerLookup) -> list[int]:
    """Indices of the ``sequences`` (ACGTN text) that share a k-mer with ``lookup``."""
    if not sequences:
        return []
    buffer = np.frombuffer("\n".join(sequences).encode("ascii"), dtype=np.uint8)
    flags = np.zeros(len(sequences), dtype=np.int64)
    _flag_lines(buffer, *lookup_args(lookup), lookup.k, flags)
    return np.flatnonzero(flags).tolist()


@njit(cache=True, nogil=True)
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
        Output: offsets of the flagged records.

    Returns
    -------
    consumed, n_records, n_candidates, error
        Bytes of whole records walked, records, flagged records, and 0 or the offset of a
        malformed record plus one.
    """
    position = 0
    n_records = 0
    n_candidates = 0
    while position < buffer.size:
        record = position
        ends = np.empty(4, dtype=np.int64)
        complete = True
        for line in range(4):
            end = _line_end(buffer, position)
            if end < 0:
                if final and line == 3 and position < buffer.size:
                    end = buffer.size
                else:
                    complete = False
                    break
            ends[line] = end
            position = end + 1
        if not complete:
            if final:
                return record, n_records, n_candidates, record + 1
            return record, n_records, n_candidates, 0
        sequence_start = ends[0] + 1
        plus = ends[1] + 1
        if buffer[record] != AT or buffer[plus] != PLUS:
            return record, n_records, n_candidates, record + 1
        if ends[3] - ends[2] != ends[1] - ends[0]:
            return record, n_records, n_candidates, record + 1
        n_records += 1
        if ascii_hits(buffer, sequence_start, ends[1], table, bits, byte_filter, filter_bits, k, 1):
            candidates[n_candidates] = record
            n_candidates += 1
    return min(position, buffer.size), n_records, n_candidates, 0


def fastq_chunk_args(lookup: KmerLookup) -> tuple:
    """The lookup arguments of :func:`scan_fastq_chunk` after ``buffer`` and ``final``."""
    return (*lookup_args(lookup), lookup.k)
