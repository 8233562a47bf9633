"""Which inspection file holds each sample's verdict (workflow/lib/wiring/inspection.py):
one per sample, one per patient for the blood draws."""

import pandas as pd
from wiring import inspection


def sheet():
    rows = [
        ("P1_pre_sc", "P1", "scrna"),
        ("P1_pre_pcr", "P1", "car_pcr"),
        ("P2_pre_cyt", "P2", "cytokines"),
        ("P1_H2_cyt", "P1", "cytokines"),
        ("P2_d8_t", "P2", "tcr"),
        ("P2_H2_pcr", "P2", "car_pcr"),
        ("P3_pre_pl", "P3", "cfdna"),
    ]
    frame = pd.DataFrame(rows, columns=["sample_id", "patient_id", "assay"])
    frame["counts"] = [f"t/{s}.tsv" for s in frame["sample_id"]]
    return frame.set_index("sample_id")


def test_blood_draws_are_inspected_per_patient_every_other_sample_alone():
    samples = sheet()
    assert inspection.sample_ids(samples) == ["P1_pre_sc", "P2_d8_t", "P3_pre_pl"]
    assert inspection.draw_patients(samples) == ["P1", "P2"]  # order of the first draw
    assert list(inspection.patient_draws(samples, "P2").index) == ["P2_pre_cyt", "P2_H2_pcr"]
    assert inspection.patient_draws(samples, "P3").empty
    assert inspection.verdict_file(samples, "P1_H2_cyt") == "results/qc/inputs/blood/P1.tsv"
    assert inspection.verdict_file(samples, "P2_d8_t") == "results/qc/inputs/P2_d8_t.tsv"


def test_the_inventory_parts_are_each_file_once_in_sheet_order():
    samples = sheet()
    assert inspection.verdict_files(samples) == [
        "results/qc/inputs/P1_pre_sc.tsv",
        "results/qc/inputs/blood/P1.tsv",
        "results/qc/inputs/blood/P2.tsv",
        "results/qc/inputs/P2_d8_t.tsv",
        "results/qc/inputs/P3_pre_pl.tsv",
    ]
    assert inspection.verdict_files(samples, ["P2_H2_pcr", "P1_pre_pcr", "P2_pre_cyt"]) == [
        "results/qc/inputs/blood/P2.tsv",
        "results/qc/inputs/blood/P1.tsv",
    ]
    # a cohort without blood draws: no per-patient file
    no_blood = samples[~inspection.is_blood_draw(samples)]
    assert inspection.draw_patients(no_blood) == []
    assert all("/blood/" not in f for f in inspection.verdict_files(no_blood))
