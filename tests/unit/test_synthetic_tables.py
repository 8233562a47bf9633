"""Tables of the synthetic cohort: contract, shipped copies, files the workflow must generate."""

import os
from dataclasses import replace

import pandas as pd
import pytest

from carmscope.sheets import load_sheets
from carmscope.synthetic.__main__ import main as cli
from carmscope.synthetic.design import PRESETS, design_cohort, plasma_normals
from carmscope.synthetic.tables import (
    PATIENT_TRUTH,
    TRUTH_FILES,
    data_dir_of,
    data_files,
    design_mismatches,
    generated_files,
    write_tables,
)


@pytest.fixture
def tiny_tables(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    patients = design_cohort(PRESETS["tiny"])
    write_tables(patients, "tables", "cohort")
    sheets = load_sheets("tables/patients.tsv", "tables/samples.tsv", generated_dirs=["cohort"])
    return patients, sheets


def test_tables_pass_the_input_contract(tiny_tables):
    patients, sheets = tiny_tables
    assert list(sheets.patients.index) == [p.patient_id for p in patients]
    assert len(sheets.samples) == sum(len(p.samples) for p in patients)
    assert sheets.samples.loc["CARM-001_D8_sc", "counts"] == os.path.normpath(
        "cohort/scrna/CARM-001_D8_sc.h5"
    )
    assert sheets.patients.loc["CARM-004", "tumor_variants"] == ""


def test_generated_files_are_the_designed_files_with_indexes(tiny_tables):
    patients, sheets = tiny_tables
    generated = generated_files(sheets, "cohort", patients)
    files = generated.files()
    expected = {os.path.normpath(os.path.join("cohort", f)) for f in data_files(patients)}
    truths = {f"cohort/truth/per_patient/{p.patient_id}.json.gz" for p in patients}
    assert set(files) == expected | {os.path.normpath(path) for path in truths}
    assert os.path.normpath("cohort/cfdna/CARM-001_C1D0_cf.bam.bai") in files
    assert os.path.normpath("cohort/variants/CARM-001.vcf.gz.tbi") in files
    assert len(files) == len(set(files))
    assert list(generated.patients) == [p.patient_id for p in patients]
    assert generated.truth == [os.path.normpath(f"cohort/{f}") for f in TRUTH_FILES]


def test_patients_whose_files_the_tables_use_get_a_job(tiny_tables):
    patients, sheets = tiny_tables
    late = sheets.samples["patient_id"] != "CARM-003"
    subset = replace(
        sheets,
        patients=sheets.patients.drop(index="CARM-003"),
        samples=sheets.samples[late],
    )
    generated = generated_files(subset, "cohort", patients)
    assert list(generated.patients) == ["CARM-001", "CARM-002", "CARM-004"]
    assert not any("CARM-003" in path for path in generated.files())
    # a patient whose only file in the tables is its VCF still gets the whole job
    with_vcf = replace(subset, patients=sheets.patients)
    assert "CARM-003" in generated_files(with_vcf, "cohort", patients).patients


def test_one_rule_per_set_of_files_each_for_its_patients(tiny_tables):
    patients, sheets = tiny_tables
    shapes = generated_files(sheets, "cohort", patients).patient_shapes()
    by_name = {shape.name: shape for shape in shapes}
    assert {name: shape.patients for name, shape in by_name.items()} == {
        # CARM-001 and CARM-002 write their repertoires in different formats (file names)
        "synthetic_patient_scrna2_cfdna4_pcr7_cyt7_tcr5": ("CARM-001",),
        "synthetic_patient_scrna2_cfdna4_pcr1_cyt1_tcr5": ("CARM-002",),
        "synthetic_patient_scrna2_bulk2_cfdna4_pcr7_cyt7": ("CARM-003",),
        "synthetic_patient_scrna2_cyt7_tcr1": ("CARM-004",),
    }
    outputs = by_name["synthetic_patient_scrna2_cyt7_tcr1"].outputs
    draws = ("pre", "H2", "H6", "H24", "H48", "H72", "H168")
    assert outputs == tuple(
        os.path.normpath(f"cohort/{path}")
        for path in (
            "scrna/{patient}_screening_sc.h5",
            "scrna/{patient}_screening_sc.bam",
            "scrna/{patient}_screening_sc.bam.bai",
            "scrna/{patient}_D8_sc.h5",
            "scrna/{patient}_D8_sc.bam",
            "scrna/{patient}_D8_sc.bam.bai",
            "tcr/{patient}_screening_tcrt.airr.tsv",
            *(f"blood/{{patient}}/{{patient}}_{draw}_cyt.tsv" for draw in draws),
            "truth/per_patient/{patient}.json.gz",
        )
    )
    for shape in shapes:
        for patient in shape.patients:
            mine = generated_files(sheets, "cohort", patients).patients[patient]
            expected = [os.path.normpath(f"cohort/{f}") for f in mine]
            assert [p.format(patient=patient) for p in shape.outputs[:-1]] == expected


def test_generated_files_are_spelled_as_the_tables_spell_them(tiny_tables, tmp_path):
    patients, sheets = tiny_tables
    generated = generated_files(sheets, str(tmp_path / "cohort"), patients)
    assert generated.path("reference/genome.fa") == os.path.normpath("cohort/reference/genome.fa")
    assert sheets.samples.loc["CARM-001_D8_sc", "counts"] in generated.files()


def test_plasma_normals_named_by_the_config_are_generated(tiny_tables):
    patients, sheets = tiny_tables
    normals = [os.path.join("cohort", path) for path in plasma_normals(PRESETS["tiny"])]
    generated = generated_files(sheets, "cohort", patients, [*normals[:2], "elsewhere/PON-9.bam"])
    assert generated.normals == {
        "PON-001": ("cfdna_normals/PON-001.bam", "cfdna_normals/PON-001.bam.bai"),
        "PON-002": ("cfdna_normals/PON-002.bam", "cfdna_normals/PON-002.bam.bai"),
    }
    without = generated_files(sheets, "cohort", patients)
    assert set(generated.files()) - set(without.files()) == {
        os.path.normpath(f"{path}{suffix}") for path in normals[:2] for suffix in ("", ".bai")
    }
    everything = data_files(patients, plasma_normals(PRESETS["tiny"]))
    assert "cfdna_normals/PON-003.bam.bai" in everything
    assert not generated_files(sheets, "elsewhere", patients, normals)
    assert generated_files(sheets, "elsewhere", patients, ["elsewhere/PON-001.bam"])


def test_design_mismatches_name_a_normal_the_generator_does_not_make(tiny_tables):
    patients, sheets = tiny_tables
    designed = plasma_normals(PRESETS["tiny"])
    named = ["cohort/cfdna_normals/PON-001.bam", "cohort/cfdna_normals/PON-009.bam"]
    problems = design_mismatches(sheets, "cohort", patients, named, designed)
    assert problems == [
        "panel-of-normals BAM cohort/cfdna_normals/PON-009.bam is not in the synthetic "
        "cohort's design (it has 3 plasma normal(s): n_plasma_normals)"
    ]
    assert design_mismatches(sheets, "cohort", patients, ["real/normal.bam"], designed) == []


def test_no_generated_files_for_tables_outside_the_folder(tiny_tables):
    patients, sheets = tiny_tables
    generated = generated_files(sheets, "elsewhere", patients)
    assert not generated and not generated.patients and not generated.normals


def test_design_mismatches_empty_for_matching_tables(tiny_tables):
    patients, sheets = tiny_tables
    assert design_mismatches(sheets, "cohort", patients) == []


def test_design_mismatches_name_sample_and_column(tiny_tables):
    _, sheets = tiny_tables
    changed = replace(PRESETS["tiny"], templates=(0, 7, 2, 13))
    problems = design_mismatches(sheets, "cohort", design_cohort(changed))
    assert any("CARM-003_D8_bulk is not in the synthetic cohort's design" in p for p in problems)
    assert any("patient CARM-003, column 'indication'" in p for p in problems)


@pytest.mark.parametrize(
    ("preset", "folder", "data_dir"),
    [
        ("default", "config", "resources/synthetic_cohort/default"),
        ("tiny", "config/test", "resources/synthetic_cohort/tiny"),
    ],
)
def test_shipped_tables_are_what_the_generator_writes(repo, tmp_path, preset, folder, data_dir):
    out = tmp_path / folder
    out.mkdir(parents=True)
    cli(["tables", "--preset", preset, "--data-dir", str(tmp_path / data_dir), "--out", str(out)])
    for name in ("patients.tsv", "samples.tsv"):
        shipped = pd.read_csv(repo / folder / name, sep="\t", dtype=str, keep_default_na=False)
        fresh = pd.read_csv(out / name, sep="\t", dtype=str, keep_default_na=False)
        pd.testing.assert_frame_equal(shipped, fresh)


def test_cli_rejects_unknown_parameter(tmp_path):
    with pytest.raises(SystemExit, match="n_patient"):
        cli(
            [
                "tables",
                "--preset",
                "tiny",
                "--set",
                "n_patient=3",
                "--data-dir",
                "d",
                "--out",
                str(tmp_path),
            ]
        )


def test_data_dir_of_an_output():
    assert data_dir_of("cohort/truth/patients.tsv", "truth/patients.tsv") == "cohort"
    assert data_dir_of("/a/b/truth/per_patient/X.json.gz", PATIENT_TRUTH) == "/a/b"
    assert data_dir_of("reference/genome.fa", "reference/genome.fa") == "."


def test_cli_generate_writes_the_tiny_cohort(tiny_cohort, tmp_path):
    """`carmscope-synthetic generate` writes the same files as the library (the session's
    tiny cohort): tables, truth and a data file of each kind, byte for byte."""
    out = tmp_path / "tiny"
    cli(["generate", "--preset", "tiny", "--out", str(out)])
    written = sorted(path.relative_to(out) for path in out.rglob("*") if path.is_file())
    assert written == sorted(
        path.relative_to(tiny_cohort) for path in tiny_cohort.rglob("*") if path.is_file()
    )
    for relative in ("samples.tsv", "truth/patients.tsv", "truth/samples.tsv"):
        assert (out / relative).read_bytes() == (tiny_cohort / relative).read_bytes(), relative
    for relative in written:
        if relative.suffix in {".h5", ".bam", ".tsv", ".vcf"}:
            assert (out / relative).read_bytes() == (tiny_cohort / relative).read_bytes()
