"""The tcr stage through the workflow on the tiny cohort (synthetic rules write the data):
immunoSEQ v2 tumour + AIRR blood (CARM-001, expands), immunoSEQ v3 (CARM-002, CAR-negative, no
expansion), 10x vdj of the scRNA biopsies (CARM-003), a baseline-only tumour repertoire
(CARM-004: not evaluable, never an error)."""

import pandas as pd
import pytest

from carmscope.tcr.compare import CHANGE_COLUMNS
from tests.integration.test_workflow import snakemake, write_config, write_tiny_tables

pytestmark = pytest.mark.integration

TARGETS = [
    "results/tcr/samples.tsv",
    "results/tcr/patients.tsv",
    "results/tcr/cohort.png",
    "results/tcr/patients",
]


@pytest.fixture(scope="module")
def tcr_run(tmp_path_factory, repo, tool):
    workdir = tmp_path_factory.mktemp("tcr_workflow")
    write_tiny_tables(workdir, tool)
    write_config(workdir, repo)
    result = snakemake(repo, tool, workdir, *TARGETS, "cohort/truth/tcr_patients.tsv")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def _read(path):
    return pd.read_csv(path, sep="\t", dtype={"patient_id": str, "sample_id": str})


def test_patient_flags_equal_truth(tcr_run):
    got = _read(tcr_run / "results/tcr/patients.tsv").set_index("patient_id")
    truth = _read(tcr_run / "cohort/truth/tcr_patients.tsv").set_index("patient_id")
    for patient, row in truth.iterrows():
        if pd.isna(row["tcr_expansion"]):
            assert pd.isna(got.loc[patient, "tcr_expansion"])
            assert "no post-infusion tumour repertoire" in got.loc[patient, "tcr_tumour_reason"]
        else:
            assert bool(got.loc[patient, "tcr_expansion"]) == bool(row["tcr_expansion"])
    assert got.loc["CARM-003", "tcr_expanded_cd8_fraction"] > 0.5
    assert not pd.isna(got.loc["CARM-003", "tcr_expanded_cd8_exhaustion"])


def test_outputs_have_the_issue_columns(tcr_run):
    samples = _read(tcr_run / "results/tcr/samples.tsv")
    for column in ("sample_id", "patient_id", "tissue", "templates", "clones", "shannon",
                   "clonality", "simpson_clonality", "top10_share", "rarefied_richness",
                   "nonproductive"):  # fmt: skip
        assert column in samples.columns
    assert set(samples["format"]) == {"immunoseq_v2", "immunoseq_v3", "airr", "10x_vdj"}
    changes = _read(tcr_run / "results/tcr/changes/CARM-001_tumour.tsv")
    assert list(changes.columns) == list(CHANGE_COLUMNS)
    assert changes["expanded"].sum() >= 10 and changes["new"].sum() >= 4
    clones = _read(tcr_run / "results/tcr/CARM-003_D8_sc/clones.tsv")
    assert {"clone_id", "cdr3_aa", "v_gene", "count", "frequency"} <= set(clones.columns)
    assert "cells_cd8_t" in clones.columns and "mean_exhaustion" in clones.columns
    assert (tcr_run / "results/tcr/patients/CARM-001.png").stat().st_size > 10_000
