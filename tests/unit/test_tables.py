"""The result tables over small hand-made step outputs: picks, blanks with reasons, statistics."""

import numpy as np
import pandas as pd
import pytest

from carmscope.tables.patients import TableSettings, biopsy_pairs, patient_table
from carmscope.tables.samples import metric_column, sample_table
from carmscope.tables.steps import StepOutputs
from carmscope.tables.summary import clopper_pearson, cohort_summary

SETS = ("HALLMARK_INFLAMMATORY_RESPONSE", "HALLMARK_TNFA_SIGNALING_VIA_NFKB")
SETTINGS = TableSettings(inflammation_sets=SETS)


def sheets():
    patients = pd.DataFrame(
        {
            "patient_id": ["P1", "P2", "P3", "P4"],
            "indication": ["breast", "gastric", "breast", "ovarian"],
            "her2_ihc": ["3+", "2+", "3+", "2+"],
            "dosing": ["fractionated", "single", "single", "fractionated"],
            "best_response": ["SD", "PD", "", "PD"],
            "tumor_variants": ["a.vcf.gz", "b.vcf.gz", "", ""],
        }
    ).set_index("patient_id")
    samples = pd.DataFrame(
        [
            ("P1_pre_sc", "P1", "screening", -10, "scrna"),
            ("P1_post_sc", "P1", "D8", 8, "scrna"),
            ("P1_pre_bulk", "P1", "screening", -10, "bulk_rna"),
            ("P1_post_bulk", "P1", "D8", 8, "bulk_rna"),
            ("P1_c0", "P1", "C1D0", 0, "cfdna"),
            ("P1_c8", "P1", "D8", 8, "cfdna"),
            ("P2_pre_bulk", "P2", "screening", -5, "bulk_rna"),
            ("P2_post_bulk", "P2", "D8", 8, "bulk_rna"),
            ("P2_c0", "P2", "C1D0", 0, "cfdna"),
            ("P3_pre_sc", "P3", "screening", -7, "scrna"),
        ],
        columns=["sample_id", "patient_id", "timepoint", "day", "assay"],
    ).set_index("sample_id")
    return patients, samples


def metrics(values):
    """Long metric table from {sample: {metric: value}}."""
    rows = [(s, m, v) for s, by_metric in values.items() for m, v in by_metric.items()]
    return pd.DataFrame(rows, columns=["sample_id", "metric", "value"])


def sample_metrics(cd8_fraction, cd8_score, inflammation):
    values = {"all/CD8_T_cells/mean_log2cpm": cd8_score}
    if cd8_fraction is not None:
        values["fraction_of_cells/cd8_t"] = cd8_fraction
    values |= {f"all/{s}/mean_log2cpm": inflammation for s in SETS}
    return values


