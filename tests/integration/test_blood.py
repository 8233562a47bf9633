"""The blood stage through the workflow on the tiny cohort's blood draws.

The tables hold only blood samples (written by the synthetic cohort's blood module, no BAMs), so
the run takes seconds: qPCR per sample, cytokines as one cohort table with a sample_id column,
a patient with a single draw, one with cytokines only and one with no sample at all. A bad
unit stops the run naming file, line and column.
"""

import math
from pathlib import Path

import pandas as pd
import pytest

from carmscope.synthetic import blood
from carmscope.synthetic.design import PRESETS, design_cohort
from carmscope.synthetic.tables import patients_table, samples_table
from tests.integration.test_workflow import snakemake, write_config

pytestmark = pytest.mark.integration

TARGETS = [
    "results/blood/kinetics.tsv",
    "results/blood/cytokines.tsv",
    "results/blood/crs_associations.tsv",
    "results/blood/summary.tsv",
    "results/blood/car_kinetics.png",
    "results/blood/cytokine_heatmap.png",
]


def write_blood_cohort(workdir: Path) -> None:
    """Tables and files of the tiny design's blood samples, plus a patient with none."""
    params = PRESETS["tiny"]
    patients = design_cohort(params)
    data = workdir / "data"
    cytokine_rows = []
    for patient in patients:
        values = blood.patient_values(patient, params.seed)
        for sample in patient.samples:
            if sample.assay == "car_pcr":
                path = data / sample.counts
                path.parent.mkdir(parents=True, exist_ok=True)
                blood.write_blood_sample(path, values, sample.sample_id)
        cytokines = values[values["assay"] == "cytokines"]
        cytokine_rows.append(cytokines.rename(columns={"text": "value_text"}))
    cohort = pd.concat(cytokine_rows)
    pd.DataFrame(
        {
            "sample_id": cohort["sample_id"],
            "analyte": cohort["analyte"],
            "value": cohort["value_text"],
            "unit": cohort["unit"],
            "lloq": cohort["lloq"],
        }
    ).to_csv(data / "cytokines.tsv", sep="\t", index=False)
    tables = workdir / "tables"
    tables.mkdir()
    sheet = patients_table(patients, tables, data).drop(columns="tumor_variants")
    sheet["tumor_variants"] = ""
    extra = sheet.iloc[[0]].assign(patient_id="CARM-900", crs_grade="")
    pd.concat([sheet, extra]).to_csv(tables / "patients.tsv", sep="\t", index=False)
    samples = samples_table(patients, tables, data)
    samples = samples[samples["assay"].isin(blood.ASSAYS)].copy()
    is_cytokine = samples["assay"] == "cytokines"
    samples.loc[is_cytokine, "counts"] = "../data/cytokines.tsv"
    samples.to_csv(tables / "samples.tsv", sep="\t", index=False)


@pytest.fixture(scope="module")
def blood_run(tmp_path_factory, repo, tool):
    workdir = tmp_path_factory.mktemp("blood_workflow")
    write_blood_cohort(workdir)
    write_config(workdir, repo)
    result = snakemake(repo, tool, workdir, *TARGETS, timeout=300)
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def read(workdir, name):
    return pd.read_csv(
        workdir / "results/blood" / name,
        sep="\t",
        keep_default_na=False,
        na_values=[""],
        dtype={"reason": str, "measure": str, "analyte": str},
    )


def test_kinetics_have_the_issue_columns_and_reasons(blood_run):
    kinetics = read(blood_run, "kinetics.tsv")
    assert list(kinetics.columns) == [
        "patient_id", "measure", "unit", "cmax", "tmax_h", "clast", "tlast_h", "auc_0_tlast",
        "half_life_h", "half_life_points", "half_life_adj_r2", "last_sample_h", "reason",
    ]  # fmt: skip
    rows = kinetics.set_index("patient_id")
    assert rows.loc["CARM-001", "measure"] == "qpcr" and rows.loc["CARM-001", "cmax"] > 0
    assert rows.loc["CARM-002", "reason"].startswith("a single blood sample")
    assert rows.loc["CARM-004", "reason"] == "no blood samples"  # cytokines only
    assert rows.loc["CARM-900", "reason"] == "no blood samples"
    truth = {}
    params = PRESETS["tiny"]
    for patient in design_cohort(params):
        truth[patient.patient_id] = blood.kinetics_truth(blood.patient_values(patient, params.seed))
    for patient in ("CARM-001", "CARM-003"):
        for figure in ("cmax", "tmax_h", "tlast_h", "auc_0_tlast"):
            assert rows.loc[patient, figure] == pytest.approx(truth[patient][figure], rel=1e-6)


def test_cytokines_from_one_cohort_table(blood_run):
    cytokines = read(blood_run, "cytokines.tsv")
    assert list(cytokines.columns) == [
        "patient_id", "analyte", "unit", "baseline", "peak", "tmax_h", "peak_fold", "reason",
    ]  # fmt: skip
    il6 = cytokines[cytokines["analyte"] == "IL6"].set_index("patient_id")
    assert set(il6.index) == {"CARM-001", "CARM-002", "CARM-003", "CARM-004"}
    assert il6.loc["CARM-001", "peak_fold"] > 10  # CRS
    assert math.isnan(il6.loc["CARM-002", "peak_fold"])  # a single draw: no baseline
    none = cytokines[cytokines["patient_id"] == "CARM-900"]
    assert list(none["reason"]) == ["no cytokine samples"]
    crs = read(blood_run, "crs_associations.tsv")
    assert "car_blood_cmax" in set(crs["endpoint"])
    assert (blood_run / "results/blood/car_kinetics.png").stat().st_size > 0


def test_bad_unit_leaves_the_draw_out_naming_file_line_and_column(tmp_path, repo, tool):
    write_blood_cohort(tmp_path)
    table = tmp_path / "data/cytokines.tsv"
    lines = table.read_text().splitlines()
    lines[3] = lines[3].replace("pg/mL", "pg/furlong")
    table.write_text("\n".join(lines) + "\n")
    samples = pd.read_csv(tmp_path / "tables/samples.tsv", sep="\t", dtype=str)
    keep = (samples["patient_id"] == "CARM-001") & (samples["assay"] == "cytokines")
    samples[keep].to_csv(tmp_path / "tables/samples.tsv", sep="\t", index=False)  # fewer jobs
    write_config(tmp_path, repo)
    # an unusable input leaves its sample out; the rest of the blood stage runs (README)
    result = snakemake(repo, tool, tmp_path, "results/blood/kinetics.tsv", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "logs/blood_kinetics.log").read_text()
    assert "data/cytokines.tsv" in log  # input inspection's message, file, line and column
    assert "line 4, column 'unit': unknown unit 'pg/furlong'" in log
