"""Per-sample CAR evidence and the call ``car_detected`` against background.

Evidence (:func:`sample_evidence`): one row per sample and construct, the figures of the scan,
the per-cell figures (scRNA) and the count-matrix CAR feature (:data:`EVIDENCE_COLUMNS`).

The call (:func:`call_samples`) tests whether a sample has more CAR reads than background.
Background is the higher of two rates:

* the **floor**, ``floor_per_million`` CAR reads per million reads that any sample may show
  without CAR cells (index hopping and barcode swapping on a shared flow cell, carry-over);
* the **patient's own pre-infusion biopsy** of the same assay (post-infusion samples only):
  ``(y + 1) / M`` for ``y`` CAR reads among its ``M`` reads, the posterior mean of its CAR
  rate under a flat prior, so that a baseline without CAR reads still counts as up to about
  one read rather than as a rate of zero.

With ``x`` CAR reads among the sample's ``N`` reads, ``p = P(X >= x)`` for
``X ~ Poisson(N * background rate)`` (one-sided), and ``car_detected`` is true when
``p < alpha`` and ``x >= min_reads``. Pre-infusion samples, and patients without a scanned
pre-infusion biopsy of the assay, are tested against the floor alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from carmscope.car.cells import construct_cell_figures
from carmscope.car.matrix_feature import MatrixCells
from carmscope.car.tally import ScanResult
from carmscope.io.tables import read_stage_table
from carmscope.vocabulary import SCRNA

DEFAULT_ALPHA = 0.001
DEFAULT_FLOOR_PER_MILLION = 1.0
DEFAULT_MIN_READS = 3
PER_MILLION = 1e6

EVIDENCE_COLUMNS = (
    "sample_id",
    "assay",
    "construct",
    "reads_format",
    "scan_mode",
    "total_reads",
    "scanned_reads",
    "car_reads",
    "car_reads_per_million",
    "car_reads_antisense",
    "car_umis",
    "car_reads_without_barcode",
    "car_reads_without_umi",
    "cells",
    "car_positive_cells",
    "car_positive_fraction",
    "car_umis_in_cells",
    "car_umis_outside_cells",
    "car_reads_outside_cells",
    "matrix_features",
    "feature_umis",
    "feature_positive_cells",
    "segments_covered",
    "junctions_covered",
    "ambiguous_reads",
)
_TEXT = {
    "sample_id",
    "assay",
    "construct",
    "reads_format",
    "scan_mode",
    "matrix_features",
    "segments_covered",
    "junctions_covered",
}
_FRACTIONS = {"car_reads_per_million", "car_positive_fraction"}
EVIDENCE_DTYPES = {
    column: "string" if column in _TEXT else "Float64" if column in _FRACTIONS else "Int64"
    for column in EVIDENCE_COLUMNS
}
"""Nullable dtypes of the evidence columns (NA where a figure does not apply)."""

CALL_COLUMNS = (
    "background_sample",
    "background_car_reads",
    "background_total_reads",
    "floor_per_million",
    "background_per_million",
    "expected_background_reads",
    "p_value",
    "car_detected",
)


@dataclass(frozen=True)
class CallSettings:
    """Thresholds of the call.

    Attributes
    ----------
    alpha
        Significance level of the one-sided test.
    floor_per_million
        Background CAR reads per million reads that any sample may show.
    min_reads
        Fewest CAR reads for a detection, whatever the p-value.
    """

    alpha: float = DEFAULT_ALPHA
    floor_per_million: float = DEFAULT_FLOOR_PER_MILLION
    min_reads: int = DEFAULT_MIN_READS

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError("alpha must be between 0 and 1")
        if self.floor_per_million < 0:
            raise ValueError("floor_per_million must not be negative")
        if self.min_reads < 1:
            raise ValueError("min_reads must be at least 1")


def _matrix_figures(matrix: MatrixCells | None) -> dict[str, object]:
    if matrix is None or matrix.feature_umis is None:
        return {"matrix_features": "", "feature_umis": pd.NA, "feature_positive_cells": pd.NA}
    umis = matrix.feature_umis
    return {
        "matrix_features": ";".join(matrix.features),
        "feature_umis": int(umis.sum()),
        "feature_positive_cells": int((umis > 0).sum()),
    }


def sample_evidence(
    sample_id: str,
    assay: str,
    result: ScanResult,
    matrix: MatrixCells | None = None,
    min_umis: int = 1,
) -> pd.DataFrame:
    """The evidence of one scanned sample: one row per construct (:data:`EVIDENCE_COLUMNS`).

    Parameters
    ----------
    sample_id, assay
        The sample and its assay (``scrna`` or ``bulk_rna``).
    result
        The scan of its reads.
    matrix
        Its count-matrix cells and CAR feature (scRNA), or None.
    min_umis
        CAR UMIs for a cell to be CAR+.
    """
    single_cell = assay == SCRNA
    rows = []
    for name, tally in zip(result.construct_names, result.tally.constructs, strict=True):
        per_million = tally.reads * PER_MILLION / result.total_reads if result.total_reads else 0.0
        cell_figures = construct_cell_figures(tally, matrix if single_cell else None, min_umis)
        rows.append(
            {
                "sample_id": sample_id,
                "assay": assay,
                "construct": name,
                "reads_format": result.format,
                "scan_mode": result.mode,
                "total_reads": result.total_reads,
                "scanned_reads": result.scanned_reads,
                "car_reads": tally.reads,
                "car_reads_per_million": per_million,
                "car_reads_antisense": tally.antisense_reads,
                "car_umis": tally.umis if single_cell else pd.NA,
                "car_reads_without_barcode": tally.reads_without_barcode if single_cell else pd.NA,
                "car_reads_without_umi": tally.reads_without_umi if single_cell else pd.NA,
                **cell_figures,
                **_matrix_figures(matrix if single_cell else None),
                "segments_covered": ";".join(tally.coverage.covered_segments()),
                "junctions_covered": ";".join(tally.coverage.covered_junctions()),
                "ambiguous_reads": result.tally.ambiguous_reads,
            }
        )
    return pd.DataFrame(rows, columns=list(EVIDENCE_COLUMNS)).astype(EVIDENCE_DTYPES)


def background_test(
    car_reads: int,
    total_reads: int,
    settings: CallSettings,
    baseline_reads: int | None = None,
    baseline_total: int | None = None,
) -> dict[str, float | bool]:
    """The one-sided Poisson test of a sample's CAR reads against background.

    Parameters
    ----------
    car_reads, total_reads
        The sample's CAR reads and reads.
    settings
        Floor, alpha and minimum reads.
    baseline_reads, baseline_total
        The baseline biopsy's CAR reads and reads (None: floor only).

    Returns
    -------
    dict
        ``background_per_million``, ``expected_background_reads``, ``p_value`` and
        ``car_detected`` (see the module docstring).
    """
    rate = settings.floor_per_million / PER_MILLION
    if baseline_reads is not None and baseline_total:
        rate = max(rate, (baseline_reads + 1) / baseline_total)
    expected = rate * total_reads
    if car_reads == 0:
        p_value = 1.0
    elif expected == 0:
        p_value = 0.0
    else:
        from scipy import stats  # here: a second of import that only the cohort calls need

        p_value = float(stats.poisson.sf(car_reads - 1, expected))
    return {
        "background_per_million": rate * PER_MILLION,
        "expected_background_reads": expected,
        "p_value": p_value,
        "car_detected": bool(
            total_reads > 0 and p_value < settings.alpha and car_reads >= settings.min_reads
        ),
    }


def call_samples(
    evidence: pd.DataFrame,
    baselines: Mapping[str, str | None],
    settings: CallSettings | None = None,
) -> pd.DataFrame:
    """Calls of every sample and construct: ``evidence`` plus :data:`CALL_COLUMNS`.

    Parameters
    ----------
    evidence
        Rows of :func:`sample_evidence` of all samples.
    baselines
        Sample to the patient's pre-infusion sample of the same assay to test against (None
        or absent: the floor only, e.g. for pre-infusion samples themselves). A baseline
        missing from ``evidence`` is treated as absent.
    settings
        Thresholds.
    """
    settings = settings or CallSettings()
    keyed = evidence.set_index(["sample_id", "construct"])
    rows = []
    for row in evidence.itertuples(index=False):
        baseline = baselines.get(row.sample_id) or None
        if baseline == row.sample_id or (baseline, row.construct) not in keyed.index:
            baseline = None
        reference = keyed.loc[(baseline, row.construct)] if baseline else None
        test = background_test(
            int(row.car_reads),
            int(row.total_reads),
            settings,
            int(reference["car_reads"]) if reference is not None else None,
            int(reference["total_reads"]) if reference is not None else None,
        )
        rows.append(
            {
                "background_sample": baseline or "",
                "background_car_reads": reference["car_reads"] if reference is not None else pd.NA,
                "background_total_reads": (
                    reference["total_reads"] if reference is not None else pd.NA
                ),
                "floor_per_million": settings.floor_per_million,
                **test,
            }
        )
    calls = pd.DataFrame(rows, columns=list(CALL_COLUMNS), index=evidence.index)
    return pd.concat([evidence, calls], axis=1)


SAMPLE_COLUMNS = ("patient_id", "timepoint", "day")
"""Columns of the sample table copied into the summary, after ``sample_id``."""


def read_evidence(paths: Sequence[str]) -> pd.DataFrame:
    """The evidence tables of every scanned sample, one after the other.

    A cohort whose biopsies all come as count matrices without reads has no scanned sample:
    the result is then an empty table with :data:`EVIDENCE_COLUMNS`, and the summary has no
    rows (the tables then report CAR detection not evaluable for want of reads).
    """
    tables = [read_stage_table(path) for path in paths]
    if not tables:
        return pd.DataFrame(columns=list(EVIDENCE_COLUMNS))
    return pd.concat(tables, ignore_index=True)


def cohort_summary(
    evidence: pd.DataFrame,
    samples: pd.DataFrame,
    baselines: Mapping[str, str | None],
    settings: CallSettings | None = None,
) -> pd.DataFrame:
    """The per-sample summary: calls (:func:`call_samples`) with each sample's patient and day.

    Parameters
    ----------
    evidence
        Evidence rows of every sample.
    samples
        Sample table indexed by ``sample_id`` with :data:`SAMPLE_COLUMNS`.
    baselines
        Sample to its baseline sample (see :func:`call_samples`).
    settings
        Thresholds of the call.
    """
    calls = call_samples(evidence, baselines, settings)
    meta = samples.reindex(calls["sample_id"])[list(SAMPLE_COLUMNS)].reset_index(drop=True)
    for position, column in enumerate(SAMPLE_COLUMNS, start=1):
        calls.insert(position, column, meta[column].to_numpy())
    return calls