def outputs(**changes):
    patients, samples = sheets()
    scrna = metrics(
        {
            "P1_pre_sc": sample_metrics(0.05, 7.0, 7.5),
            "P1_post_sc": sample_metrics(0.15, 7.8, 7.9),
            "P3_pre_sc": sample_metrics(0.04, 6.9, 7.4),
        }
    )
    bulk = metrics(
        {
            "P1_pre_bulk": sample_metrics(None, 6.0, 7.0),
            "P1_post_bulk": sample_metrics(None, 6.1, 6.9),
            "P2_pre_bulk": sample_metrics(None, 6.0, 7.0),
            "P2_post_bulk": sample_metrics(None, 5.5, 6.8),
        }
    )
    car = pd.DataFrame(
        [
            ("P1_pre_sc", "P1", "scrna", False, 0.0, 0.0, ""),
            ("P1_post_sc", "P1", "scrna", True, 2500.0, 0.04, "P1_pre_sc"),
            ("P1_post_bulk", "P1", "bulk_rna", True, 40.0, np.nan, "P1_pre_bulk"),
            ("P2_post_bulk", "P2", "bulk_rna", False, 0.5, np.nan, ""),
        ],
        columns=[
            "sample_id",
            "patient_id",
            "assay",
            "car_detected",
            "car_reads_per_million",
            "car_positive_fraction",
            "background_sample",
        ],
    )
    car_cell_types = pd.DataFrame(
        [
            ("P1_post_sc", "macrophage_m1", 6, 0.6),
            ("P1_post_sc", "macrophage_m2", 2, 0.2),
            ("P1_post_sc", "cd8_t", 2, 0.2),
            ("P1_post_sc", "all", 10, 1.0),
        ],
        columns=["sample_id", "cell_type", "n_car_positive", "share_of_car_positive"],
    )
    qc = pd.DataFrame(
        [("P1_pre_sc", 300, 280), ("P1_post_sc", 300, 120), ("P3_pre_sc", 300, 290)],
        columns=["sample_id", "cells_before", "cells_after"],
    )
    ctdna_patients = pd.DataFrame(
        [
            ("P1", 0.05, 0.01, 8, -80.0, 8, -80.0, True, False, False, False, True, ""),
            ("P2", np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, False, False, False, False,
             False, "no post-infusion sample"),
        ],
        columns=[
            "patient_id", "baseline_vaf", "nadir_vaf", "nadir_day", "best_change_pct",
            "latest_day", "latest_change_pct", "molecular_response", "transient_decrease",
            "clearance", "progression", "evaluable", "reason",
        ],
    )  # fmt: skip
    ctdna_samples = pd.DataFrame(
        [
            ("P1_c0", "P1", 0.05, True, "detected"),
            ("P1_c8", "P1", 0.01, True, "detected"),
            ("P2_c0", "P2", np.nan, False, "no_coverage"),
        ],
        columns=["sample_id", "patient_id", "mean_vaf", "ctdna_detected", "call_status"],
    )
    timepoints = pd.DataFrame(
        [("P1", "P1_c0", 0, 0.0, False, False), ("P1", "P1_c8", 8, -80.0, True, False)],
        columns=["patient_id", "sample_id", "day", "change_pct", "fall", "above"],
    )
    fields = {
        "patients": patients,
        "samples": samples,
        "input_qc": pd.DataFrame({"sample_id": list(samples.index), "n_cells": 1}),
        "expression_metrics": {"scrna": scrna, "bulk_rna": bulk},
        "expression_qc": qc,
        "car": car,
        "car_cell_types": car_cell_types,
        "ctdna_samples": ctdna_samples,
        "ctdna_timepoints": timepoints,
        "ctdna_patients": ctdna_patients,
    }
    return StepOutputs(**(fields | changes))


@pytest.fixture
def table():
    return patient_table(outputs(), SETTINGS).set_index("patient_id")


def test_one_row_per_patient_in_sheet_order_with_clinical_columns(table):
    assert list(table.index) == ["P1", "P2", "P3", "P4"]
    assert table.loc["P2", "indication"] == "gastric"
    assert "tumor_variants" not in table.columns


def test_biopsy_pair_prefers_the_first_assay_with_a_complete_pair():
    _, samples = sheets()
    pairs = biopsy_pairs(samples, ["scrna", "bulk_rna"])
    assert tuple(pairs.loc["P1"]) == ("scrna", "P1_pre_sc", "P1_post_sc")
    assert tuple(pairs.loc["P2"]) == ("bulk_rna", "P2_pre_bulk", "P2_post_bulk")
    assert tuple(pairs.loc["P3"]) == ("scrna", "P3_pre_sc", "")  # incomplete: what there is
    assert "P4" not in pairs.index
    bulk_first = biopsy_pairs(samples, ["bulk_rna", "scrna"])
    assert bulk_first.loc["P1", "biopsy_assay"] == "bulk_rna"


def test_car_columns_come_from_post_biopsies(table):
    assert table.loc["P1", "car_detected"]
    assert table.loc["P1", "car_post_biopsies"] == 2
    assert table.loc["P1", "car_post_biopsies_detected"] == 2
    assert table.loc["P1", "car_reads_per_million"] == 2500.0
    assert table.loc["P1", "car_positive_cell_fraction"] == 0.04
    assert table.loc["P1", "car_macrophage_share"] == pytest.approx(0.8)
    assert not table.loc["P2", "car_detected"]
    assert np.isnan(table.loc["P2", "car_positive_cell_fraction"])
    assert "bulk RNA" in table.loc["P2", "car_reason"]


