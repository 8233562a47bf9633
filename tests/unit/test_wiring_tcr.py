"""Paths, inputs and settings of the T cell receptor rules (workflow/lib/wiring/tcr.py)."""

import pandas as pd
from wiring import tcr as rules


def sheet(rows):
    columns = ["sample_id", "patient_id", "timepoint", "day", "hours", "assay", "tissue"]
    columns += ["counts", "vdj"]
    return pd.DataFrame(rows, columns=columns).set_index("sample_id", drop=False)


SAMPLES = sheet(
    [
        ["P1_pre_t", "P1", "pre", -7, "", "tcr", "tumour", "p1_pre.tsv", ""],
        ["P1_d8_t", "P1", "D8", 8, "", "tcr", "tumour", "p1_d8.tsv", ""],
        ["P1_d8_b", "P1", "D8", 8, "", "tcr", "blood", "p1_d8_b.tsv", ""],
        ["P2_pre_sc", "P2", "pre", -7, "", "scrna", "tumour", "p2_pre.h5", "p2_pre.csv"],
        ["P2_d8_sc", "P2", "D8", 8, "", "scrna", "tumour", "p2_d8.h5", "p2_d8.csv"],
        ["P3_d8_sc", "P3", "D8", 8, "", "scrna", "tumour", "p3_d8.h5", ""],
    ]
)


def test_sample_files_and_change_tables():
    assert rules.sample_file("{sample}", "clones") == "results/tcr/{sample}/clones.tsv"
    assert rules.sample_file("S1", "cells") == "results/tcr/S1/cells.tsv.gz"
    assert rules.changes_file("P1", "blood") == "results/tcr/changes/P1_blood.tsv"
    assert rules.CHANGES.format(patient="P1", tissue="tumour") == rules.changes_file("P1", "tumour")


def test_repertoires_comparisons_and_outputs():
    assert rules.repertoire_samples(SAMPLES) == [
        "P1_pre_t",
        "P1_d8_t",
        "P1_d8_b",
        "P2_pre_sc",
        "P2_d8_sc",
    ]
    assert rules.vdj_samples(SAMPLES) == ["P2_pre_sc", "P2_d8_sc"]
    assert rules.compared_patients(SAMPLES) == ["P1", "P2"]
    changes = [
        "results/tcr/changes/P1_tumour.tsv",
        "results/tcr/changes/P1_blood.tsv",
        "results/tcr/changes/P2_tumour.tsv",
    ]
    assert rules.change_files(SAMPLES) == changes
    assert rules.outputs(SAMPLES) == [
        "results/tcr/samples.tsv",
        "results/tcr/patients.tsv",
        "results/tcr/cohort.png",
        "results/tcr/patients",
        *changes,
    ]
    # a cohort without repertoires asks for nothing of the stage
    assert rules.outputs(SAMPLES.loc[["P3_d8_sc"]]) == []


def test_clone_inputs_of_bulk_and_vdj_samples():
    def expression_file(assay, sample, name):
        return f"results/expression/{assay}/{sample}/{name}"

    # each with its inspection verdict: a sample found unusable is left out
    assert rules.clone_inputs(SAMPLES, "P1_pre_t", expression_file) == {
        "repertoire": "p1_pre.tsv",
        "verdict": "results/qc/inputs/P1_pre_t.tsv",
    }
    assert rules.clone_inputs(SAMPLES, "P2_d8_sc", expression_file) == {
        "verdict": "results/qc/inputs/P2_d8_sc.tsv",
        "repertoire": "p2_d8.csv",
        "cells": "results/expression/scrna/P2_d8_sc/cells.tsv.gz",
        "h5ad": "results/expression/scrna/P2_d8_sc/cells.h5ad",
    }


def test_params_records_days_settings_and_logs():
    records = rules.sample_records(SAMPLES, ["P1_d8_b"])
    assert records == [
        {
            "sample_id": "P1_d8_b",
            "patient_id": "P1",
            "timepoint": "D8",
            "day": 8,
            "hours": "",
            "assay": "tcr",
            "tissue": "blood",
            "vdj": "",
        }
    ]
    assert rules.sample_days(SAMPLES)[0] == {"sample_id": "P1_pre_t", "day": -7}
    section = {"min_count": 5, "fdr": 0.05, "min_fold": 2.0, "detect_alpha": 0.05, "other": 1}
    assert rules.settings(section) == {
        "min_count": 5,
        "fdr": 0.05,
        "min_fold": 2.0,
        "detect_alpha": 0.05,
    }
    assert rules.LOGS["tcr_changes"].format(patient="P1", tissue="blood") == (
        "logs/tcr_changes/P1_blood.log"
    )
