"""Molecular-response flags on hand-made trajectories, and the response plots."""

import numpy as np
import pandas as pd
import pytest

from carmscope.ctdna.plots import spider_plot, waterfall_plot
from carmscope.ctdna.response import PATIENT_COLUMNS, TIMEPOINT_COLUMNS, ctdna_response
from carmscope.synthetic.design import CTDNA_TRAJECTORIES, ctdna_flags

FLAGS = ["molecular_response", "transient_decrease", "clearance", "progression"]
DAYS = (0, 8, 29, 57)
LIMIT = 0.002
"""Detection limit given to every hand-made sample (well below every baseline)."""


def sample(patient, day, vaf, depth=5000, detected=None, status=None, limit=LIMIT, **extra):
    """One row of sample calls: ALT reads and detection follow the VAF unless given."""
    alt = round(vaf * depth) if np.isfinite(vaf * depth) else np.nan
    detected = bool(alt >= 3) if detected is None else detected
    return {
        "sample_id": f"{patient}_D{day}",
        "patient_id": patient,
        "day": day,
        "mean_vaf": vaf,
        "alt_count": alt,
        "depth": depth,
        "ctdna_detected": detected,
        "call_status": status or ("detected" if detected else "not_detected"),
        "detection_limit_vaf": limit,
        "detection_method": "poisson",
        **extra,
    }


def trajectory(patient, baseline, folds, days=DAYS, **kw):
    vafs = [baseline, *(baseline * fold for fold in folds)]
    return [sample(patient, day, vaf, **kw) for day, vaf in zip(days, vafs, strict=False)]


def flags_of(patients, patient):
    row = patients.set_index("patient_id").loc[patient]
    return {flag: bool(row[flag]) for flag in FLAGS}


def test_flags_match_the_synthetic_truth_for_every_trajectory():
    rows, truth = [], {}
    for name, folds in CTDNA_TRAJECTORIES.items():
        for baseline in (0.01, 0.05):
            patient = f"{name}-{baseline}"
            rows += trajectory(patient, baseline, folds)
            truth[patient] = ctdna_flags(baseline, [baseline * fold for fold in folds])
    timepoints, patients = ctdna_response(pd.DataFrame(rows))
    assert list(timepoints.columns) == TIMEPOINT_COLUMNS
    assert list(patients.columns) == PATIENT_COLUMNS
    assert patients["evaluable"].all()
    for patient, expected in truth.items():
        assert flags_of(patients, patient) == expected, patient
    # each flag is exercised both ways
    table = patients[FLAGS]
    assert table.any().all() and (~table).any().all()


def test_transient_fall_is_a_transient_decrease_without_response():
    _, patients = ctdna_response(pd.DataFrame(trajectory("P", 0.04, (0.30, 0.90, 1.10))))
    assert flags_of(patients, "P") == {
        "molecular_response": False,
        "transient_decrease": True,
        "clearance": False,
        "progression": False,
    }


def test_nadir_best_and_latest_change():
    timepoints, patients = ctdna_response(pd.DataFrame(trajectory("P", 0.04, (0.5, 0.25, 2.0))))
    row = patients.iloc[0]
    assert (row["baseline_day"], row["baseline_vaf"], row["n_post"]) == (0, 0.04, 3)
    assert (row["nadir_day"], row["nadir_vaf"]) == (29, pytest.approx(0.01))
    assert row["best_change_pct"] == pytest.approx(-75.0)
    assert (row["latest_day"], row["latest_change_pct"]) == (57, pytest.approx(100.0))
    assert timepoints["change_pct"].tolist() == pytest.approx([0.0, -50.0, -75.0, 100.0])
    assert timepoints["is_baseline"].tolist() == [True, False, False, False]


def test_stable_trajectory_with_sampling_noise_is_not_a_fall():
    # 8 ALT reads at baseline, 3 after (a 62% drop in VAF) is within Poisson noise
    rows = [
        sample("noisy", 0, 8 / 400, depth=400),
        sample("noisy", 8, 3 / 400, depth=400),
        sample("noisy", 29, 3 / 400, depth=400),
    ]
    # the same fall measured on 25x the reads is real
    rows += [
        sample("deep", 0, 200 / 10_000, depth=10_000),
        sample("deep", 8, 75 / 10_000, depth=10_000),
        sample("deep", 29, 75 / 10_000, depth=10_000),
    ]
    timepoints, patients = ctdna_response(pd.DataFrame(rows))
    noisy = timepoints[timepoints["patient_id"].eq("noisy") & timepoints["post_infusion"]]
    assert (noisy["change_pct"] < -50).all()
    assert (noisy["p_fall"] > 0.05).all() and not noisy["fall"].any()
    assert not flags_of(patients, "noisy")["molecular_response"]
    assert flags_of(patients, "deep")["molecular_response"]