def test_missing_data_is_empty_with_a_reason_never_zero(table):
    assert pd.isna(table.loc["P3", "car_detected"])
    assert table.loc["P3", "car_reason"] == "no post-infusion biopsy"
    assert np.isnan(table.loc["P3", "cd8_fraction_delta"])
    assert table.loc["P3", "cd8_reason"] == "no post-infusion scrna biopsy"
    assert pd.isna(table.loc["P3", "cd8_up"])
    assert table.loc["P4", "cd8_reason"] == "no biopsy"
    assert pd.isna(table.loc["P4", "ctdna_molecular_response"])
    assert table.loc["P4", "ctdna_reason"] == "no plasma samples"


def test_cd8_and_inflammation_deltas(table):
    p1 = table.loc["P1"]
    assert p1["cd8_fraction_baseline"] == 0.05 and p1["cd8_fraction_post"] == 0.15
    assert p1["cd8_fraction_delta"] == pytest.approx(0.10)
    assert p1["cd8_score_delta"] == pytest.approx(0.8)
    assert p1["cd8_up"] and p1["cd8_up_basis"] == "fraction"
    for gene_set in SETS:
        assert p1[f"{gene_set}_delta"] == pytest.approx(0.4)
    assert p1["inflammation_up"]
    p2 = table.loc["P2"]  # bulk only: no fraction, the score decides
    assert np.isnan(p2["cd8_fraction_delta"]) and "no cell fractions" in p2["cd8_reason"]
    assert p2["cd8_score_delta"] == pytest.approx(-0.5)
    assert not p2["cd8_up"] and p2["cd8_up_basis"] == "score"
    assert p2["inflammation_delta_mean"] == pytest.approx(-0.2)
    assert not p2["inflammation_up"]


def test_thresholds_decide_up():
    strict = TableSettings(
        inflammation_sets=SETS, cd8_up_min_delta=0.2, inflammation_up_min_delta=0.5
    )
    table = patient_table(outputs(), strict).set_index("patient_id")
    assert not table.loc["P1", "cd8_up"]  # fraction delta 0.1 <= 0.2
    assert not table.loc["P1", "inflammation_up"]  # 0.4 <= 0.5


def test_ctdna_flags_blank_when_not_evaluable(table):
    p1 = table.loc["P1"]
    assert p1["ctdna_baseline_mean_vaf"] == 0.05 and p1["ctdna_nadir_day"] == 8
    assert p1["ctdna_molecular_response"] and p1["ctdna_any_fall"]
    assert not p1["ctdna_transient_decrease"]
    p2 = table.loc["P2"]
    assert pd.isna(p2["ctdna_molecular_response"]) and pd.isna(p2["ctdna_any_fall"])
    assert p2["ctdna_reason"] == "no post-infusion sample"


def test_qc_flags(table):
    flags = table.loc["P1", "qc_flags"].split(";")
    assert "few_cells:P1_post_sc" in flags and "half_cells_failed_qc:P1_post_sc" in flags
    assert "ctdna_no_coverage:P2_c0" in table.loc["P2", "qc_flags"]
    assert "car_call_without_baseline:P2_post_bulk" in table.loc["P2", "qc_flags"]
    assert table.loc["P4", "qc_flags"] == ""


def test_absent_stages_still_give_one_row_per_patient():
    patients, samples = sheets()
    table = patient_table(StepOutputs(patients=patients, samples=samples), SETTINGS)
    assert list(table["patient_id"]) == ["P1", "P2", "P3", "P4"]
    assert table["car_detected"].isna().all()
    assert table["car_reason"].iloc[0].startswith("no post-infusion biopsy with reads to scan")
    assert table["ctdna_reason"].iloc[0] == "not tracked"


def test_sample_table_has_every_sample_and_step_prefixes():
    table = sample_table(outputs()).set_index("sample_id")
    assert list(table.index) == list(sheets()[1].index)
    assert table.loc["P1_post_sc", "car.detected"]
    assert table.loc["P1_post_sc", "car.reads_per_million"] == 2500.0
    assert table.loc["P1_post_sc", "car_cells.macrophage_m1"] == 6
    assert table.loc["P1_post_sc", metric_column("fraction_of_cells/cd8_t")] == 0.15
    assert table.loc["P1_c8", "ctdna.change_pct"] == -80.0
    assert table.loc["P1_c8", "ctdna.detected"]
    assert pd.isna(table.loc["P3_pre_sc", "car.reads_per_million"])
    assert "patient_id" in table.columns and "car.patient_id" not in table.columns


