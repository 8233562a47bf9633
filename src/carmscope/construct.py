"""CAR constructs: sequences, segment tables and their validation.

Why about 500 lines: it is one concern, reading and checking construct files; most of it is the
segment table's checks, each reporting file, line and column.

A construct is a transcript sequence tiled by segments. Each segment is either
construct-specific (e.g. the scFv: no human transcript contains it) or host-derived (e.g. the
CD8a leader, hinge/transmembrane and CD3 zeta domains: identical to human CD8A/CD247, which T
and NK cells express). Junctions between adjacent segments are always construct-specific: no
native transcript joins, say, the CD8a leader to a trastuzumab VL. Only sequence from a specific
segment or across a junction can prove that a read comes from the construct.

Files
-----
A construct FASTA holds one record per construct. The segment table is a TSV with the columns
``construct``, ``segment``, ``start``, ``end`` (1-based, inclusive) and ``specific``
(``true``/``false``); the segments of a construct tile its whole sequence without overlap.
:func:`read_constructs` checks all of this and reports every problem with its file, line and
column.

The representative anti-HER2 CAR is assembled from its published parts by
:mod:`carmscope.construct_assembly`. This module knows nothing of Snakemake.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from pathlib import Path

# The records of the CAR scan's modules are named tuples and small classes, not dataclasses:
# importing dataclasses and building their methods cost the scan command 15-20 ms of start-up
# (docs/car_detection.md, "Benchmark").

NUCLEOTIDES = frozenset("ACGTN")

# --- the anti-HER2 CAR ------------------------------------------------------------------------

ANTI_HER2_CAR = "anti_HER2_CAR"
CD8A_LEADER = "CD8A_leader"
TRASTUZUMAB_VL = "trastuzumab_VL"
LINKER = "G4S3_linker"
TRASTUZUMAB_VH = "trastuzumab_VH"
CD8A_HINGE_TM = "CD8A_hinge_TM"
CD247_ZETA_ICD = "CD247_zeta_ICD"


# Paths are strings here: pathlib costs the CAR scan command 3-5 ms of start-up (it imports
# urllib.parse and ipaddress), a tenth of what it has (docs/car_detection.md, "Benchmark").
RESOURCE_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__)))),
    "resources",
    "car",
)
"""``resources/car`` of the source tree (a string)."""
DEFAULT_FASTA = os.path.join(RESOURCE_DIR, "anti_her2_car.fa")
DEFAULT_SEGMENTS = os.path.join(RESOURCE_DIR, "anti_her2_car.segments.tsv")
SEGMENT_COLUMNS = ("construct", "segment", "start", "end", "specific")
_SEGMENT_HEADER = "\t".join(SEGMENT_COLUMNS)
FASTA_WIDTH = 60
_MAX_CHARACTER_PROBLEMS = 10


class ConstructError(ValueError):
    """Invalid construct FASTA or segment table; ``problems`` lists every problem found.

    Each problem reads ``path:line:column: message`` (1-based line and column).
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def reverse_complement(dna: str) -> str:
    """Reverse complement of an ACGTN sequence."""
    return dna.translate(_COMPLEMENT)[::-1]


# --- data model -------------------------------------------------------------------------------


class Segment(NamedTuple):
    """One segment of a construct, 1-based inclusive coordinates.

    Attributes
    ----------
    construct
        Name of the construct.
    name
        Segment name (unique within the construct).
    start, end
        First and last position, 1-based, inclusive.
    specific
        True if no human transcript contains the segment (e.g. the scFv).
    """

    construct: str
    name: str
    start: int
    end: int
    specific: bool

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Construct(NamedTuple):
    """A construct transcript and the segments tiling it, 5' to 3'.

    Attributes
    ----------
    name
        Record name in the FASTA.
    sequence
        Uppercase nucleotide sequence.
    segments
        Segments sorted by start, tiling ``sequence``.
    """

    name: str
    sequence: str
    segments: tuple[Segment, ...] = ()

    @property
    def length(self) -> int:
        return len(self.sequence)

    @property
    def specific_segments(self) -> tuple[Segment, ...]:
        """Segments no human transcript contains."""
        return tuple(segment for segment in self.segments if segment.specific)

    @property
    def host_segments(self) -> tuple[Segment, ...]:
        """Host-derived segments: identical to human transcripts, never evidence by themselves."""
        return tuple(segment for segment in self.segments if not segment.specific)

    @property
    def junctions(self) -> tuple[tuple[int, int], ...]:
        """``(last position of a segment, first position of the next)`` for adjacent segments."""
        return tuple((left.end, right.start) for left, right in itertools.pairwise(self.segments))

    def segment(self, name: str) -> Segment:
        """The segment called ``name``."""
        for segment in self.segments:
            if segment.name == name:
                return segment
        raise KeyError(f"{self.name} has no segment {name!r}")

    def segment_sequence(self, name: str) -> str:
        """Sequence of the segment called ``name``."""
        segment = self.segment(name)
        return self.sequence[segment.start - 1 : segment.end]

    def is_specific_window(self, start: int, end: int) -> bool:
        """Whether construct positions ``start..end`` (1-based, inclusive) prove the construct.

        A window proves the construct unless it lies entirely inside one host-derived segment:
        it then overlaps a specific segment or spans a junction.
        """
        host = [(segment.start, segment.end) for segment in self.host_segments]
        return not _within_one(host, start, end)

    def specific_starts(self, k: int) -> list[int]:
        """0-based starts of the ``k``-mers that overlap a specific segment or span a junction
        (:meth:`is_specific_window`, with the host segments looked up once)."""
        host = [(segment.start, segment.end) for segment in self.host_segments]
        return [i for i in range(self.length - k + 1) if not _within_one(host, i + 1, i + k)]

    def specific_kmers(self, k: int) -> set[str]:
        """Every ``k``-mer of the construct that overlaps a specific segment or spans a junction."""
        return {self.sequence[i : i + k] for i in self.specific_starts(k)}


