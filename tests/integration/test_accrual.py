"""ctDNA with the panel-of-normals background (config ctdna.background: normals).

The tiny cohort as a user sets it up (the generator writes the tables, the workflow's
synthetic rules write the data, three tumour-free plasma normals among them) is run without
CARM-003; then CARM-003 joins the tables. Only CARM-003's jobs (its synthetic data among them)
and the cohort aggregates may run again, and the other patients' results must not change
(issue #5); the calls must still match the truth, and a tumour-free normal judged like a sample
is not called.
"""

import re
from pathlib import Path

import pandas as pd
import pytest

from carmscope.ctdna.background import patient_backgrounds
from carmscope.ctdna.calls import sample_calls, variant_calls_by_patient
from carmscope.synthetic.design import PRESETS, plasma_normals
from tests.integration.test_workflow import snakemake, write_config, write_tiny_tables

pytestmark = pytest.mark.integration

LATE = "CARM-003"
FLAGS = ["molecular_response", "transient_decrease", "clearance", "progression"]
AGGREGATES = {
    "synthetic_truth",
    "gather_input_inspection",
    "expression_paired",
    "expression_de",  # the cohort's paired DE per cell type, and its summary
    "expression_de_summary",
    "car_calls",
    "ctdna_calls",
    "ctdna_plots",
    "result_tables",
    "report_figures",
    "blood_kinetics",
    "blood_plots",
    "tcr_summary",  # the cohort's repertoire table and figures
    "tcr_plots",
    "multiqc_tables",
    "all",
}
PER_SAMPLE = {
    # CARM-003's data (bulk RNA, 4 plasma samples, 7 blood draws with qPCR and cytokines)
    "synthetic_patient_scrna2_bulk2_cfdna4_pcr7_cyt7",
    "inspect_inputs",
    "inspect_blood_draws",  # CARM-003's blood draws, one job
    "expression_scrna",
    "expression_bulk",
    "expression_car_cells",
    "car_scan_scrna",
    "car_scan_bulk",
    "ctdna_patient_panel",
    "ctdna_count_alleles",
    "ctdna_count_normals",
    "expression_embedding",
    "expression_patient_embedding",
    "tcr_clones",
    "tcr_changes",
}
TARGETS = [
    *(f"results/ctdna/{name}.tsv" for name in ("variants", "samples", "timepoints", "patients")),
    "results/ctdna/background.tsv",
    *(f"results/ctdna/{name}.{ext}" for name in ("spider", "waterfall") for ext in ("svg", "png")),
]
RESULT_TABLES = ("patients", "samples")
NORMALS = [f"cohort/{path}" for path in plasma_normals(PRESETS["tiny"])]


def read_text_table(path) -> pd.DataFrame:
    """A table as text, exactly as written (so 'unchanged' means byte-for-byte per row)."""
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def planned_jobs(output: str) -> list[tuple[str, str]]:
    """(rule, first output) of every job a dry run lists."""
    jobs = []
    # jobs of a group are listed indented under "group job ...:"
    for block in re.split(r"\n(?=[ \t]*(?:local)?rule \w+:)", output):
        rule = re.match(r"\s*(?:local)?rule (\w+):", block)
        if rule:
            produced = re.search(r"^\s+output: (\S+)", block, re.M)
            jobs.append((rule.group(1), produced.group(1).rstrip(",") if produced else ""))
    return jobs


