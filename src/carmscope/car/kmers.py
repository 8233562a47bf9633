"""The construct-specific k-mer index: which k-mers prove a CAR, and where they lie.

Why about 500 lines: it is one concern, the specific k-mer index, in its two views (the
dictionary and the hash table the compiled kernels probe); both are built from the same windows.

A k-mer is *specific* to a construct when its window overlaps a construct-specific segment (e.g.
the scFv) or spans a junction between adjacent segments, and it occurs nowhere in host-derived
sequence: not in any host-derived segment of any configured construct, and not in the optional
host transcript FASTA (``car.host_transcripts``), on either strand. Reads lying inside CD8A or
CD247-identical sequence therefore share no k-mer with the index and can never count.

Two views of the same index are kept:

* a dictionary from each specific k-mer, as read on the construct's forward strand, to its
  occurrences (construct, 0-based position), used to place a candidate read on a construct;
* a :class:`KmerLookup` of the 2-bit codes of both strands of every specific k-mer, used by the
  compiled kernels (:mod:`carmscope.bam._native`, a C extension) that scan every read of a file.

The lookup and strand arrays are :class:`array.array` objects (the kernels read any buffer), so
a scan starts without importing NumPy; the helpers that return positions as arrays import it
when called.

This module knows nothing of Snakemake.
"""

from __future__ import annotations

import itertools
import os
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from carmscope.bam import _native
from carmscope.construct import Construct, ConstructError, reverse_complement

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

MIN_K = 11
MAX_K = 31
"""k is odd, so that no k-mer is its own reverse complement, and at most 31: k-mers are packed
two bits a base into 64-bit integers, and the BAM kernel keeps k + 1 bases in one."""
DEFAULT_K = 19
KMER_TABLE_COLUMNS = ("construct", "position", "kmer", "region")
"""Columns of the k-mer table (:meth:`SpecificKmerIndex.to_table`); ``position`` is 1-based."""

EMPTY = 0xFFFF_FFFF_FFFF_FFFF
"""Empty slot of the hash table (no k-mer code of k <= 31 has the top bits set)."""
# The hash (in _native.c): key * 0x9E3779B97F4A7C15 (mod 2**64); its top ``bits`` bits pick the
# slot, its top ``filter_bits`` bits the filter byte.
_MIN_TABLE_BITS = 8
_FILTER_EXTRA_BITS = 2
_MIN_FILTER_BITS = 15
_MAX_FILTER_BITS = 22


class KmerIndexError(ValueError):
    """Invalid k-mer settings or a construct that leaves no specific k-mer."""


# --- 2-bit codes ------------------------------------------------------------------------------


_BASE_DIGITS = str.maketrans("ACGTacgt0123456789", "01230123" + "x" * 10)
_DIGITS = frozenset("0123")


def encode(kmer: str) -> int:
    """2-bit code of an ACGT ``kmer`` (first base in the highest bits).

    The bases are read as the digits of a base-4 number (A=0, C=1, G=2, T=3), which ``int``
    parses in C: the index's few thousand k-mers are encoded at every scan's start.
    """
    digits = kmer.translate(_BASE_DIGITS)
    if not set(digits) <= _DIGITS:
        raise ValueError(f"{kmer!r} is not an ACGT k-mer")
    return int(digits, 4) if digits else 0


# --- hash lookup of k-mer codes (used by the compiled kernels) --------------------------------


