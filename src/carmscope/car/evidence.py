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

The decision runs compiled (``place`` in :mod:`carmscope.bam._native`): a few microseconds a
read.
"""

from __future__ import annotations

from typing import NamedTuple

from carmscope.bam import _native
from carmscope.car.kmers import SpecificKmerIndex

DEFAULT_MIN_KMERS = 8
DEFAULT_MAX_MISMATCH_FRACTION = 0.1


class _EvidenceFields(NamedTuple):
    min_kmers: int = DEFAULT_MIN_KMERS
    max_mismatch_fraction: float = DEFAULT_MAX_MISMATCH_FRACTION


class EvidenceSettings(_EvidenceFields):
    """Thresholds of the per-read decision (checked when made).

    Attributes
    ----------
    min_kmers
        Fewest specific k-mers a read must carry on one placement.
    max_mismatch_fraction
        Largest fraction of mismatching bases over the read's overlap with the construct.
    """

    __slots__ = ()

    def __new__(cls, *args, **kwargs) -> EvidenceSettings:
        self = super().__new__(cls, *args, **kwargs)
        if self.min_kmers < 2:
            raise ValueError("min_kmers must be at least 2")
        if not 0 <= self.max_mismatch_fraction <= 1:
            raise ValueError("max_mismatch_fraction must be between 0 and 1")
        return self


class Placement(NamedTuple):
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
    found = _native.place(
        sequence.upper().encode("ascii"),
        *index.placement_args,
        settings.min_kmers,
        settings.max_mismatch_fraction,
    )
    if found is None:
        return None
    if found == -1:
        return AMBIGUOUS
    construct, reverse, diagonal, length, kmers, overlap, mismatches = found
    return Placement(construct, reverse, diagonal, length, kmers, overlap, mismatches)
