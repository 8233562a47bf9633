"""Load and validate the pipeline's two input tables, ``patients.tsv`` and ``samples.tsv``.

Both tables are tab-separated with a header row. The required columns are
:data:`PATIENT_COLUMNS` and :data:`SAMPLE_COLUMNS`; further columns are kept and carried
to result tables. Every cell is read as a stripped string, so values such as ``NA`` stay
literal. Blank lines, CRLF line endings and a UTF-8 byte-order mark are tolerated.

Validation collects every problem it finds, each located by file, 1-based line (the
header is line 1) and column, and raises a single :class:`SheetError` listing them all.
Relative paths in a table resolve against the folder of that table, not the working
directory. Nothing here knows about Snakemake.
"""

import difflib
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import pandas as pd

from carmscope.vocabulary import (
    ASSAYS,
    BIOPSY_ASSAYS,
    BLOOD_MEASURE_ASSAYS,
    CFDNA,
    DEFAULT_TISSUE,
    HOURS_PER_DAY,
    MAX_HOURS_DAY_DISAGREEMENT,
    SCRNA,
    TCR,
    TISSUES,
)
from carmscope.vocabulary import baseline as _baseline
from carmscope.vocabulary import post_infusion as _post_infusion

PATIENT_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "indication",
    "her2_ihc",
    "dosing",
    "best_response",
    "tumor_variants",
)
"""Required columns of ``patients.tsv`` (one row per patient)."""

SAMPLE_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "patient_id",
    "timepoint",
    "day",
    "assay",
    "counts",
    "reads",
)
"""Required columns of ``samples.tsv`` (one row per sample)."""

HER2_IHC_SCORES: tuple[str, ...] = ("0", "1+", "2+", "3+")
"""Allowed HER2 immunohistochemistry scores."""

BEST_RESPONSES: tuple[str, ...] = ("CR", "PR", "SD", "PD", "NE")
"""Allowed RECIST best overall responses; the cell may also be empty (not yet assessed)."""

CRS_GRADES: tuple[str, ...] = ("0", "1", "2", "3", "4", "5")
"""Allowed ASTCT cytokine release syndrome grades (``crs_grade``; empty when not assessed)."""

OPTIONAL_PATIENT_COLUMNS: tuple[str, ...] = ("crs_grade",)
"""Optional columns of ``patients.tsv`` that are checked when present."""

OPTIONAL_SAMPLE_COLUMNS: tuple[str, ...] = ("tissue", "hours", "vdj")
"""Optional columns of ``samples.tsv``: checked when present, filled in when absent."""

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""What patient and sample IDs must match in full."""

ID_RULE = (
    "IDs are used in output paths, so they must start with a letter or digit and contain "
    "only letters, digits, '.', '_' and '-' (no slashes, spaces, shell metacharacters, "
    "or leading dot or dash)"
)


def one_of_ids(ids: Iterable[str]) -> str:
    """A regular expression matching exactly one of ``ids``, or nothing when there are none.

    For a rule's ``wildcard_constraints`` (``sample=one_of_ids(CTDNA_SAMPLES)``): the rule then
    makes only those IDs' files. IDs are escaped, so the '.' an ID may contain matches only
    itself.
    """
    return "|".join(re.escape(value) for value in ids) or "(?!)"


MTX_PARTS: tuple[tuple[str, ...], ...] = (
    ("matrix.mtx", "matrix.mtx.gz"),
    ("barcodes.tsv", "barcodes.tsv.gz"),
    ("features.tsv", "features.tsv.gz", "genes.tsv", "genes.tsv.gz"),
)
"""Files a 10x MTX directory must hold: one of each group of alternatives."""

ALIGNMENT_SUFFIXES: tuple[str, ...] = (".bam", ".cram")
READ_FILE_SUFFIXES: tuple[str, ...] = (
    ".bam",
    ".cram",
    ".sam",
    ".fastq",
    ".fq",
    ".fastq.gz",
    ".fq.gz",
)
VARIANTS_SUFFIXES: tuple[str, ...] = (".vcf", ".vcf.gz", ".bcf")
TABLE_SUFFIXES: tuple[str, ...] = (".tsv", ".tsv.gz", ".txt", ".csv", ".csv.gz")


# --- public types -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input table.

    Attributes
    ----------
    file : str
        The table, as its path was given.
    line : int or None
        1-based line in the file (the header is line 1); None for the whole file.
    column : str or None
        The column at fault; None for a whole row or file.
    message : str
        What is wrong and, where it helps, what is expected.
    record : str or None
        The row's ID for orientation, e.g. ``"sample S03"``; None when there is none.
    """

    file: str
    line: int | None
    column: str | None
    message: str
    record: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.line is not None:
            where.append(f"line {self.line}" + (f" ({self.record})" if self.record else ""))
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"