class KmerLookup:
    """k-mer codes in a form the compiled kernels look up in a few nanoseconds.

    A read is scanned on its forward strand only: the codes of both strands of every specific
    k-mer are stored. A lookup first reads one byte of a small filter that fits the CPU's L1
    cache (almost always 0 for a non-CAR k-mer, so the branch is well predicted), then probes
    an open-addressing hash table that is at most a quarter full. Both use the top bits of one
    multiplicative hash.

    Attributes
    ----------
    k
        k-mer length.
    table
        ``uint64`` hash table (``array("Q")``) of ``2**bits`` slots, :data:`EMPTY` where free.
    bits
        log2 of the table size.
    filter
        ``2**filter_bits`` bytes (a ``bytearray``): byte ``h`` is 1 if a stored code hashes
        to ``h``.
    filter_bits
        log2 of the size of ``filter``.
    """

    __slots__ = ("bits", "filter", "filter_bits", "k", "table")

    def __init__(self, k: int, table: array, bits: int, filter: bytearray, filter_bits: int):
        self.k = k
        self.table = table
        self.bits = bits
        self.filter = filter
        self.filter_bits = filter_bits

    def __len__(self) -> int:
        return len(self.table) - self.table.count(EMPTY)


def build_lookup(codes: Iterable[int], k: int) -> KmerLookup:
    """A :class:`KmerLookup` of ``codes`` (2-bit codes of ``k``-mers, as stored)."""
    unique = array("Q", sorted(set(codes)))
    bits = max(_MIN_TABLE_BITS, (4 * max(len(unique), 1) - 1).bit_length())
    filter_bits = min(_MAX_FILTER_BITS, max(bits + _FILTER_EXTRA_BITS, _MIN_FILTER_BITS))
    table = array("Q", [EMPTY]) * (1 << bits)
    byte_filter = bytearray(1 << filter_bits)
    _native.fill(table, bits, byte_filter, filter_bits, unique)
    return KmerLookup(k, table, bits, byte_filter, filter_bits)


def contains(table, bits, byte_filter, filter_bits, key) -> bool:
    """Whether ``key`` (a k-mer code) is stored in the lookup whose arrays are given."""
    return _native.contains(table, bits, byte_filter, filter_bits, int(key))


def ascii_hits(
    buffer: np.ndarray,
    start: int,
    end: int,
    table: np.ndarray,
    bits: int,
    byte_filter: np.ndarray,
    filter_bits: int,
    k: int,
    limit: int,
) -> int:
    """Stored k-mers in ``buffer[start:end]`` (ASCII bases, forward strand), up to ``limit``.

    Any byte other than A, C, G or T (either case) breaks k-mers.
    """
    return _native.ascii_hits(buffer, start, end, table, bits, byte_filter, filter_bits, k, limit)


def ascii_hit_positions(
    buffer: np.ndarray,
    table: np.ndarray,
    bits: int,
    byte_filter: np.ndarray,
    filter_bits: int,
    k: int,
) -> np.ndarray:
    """0-based start of every stored k-mer of ``buffer`` (ASCII bases, forward strand)."""
    import numpy as np

    starts = np.empty(max(len(buffer) - k + 1, 0), dtype=np.int64)
    found = _native.ascii_hit_codes(buffer, table, bits, byte_filter, filter_bits, k, starts, None)
    return starts[:found]


