"""Read blood measurement tables: CAR transgene by qPCR/ddPCR and serum cytokines.

Both assays (``car_pcr`` and ``cytokines`` in ``samples.tsv``) give as ``counts`` a long
tab-separated table with a header line and the columns

``analyte``
    What was measured: ``CAR`` for the transgene, a cytokine name (``IL6``, ``TNF``, ...).
``value``
    A number, or a below-LLOQ marker (:data:`BLQ_MARKERS`, any case).
``unit``
    One of :data:`CAR_UNITS` (``car_pcr``) or :data:`CYTOKINE_UNITS` (``cytokines``); Olink
    ``NPX`` is log2-scaled, so its fold changes are differences (:func:`is_log2`).
``lloq`` (optional)
    The assay's lower limit of quantification, in ``unit``. A number below it is below the
    limit, like a marker. A marker needs an ``lloq`` (its row or another row of the same
    analyte and unit in the file), because values below the limit are drawn and substituted
    from it.
``sample_id`` (optional)
    When present the file may hold the whole cohort; only the rows of the sample being read
    are used, and every ``sample_id`` must be a sample of the same assay in ``samples.tsv``.

Blank lines and lines starting with ``#`` are skipped; further columns are ignored. Every
problem raises :class:`BloodInputError` naming the file, line and column.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping

import pandas as pd

from carmscope.errors import LocatedInputError
from carmscope.vocabulary import CAR_PCR, CYTOKINES

REQUIRED_COLUMNS: tuple[str, ...] = ("analyte", "value", "unit")
OPTIONAL_COLUMNS: tuple[str, ...] = ("lloq", "sample_id")
BLQ_MARKERS: frozenset[str] = frozenset({"<lloq", "blq", "bql", "<loq", "below lloq"})
"""Values meaning "below the lower limit of quantification", compared in lower case."""

CAR_UNITS: tuple[str, ...] = (
    "copies/ug gDNA",
    "copies/ug DNA",
    "copies/ng gDNA",
    "copies/uL",
    "copies/mL",
    "copies/uL blood",
    "copies/cell",
    "cells/uL",
    "%",
)
"""Units of CAR transgene levels in blood (qPCR/ddPCR copies; flow counts)."""
CYTOKINE_UNITS: tuple[str, ...] = ("pg/mL", "ng/mL", "ug/mL", "IU/mL", "NPX")
"""Units of serum or plasma cytokines; ``NPX`` is Olink's log2-scaled normalised expression."""
LOG2_UNITS: frozenset[str] = frozenset({"NPX"})
"""Units on a log2 scale: fold changes are differences."""

MEASUREMENT_COLUMNS: tuple[str, ...] = ("sample_id", "analyte", "value", "unit", "lloq", "blq")
"""Columns of :func:`read_measurements`' result."""


class BloodInputError(LocatedInputError):
    """A blood measurement table that cannot be used; the message names file, line, column."""


def units_of(assay: str) -> tuple[str, ...]:
    """The units a table of ``assay`` (``car_pcr`` or ``cytokines``) may use."""
    table = {CAR_PCR: CAR_UNITS, CYTOKINES: CYTOKINE_UNITS}
    if assay not in table:
        raise ValueError(f"no blood measurement table for assay {assay!r}")
    return table[assay]


def is_log2(unit: str) -> bool:
    """Whether values in ``unit`` are log2-scaled (fold changes are then differences)."""
    return unit in LOG2_UNITS


def is_blq_marker(text: str) -> bool:
    """Whether ``text`` is one of :data:`BLQ_MARKERS` (any case, surrounding space ignored)."""
    return text.strip().lower() in BLQ_MARKERS


def _rows(path: str | os.PathLike) -> Iterator[tuple[int, list[str]]]:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, start=1):
                text = line.rstrip("\r\n")
                if text.strip() and not text.startswith("#"):
                    yield number, [cell.strip() for cell in text.split("\t")]
    except (OSError, UnicodeError) as error:
        raise BloodInputError(path, f"cannot be read: {error}") from error