@pytest.fixture(scope="module")
def accrual(tmp_path_factory, repo, tool):
    """The workdir after a run without LATE, the dry run after adding LATE, and the results
    before and after."""
    workdir = tmp_path_factory.mktemp("ctdna_normals")
    write_tiny_tables(workdir, tool)
    tables = workdir / "tables"
    full = {name: read_text_table(tables / name) for name in ("patients.tsv", "samples.tsv")}
    for name, table in full.items():
        table[table["patient_id"] != LATE].to_csv(tables / name, sep="\t", index=False)
    write_config(
        workdir,
        repo,
        ctdna={
            "background": "normals",
            "panel_of_normals": NORMALS,
            "reference": "cohort/reference/genome.fa",
        },
    )
    result = snakemake(repo, tool, workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    before = results(workdir)
    for name, table in full.items():
        table.to_csv(tables / name, sep="\t", index=False)
    dry = snakemake(repo, tool, workdir, "--dry-run")
    assert dry.returncode == 0, dry.stderr[-5000:]
    result = snakemake(repo, tool, workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir, dry.stdout + dry.stderr, before, results(workdir)


def results(workdir) -> dict[str, pd.DataFrame]:
    """The ctDNA stage's tables and the result tables, by name."""
    tables = {name: read_text_table(workdir / f"results/ctdna/{name}.tsv") for name in TABLES}
    for name in RESULT_TABLES:
        tables[f"result_{name}"] = read_text_table(workdir / f"results/tables/{name}.tsv")
    return tables


TABLES = ("variants", "samples", "timepoints", "patients", "background")


def test_synthetic_rule_writes_the_plasma_normals(accrual):
    workdir = accrual[0]
    for path in NORMALS:
        assert (workdir / path).exists() and (workdir / f"{path}.bai").exists()


def test_adding_a_patient_plans_only_its_jobs_and_the_aggregates(accrual):
    _, output, _, _ = accrual
    jobs = planned_jobs(output)
    rules = {rule for rule, _ in jobs}
    assert rules <= AGGREGATES | PER_SAMPLE, output[-4000:]
    assert rules >= {"result_tables", "report_figures", "car_scan_scrna", "ctdna_count_alleles"}
    assert rules >= {"synthetic_patient_scrna2_bulk2_cfdna4_pcr7_cyt7", "synthetic_truth"}
    others = [(rule, path) for rule, path in jobs if rule not in AGGREGATES and LATE not in path]
    assert not others, others
    counted = [path for rule, path in jobs if rule == "ctdna_count_alleles"]
    assert len(counted) == 4  # CARM-003's four plasma samples
    # one job counts every normal at the new patient's panel
    normals = [path for rule, path in jobs if rule == "ctdna_count_normals"]
    assert len(normals) == 1 and normals[0].startswith(f"results/ctdna/normals/{LATE}/")


@pytest.mark.parametrize("name", RESULT_TABLES)
def test_other_patients_result_rows_are_unchanged(accrual, name):
    _, _, before, after = accrual
    old, new = before[f"result_{name}"], after[f"result_{name}"]
    assert LATE not in set(old["patient_id"])
    kept = new[new["patient_id"] != LATE].reset_index(drop=True)
    shared = [column for column in old.columns if column in kept.columns]
    assert set(old.columns) <= set(kept.columns)
    pd.testing.assert_frame_equal(kept[shared], old[shared])
    assert (new["patient_id"] == LATE).any()


@pytest.mark.parametrize("name", TABLES)
def test_other_patients_rows_are_unchanged(accrual, name):
    _, _, before, after = accrual
    assert LATE not in set(before[name]["patient_id"]) or name == "patients"
    kept = after[name][after[name]["patient_id"] != LATE].reset_index(drop=True)
    if name == "patients":  # every patient of the table has a row, without plasma too
        before[name] = before[name][before[name]["patient_id"] != LATE]
    pd.testing.assert_frame_equal(kept, before[name].reset_index(drop=True))
    assert (after[name]["patient_id"] == LATE).any()


def test_flags_match_the_truth(accrual):
    workdir = accrual[0]
    patients = read_text_table(workdir / "results/ctdna/patients.tsv").set_index("patient_id")
    truth = read_text_table(workdir / "cohort/truth/patients.tsv").set_index("patient_id")
    assert list(patients.index) == list(truth.index)
    for flag in FLAGS:
        assert patients[flag].to_dict() == truth[f"ctdna_{flag}"].to_dict(), flag
    samples = read_text_table(workdir / "results/ctdna/samples.tsv").set_index("sample_id")
    baselines = patients.loc[patients["evaluable"] == "True", "baseline_sample_id"]
    assert len(baselines) == 3
    assert (samples.loc[baselines, "ctdna_detected"] == "True").all()


def test_a_tumour_free_normal_is_not_called(accrual):
    """Each normal judged like a plasma sample at each patient's variants, against the
    background of the other normals (leave one out)."""
    workdir = accrual[0]
    counts = pd.concat(
        [
            pd.read_csv(path, sep="\t", dtype={"chrom": str, "sample_id": str}).assign(
                panel_patient=path.parent.name
            )
            for path in sorted((workdir / "results/ctdna/normals").glob("*/*.tsv"))
        ],
        ignore_index=True,
    )
    calls = []
    for normal in counts["sample_id"].unique():
        others = counts[counts["sample_id"] != normal]
        background = patient_backgrounds(others)
        probe = counts[counts["sample_id"] == normal]
        probe = probe.assign(
            carrier=True,
            patient_id=probe["panel_patient"],
            sample_id=normal + " as " + probe["panel_patient"],
        )
        calls.append(sample_calls(variant_calls_by_patient(probe, background)))
    calls = pd.concat(calls, ignore_index=True)
    assert len(calls) == len(NORMALS) * 3
    assert (calls["n_used"] > 0).all()
    assert not calls["ctdna_detected"].any(), calls


def test_normals_mode_without_normals_stops_before_any_job(tmp_path, repo, tool):
    write_tiny_tables(tmp_path, tool)
    write_config(tmp_path, repo, ctdna={"background": "normals"})
    result = snakemake(repo, tool, tmp_path, "--dry-run", *TARGETS)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "ctdna.background is 'normals' but ctdna.panel_of_normals lists no BAM" in output
    assert not (tmp_path / "results").exists() and not (tmp_path / "cohort").exists()


def test_cohort_mode_counts_every_normal_in_one_job(tmp_path, repo, tool):
    """With the cohort background, normals are counted at the cohort panel: one job writes
    every normal's table (in normals mode it is one job per patient, see above)."""
    write_tiny_tables(tmp_path, tool)
    write_config(
        tmp_path,
        repo,
        ctdna={
            # explicit: the default (auto) uses the normals alone when there are any
            "background": "cohort",
            "panel_of_normals": NORMALS,
            "reference": "cohort/reference/genome.fa",
        },
    )
    result = snakemake(repo, tool, tmp_path, "--dry-run", *TARGETS)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    blocks = re.findall(r"rule ctdna_count_normals:\n((?:[ \t]+\S.*\n)+)", output)
    assert len(blocks) == 1, output[-4000:]
    outputs = re.search(r"output: (.+)", blocks[0]).group(1).split(", ")
    assert sorted(outputs) == [
        f"results/ctdna/normals/{number}_{Path(path).stem}.tsv"
        for number, path in enumerate(NORMALS, start=1)
    ]
    assert "input: " in blocks[0] and "results/ctdna/panel.tsv" in blocks[0]
