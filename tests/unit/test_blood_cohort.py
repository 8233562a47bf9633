"""Cytokine figures, the kinetics table, patient columns, summaries and CRS associations."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from carmscope.blood.cohort import (
    BloodSettings,
    crs_associations,
    kinetic_summary,
    kinetics_table,
    patient_columns,
)
from carmscope.blood.cytokines import cytokine_figures


def cytokine_rows(patient, analyte, unit, points, lloq=1.0):
    return [
        {
            "patient_id": patient,
            "sample_id": f"{patient}_{h}",
            "analyte": analyte,
            "hours": h,
            "value": math.nan if v is None else v,
            "unit": unit,
            "lloq": lloq,
            "blq": v is None,
        }
        for h, v in points
    ]


def test_cytokine_baseline_peak_fold_and_blq_substitution():
    rows = cytokine_rows("P1", "IL6", "pg/mL", [(-24, None), (6, 40.0), (24, 80.0), (48, 10)])
    rows += cytokine_rows("P1", "IFNG", "NPX", [(0, 2.0), (6, 5.5), (24, 5.5)])
    rows += cytokine_rows("P2", "IL6", "pg/mL", [(6, 3.0)])
    table = cytokine_figures(pd.DataFrame(rows), ["P1", "P2", "P3"]).set_index(
        ["patient_id", "analyte"]
    )
    il6 = table.loc[("P1", "IL6")]
    assert il6["baseline"] == 0.5  # below LLOQ 1.0 -> LLOQ/2
    assert (il6["peak"], il6["tmax_h"], il6["peak_fold"]) == (80, 24, 160)
    npx = table.loc[("P1", "IFNG")]
    assert npx["peak_fold"] == pytest.approx(3.5) and npx["tmax_h"] == 6  # a difference
    assert table.loc[("P2", "IL6"), "reason"] == "no pre-infusion value"
    assert table.loc[("P3", ""), "reason"] == "no cytokine samples"
    quarter = cytokine_figures(pd.DataFrame(rows), ["P1"], blq_fraction=0.25)
    assert quarter.iloc[0]["baseline"] == 0.25


def car_series():
    rows = []
    for patient, measure, points in (
        ("P1", "qpcr", [(-1, None), (2, 100), (6, 400), (24, 200), (48, 100), (72, 50)]),
        ("P1", "bulk_rna", [(-1, 0.1), (24, 30)]),
        ("P2", "bulk_rna", [(-1, None), (24, 20), (72, None)]),
        ("P3", "qpcr", [(24, 5)]),
    ):
        for h, v in points:
            rows.append(
                {
                    "patient_id": patient,
                    "sample_id": f"{patient}{measure}{h}",
                    "measure": measure,
                    "analyte": "CAR",
                    "hours": h,
                    "value": 0.0 if v is None else v,
                    "unit": "copies/ug gDNA" if measure == "qpcr" else "CAR reads per million",
                    "lloq": 10.0,
                    "blq": v is None,
                }
            )
    return pd.DataFrame(rows)


def test_kinetics_table_rows_and_reasons():
    table = kinetics_table(car_series(), ["P1", "P2", "P3", "P4"], BloodSettings())
    keyed = table.set_index(["patient_id", "measure"])
    assert list(zip(table["patient_id"], table["measure"], strict=True)) == [
        ("P1", "qpcr"),
        ("P1", "bulk_rna"),
        ("P2", "bulk_rna"),
        ("P3", "qpcr"),
        ("P4", ""),
    ]
    p1 = keyed.loc[("P1", "qpcr")]
    assert (p1["cmax"], p1["tmax_h"], p1["tlast_h"]) == (400, 6, 72)
    assert p1["half_life_h"] == pytest.approx(24)
    assert p1["half_life_points"] == 3 and p1["reason"] == ""
    assert keyed.loc[("P3", "qpcr"), "reason"].startswith("a single blood sample")
    assert keyed.loc[("P4", ""), "reason"] == "no blood samples"


def test_patient_columns_prefer_qpcr_and_carry_cytokines():
    kinetics = kinetics_table(car_series(), ["P1", "P2", "P3", "P4"])
    cytokines = cytokine_figures(
        pd.DataFrame(cytokine_rows("P2", "IL6", "pg/mL", [(0, 2.0), (6, 8.0)])), ["P1", "P2"]
    )
    table = patient_columns(kinetics, cytokines, ["P1", "P2", "P3", "P4"])
    assert list(table["car_blood_measure"]) == ["qpcr", "bulk_rna", "qpcr", ""]
    assert table.loc["P4", "car_blood_reason"] == "no blood samples"
    assert table.loc["P3", "car_blood_reason"].startswith("a single blood sample")
    assert table.loc["P1", "car_blood_cmax"] == 400
    assert table.loc["P2", "car_blood_unit"] == "CAR reads per million"
    assert table.loc["P2", "cytokine_IL6_peak_fold"] == 4
    assert table.loc["P2", "cytokine_IL6_tmax_h"] == 6
    assert np.isnan(table.loc["P1", "cytokine_IL6_peak_fold"])


def test_kinetic_summary_by_stratum():
    kinetics = kinetics_table(car_series(), ["P1", "P2", "P3"])
    patients = pd.DataFrame(
        {"dosing": ["single", "fractionated", "single"], "her2_ihc": ["3+", "2+", "3+"]},
        index=pd.Index(["P1", "P2", "P3"], name="patient_id"),
    )
    summary = kinetic_summary(kinetics, patients, ["dosing", "her2_ihc"])
    cmax = summary[(summary["figure"] == "cmax") & (summary["measure"] == "qpcr")]
    overall = cmax[cmax["stratum"] == "all"].iloc[0]
    assert (overall["n"], overall["median"], overall["min"], overall["max"]) == (1, 400, 400, 400)
    assert set(summary["stratum"]) == {"all", "dosing", "her2_ihc"}


def test_crs_association_is_the_exact_rank_sum():
    folds = [50.0, 80.0, 20.0, 2.0, 1.5, 3.0, 90.0]
    grades = ["2", "1", "1", "0", "0", "", "2"]
    patients = [f"P{i}" for i in range(7)]
    table = pd.DataFrame(
        {"cytokine_IL6_peak_fold": folds, "car_blood_cmax": [1.0] * 7}, index=patients
    )
    result = crs_associations(table, pd.Series(grades, index=patients)).set_index("endpoint")
    il6 = result.loc["cytokine_IL6_peak_fold"]
    expected = stats.mannwhitneyu([50, 80, 20, 90], [2, 1.5], method="exact")
    assert (il6["n_crs"], il6["n_no_crs"]) == (4, 2)  # the unassessed patient is left out
    assert il6["p_value"] == pytest.approx(expected.pvalue)
    assert il6["u_statistic"] == expected.statistic == 8
    none = crs_associations(table, pd.Series(["1"] * 7, index=patients))
    assert none["reason"].iloc[0] == "needs patients with and without CRS"


def test_cohort_summary_rows_for_blood():
    """crs_any as a proportion of graded patients; kinetic medians within the common unit."""
    from carmscope.tables.summary import blood_rows

    block = pd.DataFrame(
        {
            "crs_grade": ["1", "0", "", "2"],
            "car_blood_unit": ["copies/ug gDNA", "copies/ug gDNA", "", "CAR reads per million"],
            "car_blood_cmax": [10.0, 20.0, None, 5.0],
            "car_blood_tmax_h": [2.0, 6.0, None, 6.0],
            "car_blood_auc": [1.0, 2.0, None, 3.0],
            "car_blood_tlast_h": [48.0, 72.0, None, 24.0],
            "car_blood_half_life_h": [None, 10.0, None, None],
        }
    )
    rows = {row["endpoint"]: row for row in blood_rows(block)}
    crs = rows["crs_any"]
    assert (crs["n_evaluable"], crs["n_positive"]) == (3, 2)
    cmax = rows["car_blood_cmax"]
    assert (cmax["n_evaluable"], cmax["median"], cmax["min"], cmax["max"]) == (2, 15, 10, 20)
    assert rows["car_blood_half_life_h"]["n_evaluable"] == 1
    assert blood_rows(block.drop(columns=["crs_grade", "car_blood_unit"])) == []
