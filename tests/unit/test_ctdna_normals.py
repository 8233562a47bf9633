"""The panel-of-normals background mode: the mode check, per-patient panels and backgrounds,
calls that do not depend on the other patients, specificity on tumour-free plasma."""

import numpy as np
import pandas as pd
import pytest

from carmscope.ctdna.background import BACKGROUND_COLUMNS, patient_backgrounds, site_background
from carmscope.ctdna.calls import sample_calls, variant_calls, variant_calls_by_patient
from carmscope.ctdna.panels import PANEL_COLUMNS, patient_panel
from carmscope.ctdna.settings import CtdnaConfigError, background_mode
from carmscope.ctdna.variants import VARIANT_COLUMNS
from tests.config_schema import with_defaults
from tests.unit.test_ctdna_calls import counts

# --- the background mode (the rules' paths: tests/unit/test_wiring_ctdna.py) -------------------


def test_background_mode_defaults_to_cohort_and_needs_normals():
    assert background_mode(with_defaults()["ctdna"]) == "cohort"
    assert background_mode({"background": "cohort", "panel_of_normals": []}) == "cohort"
    assert background_mode({"background": "normals", "panel_of_normals": ["n.bam"]}) == ("normals")
    with pytest.raises(CtdnaConfigError, match=r"ctdna\.panel_of_normals lists no BAM"):
        background_mode({"background": "normals", "panel_of_normals": []})
    with pytest.raises(CtdnaConfigError, match=r"ctdna\.background is 'other'"):
        background_mode({"background": "other"})


def test_background_auto_uses_the_normals_when_there_are_any():
    assert with_defaults()["ctdna"]["background"] == "auto"
    assert background_mode({"background": "auto", "panel_of_normals": ["n.bam"]}) == "normals"
    assert background_mode({"background": "auto", "panel_of_normals": []}) == "cohort"
    # an explicit cohort pools the normals with the plasma: auto never overrides it
    assert background_mode({"background": "cohort", "panel_of_normals": ["n.bam"]}) == "cohort"
    with pytest.raises(CtdnaConfigError, match=r"expected one of auto, cohort, normals"):
        background_mode({"background": "Normals", "panel_of_normals": ["n.bam"]})


# --- per-patient panels -------------------------------------------------------------------------


def test_patient_panel_keeps_the_evaluable_copy_in_vcf_order():
    variants = pd.DataFrame(
        {
            "chrom": "chr1",
            "pos": [300, 100, 100],
            "ref": ["G", "A", "A"],
            "alt": ["T", "C", "C"],
            "kind": "snv",
            "evaluable": [True, False, True],
            "reason": ["", "FILTER is LowQual", ""],
        }
    )
    panel = patient_panel(variants, "P1")
    assert list(panel.columns) == PANEL_COLUMNS == [*VARIANT_COLUMNS, "patients"]
    assert panel["pos"].tolist() == [300, 100]
    assert panel["evaluable"].tolist() == [True, True]
    assert (panel["patients"] == "P1").all()


# --- per-patient background and calls -----------------------------------------------------------


def normal_rows(patient, alts, depth, first_pos, normal="panel_of_normals/1_n"):
    return counts(normal, "", alts, depth, first_pos, carrier=False).assign(panel_patient=patient)


def test_patient_backgrounds_pool_each_patients_normals_only():
    normals = pd.concat(
        [
            normal_rows("P1", [1, 0], 1000, 100),
            normal_rows("P1", [3, 0], 1000, 100, normal="panel_of_normals/2_m"),
            normal_rows("P2", [50, 50], 1000, 500),
        ],
        ignore_index=True,
    )
    background = patient_backgrounds(normals, floor=1e-4)
    assert list(background.columns) == ["patient_id", *BACKGROUND_COLUMNS]
    p1 = background[background["patient_id"] == "P1"].set_index("pos")
    assert p1.loc[100, "background_alt"] == 4 and p1.loc[100, "background_depth"] == 2000
    assert p1.loc[100, "background_samples"] == 2
    assert p1.loc[100, "error_rate"] == pytest.approx(4.5 / 2001)
    assert p1.loc[101, "error_rate"] == pytest.approx(0.5 / 2001)
    p2 = background[background["patient_id"] == "P2"]
    assert p2["noisy"].all()  # 5% ALT in the normals: a noisy site
    empty = patient_backgrounds(normals.iloc[:0])
    assert empty.empty and list(empty.columns) == ["patient_id", *BACKGROUND_COLUMNS]


