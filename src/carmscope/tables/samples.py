"""One row per sample with every per-sample figure the stages produced.

Columns: the sheet's ``sample_id``, ``patient_id``, ``timepoint``, ``day``, ``assay``; then one
block per step, each column prefixed with its step so names never collide:
``input.`` (input inspection, ``results/qc/inputs.tsv``), ``qc.`` (scRNA cell QC), ``car.``
(CAR detection summary), ``car_cells.`` (CAR+ cells per cell type), ``expr.`` (every
expression metric, its name with ``/`` written as ``.``), ``ctdna.`` (plasma calls and the
change from baseline). A sample a step did not process has empty cells in that block.
"""

from __future__ import annotations

import pandas as pd

from carmscope.tables.steps import StepOutputs

SHEET_COLUMNS = ("patient_id", "timepoint", "day", "assay")
"""Sample-sheet columns carried into the table (file paths are left out)."""

_DUPLICATES = {"sample_id", "patient_id", "timepoint", "day", "assay"}
"""Columns step tables repeat from the sheet; the sheet's copy is kept."""


def _prefixed(table: pd.DataFrame, step: str) -> pd.DataFrame:
    """A step table indexed by sample, its own columns named ``<step>.<column>`` (a leading
    ``<step>_`` of the column dropped: ``car_reads`` becomes ``car.reads``)."""
    if not len(table):
        return pd.DataFrame(index=pd.Index([], name="sample_id"))
    indexed = table.drop_duplicates("sample_id").set_index("sample_id")
    kept = indexed.drop(columns=[c for c in indexed.columns if c in _DUPLICATES])
    return kept.rename(columns=lambda column: f"{step}.{column.removeprefix(step + '_')}")


def metric_column(metric: str) -> str:
    """The samples-table column of an expression metric: ``all/CD8_T_cells/mean_log2cpm`` ->
    ``expr.all.CD8_T_cells.mean_log2cpm``."""
    return "expr." + metric.replace("/", ".")


def _wide_metrics(outputs: StepOutputs) -> pd.DataFrame:
    tables = [outputs.metrics(assay) for assay in outputs.expression_metrics]
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame(index=pd.Index([], name="sample_id"))
    long = pd.concat(tables, ignore_index=True)
    long = long.assign(value=pd.to_numeric(long["value"], errors="coerce"))
    wide = long.pivot_table(index="sample_id", columns="metric", values="value", sort=False)
    wide = wide[list(dict.fromkeys(long["metric"]))]
    return wide.rename(columns=metric_column)


def _car_cells(outputs: StepOutputs) -> pd.DataFrame:
    """``car_cells.<cell type>``: CAR+ cells of each type, per scRNA sample."""
    table = outputs.car_cell_types
    if not len(table):
        return pd.DataFrame(index=pd.Index([], name="sample_id"))
    wide = table.pivot_table(
        index="sample_id", columns="cell_type", values="n_car_positive", sort=False
    )
    wide = wide[list(dict.fromkeys(table["cell_type"]))].astype("Int64")
    return wide.add_prefix("car_cells.")


def _ctdna(outputs: StepOutputs) -> pd.DataFrame:
    calls = _prefixed(outputs.ctdna_samples, "ctdna")
    repeated = ("mean_vaf", "ctdna_detected", "call_status")
    timepoints = outputs.ctdna_timepoints
    change = timepoints.drop(columns=[c for c in repeated if c in timepoints.columns])
    return calls.join(_prefixed(change, "ctdna"), how="outer")


def sample_table(outputs: StepOutputs) -> pd.DataFrame:
    """The per-sample result table, one row per sample in sheet order."""
    table = outputs.samples[list(SHEET_COLUMNS)].copy()
    table.index = table.index.astype(str)
    table.index.name = "sample_id"
    blocks = [
        _prefixed(outputs.input_qc, "input"),
        _prefixed(outputs.expression_qc, "qc"),
        _prefixed(outputs.car, "car"),
        _car_cells(outputs),
        _wide_metrics(outputs),
        _ctdna(outputs),
    ]
    for block in blocks:
        table = table.join(block, how="left")
    return table.reset_index()
