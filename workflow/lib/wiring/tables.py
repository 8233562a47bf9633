"""What the result-table rules (``workflow/rules/tables.smk``) need: the step outputs each rule
reads, their own outputs, and the settings as params (checked by
``carmscope.tables.settings``). Plain functions of the sheets, so the rule file holds only rules
and these can be tested."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from carmscope.tables.patients import TableSettings
from carmscope.tcr.patients import repertoire_sample_ids
from carmscope.vocabulary import CFDNA, RNA_ASSAYS, SCRNA
from wiring import blood as blood_rules
from wiring import car, ctdna, expression, inspection

RESULTS = "results/tables"
REPORT = "results/report"
TABLE_FILES = {
    "patients": f"{RESULTS}/patients.tsv",
    "samples": f"{RESULTS}/samples.tsv",
    "summary": f"{RESULTS}/cohort_summary.tsv",
    "workbook": f"{RESULTS}/carmscope_results.xlsx",
}
FIGURE_FILES = {"overview": f"{REPORT}/cohort_overview.png", "panels": f"{REPORT}/patients"}
STALE_NOTE = f"{RESULTS}/STALE.txt"
"""Written beside the tables when a run fails, removed when one succeeds (the tables beside it
may predate the failed run)."""
CTDNA_TABLES = ("samples", "timepoints", "patients")


def settings_params(settings: TableSettings) -> dict:
    """Settings as plain values for a rule's ``params`` (a change re-runs the tables)."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in settings.__dict__.items()
    }


def _assay_samples(samples: pd.DataFrame, assay: str) -> list[str]:
    """Samples of ``assay`` with a count matrix: the ones the expression stage analyses."""
    chosen = (samples["assay"] == assay) & (samples["counts"] != "")
    return [str(s) for s in samples.index[chosen]]


def table_inputs(
    samples: pd.DataFrame, car_scanned: bool, ctdna_tracked: bool | None = None
) -> dict[str, str | list[str]]:
    """The step outputs the result tables read, by role; stages the cohort lacks left out.

    ``ctdna_tracked``: whether any plasma sample is tracked (its patient has tumour variants);
    None: whether the cohort has any plasma sample.
    """
    files: dict[str, str | list[str]] = {"input_qc": inspection.INVENTORY}
    for assay in RNA_ASSAYS:
        if _assay_samples(samples, assay):
            files[f"metrics_{assay}"] = expression.assay_file(assay, "metrics.tsv")
    scrna = _assay_samples(samples, SCRNA)
    files["expression_qc"] = [expression.sample_file(SCRNA, s, "qc.tsv") for s in scrna]
    files["car_cell_types"] = [
        expression.sample_file(SCRNA, s, "car_by_cell_type.tsv")
        for s in scrna
        if samples.loc[s, "reads"] and samples.loc[s, "counts"]
    ]
    if car_scanned:
        files["car"] = car.SUMMARY
    if "vdj" in samples.columns and repertoire_sample_ids(samples):
        files["tcr_patients"] = "results/tcr/patients.tsv"
    if ctdna_tracked is None:
        ctdna_tracked = bool((samples["assay"] == CFDNA).any())
    if ctdna_tracked:
        files |= {f"ctdna_{name}": ctdna.table(name) for name in CTDNA_TABLES}
    if blood_rules.has_blood(samples):
        files["blood_patients"] = blood_rules.TABLE_FILES["patients"]
    return files


def sheet_records(table: pd.DataFrame, columns: Sequence[str] | None = None) -> list[dict]:
    """A sheet as records for ``params`` (IDs kept, file paths left out when ``columns``)."""
    chosen = table if columns is None else table[list(columns)]
    return chosen.reset_index().to_dict("records")
