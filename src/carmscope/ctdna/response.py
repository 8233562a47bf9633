"""Molecular response of each patient from the ctDNA calls of its plasma samples.

The flags follow the definitions of the synthetic cohort's truth
(:func:`carmscope.synthetic.design.ctdna_flags`, which uses the same thresholds), applied to
measured mean VAFs with sampling noise taken into account:

- baseline: the last pre-infusion sample (:mod:`carmscope.vocabulary`) that has coverage;
  flags need it detected;
- a post-infusion sample is a *fall* when its mean VAF is at most ``fall_fraction`` (50%) of
  baseline **and** the fall is real: its pooled ALT fraction is significantly below
  baseline's (one-sided Fisher exact test at ``change_alpha``), or ctDNA is not detected in it
  at a depth whose detection limit is itself at most ``fall_fraction`` of baseline;
- a sample is *above* when its mean VAF exceeds ``fall_fraction`` of baseline; a sample at or
  below it without a significant fall is neither (it confirms nothing and rebounds nothing);
- ``molecular_response``: a fall confirmed by the next sample's fall (or the last sample);
- ``transient_decrease``: a fall followed by a later sample above;
- ``clearance``: detected at baseline and not detected in every post-infusion sample;
- ``progression``: the latest sample's mean VAF is at least ``progression_rise`` (1.5x)
  baseline and its pooled ALT fraction is significantly above baseline's (Fisher, one-sided).

Samples without coverage are left out of trajectories (they are missing, not zero). Vendor
samples with VAFs but no depth cannot be tested: their changes are judged on the VAF alone
(``change_tested`` False).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from carmscope import vocabulary

FALL_FRACTION = 0.5
"""A post-infusion mean VAF at most this fraction of baseline is a fall (>= 50% decrease)."""

PROGRESSION_RISE = 1.5
"""A latest mean VAF at least this multiple of baseline is progression."""

CHANGE_ALPHA = 0.01
"""Significance level of the one-sided Fisher tests of a fall or rise against baseline."""

FLAGS = ("molecular_response", "transient_decrease", "clearance", "progression")

TIMEPOINT_COLUMNS = [
    "patient_id",
    "sample_id",
    "day",
    "is_baseline",
    "post_infusion",
    "mean_vaf",
    "ctdna_detected",
    "call_status",
    "ratio_to_baseline",
    "change_pct",
    "p_fall",
    "p_rise",
    "change_tested",
    "fall",
    "above",
]

PATIENT_COLUMNS = [
    "patient_id",
    "baseline_sample_id",
    "baseline_day",
    "baseline_vaf",
    "baseline_detected",
    "n_post",
    "nadir_vaf",
    "nadir_day",
    "best_change_pct",
    "latest_day",
    "latest_change_pct",
    *FLAGS,
    "evaluable",
    "reason",
]

_MISSING_STATUSES = ("no_coverage", "no_evaluable_variants")


def ctdna_response(
    calls: pd.DataFrame,
    fall_fraction: float = FALL_FRACTION,
    progression_rise: float = PROGRESSION_RISE,
    change_alpha: float = CHANGE_ALPHA,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Percent changes from baseline and molecular-response flags of every patient.

    Parameters
    ----------
    calls
        :func:`carmscope.ctdna.calls.sample_calls` output with ``patient_id`` and ``day``.
    fall_fraction, progression_rise, change_alpha
        Thresholds (see the module docstring); defaults match the synthetic truth.

    Returns
    -------
    timepoints : pandas.DataFrame
        One row per sample with coverage (:data:`TIMEPOINT_COLUMNS`): ratio and percent change
        of mean VAF against baseline (NaN when the baseline VAF is 0 or absent), the Fisher
        p-values of a fall and a rise, and whether the sample is a fall / above.
    patients : pandas.DataFrame
        One row per patient (:data:`PATIENT_COLUMNS`): baseline, nadir (lowest post-infusion
        mean VAF) and its day, best (lowest) and latest percent change, the four flags, and
        ``evaluable``/``reason`` (flags are False when not evaluable: no covered sample, no
        pre-infusion sample, ctDNA not detected at baseline, no post-infusion sample).
    """
    for column in ("patient_id", "day", "sample_id", "mean_vaf", "ctdna_detected"):
        if column not in calls.columns:
            raise ValueError(f"calls lack column {column!r}")
    timepoints, patients = [], []
    for patient_id, samples in calls.groupby("patient_id", sort=False):
        points, summary = _patient_response(
            patient_id, samples, fall_fraction, progression_rise, change_alpha
        )
        timepoints.append(points)
        patients.append(summary)
    timepoint_table = (
        pd.concat(timepoints, ignore_index=True)
        if timepoints
        else pd.DataFrame(columns=TIMEPOINT_COLUMNS)
    )
    return timepoint_table[TIMEPOINT_COLUMNS], pd.DataFrame(patients, columns=PATIENT_COLUMNS)