class SheetError(ValueError):
    """The input tables have problems; ``problems`` lists every one found.

    Parameters
    ----------
    problems : sequence of Problem
        The problems, in reporting order.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        count = len(self.problems)
        header = f"{count} problem{'' if count == 1 else 's'} in the input tables:"
        super().__init__("\n".join([header, *(f"  {problem}" for problem in self.problems)]))

    def __reduce__(self) -> tuple[type["SheetError"], tuple[list[Problem]]]:
        return type(self), (self.problems,)


@dataclass(frozen=True, eq=False)
class Sheets:
    """The validated input tables.

    Attributes
    ----------
    patients : pandas.DataFrame
        One row per patient in file order, indexed by ``patient_id``; every column is
        ``str`` and ``tumor_variants`` is a resolved path (or empty).
    samples : pandas.DataFrame
        One row per sample in file order, indexed by ``sample_id``; ``day`` is an integer
        and ``counts`` and ``reads`` are resolved paths (or empty); other columns are ``str``.

    Notes
    -----
    A resolved path is relative to the working directory when it lies under it, else
    absolute, and normalised either way.
    """

    patients: pd.DataFrame
    samples: pd.DataFrame


# --- reading ----------------------------------------------------------------------------------


Finding = tuple[str | None, str]
"""A problem before it is located in a file: the column (None for the row) and message."""


@dataclass(frozen=True)
class _Row:
    line: int
    cells: dict[str, str]


@dataclass(frozen=True)
class _Table:
    """A parsed table whose header has every required column exactly once."""

    file: str
    folder: str
    noun: str
    columns: list[str]
    rows: list[_Row]

    @property
    def id_column(self) -> str:
        return f"{self.noun}_id"

    def problem(self, row: _Row, column: str | None, message: str) -> Problem:
        """Locate ``message`` at ``row`` and ``column`` of this table."""
        identifier = row.cells.get(self.id_column, "")
        record = f"{self.noun} {identifier}" if identifier else None
        return Problem(self.file, row.line, column, message, record)


def _read_error(error: OSError, file: str) -> str:
    if isinstance(error, FileNotFoundError):
        return f"does not exist (looked for {os.path.abspath(file)})"
    if isinstance(error, IsADirectoryError):
        return "is a directory, not a table"
    if isinstance(error, PermissionError):
        return "is not readable (permission denied)"
    return f"cannot be read ({error.strerror or error})"


def _read_lines(file: str) -> tuple[list[tuple[int, str]], str | None]:
    """The file's non-blank lines with their 1-based numbers, or why it cannot be read."""
    try:
        with open(file, encoding="utf-8-sig") as handle:  # universal newlines: CRLF is fine
            text = handle.read()
    except UnicodeDecodeError as error:
        return [], f"is not UTF-8 text (undecodable byte at offset {error.start}; compressed?)"
    except OSError as error:
        return [], _read_error(error, file)
    lines = [(number, line) for number, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not lines:
        return [], "is empty; expected a tab-separated table with a header row"
    return lines, None


def _split(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("\t")]


def _header(line: str) -> list[str]:
    """Column names of a header line, without trailing unnamed columns (trailing tabs)."""
    names = _split(line)
    while names and not names[-1]:
        names.pop()
    return names


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def _or_list(items: Sequence[str]) -> str:
    """``a, b or c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _unnamed_columns(names: list[str]) -> Iterator[Finding]:
    for position, name in enumerate(names, 1):
        if not name:
            yield None, f"column {position} of the header has no name"


def _duplicated_columns(names: list[str]) -> Iterator[Finding]:
    for name in dict.fromkeys(names):
        positions = [str(position) for position, other in enumerate(names, 1) if other == name]
        if name and len(positions) > 1:
            yield name, f"column name appears more than once (columns {', '.join(positions)})"


def _close_match(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name`` ignoring case, if any is close."""
    lowered = {candidate.lower(): candidate for candidate in candidates}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.7)
    return lowered[match[0]] if match else None