def test_calls_by_patient_use_only_the_patients_own_background():
    """The same site in two patients' panels: each is judged against its own background."""
    samples = pd.concat(
        [counts("P1_s", "P1", [6, 5], 1000, 100), counts("P2_s", "P2", [6, 5], 1000, 100)],
        ignore_index=True,
    )
    normals = pd.concat(
        [normal_rows("P1", [0, 0], 2000, 100), normal_rows("P2", [8, 8], 2000, 100)],
        ignore_index=True,
    )
    variants = variant_calls_by_patient(samples, patient_backgrounds(normals))
    assert variants["sample_id"].tolist() == ["P1_s", "P1_s", "P2_s", "P2_s"]
    calls = sample_calls(variants).set_index("sample_id")
    assert calls.loc["P1_s", "ctdna_detected"] and not calls.loc["P2_s", "ctdna_detected"]


def test_a_patients_calls_do_not_change_when_patients_are_added():
    rng = np.random.default_rng(5)

    def patient(p, first_pos):
        rows = [
            counts(f"{p}_{i}", p, rng.binomial(800, 0.01 * i, 4), 800, first_pos) for i in range(3)
        ]
        normals = [
            normal_rows(p, rng.binomial(900, 5e-4, 4), 900, first_pos, f"panel_of_normals/{n}")
            for n in ("1_a", "2_b")
        ]
        return rows, normals

    first_rows, first_normals = patient("P1", 100)
    other_rows, other_normals = patient("P2", 100)  # the same sites, other evidence

    def calls(rows, normals):
        samples = pd.concat(rows, ignore_index=True)
        background = patient_backgrounds(pd.concat(normals, ignore_index=True))
        return sample_calls(variant_calls_by_patient(samples, background))

    alone = calls(first_rows, first_normals)
    together = calls(first_rows + other_rows, first_normals + other_normals)
    pd.testing.assert_frame_equal(alone, together[together["patient_id"] == "P1"])


def test_variant_calls_by_patient_matches_variant_calls_for_one_patient():
    samples = pd.concat(
        [counts("s1", "P1", [3, 0, 1], 700, 100), counts("s2", "P1", [0, 1, 0], 650, 100)],
        ignore_index=True,
    )
    normals = normal_rows("P1", [1, 0, 2], 3000, 100)
    background = patient_backgrounds(normals)
    alone = variant_calls(samples, site_background(normals.assign(carrier=False)))
    pd.testing.assert_frame_equal(variant_calls_by_patient(samples, background), alone)


def test_specificity_of_tumour_free_plasma_against_a_panel_of_normals():
    """200 tumour-free plasma samples (40 patients x 5, 6 sites each, depths 150-3000) judged
    against 5 normals per patient panel, binomial errors at site-specific rates (1e-4 to
    3e-3): >= 95% not detected."""
    rng = np.random.default_rng(2016)
    n_patients, per_patient, n_sites = 40, 5, 6
    error = np.exp(rng.uniform(np.log(1e-4), np.log(3e-3), (n_patients, n_sites)))

    def simulate(prefix):
        depth = rng.integers(150, 3000, (n_patients, per_patient))[:, :, None]
        depth = np.broadcast_to(depth, (n_patients, per_patient, n_sites))
        alt = rng.binomial(depth, error[:, None, :])
        patient = np.repeat(np.arange(n_patients), per_patient * n_sites)
        table = pd.DataFrame(
            {
                "sample_id": [
                    f"{prefix}{p}_{s}"
                    for p in range(n_patients)
                    for s in range(per_patient)
                    for _ in range(n_sites)
                ],
                "patient_id": [f"P{p}" for p in patient],
                "chrom": "chr1",
                "pos": np.tile(np.arange(n_sites) * 100 + 100, n_patients * per_patient),
                "ref": "A",
                "alt": "C",
                "kind": "snv",
                "evaluable": True,
                "reason": "",
                "alt_count": alt.ravel(),
                "depth": depth.ravel(),
            }
        )
        return table.assign(vaf=table["alt_count"] / table["depth"])

    samples = simulate("S").assign(carrier=True)
    normals = simulate("N").assign(carrier=False)
    normals = normals.assign(panel_patient=normals["patient_id"], patient_id="")
    calls = sample_calls(variant_calls_by_patient(samples, patient_backgrounds(normals)))
    assert len(calls) == n_patients * per_patient
    assert calls["ctdna_detected"].mean() <= 0.05, calls[calls["ctdna_detected"]]