def ascii_hit_codes(
    buffer: np.ndarray,
    table: np.ndarray,
    bits: int,
    byte_filter: np.ndarray,
    filter_bits: int,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """0-based start and code of every stored k-mer of ``buffer`` (ASCII, forward strand)."""
    import numpy as np

    size = max(len(buffer) - k + 1, 0)
    starts = np.empty(size, dtype=np.int64)
    codes = np.empty(size, dtype=np.uint64)
    found = _native.ascii_hit_codes(buffer, table, bits, byte_filter, filter_bits, k, starts, codes)
    return starts[:found], codes[:found]


def lookup_args(lookup: KmerLookup) -> tuple:
    """The lookup's arrays and sizes in the order the kernels take them."""
    return lookup.table, lookup.bits, lookup.filter, lookup.filter_bits


def sequence_hit_positions(sequence: str, lookup: KmerLookup) -> np.ndarray:
    """0-based starts of the stored k-mers of ``sequence`` (forward strand)."""
    import numpy as np

    buffer = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    return ascii_hit_positions(buffer, *lookup_args(lookup), lookup.k)


# --- the index --------------------------------------------------------------------------------


class StrandTable(NamedTuple):
    """Every stored code (both strands) and where it lies, as arrays for the compiled voting.

    ``codes`` (``array("Q")``) is sorted; the occurrences of ``codes[i]`` are rows
    ``offsets[i]`` to ``offsets[i + 1] - 1`` of ``construct``, ``position`` (0-based start of the
    k-mer on the construct's forward strand; these three are ``array("q")``) and ``reverse``
    (``array("B")``, 1 when the code is the reverse complement).
    """

    codes: array
    offsets: array
    construct: array
    position: array
    reverse: array


class Occurrence(NamedTuple):
    """Where a specific k-mer lies: construct index and 0-based start on its forward strand."""

    construct: int
    position: int


class SpecificKmerIndex:
    """Specific k-mers of one or more constructs.

    Attributes
    ----------
    k
        k-mer length.
    constructs
        The constructs, in configuration order (``Occurrence.construct`` indexes them).
    occurrences
        Forward-strand k-mer to every place it occurs in a specific window.
    removed_host
        Number of distinct specific-window k-mers dropped because host sequence has them.
    """

    __slots__ = (
        "_lookup",
        "_placement",
        "_strands",
        "constructs",
        "k",
        "occurrences",
        "removed_host",
    )

    def __init__(
        self,
        k: int,
        constructs: tuple[Construct, ...],
        occurrences: dict[str, tuple[Occurrence, ...]],
        removed_host: int = 0,
    ) -> None:
        self.k = k
        self.constructs = constructs
        self.occurrences = occurrences
        self.removed_host = removed_host
        self._lookup: KmerLookup | None = None  # the derived forms, built when first asked for
        self._strands: StrandTable | None = None
        self._placement: tuple | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpecificKmerIndex):
            return NotImplemented
        mine = (self.k, self.constructs, self.occurrences, self.removed_host)
        return mine == (other.k, other.constructs, other.occurrences, other.removed_host)

    __hash__ = None  # mutable, like the dataclass it was

    def __len__(self) -> int:
        return len(self.occurrences)

    @property
    def lookup(self) -> KmerLookup:
        """Both strands of every specific k-mer, for the compiled kernels (built once)."""
        if self._lookup is None:
            self._lookup = build_lookup(self.strands.codes, self.k)  # encoded once, there
        return self._lookup

    @property
    def strands(self) -> StrandTable:
        """The codes of both strands and their occurrences as arrays (built once)."""
        if self._strands is None:
            rows: dict[int, list[tuple[int, int, bool]]] = {}
            for kmer, places in self.occurrences.items():
                for reverse, strand in ((False, kmer), (True, reverse_complement(kmer))):
                    rows.setdefault(encode(strand), []).extend(
                        (place.construct, place.position, reverse) for place in places
                    )
            codes = sorted(rows)
            flat = [row for code in codes for row in rows[code]]
            self._strands = StrandTable(
                codes=array("Q", codes),
                offsets=array("q", itertools.accumulate((len(rows[c]) for c in codes), initial=0)),
                construct=array("q", [row[0] for row in flat]),
                position=array("q", [row[1] for row in flat]),
                reverse=array("B", [row[2] for row in flat]),
            )
        return self._strands

    @property
    def placement_args(self) -> tuple:
        """The lookup, strand table and construct sequences in the order the compiled
        placement (:func:`carmscope.car.evidence.place_read`) takes them (built once)."""
        if self._placement is None:
            lookup, strands = self.lookup, self.strands
            self._placement = (
                *lookup_args(lookup),
                lookup.k,
                strands.codes,
                strands.offsets,
                strands.construct,
                strands.position,
                strands.reverse,
                tuple(construct.sequence.encode("ascii") for construct in self.constructs),
            )
        return self._placement

    def construct_names(self) -> list[str]:
        return [construct.name for construct in self.constructs]

    def count(self, construct: int) -> int:
        """Distinct specific k-mers of one construct."""
        return sum(
            any(o.construct == construct for o in places) for places in self.occurrences.values()
        )

    def to_table(self):
        """One row per occurrence: ``construct``, ``position`` (1-based), ``kmer``, ``region``.

        ``region`` names the segment the window lies in, or the segments it spans joined by
        ``|`` (a junction). A pandas DataFrame.
        """
        import pandas as pd  # imported here: the scan itself runs without pandas

        rows = [
            (
                self.constructs[place.construct].name,
                place.position + 1,
                kmer,
                window_region(self.constructs[place.construct], place.position, self.k),
            )
            for kmer, places in self.occurrences.items()
            for place in places
        ]
        table = pd.DataFrame(rows, columns=list(KMER_TABLE_COLUMNS))
        return table.sort_values(["construct", "position"], kind="stable").reset_index(drop=True)

    @classmethod
    def from_table(cls, table, constructs: Sequence[Construct], k: int) -> SpecificKmerIndex:
        """The index written by :meth:`to_table` (a DataFrame), checked against ``constructs``.

        Raises
        ------
        KmerIndexError
            When the table names an unknown construct, has k-mers of another length or a k-mer
            that is not the construct's sequence at its position.
        """
        missing = [column for column in KMER_TABLE_COLUMNS if column not in table.columns]
        if missing:
            raise KmerIndexError(f"k-mer table lacks column(s) {', '.join(missing)}")
        by_name = {construct.name: i for i, construct in enumerate(constructs)}
        occurrences: dict[str, list[Occurrence]] = {}
        rows = zip(table["construct"], table["position"], table["kmer"], strict=True)
        for name, position, kmer in rows:
            if name not in by_name:
                raise KmerIndexError(f"k-mer table names construct {name!r}, not configured")
            construct = constructs[by_name[name]]
            start = int(position) - 1
            if len(kmer) != k or construct.sequence[start : start + k] != kmer:
                raise KmerIndexError(
                    f"k-mer table row {name}:{position} {kmer!r} does not match the construct "
                    f"sequence (k={k}): rebuild the index"
                )
            occurrences.setdefault(kmer, []).append(Occurrence(by_name[name], start))
        return cls(k, tuple(constructs), {key: tuple(v) for key, v in occurrences.items()})


