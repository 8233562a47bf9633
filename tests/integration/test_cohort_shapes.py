"""Every cohort shape runs: the tiny synthetic cohort cut into the shapes real trials have.

One mixed cohort holds a patient of each unusual shape (counts-only biopsies with plasma but no
tumour VCF, plasma only, bulk RNA only, one reads-only biopsy and no post-infusion sample) and
runs the whole workflow; its per-patient table marks each figure that cannot be evaluated with
its reason. Cohorts made of one shape alone (counts only, reads only, bulk only, plasma only)
run to the result tables, as each once crashed a step that assumed another shape.
"""

import csv
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.integration.test_workflow import snakemake, write_config

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, tool):
    """The tiny synthetic cohort's data and tables, written once by the generator."""
    folder = tmp_path_factory.mktemp("shapes") / "cohort"
    subprocess.run(
        [tool("carmscope-synthetic"), "generate", "--preset", "tiny", "--out", str(folder)],
        check=True,
        capture_output=True,
    )
    return folder


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)


def shaped_run(repo, tool, cohort, workdir, patients, samples, targets=()):
    """Write the cut tables into ``cohort`` (paths stay relative to it), a config into
    ``workdir``, and run the workflow there. ``patients``/``samples`` map rows to a row or
    None (left out)."""
    workdir.mkdir()
    tables = {}
    for name, edit in (("patients", patients), ("samples", samples)):
        rows = [edited for row in read_rows(cohort / f"{name}.tsv") if (edited := edit(row))]
        tables[name] = cohort / f"{workdir.name}_{name}.tsv"
        write_rows(tables[name], rows)
    write_config(
        workdir,
        repo,
        patients=str(tables["patients"]),
        samples=str(tables["samples"]),
        synthetic={"outdir": str(workdir / "no_synthetic"), "preset": "tiny"},
        ctdna={"reference": str(cohort / "reference/genome.fa")},
    )
    result = snakemake(repo, tool, workdir, *targets)
    assert result.returncode == 0, result.stderr[-5000:]
    return pd.read_csv(
        workdir / "results/tables/patients.tsv", sep="\t", keep_default_na=False
    ).set_index("patient_id")


def mixed_samples(row):
    """CARM-001 counts-only scRNA (+ plasma), CARM-002 plasma only, CARM-003 bulk RNA only
    (+ plasma), CARM-004 one reads-only scRNA biopsy before infusion and nothing after."""
    patient, assay = row["patient_id"], row["assay"]
    if assay not in ("scrna", "bulk_rna", "cfdna"):
        return None  # the shapes of the biopsy and plasma stages (tcr and blood: their tests)
    if patient == "CARM-001" and assay == "scrna":
        return row | {"reads": ""}
    if patient in ("CARM-002", "CARM-003") and assay == "scrna":
        return None
    if patient == "CARM-004":
        return row | {"counts": ""} if int(row["day"]) <= 0 else None
    return row


def mixed_patients(row):
    return row | {"tumor_variants": ""} if row["patient_id"] == "CARM-001" else row


@pytest.fixture(scope="module")
def mixed(repo, tool, cohort, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mixed") / "mixed"
    return shaped_run(repo, tool, cohort, workdir, mixed_patients, mixed_samples)


def test_mixed_cohort_marks_each_unevaluable_figure_with_its_reason(mixed):
    assert list(mixed.index) == ["CARM-001", "CARM-002", "CARM-003", "CARM-004"]
    # counts only: expression evaluable, CAR detection needs reads; no VCF: ctDNA not tracked
    assert mixed.loc["CARM-001", "biopsy_assay"] == "scrna"
    assert mixed.loc["CARM-001", "cd8_fraction_delta"] != ""
    assert mixed.loc["CARM-001", "ctdna_reason"].startswith("no tumor_variants VCF")
    assert mixed.loc["CARM-001", "car_detected"] == ""
    # plasma only: no biopsy figure, ctDNA evaluated
    assert mixed.loc["CARM-002", "biopsy_assay"] == ""
    assert mixed.loc["CARM-002", "cd8_reason"] != ""
    assert mixed.loc["CARM-002", "ctdna_baseline_mean_vaf"] != ""
    # bulk only: no cell fractions, a CD8 score
    assert mixed.loc["CARM-003", "biopsy_assay"] == "bulk_rna"
    assert mixed.loc["CARM-003", "cd8_reason"] == "bulk RNA: no cell fractions"
    assert mixed.loc["CARM-003", "cd8_score_delta"] != ""
    # one pre-infusion biopsy with reads only: nothing to compare
    assert mixed.loc["CARM-004", "cd8_fraction_delta"] == ""
    assert mixed.loc["CARM-004", "cd8_reason"] != ""
    assert mixed.loc["CARM-004", "ctdna_reason"].startswith("no plasma samples")


@pytest.mark.parametrize(
    ("shape", "samples"),
    [
        ("counts_only", lambda r: r | {"reads": ""} if r["assay"] == "scrna" else None),
        ("reads_only", lambda r: r | {"counts": ""} if r["assay"] == "scrna" else None),
        ("bulk_only", lambda r: r if r["assay"] == "bulk_rna" else None),
        ("plasma_only", lambda r: r if r["assay"] == "cfdna" else None),
    ],
)
def test_single_shape_cohorts_reach_the_result_tables(
    repo, tool, cohort, tmp_path_factory, shape, samples
):
    def one_patient(row):
        wanted = "CARM-003" if shape == "bulk_only" else "CARM-002"
        return samples(row) if row["patient_id"] == wanted else None

    def its_patient(row):
        return row if row["patient_id"] in ("CARM-002", "CARM-003") else None

    workdir = tmp_path_factory.mktemp(shape) / shape
    table = shaped_run(
        repo, tool, cohort, workdir, its_patient, one_patient, ["results/tables/patients.tsv"]
    )
    patient = "CARM-003" if shape == "bulk_only" else "CARM-002"
    assert table.loc[patient, "qc_flags"] is not None
    if shape == "counts_only":
        assert table.loc[patient, "cd8_fraction_delta"] != ""
    if shape == "reads_only":
        assert table.loc[patient, "car_detected"] in ("True", "False")
        assert table.loc[patient, "cd8_reason"] != ""
    if shape == "bulk_only":
        assert table.loc[patient, "cd8_score_delta"] != ""
    if shape == "plasma_only":
        assert table.loc[patient, "ctdna_baseline_mean_vaf"] != ""
