"""Paths and jobs of the ctDNA rules in both background modes (workflow/lib/wiring/ctdna.py)."""

import pandas as pd
from wiring import ctdna as rules


def test_normal_names_are_numbered_and_sanitised():
    names = rules.normal_names(["a/PON 1.bam", "b/PON-2.x.bam", "c/PON 1.bam"])
    assert names == {
        "1_PON_1": "a/PON 1.bam",
        "2_PON-2.x": "b/PON-2.x.bam",
        "3_PON_1": "c/PON 1.bam",
    }


def test_cohort_mode_paths_are_todays():
    assert rules.panel_of("cohort", "P1") == "results/ctdna/panel.tsv"
    assert rules.normal_counts("cohort", ["1_a", "2_b"], ["P1", "P2"]) == [
        "results/ctdna/normals/1_a.tsv",
        "results/ctdna/normals/2_b.tsv",
    ]
    assert rules.normal_panel_patients("cohort", ["1_a", "2_b"], ["P1"]) == ["", ""]
    assert rules.tumour_variant_files("cohort", ["P1", "P2"]) == [
        "results/ctdna/tumour_variants.tsv"
    ]
    # one job counts every normal at the cohort panel
    assert rules.normal_counts_outputs("cohort", ["1_a", "2_b"]) == rules.normal_counts(
        "cohort", ["1_a", "2_b"], ["P1", "P2"]
    )
    assert rules.normal_counts_log("cohort") == "logs/ctdna_count_normals/cohort.log"


def test_normals_mode_paths_are_per_patient():
    assert rules.panel_of("normals", "P1") == "results/ctdna/panels/P1.tsv"
    files = rules.normal_counts("normals", ["1_a", "2_b"], ["P1", "P2"])
    assert files == [
        "results/ctdna/normals/P1/1_a.tsv",
        "results/ctdna/normals/P1/2_b.tsv",
        "results/ctdna/normals/P2/1_a.tsv",
        "results/ctdna/normals/P2/2_b.tsv",
    ]
    assert rules.normal_panel_patients("normals", ["1_a", "2_b"], ["P1", "P2"]) == [
        "P1",
        "P1",
        "P2",
        "P2",
    ]
    # adding a patient appends its files: the existing ones keep their names
    assert rules.normal_counts("normals", ["1_a", "2_b"], ["P1"]) == files[:2]
    assert rules.tumour_variant_files("normals", ["P1", "P2"]) == [
        "results/ctdna/panels/P1.tsv",
        "results/ctdna/panels/P2.tsv",
    ]
    # one job per patient counts every normal at the patient's panel
    outputs = rules.normal_counts_outputs("normals", ["1_a", "2_b"])
    assert outputs == [
        "results/ctdna/normals/{patient}/1_a.tsv",
        "results/ctdna/normals/{patient}/2_b.tsv",
    ]
    assert [output.format(patient="P2") for output in outputs] == files[2:]
    assert rules.normal_counts_log("normals") == "logs/ctdna_count_normals/{patient}.log"
    assert rules.normal_sample("1_a")["sample_id"] == "panel_of_normals/1_a"


def test_panel_patients_in_sample_table_order():
    samples = pd.DataFrame({"patient_id": ["P2", "P1", "P2", "P3"]}, index=["s1", "s2", "s3", "s4"])
    assert rules.panel_patients(samples, ["s1", "s2", "s3"]) == ["P2", "P1"]
    assert rules.panel_patients(samples, []) == []


def test_cram_plasma_and_normals_need_the_reference():
    samples = pd.DataFrame(
        {"reads": ["a.bam", "b.CRAM", ""], "patient_id": ["P1", "P1", "P2"]},
        index=["s1", "s2", "s3"],
    )
    assert rules.crams(samples, ["s1", "s3"], ["n1.bam"]) == []
    crams = rules.crams(samples, ["s1", "s2", "s3"], ["n1.bam", "n2.cram"])
    assert crams == ["b.CRAM", "n2.cram"]
    message = rules.missing_reference(crams)
    assert message.startswith("config ctdna.reference is not set")
    assert "2 plasma or panel-of-normals file(s) are CRAM (b.CRAM, n2.cram)" in message
    many = rules.missing_reference([f"{i}.cram" for i in range(5)])
    assert "(0.cram, 1.cram, 2.cram and 2 more)" in many
    # only a CRAM's count job depends on the FASTA
    section = {"reference": "genome.fa"}
    assert rules.reference_input(section, ["b.CRAM"]) == {"reference": "genome.fa"}
    assert rules.reference_input(section, ["a.bam", "n2.cram"]) == {"reference": "genome.fa"}
    assert rules.reference_input(section, ["a.bam", ""]) == {}
    assert rules.reference_input({"reference": None}, ["b.cram"]) == {}


def test_stage_outputs_are_the_call_tables_and_plots():
    assert rules.outputs() == [
        *(f"results/ctdna/{name}.tsv" for name in rules.CALL_TABLES),
        "results/ctdna/spider.svg",
        "results/ctdna/spider.png",
        "results/ctdna/waterfall.svg",
        "results/ctdna/waterfall.png",
    ]
    assert rules.SAMPLE_COUNTS.format(sample="S1") == "results/ctdna/counts/S1.tsv"
