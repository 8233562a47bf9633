"""The per-step outputs the result tables are built from, read once into one object.

Absent stages (a cohort without plasma samples, without scRNA, without scanned reads) give
empty tables with the right columns, so the builders need no special cases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from carmscope.io.tables import read_stage_table

# Columns the builders rely on, per step table (the empty stand-in of an absent stage has them).
CAR_COLUMNS = ("sample_id", "patient_id", "assay", "car_detected", "car_reads_per_million")
CAR_CELL_TYPE_COLUMNS = ("sample_id", "cell_type", "n_car_positive", "share_of_car_positive")
EXPRESSION_QC_COLUMNS = ("sample_id", "cells_before", "cells_after")
CTDNA_SAMPLE_COLUMNS = ("sample_id", "patient_id", "mean_vaf", "ctdna_detected", "call_status")
CTDNA_TIMEPOINT_COLUMNS = ("patient_id", "sample_id", "day", "change_pct", "fall", "above")
CTDNA_PATIENT_COLUMNS = (
    "patient_id",
    "baseline_vaf",
    "nadir_vaf",
    "nadir_day",
    "best_change_pct",
    "latest_day",
    "latest_change_pct",
    "molecular_response",
    "transient_decrease",
    "clearance",
    "progression",
    "evaluable",
    "reason",
)


@dataclass(frozen=True)
class StepOutputs:
    """Everything the result tables are made of.

    Attributes
    ----------
    patients
        The patients sheet, indexed by ``patient_id`` in sheet order (clinical columns).
    samples
        The samples sheet, indexed by ``sample_id`` in sheet order: ``patient_id``,
        ``timepoint``, ``day`` (int), ``assay``.
    input_qc
        ``results/qc/inputs.tsv``.
    expression_metrics
        Per expression assay, the long table ``sample_id``, ``metric``, ``value``
        (``results/expression/{assay}/metrics.tsv``).
    expression_qc
        Per-sample QC of the scRNA samples (``results/expression/scrna/{sample}/qc.tsv``).
    car
        ``results/car/summary.tsv``: one row per scanned biopsy.
    car_cell_types
        CAR+ cells by cell type (``results/expression/scrna/{sample}/car_by_cell_type.tsv``).
    ctdna_samples, ctdna_timepoints, ctdna_patients
        ``results/ctdna/{samples,timepoints,patients}.tsv``.
    """

    patients: pd.DataFrame
    samples: pd.DataFrame
    input_qc: pd.DataFrame = field(default_factory=lambda: _empty(("sample_id",)))
    expression_metrics: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    expression_qc: pd.DataFrame = field(default_factory=lambda: _empty(EXPRESSION_QC_COLUMNS))
    car: pd.DataFrame = field(default_factory=lambda: _empty(CAR_COLUMNS))
    car_cell_types: pd.DataFrame = field(default_factory=lambda: _empty(CAR_CELL_TYPE_COLUMNS))
    ctdna_samples: pd.DataFrame = field(default_factory=lambda: _empty(CTDNA_SAMPLE_COLUMNS))
    ctdna_timepoints: pd.DataFrame = field(default_factory=lambda: _empty(CTDNA_TIMEPOINT_COLUMNS))
    ctdna_patients: pd.DataFrame = field(default_factory=lambda: _empty(CTDNA_PATIENT_COLUMNS))
    tcr_patients: pd.DataFrame = field(default_factory=lambda: _empty(("patient_id",)))
    """``results/tcr/patients.tsv`` (empty when the cohort has no repertoire)."""

    def metrics(self, assay: str) -> pd.DataFrame:
        """The long metric table of one expression assay (empty when it has no samples)."""
        table = self.expression_metrics.get(assay)
        return table if table is not None else _empty(("sample_id", "metric", "value"))


def as_bool(value: object) -> bool:
    """A step table's boolean cell (True/False, or their text) as bool; missing is False."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return False
    return bool(value)


def as_float(value: object) -> float:
    """A numeric cell as float; missing or not a number is NaN."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def as_int(value: object) -> object:
    """A whole-number cell as int; missing is ``pd.NA``."""
    number = as_float(value)
    return pd.NA if np.isnan(number) else int(number)


def as_text(value: object) -> str:
    """A text cell as str; missing is ''."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value)


def _empty(columns: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=list(columns))


def read_tsv(path: str) -> pd.DataFrame:
    """A step's TSV with IDs and ``reason`` kept as text (a patient called ``001`` stays
    ``001``; :func:`carmscope.io.tables.read_stage_table`)."""
    return read_stage_table(path, ("reason",))


def _read_all(paths: Iterable[str], columns: Iterable[str]) -> pd.DataFrame:
    tables = [read_tsv(path) for path in paths]
    return pd.concat(tables, ignore_index=True) if tables else _empty(columns)


def _read_optional(path: str | None, columns: Iterable[str]) -> pd.DataFrame:
    return read_tsv(path) if path else _empty(columns)


def read_step_outputs(
    patients: pd.DataFrame,
    samples: pd.DataFrame,
    *,
    input_qc: str,
    expression_metrics: Mapping[str, str],
    expression_qc: Iterable[str] = (),
    car: str | None = None,
    car_cell_types: Iterable[str] = (),
    ctdna: Mapping[str, str] | None = None,
    tcr_patients: str | None = None,
) -> StepOutputs:
    """Read the step outputs from their files.

    Parameters
    ----------
    patients, samples
        The sheets (see :class:`StepOutputs`).
    input_qc
        ``results/qc/inputs.tsv``.
    expression_metrics
        Assay to its cohort metric table; assays without samples left out.
    expression_qc, car_cell_types
        The per-sample scRNA tables (any number, possibly none).
    car
        The CAR summary, or None when no biopsy had reads to scan.
    ctdna
        ``samples``, ``timepoints`` and ``patients`` tables of the ctDNA stage, or None when
        the cohort has no plasma samples.
    """
    ctdna = ctdna or {}
    return StepOutputs(
        patients=patients,
        samples=samples,
        input_qc=read_tsv(input_qc),
        expression_metrics={assay: read_tsv(path) for assay, path in expression_metrics.items()},
        expression_qc=_read_all(expression_qc, EXPRESSION_QC_COLUMNS),
        car=_read_optional(car, CAR_COLUMNS),
        car_cell_types=_read_all(car_cell_types, CAR_CELL_TYPE_COLUMNS),
        ctdna_samples=_read_optional(ctdna.get("samples"), CTDNA_SAMPLE_COLUMNS),
        ctdna_timepoints=_read_optional(ctdna.get("timepoints"), CTDNA_TIMEPOINT_COLUMNS),
        ctdna_patients=_read_optional(ctdna.get("patients"), CTDNA_PATIENT_COLUMNS),
        tcr_patients=_read_optional(tcr_patients, ("patient_id",)),
    )