def test_rise_needs_significance_to_be_progression():
    shallow = [sample("shallow", 0, 8 / 400, depth=400), sample("shallow", 8, 12 / 400, depth=400)]
    deep = [sample("deep", 0, 0.02, depth=10_000), sample("deep", 8, 0.03, depth=10_000)]
    _, patients = ctdna_response(pd.DataFrame(shallow + deep))
    assert not flags_of(patients, "shallow")["progression"]
    assert flags_of(patients, "deep")["progression"]


def test_undetected_sample_falls_only_if_its_depth_could_have_seen_ctdna():
    rows = [sample("deep", 0, 0.01, depth=2000), sample("deep", 8, 0.0, depth=2000, limit=0.003)]
    # too shallow: not detecting 1% ctDNA in 60 reads means nothing
    rows += [
        sample("shallow", 0, 0.01, depth=2000),
        sample("shallow", 8, 0.0, depth=60, limit=0.08),
    ]
    timepoints, patients = ctdna_response(pd.DataFrame(rows))
    falls = timepoints.set_index("sample_id")["fall"]
    assert falls["deep_D8"] and not falls["shallow_D8"]
    assert (
        flags_of(patients, "deep")["clearance"] and flags_of(patients, "deep")["molecular_response"]
    )
    # clearance is about detection alone, so the shallow patient is "cleared" but not a response
    assert not flags_of(patients, "shallow")["molecular_response"]


def test_patients_without_evaluable_baseline_get_no_flags_and_a_reason():
    rows = [sample("post_only", 8, 0.02), sample("post_only", 29, 0.001)]
    rows += [sample("undetected", 0, 0.0004), sample("undetected", 8, 0.0)]
    rows += [sample("baseline_only", -3, 0.02)]
    rows += [
        sample("missing", 0, np.nan, detected=False, status="no_coverage"),
        sample("missing", 8, 0.001),
    ]
    _, patients = ctdna_response(pd.DataFrame(rows))
    reasons = patients.set_index("patient_id")["reason"]
    assert reasons["post_only"] == "no pre-infusion plasma sample with coverage"
    assert reasons["undetected"] == "ctDNA not detected at baseline"
    assert reasons["baseline_only"] == "no post-infusion plasma sample"
    assert reasons["missing"] == reasons["post_only"]  # an uncovered sample is not VAF 0
    assert not patients[FLAGS].any(axis=None) and not patients["evaluable"].any()


def test_baseline_is_the_last_pre_infusion_sample_with_coverage():
    rows = [
        sample("P", -14, 0.10),
        sample("P", -2, 0.04),
        sample("P", 0, np.nan, detected=False, status="no_coverage"),
        sample("P", 8, 0.01),
        sample("P", 29, 0.01),
    ]
    timepoints, patients = ctdna_response(pd.DataFrame(rows))
    assert patients.loc[0, "baseline_day"] == -2
    assert "P_D0" not in set(timepoints["sample_id"])  # no coverage: not a timepoint
    assert flags_of(patients, "P")["molecular_response"]


def test_vendor_vafs_without_depth_are_judged_on_value():
    vendor = {"detection_method": "vendor-reported", "depth": np.nan, "limit": np.nan}
    rows = [
        sample("V", 0, 0.04, detected=True, status="vendor_reported", **vendor),
        sample("V", 8, 0.01, detected=True, status="vendor_reported", **vendor),
    ]
    for row in rows:
        row["alt_count"] = np.nan
    timepoints, patients = ctdna_response(pd.DataFrame(rows))
    post = timepoints[timepoints["post_infusion"]].iloc[0]
    assert not post["change_tested"] and post["fall"]
    assert flags_of(patients, "V")["molecular_response"]


def test_spider_and_waterfall_plots_are_written(tmp_path):
    rows = trajectory("A", 0.04, (0.2, 0.25, 2.5)) + trajectory("B", 0.02, (1.8, 3.0, 4.0))
    rows += [sample("C", 8, 0.01)]  # not evaluable: left out
    timepoints, patients = ctdna_response(pd.DataFrame(rows))
    for suffix in ("png", "svg"):
        spider = tmp_path / f"spider.{suffix}"
        waterfall = tmp_path / f"waterfall.{suffix}"
        spider_plot(timepoints, spider, patients)
        waterfall_plot(patients, waterfall)
        assert spider.stat().st_size > 1000 and waterfall.stat().st_size > 1000
    svg = (tmp_path / "spider.svg").read_text()
    assert "<svg" in svg and "stroke-dasharray" in svg  # the dashed -50% line
