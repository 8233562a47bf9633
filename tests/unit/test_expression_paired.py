"""Baseline/post pairing and the exact Wilcoxon signed-rank test on hand-made data."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from carmscope.expression.paired import (
    baseline_post_pairs,
    benjamini_hochberg,
    exact_signed_rank_p,
    paired_tests,
    paired_values,
    signed_rank_test,
)


def _brute_force_p(deltas) -> float:
    """Two-sided p by enumerating every sign pattern of the mid-ranks of the non-zero deltas."""
    values = np.asarray([d for d in deltas if d != 0], dtype=float)
    ranks = stats.rankdata(np.abs(values))
    observed = ranks[values > 0].sum()
    totals = np.array(
        [
            ranks[np.array(signs, bool)].sum()
            for signs in itertools.product([0, 1], repeat=len(ranks))
        ]
    )
    lower = np.mean(totals <= observed + 1e-9)
    upper = np.mean(totals >= observed - 1e-9)
    return min(1.0, 2 * min(lower, upper))


# --- the test statistic -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("deltas", "p_value", "rank_biserial"),
    [
        ([1, 2, 3, 4, 5], 2 / 32, 1.0),  # all up: only 1 of 32 patterns as extreme, two-sided
        ([-1, -2, -3, -4, -5], 2 / 32, -1.0),
        ([1, -2, 3, 4, 5, 6], 6 / 64, 17 / 21),  # W- = 2: {}, {1}, {2} -> 3/64, doubled
        ([0.5, 1.5, 2.5], 2 / 8, 1.0),  # n = 3: smallest possible p is 0.25
        ([1, 1, -1, 2, 3], 8 / 32, 11 / 15),  # ties: mid-ranks 2, 2, 2, 4, 5; W- = 2
    ],
)
def test_signed_rank_known_exact_p_values(deltas, p_value, rank_biserial):
    result = signed_rank_test(deltas)
    assert result["p_value"] == pytest.approx(p_value)
    assert result["rank_biserial"] == pytest.approx(rank_biserial)
    assert result["p_value"] == pytest.approx(_brute_force_p(deltas))
    assert result["n_nonzero"] == len(deltas)


def test_zero_deltas_are_dropped():
    result = signed_rank_test([0, 0, 1, 2, 3, 4, 5])
    assert result["n_pairs"] == 7 and result["n_zero"] == 2 and result["n_nonzero"] == 5
    assert result["p_value"] == pytest.approx(2 / 32)
    assert "zero deltas dropped" in result["method"]
    assert result["median_delta"] == 2.0  # over every pair, zeros included


def test_missing_deltas_are_counted_not_tested():
    result = signed_rank_test([np.nan, 1, 2, 3, 4, 5])
    assert result["n_missing"] == 1 and result["n_pairs"] == 5
    assert result["p_value"] == pytest.approx(2 / 32)


def test_all_zero_or_no_pair():
    zero = signed_rank_test([0.0, 0.0, 0.0])
    assert np.isnan(zero["p_value"]) and zero["method"] == "not tested: no non-zero delta"
    empty = signed_rank_test([])
    assert np.isnan(empty["p_value"]) and empty["method"] == "not tested: no pair"


def test_exact_p_without_ties_matches_scipy():
    rng = np.random.default_rng(1)
    for n in range(1, 16):
        deltas = rng.normal(0.3, 1.0, n)
        expected = stats.wilcoxon(deltas, method="exact").pvalue
        assert exact_signed_rank_p(deltas) == pytest.approx(expected)
        assert signed_rank_test(deltas)["p_value"] == pytest.approx(expected)


def test_exact_p_with_ties_matches_enumeration():
    rng = np.random.default_rng(2)
    for _ in range(20):
        deltas = rng.integers(-3, 6, 9).astype(float)
        deltas = deltas[deltas != 0]
        if deltas.size:
            assert exact_signed_rank_p(deltas) == pytest.approx(_brute_force_p(deltas))


def test_benjamini_hochberg():
    q = benjamini_hochberg([0.01, 0.04, 0.03, np.nan])
    assert q[:3] == pytest.approx([0.03, 0.04, 0.04])
    assert np.isnan(q[3])


# --- pairing ----------------------------------------------------------------------------------


@pytest.fixture
def samples() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sample_id": ["A_scr", "A_d0a", "A_d0b", "A_d15", "A_d8", "A_bulk", "B_scr", "C_d8"],
            "patient_id": ["A", "A", "A", "A", "A", "A", "B", "C"],
            "day": [-21, 0, 0, 15, 8, -21, -10, 8],
            "assay": ["scrna"] * 5 + ["bulk_rna", "scrna", "scrna"],
        }
    ).set_index("sample_id")


def test_baseline_is_last_pre_infusion_and_post_is_first_after(samples):
    pairs = baseline_post_pairs(samples, "scrna").set_index("patient_id")
    assert pairs.at["A", "baseline_sample"] == "A_d0b"  # same day: later in the table
    assert pairs.at["A", "post_sample"] == "A_d8"  # earliest day, not table order
    assert pairs.at["A", "complete"]
    assert pairs.at["B", "post_sample"] == "" and not pairs.at["B", "complete"]
    assert pairs.at["C", "baseline_sample"] == "" and not pairs.at["C", "complete"]
    bulk = baseline_post_pairs(samples, "bulk_rna").set_index("patient_id")
    assert bulk.at["A", "baseline_sample"] == "A_bulk" and not bulk.at["A", "complete"]


def test_paired_values(samples):
    metrics = pd.DataFrame(
        {
            "sample_id": ["A_d0b", "A_d0b", "A_d8", "A_d8", "A_scr", "A_d15"],
            "metric": ["cd8", "infl", "cd8", "infl", "cd8", "cd8"],
            "value": [0.05, 1.0, 0.15, np.nan, 0.5, 0.9],
        }
    )
    paired = paired_values(metrics, samples, "scrna").set_index("metric")
    assert list(paired["patient_id"]) == ["A", "A"]
    assert paired.at["cd8", "baseline"] == 0.05 and paired.at["cd8", "post"] == 0.15
    assert paired.at["cd8", "delta"] == pytest.approx(0.10)
    assert np.isnan(paired.at["infl", "delta"])
    with pytest.raises(ValueError, match="given twice"):
        paired_values(pd.concat([metrics, metrics]), samples)


def test_paired_tests_overall_and_by_her2():
    rows = []
    deltas = {"P1": 1.0, "P2": 2.0, "P3": 3.0, "P4": 4.0, "P5": 5.0, "P6": -0.5}
    for patient, delta in deltas.items():
        rows.append({"patient_id": patient, "metric": "m", "baseline": 0.0, "post": delta})
        rows.append({"patient_id": patient, "metric": "flat", "baseline": 1.0, "post": 1.0})
    paired = pd.DataFrame(rows).assign(delta=lambda t: t["post"] - t["baseline"])
    patients = pd.DataFrame({"her2_ihc": ["3+", "3+", "3+", "2+", "2+", "2+"]}, index=list(deltas))
    tests = paired_tests(paired, patients).set_index(["group", "metric"])
    overall = tests.loc[("all", "m")]
    # deltas 1..5 and -0.5: ranks 2..6 up, 1 down -> W- = 1 -> p = 2 * 2/64
    assert overall["p_value"] == pytest.approx(4 / 64)
    assert overall["rank_biserial"] == pytest.approx((20 - 1) / 21)
    assert overall["median_delta"] == pytest.approx(2.5)
    assert overall["group_column"] == ""
    assert tests.loc[("3+", "m"), "p_value"] == pytest.approx(2 / 8)
    assert tests.loc[("2+", "m"), "n_pairs"] == 3
    assert tests.loc[("2+", "m"), "group_column"] == "her2_ihc"
    assert np.isnan(tests.loc[("all", "flat"), "p_value"])
    assert tests.loc[("all", "m"), "q_value"] == pytest.approx(4 / 64)  # the only tested metric
    with pytest.raises(KeyError, match="dosing"):
        paired_tests(paired, patients, group_column="dosing")