def _number(path, number: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise BloodInputError(
            path,
            f"{text!r} is not a number >= 0"
            + (
                f" nor a below-LLOQ marker ({', '.join(sorted(BLQ_MARKERS))})"
                if column == "value"
                else ""
            ),
            line=number,
            column=column,
        )
    return value


def _unit(path, number: int, text: str, units: tuple[str, ...]) -> str:
    if text in units:
        return text
    by_case = {unit.lower(): unit for unit in units}
    if text.lower() in by_case:  # 'pg/ml' for 'pg/mL'
        return by_case[text.lower()]
    raise BloodInputError(
        path,
        f"unknown unit {text!r}; use one of: {', '.join(units)}",
        line=number,
        column="unit",
    )


def read_measurements(
    path: str | os.PathLike,
    assay: str,
    sample_id: str | None = None,
    assay_samples: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read one sample's blood measurements from a long table.

    Parameters
    ----------
    path
        The table (see the module docstring).
    assay
        ``car_pcr`` or ``cytokines``: decides the allowed units.
    sample_id
        The sample being read. When the table has a ``sample_id`` column only its rows are
        returned (all rows when None).
    assay_samples
        ``sample_id`` -> assay of every sample in ``samples.tsv``. When given and the table has
        a ``sample_id`` column, every ID in it must be a sample of ``assay``.

    Returns
    -------
    pandas.DataFrame
        One row per sample and analyte, in file order, columns :data:`MEASUREMENT_COLUMNS`:
        ``sample_id`` (the row's, else the one given, else ''), ``value``
        (float; NaN for a marker), ``lloq`` (float or NaN), ``blq`` (a marker, or a number
        below ``lloq``).

    Raises
    ------
    BloodInputError
        Missing column, unknown unit, a value that is neither a number nor a marker, a marker
        without an ``lloq``, an ``lloq`` that is not a number, an unknown ``sample_id``, an
        analyte given twice for a sample.
    """
    units = units_of(assay)
    rows = _rows(path)
    try:
        header_line, header = next(rows)
    except StopIteration:
        raise BloodInputError(path, "is empty: a header line is expected") from None
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise BloodInputError(
            path,
            f"missing column(s) {', '.join(missing)} (found: {', '.join(header)})",
            line=header_line,
        )
    records = []
    seen: dict[tuple[str, str], int] = {}
    for number, fields in rows:
        if len(fields) > len(header) and not any(fields[len(header) :]):
            fields = fields[: len(header)]
        if len(fields) != len(header):
            raise BloodInputError(
                path, f"{len(fields)} fields where the header has {len(header)}", line=number
            )
        cells = dict(zip(header, fields, strict=True))
        row_sample = cells.get("sample_id", "")
        if "sample_id" in cells:
            _check_sample(path, number, row_sample, assay, assay_samples)
        record = {"sample_id": row_sample or sample_id or ""}
        record.update(_parse_row(path, number, cells, units))
        key = (row_sample, record["analyte"])
        if key in seen:
            raise BloodInputError(
                path,
                f"analyte {record['analyte']!r} is given twice"
                + (f" for sample {row_sample!r}" if row_sample else "")
                + f" (lines {seen[key]} and {number})",
                line=number,
                column="analyte",
            )
        seen[key] = number
        records.append((number, record))
    table = _fill_lloq(path, records)
    if "sample_id" in header and sample_id is not None:
        table = table[table["sample_id"] == sample_id].reset_index(drop=True)
    return table


def _check_sample(path, number, row_sample, assay, assay_samples) -> None:
    if not row_sample:
        raise BloodInputError(path, "must not be empty", line=number, column="sample_id")
    if assay_samples is not None and assay_samples.get(row_sample) != assay:
        found = assay_samples.get(row_sample)
        what = f"a {found} sample" if found else "not in samples.tsv"
        raise BloodInputError(
            path,
            f"{row_sample!r} is not a {assay} sample of samples.tsv ({what})",
            line=number,
            column="sample_id",
        )


def _parse_row(path, number: int, cells: dict[str, str], units) -> dict[str, object]:
    analyte = cells["analyte"]
    if not analyte:
        raise BloodInputError(path, "must not be empty", line=number, column="analyte")
    unit = _unit(path, number, cells["unit"], units)
    lloq_text = cells.get("lloq", "")
    lloq = _number(path, number, "lloq", lloq_text) if lloq_text else math.nan
    text = cells["value"]
    if is_blq_marker(text):
        value, blq = math.nan, True
    else:
        value = _number(path, number, "value", text) if text else math.nan
        if not text:
            raise BloodInputError(
                path, "must not be empty (use a number or <LLOQ)", line=number, column="value"
            )
        blq = bool(value < lloq)  # False when lloq is NaN
    return {"analyte": analyte, "value": value, "unit": unit, "lloq": lloq, "blq": blq}


def _fill_lloq(path, records: list[tuple[int, dict[str, object]]]) -> pd.DataFrame:
    """Markers without an ``lloq`` take the one of the same analyte and unit in the file."""
    known: dict[tuple, float] = {}
    for _, record in records:
        if not math.isnan(record["lloq"]):
            known.setdefault((record["analyte"], record["unit"]), record["lloq"])
    for number, record in records:
        if math.isnan(record["lloq"]):
            record["lloq"] = known.get((record["analyte"], record["unit"]), math.nan)
            record["blq"] = record["blq"] or bool(record["value"] < record["lloq"])
            if record["blq"] and math.isnan(record["lloq"]):
                raise BloodInputError(
                    path,
                    f"a below-LLOQ value of {record['analyte']} needs the assay's lloq "
                    "(give it in an lloq column)",
                    line=number,
                    column="lloq",
                )
    table = pd.DataFrame([record for _, record in records], columns=list(MEASUREMENT_COLUMNS))
    return table.astype({"value": float, "lloq": float, "blq": bool})
