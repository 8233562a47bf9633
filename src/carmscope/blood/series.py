"""Blood series of the cohort: every blood value with its patient, time and measure.

CAR measures (:data:`MEASURES`): ``qpcr`` (CAR transgene copies from ``car_pcr`` tables),
``bulk_rna`` (CAR reads per million of PBMC bulk RNA) and ``scrna`` (CAR+ cell fraction of PBMC
single-cell RNA). The RNA measures come from the CAR stage's per-sample summary, for the
``scrna``/``bulk_rna`` samples of ``tissue`` ``blood``; a sample the CAR call did not detect is
below the limit (for bulk RNA the limit drawn is the call's floor, CAR reads per million).
Cytokines come from the ``cytokines`` tables.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping

import pandas as pd

from carmscope.blood.measurements import BloodInputError, read_measurements
from carmscope.io.tables import read_stage_table
from carmscope.vocabulary import BLOOD, BULK_RNA, CAR_PCR, SCRNA, sample_hours

QPCR = "qpcr"
MEASURES: tuple[str, ...] = (QPCR, BULK_RNA, SCRNA)
"""CAR measures in blood, in the order ``patients.tsv`` prefers them."""
RNA_UNITS = {BULK_RNA: "CAR reads per million", SCRNA: "CAR+ cell fraction"}
RNA_VALUES = {BULK_RNA: "car_reads_per_million", SCRNA: "car_positive_fraction"}
SERIES_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "sample_id",
    "measure",
    "analyte",
    "hours",
    "value",
    "unit",
    "lloq",
    "blq",
)
"""Columns of a blood series table (one row per sample and analyte)."""


def assay_samples(samples: pd.DataFrame, assay: str) -> pd.DataFrame:
    """The samples of ``assay`` with their ``hours`` (float), in file order."""
    chosen = samples[samples["assay"] == assay]
    return chosen.assign(hours=sample_hours(chosen)) if len(chosen) else chosen.assign(hours=[])


def read_assay_tables(
    samples: pd.DataFrame,
    assay: str,
    reader: Callable[..., pd.DataFrame] = read_measurements,
    sample_assays: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Every measurement of ``assay`` (``car_pcr`` or ``cytokines``) in the cohort.

    Each table is read once. A table with a ``sample_id`` column may serve several samples
    (only their rows are kept); one without it must be the ``counts`` of a single sample.
    ``sample_assays`` (sample -> assay of the whole samples sheet; default: ``samples``') names
    what a ``sample_id`` of a table is when it is not a sample of ``assay``.

    Returns
    -------
    pandas.DataFrame
        :data:`SERIES_COLUMNS` with ``measure`` the assay.
    """
    chosen = assay_samples(samples, assay)
    kinds = {str(sample): str(kind) for sample, kind in samples["assay"].items()}
    kinds.update(sample_assays or {})
    frames = []
    for path, group in chosen.groupby("counts", sort=False):
        table = reader(path, assay, None, kinds)
        untagged = table["sample_id"] == ""
        if untagged.any():
            if len(group) > 1:
                raise BloodInputError(
                    path,
                    f"is the counts of samples {', '.join(map(str, group.index))}: a shared "
                    "table needs a sample_id column",
                )
            table.loc[untagged, "sample_id"] = str(group.index[0])
        table = table[table["sample_id"].isin(group.index)]
        frames.append(table)
    if not frames:
        return pd.DataFrame(columns=list(SERIES_COLUMNS))
    values = pd.concat(frames, ignore_index=True)
    meta = chosen.reindex(values["sample_id"])
    values["patient_id"] = meta["patient_id"].to_numpy()
    values["hours"] = meta["hours"].to_numpy(dtype=float)
    values["measure"] = QPCR if assay == CAR_PCR else assay
    return values[list(SERIES_COLUMNS)]


def car_pcr_series(samples: pd.DataFrame, analyte: str, **kwargs) -> pd.DataFrame:
    """The qPCR CAR series: rows of ``car_pcr`` tables whose analyte is ``analyte``."""
    values = read_assay_tables(samples, CAR_PCR, **kwargs)
    return values[values["analyte"] == analyte].reset_index(drop=True)


def blood_rna_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """The ``scrna``/``bulk_rna`` samples of ``tissue`` ``blood`` (PBMC), with hours."""
    if "tissue" not in samples.columns:
        return samples.iloc[:0].assign(hours=[])
    chosen = samples[samples["assay"].isin(RNA_UNITS) & (samples["tissue"] == BLOOD)]
    return chosen.assign(hours=sample_hours(chosen)) if len(chosen) else chosen.assign(hours=[])


def rna_series(samples: pd.DataFrame, car_summary: pd.DataFrame) -> pd.DataFrame:
    """CAR series of PBMC RNA samples from the CAR stage's per-sample summary.

    Parameters
    ----------
    samples
        The samples sheet (indexed by ``sample_id``).
    car_summary
        The CAR stage's summary (:func:`carmscope.car.calls.cohort_summary`): one row per sample
        and construct. Constructs are pooled: reads per million add up, the CAR+ fraction is the
        largest, a sample is detected when any construct is.

    Returns
    -------
    pandas.DataFrame
        :data:`SERIES_COLUMNS`; PBMC samples without CAR figures (no reads scanned) are left out.
    """
    chosen = blood_rna_samples(samples)
    rows = []
    summary = car_summary[car_summary["sample_id"].isin(chosen.index)]
    for sample, block in summary.groupby("sample_id", sort=False):
        assay = str(chosen.loc[sample, "assay"])
        column = RNA_VALUES[assay]
        figures = pd.to_numeric(block[column], errors="coerce")
        value = float(figures.sum() if assay == BULK_RNA else figures.max())
        detected = block["car_detected"].astype(str).str.lower().isin(["true", "1"]).any()
        floor = pd.to_numeric(block.get("floor_per_million"), errors="coerce")
        lloq = float(floor.max()) if assay == BULK_RNA and floor is not None else math.nan
        rows.append(
            {
                "patient_id": str(chosen.loc[sample, "patient_id"]),
                "sample_id": str(sample),
                "measure": assay,
                "analyte": "CAR",
                "hours": float(chosen.loc[sample, "hours"]),
                "value": value,
                "unit": RNA_UNITS[assay],
                "lloq": lloq,
                "blq": not detected or not value > 0,
            }
        )
    return pd.DataFrame(rows, columns=list(SERIES_COLUMNS))


def read_car_summary(path: str | os.PathLike) -> pd.DataFrame:
    """The CAR stage's summary table, as written by ``car_calls``."""
    return read_stage_table(path)