def _patient_response(
    patient_id: str,
    samples: pd.DataFrame,
    fall_fraction: float,
    progression_rise: float,
    change_alpha: float,
) -> tuple[pd.DataFrame, dict[str, object]]:
    status = samples.get("call_status", pd.Series("", index=samples.index))
    covered = samples[~status.isin(_MISSING_STATUSES) & samples["mean_vaf"].notna()]
    covered = vocabulary.ordered(covered).reset_index(drop=True)
    hours = vocabulary.sample_hours(covered)
    points = pd.DataFrame(
        {
            "patient_id": patient_id,
            "sample_id": covered["sample_id"],
            "day": covered["day"].astype(int),
            "is_baseline": False,
            "post_infusion": ~hours.map(vocabulary.is_pre_infusion).astype(bool),
            "mean_vaf": covered["mean_vaf"].astype(float),
            "ctdna_detected": covered["ctdna_detected"].astype(bool),
            "call_status": covered.get("call_status", ""),
            "ratio_to_baseline": math.nan,
            "change_pct": math.nan,
            "p_fall": math.nan,
            "p_rise": math.nan,
            "change_tested": False,
            "fall": False,
            "above": False,
            "rise": False,
        }
    )
    summary: dict[str, object] = dict.fromkeys(PATIENT_COLUMNS)
    summary.update(patient_id=patient_id, n_post=int(points["post_infusion"].sum()))
    summary.update(dict.fromkeys(FLAGS, False))
    if covered.empty:
        return _finish(points, summary, "no plasma sample with coverage")
    base = vocabulary.baseline_position(list(hours))
    if base is None:
        return _finish(points, summary, "no pre-infusion plasma sample with coverage")
    points.loc[base, "is_baseline"] = True
    baseline_vaf = float(points.loc[base, "mean_vaf"])
    baseline_detected = bool(points.loc[base, "ctdna_detected"])
    summary.update(
        baseline_sample_id=points.loc[base, "sample_id"],
        baseline_day=int(points.loc[base, "day"]),
        baseline_vaf=baseline_vaf,
        baseline_detected=baseline_detected,
    )
    if baseline_vaf > 0:
        points["ratio_to_baseline"] = points["mean_vaf"] / baseline_vaf
        points["change_pct"] = 100.0 * (points["ratio_to_baseline"] - 1.0)
    post = points.index[points["post_infusion"]]
    for index in post:
        _judge(points, index, covered, base, fall_fraction, progression_rise, change_alpha)
    if len(post):
        nadir = points.loc[post, "mean_vaf"].idxmin()
        summary.update(
            nadir_vaf=float(points.loc[nadir, "mean_vaf"]),
            nadir_day=int(points.loc[nadir, "day"]),
            best_change_pct=float(points.loc[nadir, "change_pct"]),
            latest_day=int(points.loc[post[-1], "day"]),
            latest_change_pct=float(points.loc[post[-1], "change_pct"]),
        )
    if not baseline_detected:
        return _finish(points, summary, "ctDNA not detected at baseline")
    if len(post) == 0:
        return _finish(points, summary, "no post-infusion plasma sample")
    fall = points.loc[post, "fall"].astype(bool).tolist()
    above = points.loc[post, "above"].astype(bool).tolist()
    summary.update(
        molecular_response=any(
            fall[i] and (i == len(fall) - 1 or fall[i + 1]) for i in range(len(fall))
        ),
        transient_decrease=any(fall[i] and any(above[i + 1 :]) for i in range(len(fall))),
        clearance=not points.loc[post, "ctdna_detected"].any(),
        progression=bool(points.loc[post[-1], "rise"]),
    )
    return _finish(points, summary, "")


def _judge(
    points: pd.DataFrame,
    index: int,
    covered: pd.DataFrame,
    base: int,
    fall_fraction: float,
    progression_rise: float,
    change_alpha: float,
) -> None:
    """Set p_fall, p_rise, change_tested, fall, above and rise of one post-infusion sample."""
    ratio = points.loc[index, "ratio_to_baseline"]
    if math.isnan(ratio):  # baseline VAF 0: no ratio, nothing to judge
        return
    p_fall, p_rise = _fisher(covered.loc[index], covered.loc[base])
    tested = not math.isnan(p_fall)
    limit = float(covered.loc[index].get("detection_limit_vaf", math.nan))
    baseline_vaf = float(points.loc[base, "mean_vaf"])
    undetected_deep = not points.loc[index, "ctdna_detected"] and limit <= (
        fall_fraction * baseline_vaf
    )
    significant_fall = not tested or p_fall < change_alpha or undetected_deep
    points.loc[index, "p_fall"] = p_fall
    points.loc[index, "p_rise"] = p_rise
    points.loc[index, "change_tested"] = tested
    points.loc[index, "fall"] = bool(ratio <= fall_fraction and significant_fall)
    points.loc[index, "above"] = bool(ratio > fall_fraction)
    points.loc[index, "rise"] = bool(
        ratio >= progression_rise and (not tested or p_rise < change_alpha)
    )


def _fisher(sample: pd.Series, baseline: pd.Series) -> tuple[float, float]:
    """One-sided Fisher p-values that the sample's ALT fraction is below / above baseline's."""
    try:
        alt, depth = int(sample["alt_count"]), int(sample["depth"])
        base_alt, base_depth = int(baseline["alt_count"]), int(baseline["depth"])
    except (KeyError, TypeError, ValueError):
        return math.nan, math.nan
    if depth <= 0 or base_depth <= 0 or sample.get("detection_method") == "vendor-reported":
        return math.nan, math.nan
    table = np.array([[alt, depth - alt], [base_alt, base_depth - base_alt]])
    return (
        float(stats.fisher_exact(table, alternative="less")[1]),
        float(stats.fisher_exact(table, alternative="greater")[1]),
    )


def _finish(
    points: pd.DataFrame, summary: dict[str, object], reason: str
) -> tuple[pd.DataFrame, dict[str, object]]:
    summary["evaluable"] = reason == ""
    summary["reason"] = reason
    if reason:
        summary.update(dict.fromkeys(FLAGS, False))
    return points.drop(columns="rise", errors="ignore"), summary