def window_region(construct: Construct, start: int, k: int) -> str:
    """Segments the window ``start..start+k-1`` (0-based) overlaps, joined by ``|``."""
    names = [s.name for s in construct.segments if s.start - 1 < start + k and start < s.end]
    return "|".join(names)


def check_k(k: int) -> None:
    """Raise :class:`KmerIndexError` unless ``k`` is odd and ``MIN_K <= k <= MAX_K``."""
    if not (MIN_K <= k <= MAX_K and k % 2 == 1):
        raise KmerIndexError(f"k-mer size {k} must be odd and within {MIN_K}-{MAX_K}")


def _windows(sequence: str, k: int) -> Iterator[tuple[int, str]]:
    """``(start, k-mer)`` of every ACGT-only window of ``sequence``."""
    for start in range(len(sequence) - k + 1):
        kmer = sequence[start : start + k]
        if "N" not in kmer:
            yield start, kmer


def _specific_windows(construct: Construct, k: int) -> Iterator[tuple[int, str]]:
    sequence = construct.sequence
    for start in construct.specific_starts(k):
        kmer = sequence[start : start + k]
        if "N" not in kmer:
            yield start, kmer


def _both_strands(kmers: Iterable[str]) -> set[str]:
    found = set()
    for kmer in kmers:
        found.add(kmer)
        found.add(reverse_complement(kmer))
    return found


def host_segment_kmers(constructs: Iterable[Construct], k: int) -> set[str]:
    """Every k-mer, on both strands, of every host-derived segment of ``constructs``."""
    return _both_strands(
        kmer
        for construct in constructs
        for segment in construct.host_segments
        for _, kmer in _windows(construct.segment_sequence(segment.name), k)
    )


