"""Whether one read proves a CAR construct, and where on the construct it lies.

The compiled scan (:mod:`carmscope.car.bam`, :mod:`carmscope.car.text`) only flags reads that
share a k-mer with the specific k-mer index. Each flagged read is then decided here, on both
strands, with every k-mer checked:

1. Every k-mer of the read (and of its reverse complement) that is a specific k-mer votes for
   a placement: construct, strand and diagonal (construct position minus read position).
2. A placement counts when it has at least ``min_kmers`` specific k-mers, two of them
   overlapping (an exact match of k + 1 bases: the compiled scan finds every such read), and
   the read, laid ungapped on the construct at that diagonal, mismatches the construct at no
   more than ``max_mismatch_fraction`` of the bases where they overlap. Bases outside the
   construct (vector sequence beyond its ends, adapters) are not compared; N never counts as a
   mismatch.
3. The read is CAR evidence for the placement with the most specific k-mers. Two counting
   placements on different constructs with equal k-mer counts make the read *ambiguous*:
   counted for neither.

The mismatch check rejects reads whose specific k-mers are a short stretch shared by chance,
or by another construct built from the same parts (e.g. the first codons of a humanised VL
framework), when the rest of the read disagrees with the construct.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from carmscope.car.kmers import SpecificKmerIndex, ascii_hit_codes, lookup_args
from carmscope.construct import reverse_complement

DEFAULT_MIN_KMERS = 8
DEFAULT_MAX_MISMATCH_FRACTION = 0.1


@dataclass(frozen=True)
class EvidenceSettings:
    """Thresholds of the per-read decision.

    Attributes
    ----------
    min_kmers
        Fewest specific k-mers a read must carry on one placement.
    max_mismatch_fraction
        Largest fraction of mismatching bases over the read's overlap with the construct.
    """

    min_kmers: int = DEFAULT_MIN_KMERS
    max_mismatch_fraction: float = DEFAULT_MAX_MISMATCH_FRACTION

    def __post_init__(self) -> None:
        if self.min_kmers < 2:
            raise ValueError("min_kmers must be at least 2")
        if not 0 <= self.max_mismatch_fraction <= 1:
            raise ValueError("max_mismatch_fraction must be between 0 and 1")


@dataclass(frozen=True)
class Placement:
    """Where a CAR read lies on a construct.

    Attributes
    ----------
    construct
        Index of the construct in the k-mer index.
    reverse
        True if the read is the reverse complement of the construct (antisense).
    diagonal
        0-based construct position of the read's first base, once the read is oriented like
        the construct (negative when the read starts before the construct).
    length
        Read length.
    kmers
        Specific k-mers supporting the placement.
    overlap, mismatches
        Bases of the read lying on the construct, and how many of them differ.
    """

    construct: int
    reverse: bool
    diagonal: int
    length: int
    kmers: int
    overlap: int
    mismatches: int

    def span(self, construct_length: int) -> tuple[int, int]:
        """0-based, half-open construct interval the read covers."""
        return max(self.diagonal, 0), min(self.diagonal + self.length, construct_length)


AMBIGUOUS = "ambiguous"


_DIAGONAL_BITS = 40
_DIAGONAL_OFFSET = 1 << 39
"""Placements are packed in one integer: (construct, strand) above 40 bits of diagonal."""


@dataclass(frozen=True)
class _Candidate:
    """One (construct, strand, diagonal) and the oriented read positions of its k-mers."""

    construct: int
    reverse: bool
    diagonal: int
    positions: np.ndarray


def _candidates(sequence: str, index: SpecificKmerIndex, min_kmers: int) -> list[_Candidate]:
    """Placements with at least ``min_kmers`` specific k-mers, from one compiled scan.

    Positions are those of the read oriented like the construct (the reverse complement for
    antisense reads), in increasing order.
    """
    lookup, strands = index.lookup, index.strands
    buffer = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    starts, codes = ascii_hit_codes(buffer, *lookup_args(lookup), lookup.k)
    if starts.size < min_kmers:
        return []
    entry = np.searchsorted(strands.codes, codes)
    first = strands.offsets[entry]
    count = strands.offsets[entry + 1] - first
    hit = np.repeat(np.arange(starts.size), count)
    row = first[hit] + np.arange(hit.size) - np.repeat(np.cumsum(count) - count, count)
    reverse = strands.reverse[row]
    oriented = np.where(reverse, len(sequence) - starts[hit] - index.k, starts[hit])
    construct = strands.construct[row]
    diagonal = strands.position[row] - oriented
    keys = ((construct * 2 + reverse) << _DIAGONAL_BITS) + (diagonal + _DIAGONAL_OFFSET)
    if keys.size and (keys == keys[0]).all():  # the usual case: one placement
        unique, group = keys[:1], np.zeros(keys.size, dtype=np.int64)
    else:
        unique, group = np.unique(keys, return_inverse=True)
    candidates = []
    for number, key in enumerate(unique.tolist()):
        positions = oriented[group == number]
        if positions.size >= min_kmers:
            kind, shifted = divmod(key, 1 << _DIAGONAL_BITS)
            candidates.append(
                _Candidate(
                    kind // 2, bool(kind % 2), shifted - _DIAGONAL_OFFSET, np.sort(positions)
                )
            )
    return candidates


def _has_overlapping_pair(positions: np.ndarray) -> bool:
    """Whether two of the (increasing) k-mer positions are adjacent."""
    return bool(np.any(np.diff(positions) == 1))


_N = ord("N")


def _mismatches(oriented: np.ndarray, reference: np.ndarray, diagonal: int) -> tuple[int, int]:
    """Overlap and mismatches of ``oriented`` laid on ``reference`` at ``diagonal`` (bytes)."""
    first = max(0, -diagonal)
    last = min(oriented.size, reference.size - diagonal)
    if last <= first:
        return 0, 0
    read = oriented[first:last]
    differ = (read != reference[diagonal + first : diagonal + last]) & (read != _N)
    return last - first, int(differ.sum())


def place_read(
    sequence: str, index: SpecificKmerIndex, settings: EvidenceSettings
) -> Placement | str | None:
    """The placement that makes ``sequence`` CAR evidence.

    Returns
    -------
    Placement, :data:`AMBIGUOUS` or None
        The best counting placement; ``AMBIGUOUS`` when two constructs tie; None when no
        placement counts.
    """
    sequence = sequence.upper()
    oriented: dict[bool, np.ndarray] = {}
    counting: list[Placement] = []
    for candidate in _candidates(sequence, index, settings.min_kmers):
        if not _has_overlapping_pair(candidate.positions):
            continue
        if candidate.reverse not in oriented:
            text = reverse_complement(sequence) if candidate.reverse else sequence
            oriented[candidate.reverse] = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        reference = _construct_bytes(index.constructs[candidate.construct].sequence)
        overlap, mismatches = _mismatches(
            oriented[candidate.reverse], reference, candidate.diagonal
        )
        if mismatches > settings.max_mismatch_fraction * overlap:
            continue
        counting.append(
            Placement(
                candidate.construct,
                candidate.reverse,
                candidate.diagonal,
                len(sequence),
                int(candidate.positions.size),
                overlap,
                mismatches,
            )
        )
    if not counting:
        return None
    best = max(counting, key=lambda placement: (placement.kmers, -placement.mismatches))
    rivals = {
        placement.construct
        for placement in counting
        if (placement.kmers, placement.mismatches) == (best.kmers, best.mismatches)
    }
    return AMBIGUOUS if len(rivals) > 1 else best


@functools.lru_cache(maxsize=64)
def _construct_bytes(sequence: str) -> np.ndarray:
    """A construct's sequence as a byte array (cached: a few constructs, many reads)."""
    return np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