def _missing_columns(names: list[str], required: Sequence[str]) -> Iterator[Finding]:
    missing = [column for column in required if column not in names]
    if not missing:
        return
    unknown = [name for name in names if name not in required]
    hints = [
        f"'{match}' for '{column}'?"
        for column in missing
        if (match := _close_match(column, unknown))
    ]
    hint = f" (typo? {' '.join(hints)})" if hints else ""
    plural = "s" if len(missing) > 1 else ""
    yield None, f"missing required column{plural} {_quoted(missing)}{hint}"


def _header_findings(names: list[str], required: Sequence[str]) -> Iterator[Finding]:
    if len(names) == 1 and len(required) > 1:
        hint = " (it looks comma-separated)" if "," in names[0] else ""
        yield None, f"is not tab-separated: the header is a single column '{names[0]}'{hint}"
        return
    yield from _unnamed_columns(names)
    yield from _duplicated_columns(names)
    yield from _missing_columns(names, required)


def _parse_row(line: int, text: str, columns: list[str]) -> tuple[_Row, str | None]:
    """A data row and, if its field count differs from the header's, what is wrong."""
    cells = _split(text)
    if len(cells) > len(columns) and not any(cells[len(columns) :]):
        cells = cells[: len(columns)]  # trailing empty fields (trailing tabs)
    shape = None
    if len(cells) != len(columns):
        shape = f"has {len(cells)} tab-separated fields but the header has {len(columns)}"
    padded = (cells + [""] * len(columns))[: len(columns)]
    return _Row(line, dict(zip(columns, padded, strict=True))), shape


def _read_table(
    path: str | os.PathLike[str], noun: str, required: Sequence[str]
) -> tuple[_Table | None, list[Problem]]:
    """Parse one table; None when it is unusable (unreadable, bad header or no rows)."""
    file = os.fspath(path)
    lines, failure = _read_lines(file)
    if failure:
        return None, [Problem(file, None, None, failure)]
    (header_line, header_text), *body = lines
    columns = _header(header_text)
    header_problems = [
        Problem(file, header_line, column, message)
        for column, message in _header_findings(columns, required)
    ]
    if header_problems:
        return None, header_problems
    if not body:
        return None, [Problem(file, None, None, f"has a header but no {noun} rows")]
    parsed = [_parse_row(line, text, columns) for line, text in body]
    folder = os.path.dirname(os.path.abspath(file))
    table = _Table(file, folder, noun, columns, [row for row, _ in parsed])
    return table, [table.problem(row, None, shape) for row, shape in parsed if shape]


# --- paths ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PathRule:
    """What a path cell may point to."""

    suffixes: tuple[str, ...]
    mtx_directory: bool = False

    def accepts_name(self, path: str) -> bool:
        return path.endswith(self.suffixes)

    def expected(self) -> str:
        files = f"a {_or_list(self.suffixes)} file"
        return f"{files} or a 10x MTX directory" if self.mtx_directory else files


VARIANTS_RULE = _PathRule(VARIANTS_SUFFIXES)
VDJ_RULE = _PathRule(TABLE_SUFFIXES)
"""What ``vdj`` may point to: a 10x contig annotation CSV or an AIRR TSV."""
COUNTS_RULES: dict[str, _PathRule] = {
    "scrna": _PathRule((".h5", ".h5ad"), mtx_directory=True),
    "bulk_rna": _PathRule((".tsv", ".tsv.gz", ".txt")),
    "cfdna": _PathRule((".tsv", ".txt")),
    "tcr": _PathRule(TABLE_SUFFIXES),
    "car_pcr": _PathRule((".tsv", ".tsv.gz", ".txt")),
    "cytokines": _PathRule((".tsv", ".tsv.gz", ".txt")),
}
"""What ``counts`` may point to, per assay (cfdna: a vendor VAF table, instead of reads; tcr:
one repertoire file; car_pcr and cytokines: a long table of analyte values)."""
READS_RULES: dict[str, _PathRule] = {
    "scrna": _PathRule(ALIGNMENT_SUFFIXES),
    "bulk_rna": _PathRule(READ_FILE_SUFFIXES),
    "cfdna": _PathRule(ALIGNMENT_SUFFIXES),
}
"""What ``reads`` may point to, per assay (the others take none)."""


