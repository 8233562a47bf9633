"""Counting a scan's CAR reads: per construct, per cell and UMI, and along the construct.

:class:`Tally` decides each read the prefilter flagged (:func:`carmscope.car.evidence.place_read`)
and counts every CAR read for its construct (:class:`ConstructTally`): overall, as antisense if
it is, per cell (``CB``) and UMI (``UB``) when it has them, and along the construct
(:class:`carmscope.car.coverage.CoverageAccumulator`). Tallies of threads or file parts merge.
:class:`ScanResult` is what a scan returns (:func:`carmscope.car.scan.scan_reads`).
"""

from __future__ import annotations

from typing import NamedTuple

from carmscope.car.coverage import CoverageAccumulator
from carmscope.car.evidence import AMBIGUOUS, EvidenceSettings, Placement, place_read
from carmscope.car.kmers import SpecificKmerIndex

# --- tallies ----------------------------------------------------------------------------------


class Candidate(NamedTuple):
    """A read the prefilter flagged: name, sequence and its cell barcode and UMI, if any."""

    name: str
    sequence: str
    cell: str | None = None
    umi: str | None = None


class CellTally:
    """CAR reads and the UMIs among them of one cell barcode."""

    __slots__ = ("reads", "umis")

    def __init__(self, reads: int = 0, umis: set[str] | None = None) -> None:
        self.reads = reads
        self.umis = set() if umis is None else umis

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CellTally):
            return NotImplemented
        return (self.reads, self.umis) == (other.reads, other.umis)

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"CellTally(reads={self.reads!r}, umis={self.umis!r})"

    def merge(self, other: CellTally) -> None:
        self.reads += other.reads
        self.umis |= other.umis


class ConstructTally:
    """Everything counted for one construct."""

    __slots__ = (
        "antisense_reads",
        "cells",
        "coverage",
        "reads",
        "reads_without_barcode",
        "reads_without_umi",
    )

    def __init__(self, coverage: CoverageAccumulator) -> None:
        self.coverage = coverage
        self.reads = 0
        self.antisense_reads = 0
        self.reads_without_barcode = 0
        self.reads_without_umi = 0
        self.cells: dict[str, CellTally] = {}

    def add(self, placement: Placement, candidate: Candidate) -> None:
        self.reads += 1
        self.antisense_reads += placement.reverse
        self.coverage.add(*placement.span(self.coverage.construct.length))
        if candidate.cell is None:
            self.reads_without_barcode += 1
            return
        cell = self.cells.setdefault(candidate.cell, CellTally())
        cell.reads += 1
        if candidate.umi is None:
            self.reads_without_umi += 1
        else:
            cell.umis.add(candidate.umi)

    def merge(self, other: ConstructTally) -> None:
        self.reads += other.reads
        self.antisense_reads += other.antisense_reads
        self.reads_without_barcode += other.reads_without_barcode
        self.reads_without_umi += other.reads_without_umi
        self.coverage.merge(other.coverage)
        for barcode, cell in other.cells.items():
            self.cells.setdefault(barcode, CellTally()).merge(cell)

    @property
    def umis(self) -> int:
        """Distinct (cell, UMI) pairs."""
        return sum(len(cell.umis) for cell in self.cells.values())


class Tally:
    """Decides candidate reads and counts the CAR reads of every construct."""

    def __init__(self, index: SpecificKmerIndex, settings: EvidenceSettings) -> None:
        self.index = index
        self.settings = settings
        self.constructs = [ConstructTally(CoverageAccumulator(c)) for c in index.constructs]
        self.candidates = 0
        self.ambiguous_reads = 0
        self.car_read_names: list[str] | None = None

    def add(self, candidate: Candidate) -> None:
        """Decide one flagged read and count it if it is CAR evidence."""
        self.candidates += 1
        placement = place_read(candidate.sequence, self.index, self.settings)
        if placement is None:
            return
        if placement == AMBIGUOUS:
            self.ambiguous_reads += 1
            return
        self.constructs[placement.construct].add(placement, candidate)
        if self.car_read_names is not None:
            self.car_read_names.append(candidate.name)

    def merge(self, other: Tally) -> None:
        self.candidates += other.candidates
        self.ambiguous_reads += other.ambiguous_reads
        for mine, theirs in zip(self.constructs, other.constructs, strict=True):
            mine.merge(theirs)
        if self.car_read_names is not None and other.car_read_names is not None:
            self.car_read_names.extend(other.car_read_names)


class ScanResult:
    """The outcome of scanning one reads file.

    Attributes
    ----------
    path, format, mode
        The file, its format and ``full`` or ``targeted``.
    total_reads
        Primary reads in the file (targeted mode: records counted by the index).
    scanned_reads
        Reads the prefilter looked at.
    tally
        CAR reads per construct, cell and position.
    """

    __slots__ = ("format", "mode", "path", "scanned_reads", "tally", "total_reads")

    def __init__(
        self, path: str, format: str, mode: str, total_reads: int, scanned_reads: int, tally: Tally
    ) -> None:
        self.path = path
        self.format = format
        self.mode = mode
        self.total_reads = total_reads
        self.scanned_reads = scanned_reads
        self.tally = tally

    @property
    def construct_names(self) -> list[str]:
        return self.tally.index.construct_names()