def test_clopper_pearson_matches_known_intervals():
    low, high = clopper_pearson(5, 10)
    assert (low, high) == pytest.approx((0.187086, 0.812914), abs=1e-6)
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 0.308497), abs=1e-6)
    assert clopper_pearson(10, 10) == pytest.approx((0.691503, 1.0), abs=1e-6)
    assert all(np.isnan(clopper_pearson(0, 0)))


def test_cohort_summary_counts_evaluable_patients_by_stratum(table):
    summary = cohort_summary(table.reset_index(), SETTINGS)
    rows = summary.set_index(["stratum", "group", "endpoint"])
    car = rows.loc[("all", "all", "car_detected")]
    assert (car["n_patients"], car["n_evaluable"], car["n_positive"]) == (4, 2, 1)
    assert car["fraction"] == 0.5 and car["ci_low"] < 0.5 < car["ci_high"]
    biopsies = rows.loc[("all", "all", "car_post_biopsies_detected")]
    assert (biopsies["n_evaluable"], biopsies["n_positive"]) == (3, 2)
    her2 = rows.loc[("her2_ihc", "3+", "car_detected")]
    assert (her2["n_patients"], her2["n_evaluable"], her2["n_positive"]) == (2, 1, 1)
    assert ("dosing", "single", "cd8_up") in rows.index
    test = rows.loc[("all", "all", "cd8_score_delta")]
    assert test["kind"] == "paired_test" and test["n_pairs"] == 2
    assert test["median_delta"] == pytest.approx(0.15)
    assert 0 <= test["p_value"] <= 1 and 0 <= test["q_value"] <= 1


def test_misspelt_metric_names_stop_with_the_config_key():
    typo = TableSettings(inflammation_sets=SETS, cd8_score_metric="all/CD8_T_cell/mean_log2cpm")
    with pytest.raises(
        ValueError, match=r"tables\.cd8_score_metric.*did you mean 'all/CD8_T_cells"
    ):
        patient_table(outputs(), typo)


def test_unknown_stratum_column_is_an_error(table):
    with pytest.raises(KeyError, match="arm"):
        cohort_summary(table.reset_index(), TableSettings(inflammation_sets=SETS, strata=["arm"]))


def test_bulk_only_cohort_has_no_cd8_fraction_but_builds():
    # no single-cell sample: the CD8 fraction is not evaluable, not a misspelt config key
    base = outputs()
    bulk_only = outputs(expression_metrics={"bulk_rna": base.expression_metrics["bulk_rna"]})
    table = patient_table(bulk_only, SETTINGS).set_index("patient_id")
    assert np.isnan(table.loc["P2", "cd8_fraction_delta"])
    assert table.loc["P2", "cd8_score_delta"] == pytest.approx(-0.5)
    assert table.loc["P2", "cd8_reason"] == "bulk RNA: no cell fractions"


def test_plasma_without_tumour_variants_is_not_evaluable_with_the_reason(table):
    # P2 has a plasma sample and no ctDNA row; here its VCF is missing from the sheet
    patients, _ = sheets()
    patients.loc["P2", "tumor_variants"] = ""
    no_vcf = outputs(patients=patients, ctdna_patients=outputs().ctdna_patients.iloc[:1])
    reason = patient_table(no_vcf, SETTINGS).set_index("patient_id").loc["P2", "ctdna_reason"]
    assert reason.startswith("no tumor_variants VCF in the patients sheet")


def test_samples_left_out_by_inspection_are_flagged():
    inventory = pd.DataFrame(
        {"sample_id": ["P1_c8", "P2_c0"], "usable": [False, True], "problem": ["x.bam: bad", ""]}
    )
    table = patient_table(outputs(input_qc=inventory), SETTINGS).set_index("patient_id")
    assert "unusable_input:P1_c8" in table.loc["P1", "qc_flags"]
    assert "unusable_input" not in table.loc["P2", "qc_flags"]