def _is_under(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


@dataclass(frozen=True)
class _Places:
    """Where one table's relative paths resolve from, and how resolved paths are stored."""

    folder: str
    cwd: str
    generated_dirs: tuple[str, ...]

    def absolute(self, raw: str) -> str:
        return os.path.normpath(os.path.join(self.folder, raw))

    def stored(self, raw: str) -> str:
        """``raw`` resolved: relative to the cwd when under it, else absolute; '' stays ''."""
        if not raw:
            return ""
        path = self.absolute(raw)
        return os.path.relpath(path, self.cwd) if _is_under(path, self.cwd) else path

    def is_generated(self, path: str) -> bool:
        return any(_is_under(path, folder) for folder in self.generated_dirs)

    def shown(self, raw: str) -> str:
        """``raw`` for messages, with where it resolved to when that differs."""
        stored = self.stored(raw)
        return f"'{raw}'" if stored == raw else f"'{raw}' (resolved to '{stored}')"


def _wrong_extension(rule: _PathRule, purpose: str) -> str:
    return f"has the wrong extension for {purpose}; expected {rule.expected()}"


def _mtx_findings(path: str) -> Iterator[str]:
    for alternatives in MTX_PARTS:
        if not any(os.path.isfile(os.path.join(path, name)) for name in alternatives):
            yield f"lacks {_or_list(alternatives)}"


def _directory_findings(path: str, rule: _PathRule, purpose: str) -> Iterator[str]:
    if not rule.mtx_directory:
        yield f"is a directory; {purpose} must be {rule.expected()}"
    elif not os.access(path, os.R_OK | os.X_OK):
        yield "is a directory that is not readable (permission denied)"
    else:
        yield from (f"is not a complete 10x MTX directory: {gap}" for gap in _mtx_findings(path))


def _file_findings(path: str, rule: _PathRule, purpose: str) -> Iterator[str]:
    if not os.path.isfile(path):
        yield "is neither a regular file nor a directory"
        return
    if not rule.accepts_name(path):
        yield _wrong_extension(rule, purpose)
    if not os.access(path, os.R_OK):
        yield "is not readable (permission denied)"


def _path_findings(
    cells: dict[str, str], column: str, rule: _PathRule, purpose: str, places: _Places
) -> Iterator[Finding]:
    """Check the path in ``cells[column]``: existence, readability, kind and extension.

    A missing path under a generated folder is not an error (a workflow rule makes it),
    but a wrong extension still is, unless the path may be an MTX directory.
    """
    raw = cells[column]
    if not raw:
        return
    path = places.absolute(raw)
    if os.path.exists(path):
        check = _directory_findings if os.path.isdir(path) else _file_findings
        messages = list(check(path, rule, purpose))
    elif places.is_generated(path):
        may_be_anything = rule.mtx_directory or rule.accepts_name(path)
        messages = [] if may_be_anything else [_wrong_extension(rule, purpose)]
    else:
        messages = ["does not exist"]
    for message in messages:
        yield column, f"{places.shown(raw)} {message}"


# --- cell checks ------------------------------------------------------------------------------


def _required_findings(cells: dict[str, str], columns: Iterable[str]) -> Iterator[Finding]:
    for column in columns:
        if not cells[column]:
            yield column, "must not be empty"


def _id_findings(cells: dict[str, str], column: str) -> Iterator[Finding]:
    value = cells[column]
    if not value:
        yield column, "must not be empty"
    elif not ID_PATTERN.fullmatch(value):
        yield column, f"'{value}' is not a valid ID: {ID_RULE}"


def _choice_findings(
    cells: dict[str, str], column: str, allowed: Sequence[str], optional: bool = False
) -> Iterator[Finding]:
    value = cells[column]
    if value in allowed or (optional and not value):
        return
    choices = f"{', '.join(allowed)} or leave empty" if optional else _or_list(allowed)
    shown = f"'{value}' is not an allowed value" if value else "must not be empty"
    yield column, f"{shown}; use {choices}"


def _parse_day(value: str) -> int | None:
    """``value`` as an integer (``-14``, ``0``, ``+8``), or None if it is not one."""
    return int(value) if re.fullmatch(r"[+-]?[0-9]+", value) else None


def _day_findings(cells: dict[str, str]) -> Iterator[Finding]:
    value = cells["day"]
    if not value:
        yield "day", "must not be empty"
    elif _parse_day(value) is None:
        yield "day", f"'{value}' is not an integer (days from first infusion, e.g. -14, 0, 8)"


def _sample_data_findings(cells: dict[str, str], places: _Places) -> Iterator[Finding]:
    """The ``counts`` and ``reads`` of a sample, against what its assay needs."""
    assay = cells["assay"]
    if assay == "cfdna":  # a BAM, or a vendor VAF table for labs that get reports
        if cells["counts"] and cells["reads"]:
            both = "a cfdna sample takes reads (a BAM) or counts (a vendor VAF table), not both"
            yield "counts", f"{both}; empty one of them"
        if not cells["counts"] and not cells["reads"]:
            either = "a coordinate-sorted BAM or CRAM (or a vendor VAF table in counts)"
            yield "reads", f"is required for cfdna samples: {either}"
    elif assay in BIOPSY_ASSAYS and not (cells["counts"] or cells["reads"]):
        yield "counts", f"a {assay} sample needs counts, reads or both; both are empty"
    elif assay == TCR or assay in BLOOD_MEASURE_ASSAYS:
        what = "one repertoire file" if assay == TCR else "a table of analyte values"
        if not cells["counts"]:
            yield "counts", f"is required for {assay} samples: {what}"
        if cells["reads"]:
            yield "reads", f"must be empty for {assay} samples (counts holds {what})"
    for column, rules in (("counts", COUNTS_RULES), ("reads", READS_RULES)):
        if assay in rules:
            yield from _path_findings(cells, column, rules[assay], f"{assay} {column}", places)


def _parse_hours(value: str) -> float | None:
    """``value`` as a finite decimal number of hours (``-2``, ``0``, ``6.5``), or None."""
    if not re.fullmatch(r"[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)", value):
        return None
    return float(value)


def _hours_findings(cells: dict[str, str]) -> Iterator[Finding]:
    """The optional ``hours``: a decimal that agrees with ``day`` to within a day."""
    value = cells.get("hours", "")
    if not value:
        return
    hours = _parse_hours(value)
    if hours is None:
        yield "hours", f"'{value}' is not a number (hours from the first infusion, e.g. -1, 6.5)"
        return
    day = _parse_day(cells["day"])
    if day is not None and abs(hours - day * HOURS_PER_DAY) > MAX_HOURS_DAY_DISAGREEMENT:
        yield (
            "hours",
            f"{value} h disagrees with day {day} ({day * HOURS_PER_DAY} h) by more "
            "than a day; correct one of them",
        )


def _tissue_findings(cells: dict[str, str]) -> Iterator[Finding]:
    """``tissue``: tumour or blood; required for tcr samples, else it defaults by assay."""
    value = cells.get("tissue", "")
    if value:
        yield from _choice_findings(cells, "tissue", TISSUES)
    elif cells["assay"] == TCR:
        yield "tissue", f"is required for tcr samples; use {_or_list(TISSUES)}"


def _vdj_findings(cells: dict[str, str], places: _Places) -> Iterator[Finding]:
    """``vdj``: only on scrna rows, a 10x contig annotation CSV or an AIRR TSV."""
    if not cells.get("vdj"):
        return
    if cells["assay"] != SCRNA:
        yield "vdj", f"is only for scrna samples (the V(D)J of their cells), not {cells['assay']}"
        return
    yield from _path_findings(cells, "vdj", VDJ_RULE, "vdj", places)


def _patient_findings(cells: dict[str, str], places: _Places) -> Iterator[Finding]:
    yield from _id_findings(cells, "patient_id")
    yield from _required_findings(cells, ("indication", "dosing"))
    yield from _choice_findings(cells, "her2_ihc", HER2_IHC_SCORES)
    yield from _choice_findings(cells, "best_response", BEST_RESPONSES, optional=True)
    yield from _path_findings(cells, "tumor_variants", VARIANTS_RULE, "tumor_variants", places)
    if "crs_grade" in cells:
        yield from _choice_findings(cells, "crs_grade", CRS_GRADES, optional=True)


def _sample_findings(cells: dict[str, str], places: _Places) -> Iterator[Finding]:
    yield from _id_findings(cells, "sample_id")
    yield from _required_findings(cells, ("patient_id", "timepoint"))
    yield from _day_findings(cells)
    yield from _hours_findings(cells)
    yield from _choice_findings(cells, "assay", ASSAYS)
    yield from _tissue_findings(cells)
    yield from _sample_data_findings(cells, places)
    yield from _vdj_findings(cells, places)


RowCheck = Callable[[dict[str, str], _Places], Iterator[Finding]]


# --- table checks -----------------------------------------------------------------------------


def _row_problems(table: _Table, check: RowCheck, places: _Places) -> Iterator[Problem]:
    for row in table.rows:
        for column, message in check(row.cells, places):
            yield table.problem(row, column, message)


def _duplicate_id_problems(table: _Table) -> Iterator[Problem]:
    first_lines: dict[str, int] = {}
    for row in table.rows:
        identifier = row.cells[table.id_column]
        if not identifier:
            continue
        if identifier in first_lines:
            yield table.problem(
                row,
                table.id_column,
                f"'{identifier}' is used on lines {first_lines[identifier]} and {row.line}; "
                f"each {table.id_column} must be unique",
            )
        else:
            first_lines[identifier] = row.line


def _unknown_patient_problems(samples: _Table, patients: _Table) -> Iterator[Problem]:
    known = {row.cells["patient_id"] for row in patients.rows}
    for row in samples.rows:
        patient_id = row.cells["patient_id"]
        if patient_id and patient_id not in known:
            yield samples.problem(
                row, "patient_id", f"'{patient_id}' is not a patient in {patients.file}"
            )


def _missing_variants_problems(patients: _Table, samples: _Table) -> Iterator[Problem]:
    """Patients with cfdna samples need the tumour-specific variants to track ctDNA (checked
    only in strict mode; otherwise that patient's ctDNA is not evaluable)."""
    plasma: dict[str, list[str]] = {}
    for row in samples.rows:
        if row.cells["assay"] == CFDNA:
            plasma.setdefault(row.cells["patient_id"], []).append(row.cells["sample_id"])
    for row in patients.rows:
        cfdna_samples = plasma.get(row.cells["patient_id"])
        if cfdna_samples and not row.cells["tumor_variants"]:
            yield patients.problem(
                row,
                "tumor_variants",
                f"is empty, but the patient has cfdna sample(s) {_quoted(cfdna_samples)} in "
                f"{samples.file}; ctDNA tracking needs the tumour-specific variants VCF",
            )


def _table_problems(table: _Table, check: RowCheck, places: _Places) -> list[Problem]:
    return [*_row_problems(table, check, places), *_duplicate_id_problems(table)]


def _frame(table: _Table, path_columns: Iterable[str], places: _Places) -> pd.DataFrame:
    """The table as strings indexed by its ID, with ``path_columns`` resolved."""
    frame = pd.DataFrame([row.cells for row in table.rows], columns=table.columns, dtype=str)
    for column in path_columns:
        if column in frame.columns:
            frame[column] = [places.stored(raw) for raw in frame[column]]
    return frame.set_index(table.id_column)


def _sample_frame(samples: _Table, places: _Places) -> pd.DataFrame:
    """The samples table with ``day`` an integer, ``hours`` a float (``day x 24`` where
    empty), ``tissue`` filled in by assay where empty and ``vdj`` resolved ('' when absent)."""
    frame = _frame(samples, ("counts", "reads", "vdj"), places)
    frame["day"] = frame["day"].map(int).astype("int64")
    if "tissue" not in frame.columns:
        frame["tissue"] = ""
    frame["tissue"] = [
        tissue or DEFAULT_TISSUE.get(assay, "")
        for tissue, assay in zip(frame["tissue"], frame["assay"], strict=True)
    ]
    hours = frame["hours"] if "hours" in frame.columns else pd.Series("", index=frame.index)
    frame["hours"] = [
        float(value) if value else float(day * HOURS_PER_DAY)
        for value, day in zip(hours, frame["day"], strict=True)
    ]
    if "vdj" not in frame.columns:
        frame["vdj"] = ""
    return frame


# --- loading ----------------------------------------------------------------------------------


def load_sheets(
    patients_path: str | os.PathLike[str],
    samples_path: str | os.PathLike[str],
    generated_dirs: Iterable[str | os.PathLike[str]] = (),
    strict: bool = False,
) -> Sheets:
    """Load and validate ``patients.tsv`` and ``samples.tsv``.

    Parameters
    ----------
    patients_path, samples_path : str or path-like
        The tables; relative paths in each resolve against its own folder.
    generated_dirs : iterable of str or path-like
        Folders (relative to the cwd, or absolute) whose files a workflow rule produces:
        a missing path under one of them is not an error. Existing ones are still checked.
    strict : bool
        Also refuse what is not malformed but leaves a figure not evaluable: a patient with
        cfdna samples and no ``tumor_variants`` (by default that patient's ctDNA is reported
        not evaluable and the rest of the cohort runs).

    Returns
    -------
    Sheets
        Both tables in file order; see :class:`Sheets`.

    Raises
    ------
    SheetError
        Listing every problem found in either table.
    """
    cwd = os.getcwd()
    generated = tuple(os.path.abspath(folder) for folder in generated_dirs)
    patients, problems = _read_table(patients_path, "patient", PATIENT_COLUMNS)
    samples, sample_problems = _read_table(samples_path, "sample", SAMPLE_COLUMNS)
    problems += sample_problems
    places = {
        table.noun: _Places(table.folder, cwd, generated) for table in (patients, samples) if table
    }
    if patients:
        problems += _table_problems(patients, _patient_findings, places["patient"])
    if samples:
        problems += _table_problems(samples, _sample_findings, places["sample"])
    if patients and samples:
        problems += _unknown_patient_problems(samples, patients)
        if strict:
            problems += _missing_variants_problems(patients, samples)
    if problems:
        patients_file = os.fspath(patients_path)
        raise SheetError(sorted(problems, key=lambda p: (p.file != patients_file, p.line or 0)))
    assert patients and samples  # no problems means both tables were read
    patient_frame = _frame(patients, ("tumor_variants",), places["patient"])
    return Sheets(patient_frame, _sample_frame(samples, places["sample"]))


# --- per-patient helpers ----------------------------------------------------------------------


def _assay_samples(
    sheets: Sheets, patient_id: str, assay: str, tissue: str | None = None
) -> pd.DataFrame:
    """The patient's samples of ``assay`` (and ``tissue``, when given), in file order."""
    if patient_id not in sheets.patients.index:
        raise KeyError(f"unknown patient {patient_id!r}")
    if assay not in ASSAYS:
        raise ValueError(f"unknown assay {assay!r}; use {_or_list(ASSAYS)}")
    samples = sheets.samples
    chosen = (samples["patient_id"] == patient_id) & (samples["assay"] == assay)
    if tissue is not None:
        chosen &= samples["tissue"] == tissue
    return samples[chosen]


def baseline_sample(
    sheets: Sheets, patient_id: str, assay: str, tissue: str | None = None
) -> str | None:
    """The patient's baseline sample of ``assay``: the last pre-infusion one
    (:func:`carmscope.vocabulary.baseline`; ties: the later in the file wins).

    None when the patient has no pre-infusion sample of that assay. Raises KeyError for an
    unknown patient and ValueError for an unknown assay.
    """
    return _baseline(_assay_samples(sheets, patient_id, assay, tissue))


def post_infusion_samples(
    sheets: Sheets, patient_id: str, assay: str, tissue: str | None = None
) -> list[str]:
    """The patient's post-infusion samples of ``assay``, in time then file order."""
    return _post_infusion(_assay_samples(sheets, patient_id, assay, tissue))


def first_post_infusion_sample(sheets: Sheets, patient_id: str, assay: str) -> str | None:
    """The patient's earliest post-infusion sample of ``assay``, or None if there is none."""
    after = post_infusion_samples(sheets, patient_id, assay)
    return after[0] if after else None