def read_fasta_records(path: str | Path) -> Iterator[tuple[str, str]]:
    """``(name, uppercase sequence)`` of each record of a FASTA file (``.gz`` accepted).

    Raises
    ------
    ConstructError
        When the file does not start with a ``>`` header or cannot be decoded.
    """
    path = os.fspath(path)
    if path.endswith(".gz"):
        import gzip  # imported here: a construct FASTA is plain text, and the scan starts sooner

        opener = gzip.open
    else:
        opener = open
    name: str | None = None
    lines: list[str] = []
    try:
        with opener(path, "rt", encoding="ascii") as handle:
            for number, raw in enumerate(handle, start=1):
                line = raw.strip()
                if line.startswith(">"):
                    if name is not None:
                        yield name, "".join(lines).upper()
                    header = line[1:].split()
                    name, lines = (header[0] if header else ""), []
                elif line:
                    if name is None:
                        raise ConstructError([f"{path}:{number}:1: sequence before any header"])
                    lines.append(line)
    except (UnicodeDecodeError, OSError, EOFError) as error:
        raise ConstructError([f"{path}:1:1: cannot be read as FASTA ({error})"]) from None
    if name is not None:
        yield name, "".join(lines).upper()


def kmers_found_in(candidates: Iterable[str], fasta: str | Path, k: int) -> set[str]:
    """The ``candidates`` k-mers that occur, on either strand, in a FASTA file.

    The FASTA is streamed one record at a time through the compiled lookup, so a whole
    transcriptome is cheap to check.
    """
    by_code: dict[int, str] = {}
    for kmer in candidates:
        by_code[encode(kmer)] = kmer
        by_code[encode(reverse_complement(kmer))] = kmer
    if not by_code:
        return set()
    lookup = build_lookup(by_code, k)
    found: set[str] = set()
    for _, sequence in read_fasta_records(fasta):
        for start in sequence_hit_positions(sequence, lookup):
            found.add(by_code[encode(sequence[start : start + k])])
    return found


def build_index(
    constructs: Sequence[Construct], k: int = DEFAULT_K, host_fasta: str | Path | None = None
) -> SpecificKmerIndex:
    """The specific k-mer index of ``constructs``.

    Parameters
    ----------
    constructs
        Validated constructs (:func:`carmscope.construct.read_constructs`).
    k
        k-mer length, :data:`MIN_K` to :data:`MAX_K`.
    host_fasta
        Optional FASTA of host transcripts (e.g. a human transcriptome); k-mers found there on
        either strand are dropped.

    Raises
    ------
    KmerIndexError
        For a bad ``k`` or a construct left with no specific k-mer.
    """
    check_k(k)
    if not constructs:
        raise KmerIndexError("no construct to index")
    windows = {
        index: list(_specific_windows(construct, k)) for index, construct in enumerate(constructs)
    }
    host = host_segment_kmers(constructs, k)
    distinct = {kmer for found in windows.values() for _, kmer in found}
    if host_fasta is not None:
        host |= kmers_found_in(distinct - host, host_fasta, k)
    occurrences: dict[str, list[Occurrence]] = {}
    for index, found in windows.items():
        for start, kmer in found:
            if kmer not in host:
                occurrences.setdefault(kmer, []).append(Occurrence(index, start))
    index = SpecificKmerIndex(
        k,
        tuple(constructs),
        {kmer: tuple(places) for kmer, places in occurrences.items()},
        removed_host=len(distinct & host),
    )
    empty = [c.name for i, c in enumerate(constructs) if index.count(i) == 0]
    if empty:
        raise KmerIndexError(
            f"construct(s) {', '.join(empty)} have no specific {k}-mer left after removing host "
            "sequence: no read could prove them"
        )
    return index


__all__ = [
    "DEFAULT_K",
    "KMER_TABLE_COLUMNS",
    "MAX_K",
    "MIN_K",
    "KmerIndexError",
    "KmerLookup",
    "Occurrence",
    "SpecificKmerIndex",
    "StrandTable",
    "build_index",
    "build_lookup",
    "check_k",
    "encode",
    "host_segment_kmers",
    "kmers_found_in",
    "window_region",
]
