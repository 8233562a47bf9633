"""Non-compartmental analysis: against a second implementation on real data, and by hand."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carmscope.blood import nca

THEOPH = Path(__file__).parents[1] / "data" / "blood" / "theoph.csv"
LN2 = math.log(2)


@pytest.fixture(scope="module")
def theoph():
    return pd.read_csv(THEOPH)


@pytest.fixture(scope="module")
def pynca_results(theoph):
    """NCA of Theoph by pynca (a Python port of Bae's R NonCompart), lin up/log down.

    pynca's ``BestSlope`` uses the same terminal-phase rule as PKNCA and WinNonlin: fits of the
    last >= 3 points after Tmax, the best adjusted R^2 within 1e-4, the most points.
    """
    tools = pytest.importorskip("pynca.tools", reason="pynca (test extra) is not installed")
    results = {}
    for subject, rows in theoph.groupby("Subject"):
        rows = rows.sort_values("Time")
        figures, _ = tools.sNCA(
            rows["Time"].to_numpy(),
            rows["conc"].to_numpy(),
            dose=320,
            adm="Extravascular",
            down="Log",  # linear up / log down
        )
        results[int(subject)] = figures
    return results


def test_theoph_has_12_subjects(theoph):
    assert theoph["Subject"].nunique() == 12
    assert len(theoph) == 132


@pytest.mark.parametrize("subject", range(1, 13))
def test_theoph_matches_pynca(theoph, pynca_results, subject):
    """Cmax, Tmax, AUClast and half-life of every subject within 0.1% of pynca.

    Both take the 0 h sample as measured (some subjects have theophylline before the dose),
    as PKNCA does; :func:`nca.kinetics` places the last pre-dose value at 0 h likewise.
    """
    rows = theoph[theoph["Subject"] == subject].sort_values("Time")
    theirs = pynca_results[subject]
    for ours in (
        nca.nca(rows["Time"], rows["conc"]),
        nca.kinetics(rows["Time"], rows["conc"], np.zeros(len(rows), bool)),
    ):
        assert ours.cmax == pytest.approx(float(theirs["CMAX"]), rel=1e-3)
        assert ours.tmax_h == pytest.approx(float(theirs["TMAX"]), rel=1e-3)
        assert ours.auc_0_tlast == pytest.approx(float(theirs["AUCLST"]), rel=1e-3)
        assert ours.half_life_h == pytest.approx(float(theirs["LAMZHL"]), rel=1e-3)
        assert ours.half_life_points == int(theirs["LAMZNPT"])
        assert ours.half_life_adj_r2 == pytest.approx(float(theirs["R2ADJ"]), rel=1e-3)


def test_theoph_subject_1_by_hand(theoph):
    """Subject 1 is monotone after Tmax; its AUClast checked trapezoid by trapezoid."""
    rows = theoph[theoph["Subject"] == 1].sort_values("Time")
    t, c = rows["Time"].to_numpy(), rows["conc"].to_numpy()
    expected = 0.0
    for t1, t2, c1, c2 in zip(t[:-1], t[1:], c[:-1], c[1:], strict=True):
        expected += (t2 - t1) * ((c1 - c2) / math.log(c1 / c2) if c2 < c1 else (c1 + c2) / 2)
    result = nca.nca(t, c)
    assert result.cmax == 10.5 and result.tmax_h == 1.12
    assert result.auc_0_tlast == pytest.approx(expected, rel=1e-12)


def series(pairs):
    """hours, values, blq from (hours, value) pairs; None is below LLOQ."""
    hours = [h for h, _ in pairs]
    values = [math.nan if v is None else v for _, v in pairs]
    return hours, values, [v is None for _, v in pairs]


def test_blq_at_start_counts_as_zero():
    points = [(-24, None), (2, None), (6, 10), (24, 5), (48, 2.5), (72, 1.25)]
    result = nca.kinetics(*series(points))
    assert (result.cmax, result.tmax_h, result.clast, result.tlast_h) == (10, 6, 1.25, 72)
    # 0-2 h: 0; 2-6 h linear up 4*10/2; then three halvings, log down (t2-t1)(c1-c2)/ln2
    assert result.auc_0_tlast == pytest.approx(20 + (18 * 5 + 24 * 2.5 + 24 * 1.25) / LN2)
    assert result.half_life_h == pytest.approx(24)
    assert result.half_life_points == 3
    assert result.half_life_adj_r2 == pytest.approx(1)
    assert result.reason == ""


def test_blq_in_the_middle_is_left_out():
    result = nca.kinetics(*series([(0, None), (2, 4), (6, None), (24, 8), (48, 4), (72, 2)]))
    # (6, BLQ) dropped: 0-2 linear 4; 2-24 linear 22*(4+8)/2; 24-72 log down
    assert result.auc_0_tlast == pytest.approx(4 + 132 + (24 * 4 + 24 * 2) / LN2)
    assert (result.cmax, result.tmax_h) == (8, 24)
    assert math.isnan(result.half_life_h)
    assert "2 quantifiable point(s) after Tmax, 3 needed" in result.reason


def test_blq_at_end_is_after_tlast():
    result = nca.kinetics(
        *series([(-1, 3), (2, 10), (6, 20), (24, 10), (48, 5), (72, None), (168, None)])
    )
    assert (result.tlast_h, result.clast, result.last_sample_h) == (48, 5, 168)
    assert result.persists_to_last_sample is False
    # the pre-infusion value 3 is placed at 0 h
    assert result.auc_0_tlast == pytest.approx(2 * 13 / 2 + 4 * 30 / 2 + (180 + 120) / LN2)


def test_single_quantifiable_point():
    result = nca.kinetics(*series([(0, None), (2, None), (6, 10), (24, None), (48, None)]))
    assert (result.cmax, result.tmax_h, result.clast, result.tlast_h) == (10, 6, 10, 6)
    assert result.auc_0_tlast == pytest.approx(20)
    assert math.isnan(result.half_life_h) and result.half_life_points == 0
    assert "0 quantifiable point(s) after Tmax" in result.reason


def test_flat_tail_has_no_half_life():
    result = nca.kinetics(*series([(0, None), (2, 5), (6, 10), (24, 10), (48, 10), (72, 10)]))
    assert (result.cmax, result.tmax_h, result.tlast_h) == (10, 6, 72)  # first of equal maxima
    assert result.auc_0_tlast == pytest.approx(5 + 30 + 660)
    assert math.isnan(result.half_life_h)
    assert result.reason == "half-life: no declining terminal phase after Tmax"
    assert result.persists_to_last_sample is True


def test_adjusted_r2_prefers_the_clean_terminal_phase():
    """A late terminal phase: the last 3 points fit exactly, adding earlier ones worsens it."""
    hours = [0, 2, 6, 12, 24, 48, 72]
    values = [0, 50, 100, 90, 40, 10, 2.5]
    result = nca.kinetics(hours, values, [False] * 7)
    assert result.half_life_points == 3
    assert result.half_life_h == pytest.approx(12)
    assert result.half_life_adj_r2 == pytest.approx(1)


def test_not_evaluable_patients():
    assert nca.kinetics([], [], []).reason == "no blood sample"
    single = nca.kinetics([24], [5.0], [False])
    assert single.reason.startswith("a single blood sample") and math.isnan(single.cmax)
    assert nca.kinetics([-2, -1], [1, 1], [False, False]).reason == (
        "no blood sample after infusion"
    )
    none = nca.kinetics(*series([(0, 4), (2, None), (24, None)]))
    assert none.reason == "no quantifiable value after infusion"
    assert math.isnan(none.cmax) and math.isnan(none.tmax_h) and none.last_sample_h == 24


def test_nca_rejects_unsorted_or_negative_input():
    with pytest.raises(ValueError, match="increasing"):
        nca.nca([0, 2, 1], [1, 2, 3])
    with pytest.raises(ValueError, match=">= 0"):
        nca.nca([0, 1], [1, -2])
    with pytest.raises(ValueError, match="at least 3"):
        nca.terminal_half_life([1, 2, 3], [3, 2, 1], 0, min_points=2)


def test_a_poor_terminal_fit_is_reported_but_not_used():
    """A rebound after a second dose: the best fit is poor, its points and R^2 still shown."""
    hours, values = [0, 2, 6, 24, 48, 72], [0, 100, 80, 10, 40, 5]
    accepted = nca.kinetics(hours, values, [False] * 6)  # PKNCA: any fit with lambda_z > 0
    assert math.isfinite(accepted.half_life_h) and accepted.half_life_adj_r2 < 0.7
    rejected = nca.kinetics(hours, values, [False] * 6, min_adj_r2=0.7)
    assert math.isnan(rejected.half_life_h)
    assert rejected.half_life_points == accepted.half_life_points
    assert rejected.half_life_adj_r2 == accepted.half_life_adj_r2
    assert "below 0.7" in rejected.reason
    assert rejected.auc_0_tlast == accepted.auc_0_tlast  # the other figures do not change