def _within_one(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether ``start..end`` lies inside one of ``spans`` (inclusive ``(first, last)``)."""
    return any(first <= start and end <= last for first, last in spans)


# --- FASTA ------------------------------------------------------------------------------------


class _Record:
    """A FASTA record as read: name, header line number and its sequence lines."""

    __slots__ = ("description", "line", "lines", "name")

    def __init__(self, name: str, description: str, line: int) -> None:
        self.name = name
        self.description = description
        self.line = line
        self.lines: list[tuple[int, str]] = []

    @property
    def sequence(self) -> str:
        return "".join(text for _, text in self.lines)


def _fasta_records(path: Path, problems: list[str]) -> Iterator[_Record]:
    """Records of a FASTA file; structural problems are appended to ``problems``."""
    record: _Record | None = None
    with open(path, encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            text = raw.rstrip("\r\n").rstrip()
            if text.startswith(">"):
                if record is not None:
                    yield record
                name, _, description = text[1:].strip().partition(" ")
                if not name:
                    problems.append(f"{path}:{number}:2: header without a record name")
                record = _Record(name, description.strip(), number)
            elif text:
                if record is None:
                    problems.append(f"{path}:{number}:1: sequence before the first '>' header")
                    continue
                record.lines.append((number, text))
    if record is not None:
        yield record


def read_fasta(path: str | Path) -> dict[str, str]:
    """Sequences of a FASTA file by record name (nucleotide or protein; not validated)."""
    problems: list[str] = []
    records = {record.name: record.sequence for record in _fasta_records(os.fspath(path), problems)}
    if problems:
        raise ConstructError(problems)
    return records


def format_fasta(name: str, sequence: str, width: int = FASTA_WIDTH) -> str:
    """One FASTA record with ``width``-column sequence lines."""
    lines = [sequence[i : i + width] for i in range(0, len(sequence), width)]
    return "\n".join([f">{name}", *lines]) + "\n"


def _invalid_characters(path: Path, record: _Record) -> list[str]:
    """Problems for sequence characters other than ACGTN (case-insensitive)."""
    problems = []
    position = 0
    for number, text in record.lines:
        for column, character in enumerate(text, start=1):
            position += 1
            if character.upper() not in NUCLEOTIDES:
                problems.append(
                    f"{path}:{number}:{column}: record {record.name!r} position {position}: "
                    f"invalid character {character!r} (expected A, C, G, T or N)"
                )
    if len(problems) > _MAX_CHARACTER_PROBLEMS:
        hidden = len(problems) - _MAX_CHARACTER_PROBLEMS
        problems = problems[:_MAX_CHARACTER_PROBLEMS]
        problems.append(
            f"{path}:{record.line}:1: record {record.name!r}: {hidden} more invalid characters"
        )
    return problems


def _read_construct_fasta(path: Path, problems: list[str]) -> dict[str, _Record]:
    """Validated records of a construct FASTA, by name (first record of a duplicated name)."""
    records: dict[str, _Record] = {}
    any_record = False
    for record in _fasta_records(path, problems):
        any_record = True
        if not record.name:
            continue
        if record.name in records:
            first = records[record.name].line
            problems.append(
                f"{path}:{record.line}:2: duplicate record {record.name!r} (first at line {first})"
            )
            continue
        if not record.lines:
            problems.append(f"{path}:{record.line}:2: record {record.name!r} has no sequence")
        problems.extend(_invalid_characters(path, record))
        records[record.name] = record
    if not any_record and not problems:
        problems.append(f"{path}:1:1: empty file: no FASTA record")
    return records


# --- segment table ----------------------------------------------------------------------------


class _Row(NamedTuple):
    """One data row of a segment table: its line number and fields with their columns."""

    line: int
    fields: dict[str, tuple[str, int]]

    def value(self, column: str) -> str:
        return self.fields[column][0]

    def column(self, column: str) -> int:
        return self.fields[column][1]


def _split_with_columns(text: str) -> list[tuple[str, int]]:
    """Tab-separated fields of a line with the 1-based column each starts at."""
    fields = []
    column = 1
    for value in text.split("\t"):
        fields.append((value, column))
        column += len(value) + 1
    return fields


def _table_rows(path: Path, problems: list[str]) -> list[_Row]:
    """Rows of a segment table keyed by column name; header and shape problems reported."""
    with open(path, encoding="utf-8") as handle:
        lines = [line.rstrip("\r\n") for line in handle]
    numbered = [(number, text) for number, text in enumerate(lines, start=1) if text.strip()]
    if not numbered:
        problems.append(f"{path}:1:1: empty file: expected the header {_SEGMENT_HEADER!r}")
        return []
    header_line, header_text = numbered[0]
    header = [value.strip() for value, _ in _split_with_columns(header_text)]
    missing = [column for column in SEGMENT_COLUMNS if column not in header]
    if missing:
        problems.append(
            f"{path}:{header_line}:1: missing column(s) {', '.join(missing)}; "
            f"expected {', '.join(SEGMENT_COLUMNS)}"
        )
        return []
    rows = []
    for number, text in numbered[1:]:
        fields = _split_with_columns(text)
        if len(fields) != len(header):
            problems.append(
                f"{path}:{number}:1: {len(fields)} fields, expected {len(header)} "
                f"(tab-separated, like the header)"
            )
            continue
        values = {
            name: (value.strip(), column)
            for name, (value, column) in zip(header, fields, strict=True)
        }
        rows.append(_Row(number, values))
    if not rows:
        problems.append(f"{path}:{header_line}:1: no segment rows")
    return rows


def _parse_int(path: Path, row: _Row, column: str, problems: list[str]) -> int | None:
    text = row.value(column)
    try:
        value = int(text)
    except ValueError:
        problems.append(
            f"{path}:{row.line}:{row.column(column)}: {column} {text!r} is not an integer"
        )
        return None
    if value < 1:
        problems.append(f"{path}:{row.line}:{row.column(column)}: {column} {value} is below 1")
        return None
    return value


def _parse_bool(path: Path, row: _Row, problems: list[str]) -> bool | None:
    text = row.value("specific")
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    problems.append(
        f"{path}:{row.line}:{row.column('specific')}: specific {text!r} is not true or false"
    )
    return None


def _parse_segment(
    path: Path, row: _Row, lengths: dict[str, int], problems: list[str]
) -> Segment | None:
    """The segment of one row, or None after reporting its problems."""
    before = len(problems)
    construct = row.value("construct")
    if construct not in lengths:
        problems.append(
            f"{path}:{row.line}:{row.column('construct')}: unknown construct {construct!r} "
            f"(not a record of the FASTA)"
        )
    if not row.value("segment"):
        problems.append(f"{path}:{row.line}:{row.column('segment')}: empty segment name")
    start = _parse_int(path, row, "start", problems)
    end = _parse_int(path, row, "end", problems)
    specific = _parse_bool(path, row, problems)
    if start is not None and end is not None and start > end:
        problems.append(
            f"{path}:{row.line}:{row.column('start')}: start {start} is after end {end}"
        )
    if end is not None and construct in lengths and end > lengths[construct]:
        problems.append(
            f"{path}:{row.line}:{row.column('end')}: end {end} is beyond the {lengths[construct]} "
            f"bp of {construct!r}"
        )
    if len(problems) > before:
        return None
    return Segment(construct, row.value("segment"), start, end, specific)


def _tiling_problems(
    path: Path, construct: str, length: int, placed: list[tuple[Segment, _Row]]
) -> list[str]:
    """Problems with how a construct's segments cover its sequence: gaps, overlaps, duplicates."""
    problems = []
    names: dict[str, int] = {}
    covered = 0  # last position covered so far
    previous: Segment | None = None
    for segment, row in sorted(placed, key=lambda item: (item[0].start, item[0].end)):
        where = f"{path}:{row.line}:{row.column('start')}"
        if segment.name in names:
            problems.append(
                f"{path}:{row.line}:{row.column('segment')}: duplicate segment {segment.name!r} "
                f"of {construct!r} (first at line {names[segment.name]})"
            )
        names.setdefault(segment.name, row.line)
        if segment.start > covered + 1:
            problems.append(
                f"{where}: gap in {construct!r}: positions {covered + 1}-{segment.start - 1} "
                f"are in no segment"
            )
        elif segment.start <= covered and previous is not None:
            problems.append(
                f"{where}: segment {segment.name!r} ({segment.start}-{segment.end}) overlaps "
                f"{previous.name!r} ({previous.start}-{previous.end})"
            )
        if segment.end > covered:
            covered, previous = segment.end, segment
    last_row = max((row for _, row in placed), key=lambda row: row.line)
    if covered < length:
        problems.append(
            f"{path}:{last_row.line}:{last_row.column('end')}: gap in {construct!r}: positions "
            f"{covered + 1}-{length} are in no segment"
        )
    if len(placed) < 2 and not any(segment.specific for segment, _ in placed):
        problems.append(
            f"{path}:{last_row.line}:{last_row.column('specific')}: {construct!r} has no specific "
            f"segment and no junction: no read could prove it"
        )
    return problems


def _group_segments(
    path: Path, rows: Iterable[_Row], lengths: dict[str, int], problems: list[str]
) -> tuple[dict[str, list[tuple[Segment, _Row]]], set[str]]:
    """Valid segments of the table by construct, each with its row.

    Returns
    -------
    grouped, incomplete
        Segments by construct, and the constructs that also have invalid rows (their tiling
        is not checked, to avoid reporting gaps that are only invalid rows).
    """
    grouped: dict[str, list[tuple[Segment, _Row]]] = {}
    incomplete: set[str] = set()
    for row in rows:
        segment = _parse_segment(path, row, lengths, problems)
        if segment is None:
            incomplete.add(row.value("construct"))
        else:
            grouped.setdefault(segment.construct, []).append((segment, row))
    return grouped, incomplete


def read_constructs(fasta_path: str | Path, segments_path: str | Path) -> list[Construct]:
    """Constructs of a FASTA file and their segment table, validated.

    Parameters
    ----------
    fasta_path
        FASTA with one record per construct (ACGTN; lowercase is accepted and uppercased).
    segments_path
        TSV with columns ``construct``, ``segment``, ``start``, ``end``, ``specific``
        (1-based inclusive; ``true``/``false``); other columns are ignored.

    Returns
    -------
    list of Construct
        In FASTA order, segments sorted by start.

    Raises
    ------
    ConstructError
        Listing every problem found in either file, each as ``path:line:column: message``.
    """
    fasta_path, segments_path = os.fspath(fasta_path), os.fspath(segments_path)
    problems: list[str] = []
    records = _read_construct_fasta(fasta_path, problems)
    lengths = {name: len(record.sequence) for name, record in records.items()}
    rows = _table_rows(segments_path, problems)
    grouped, incomplete = _group_segments(segments_path, rows, lengths, problems)
    constructs = []
    for name, record in records.items():
        placed = grouped.get(name)
        if not placed and name not in incomplete:
            problems.append(
                f"{fasta_path}:{record.line}:2: record {name!r} has no segment in {segments_path}"
            )
        if not placed:
            continue
        if name not in incomplete:
            problems.extend(_tiling_problems(segments_path, name, lengths[name], placed))
        segments = tuple(sorted((segment for segment, _ in placed), key=lambda s: s.start))
        constructs.append(Construct(name, record.sequence.upper(), segments))
    if problems:
        raise ConstructError(problems)
    return constructs


def read_construct(
    fasta_path: str | Path = DEFAULT_FASTA, segments_path: str | Path = DEFAULT_SEGMENTS
) -> Construct:
    """The only construct of a FASTA and segment table (default: the shipped anti-HER2 CAR)."""
    constructs = read_constructs(fasta_path, segments_path)
    if len(constructs) != 1:
        raise ConstructError([f"{fasta_path}:1:1: expected one construct, found {len(constructs)}"])
    return constructs[0]


def write_constructs(
    constructs: Iterable[Construct], fasta_path: str | Path, segments_path: str | Path
) -> None:
    """Write constructs as a FASTA (60-column lines) and a segment table."""
    constructs = list(constructs)
    with open(fasta_path, "w", encoding="utf-8") as handle:
        handle.write("".join(format_fasta(c.name, c.sequence) for c in constructs))
    rows = [_SEGMENT_HEADER]
    rows += [
        f"{s.construct}\t{s.name}\t{s.start}\t{s.end}\t{str(s.specific).lower()}"
        for c in constructs
        for s in c.segments
    ]
    with open(segments_path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(rows) + "\n")
