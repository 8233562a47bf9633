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

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import pandas as pd

from carmscope.sheet_paths import (
    COUNTS_RULES,
    READS_RULES,
    VARIANTS_RULE,
    VDJ_RULE,
    Places,
    path_findings,
)
from carmscope.sheet_reading import Finding, Problem, SheetTable, or_list, quoted, read_table
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


# --- public types -----------------------------------------------------------------------------


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
    choices = f"{', '.join(allowed)} or leave empty" if optional else or_list(allowed)
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


def _sample_data_findings(cells: dict[str, str], places: Places) -> Iterator[Finding]:
    """The ``counts`` and ``reads`` of a sample, against what its assay needs."""
    assay = cells["assay"]
    if assay == CFDNA:  # a BAM, or a vendor VAF table for labs that get reports
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
            yield from path_findings(cells, column, rules[assay], f"{assay} {column}", places)


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
        yield "tissue", f"is required for tcr samples; use {or_list(TISSUES)}"


def _vdj_findings(cells: dict[str, str], places: Places) -> Iterator[Finding]:
    """``vdj``: only on scrna rows, a 10x contig annotation CSV or an AIRR TSV."""
    if not cells.get("vdj"):
        return
    if cells["assay"] != SCRNA:
        yield "vdj", f"is only for scrna samples (the V(D)J of their cells), not {cells['assay']}"
        return
    yield from path_findings(cells, "vdj", VDJ_RULE, "vdj", places)


def _patient_findings(cells: dict[str, str], places: Places) -> Iterator[Finding]:
    yield from _id_findings(cells, "patient_id")
    yield from _required_findings(cells, ("indication", "dosing"))
    yield from _choice_findings(cells, "her2_ihc", HER2_IHC_SCORES)
    yield from _choice_findings(cells, "best_response", BEST_RESPONSES, optional=True)
    yield from path_findings(cells, "tumor_variants", VARIANTS_RULE, "tumor_variants", places)
    if "crs_grade" in cells:
        yield from _choice_findings(cells, "crs_grade", CRS_GRADES, optional=True)


def _sample_findings(cells: dict[str, str], places: Places) -> Iterator[Finding]:
    yield from _id_findings(cells, "sample_id")
    yield from _required_findings(cells, ("patient_id", "timepoint"))
    yield from _day_findings(cells)
    yield from _hours_findings(cells)
    yield from _choice_findings(cells, "assay", ASSAYS)
    yield from _tissue_findings(cells)
    yield from _sample_data_findings(cells, places)
    yield from _vdj_findings(cells, places)


RowCheck = Callable[[dict[str, str], Places], Iterator[Finding]]


# --- table checks -----------------------------------------------------------------------------


def _row_problems(table: SheetTable, check: RowCheck, places: Places) -> Iterator[Problem]:
    for row in table.rows:
        for column, message in check(row.cells, places):
            yield table.problem(row, column, message)


def _duplicate_id_problems(table: SheetTable) -> Iterator[Problem]:
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


def _unknown_patient_problems(samples: SheetTable, patients: SheetTable) -> Iterator[Problem]:
    known = {row.cells["patient_id"] for row in patients.rows}
    for row in samples.rows:
        patient_id = row.cells["patient_id"]
        if patient_id and patient_id not in known:
            yield samples.problem(
                row, "patient_id", f"'{patient_id}' is not a patient in {patients.file}"
            )


def _missing_variants_problems(patients: SheetTable, samples: SheetTable) -> Iterator[Problem]:
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
                f"is empty, but the patient has cfdna sample(s) {quoted(cfdna_samples)} in "
                f"{samples.file}; ctDNA tracking needs the tumour-specific variants VCF",
            )


def _table_problems(table: SheetTable, check: RowCheck, places: Places) -> list[Problem]:
    return [*_row_problems(table, check, places), *_duplicate_id_problems(table)]


def _frame(table: SheetTable, path_columns: Iterable[str], places: Places) -> pd.DataFrame:
    """The table as strings indexed by its ID, with ``path_columns`` resolved."""
    frame = pd.DataFrame([row.cells for row in table.rows], columns=table.columns, dtype=str)
    for column in path_columns:
        if column in frame.columns:
            frame[column] = [places.stored(raw) for raw in frame[column]]
    return frame.set_index(table.id_column)


def _sample_frame(samples: SheetTable, places: Places) -> pd.DataFrame:
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
    patients, problems = read_table(patients_path, "patient", PATIENT_COLUMNS)
    samples, sample_problems = read_table(samples_path, "sample", SAMPLE_COLUMNS)
    problems += sample_problems
    places = {
        table.noun: Places(table.folder, cwd, generated) for table in (patients, samples) if table
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
        raise ValueError(f"unknown assay {assay!r}; use {or_list(ASSAYS)}")
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
