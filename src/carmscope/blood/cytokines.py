"""Per-patient serum cytokine figures: baseline, peak after infusion, its time, peak fold.

For each patient and analyte: the baseline is the last pre-infusion value (hours <= 0), the
peak the largest value after infusion and ``tmax_h`` its first time, the peak fold
``peak / baseline``, or ``peak - baseline`` for log2-scaled units (Olink NPX). Values below the
lower limit of quantification are set to ``blq_fraction`` x LLOQ (default one half;
docs/blood.md). Missing pieces make the figure not evaluable with a ``reason``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from carmscope.blood.measurements import is_log2

CYTOKINE_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "analyte",
    "unit",
    "baseline",
    "peak",
    "tmax_h",
    "peak_fold",
    "reason",
)
"""Columns of ``cytokines.tsv``, one row per patient and analyte."""

BLQ_FRACTION = 0.5
"""Default substitution for a value below LLOQ, as a fraction of the LLOQ."""


def substituted(values: pd.DataFrame, blq_fraction: float = BLQ_FRACTION) -> pd.Series:
    """Values with those below LLOQ replaced by ``blq_fraction * lloq``.

    For a log2-scaled unit (NPX) the LLOQ is itself on the log2 scale, so the substitute is
    ``lloq + log2(blq_fraction)`` (the same fraction on the linear scale).
    """
    if not 0 <= blq_fraction <= 1:
        raise ValueError("blq_fraction must lie in [0, 1]")
    log2 = values["unit"].map(is_log2).astype(bool)
    with np.errstate(divide="ignore"):
        shift = math.log2(blq_fraction) if blq_fraction > 0 else -math.inf
    below = np.where(log2, values["lloq"] + shift, values["lloq"] * blq_fraction)
    return pd.Series(
        np.where(values["blq"].astype(bool), below, values["value"]),
        index=values.index,
        dtype=float,
    )


def _figures(rows: pd.DataFrame, blq_fraction: float) -> dict[str, object]:
    units = list(dict.fromkeys(rows["unit"]))
    row: dict[str, object] = {"unit": units[0], "baseline": math.nan, "peak": math.nan}
    row.update(tmax_h=math.nan, peak_fold=math.nan, reason="")
    if len(units) > 1:
        row["reason"] = f"mixed units ({', '.join(units)})"
        return row
    rows = rows.sort_values("hours", kind="stable")
    value = substituted(rows, blq_fraction)
    pre, post = rows["hours"] <= 0, rows["hours"] > 0
    reasons = []
    if pre.any():
        row["baseline"] = float(value[pre].iloc[-1])
    else:
        reasons.append("no pre-infusion value")
    if post.any():
        after = value[post]
        row["peak"] = float(after.max())
        row["tmax_h"] = float(rows.loc[after.idxmax(), "hours"])
    else:
        reasons.append("no value after infusion")
    if not reasons:
        if is_log2(units[0]):
            row["peak_fold"] = row["peak"] - row["baseline"]
        elif row["baseline"] > 0:
            row["peak_fold"] = row["peak"] / row["baseline"]
        else:
            reasons.append("baseline is 0: no fold change")
    row["reason"] = "; ".join(reasons)
    return row


def cytokine_figures(
    measurements: pd.DataFrame,
    patients: list[str] | None = None,
    blq_fraction: float = BLQ_FRACTION,
) -> pd.DataFrame:
    """Baseline, peak, its time and peak fold of every patient and analyte.

    Parameters
    ----------
    measurements
        Long table with ``patient_id``, ``hours`` and the columns of
        :func:`~carmscope.blood.measurements.read_measurements` (one row per sample and
        analyte).
    patients
        Every patient of the cohort, in sheet order: one without cytokine values gets one row
        (analyte empty) saying so. None: only the patients in ``measurements``.
    blq_fraction
        Substitution for values below LLOQ (:func:`substituted`).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CYTOKINE_COLUMNS`, patients in order, analytes in first-seen order.
    """
    rows = []
    order = patients if patients is not None else list(dict.fromkeys(measurements["patient_id"]))
    for patient in order:
        own = measurements[measurements["patient_id"] == patient]
        if own.empty:
            rows.append(
                {"patient_id": patient, "analyte": "", "unit": "", "reason": "no cytokine samples"}
            )
            continue
        for analyte in dict.fromkeys(own["analyte"]):
            figures = _figures(own[own["analyte"] == analyte], blq_fraction)
            rows.append({"patient_id": patient, "analyte": analyte, **figures})
    return pd.DataFrame(rows, columns=list(CYTOKINE_COLUMNS))
