"""The workflow end to end on the tiny synthetic cohort, through Snakemake itself.

The cohort is set up the way a user sets up a scaling run: the generator writes only the tables,
and the workflow's synthetic_* rules write the data they point to.
"""

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from carmscope.genesets import read_gmt

pytestmark = pytest.mark.integration

TINY_TABLES_ARGS = ("--data-dir", "cohort", "--out", "tables")


def write_config(workdir, repo, **overrides):
    config = {
        "patients": "tables/patients.tsv",
        "samples": "tables/samples.tsv",
        "synthetic": {"outdir": "cohort", "preset": "tiny"},
        "car": {
            "construct": str(repo / "resources/car/anti_her2_car.fa"),
            "segments": str(repo / "resources/car/anti_her2_car.segments.tsv"),
        },
        "genesets": {
            "gmt": [str(repo / "resources/genesets/hallmark_inflammation.v7.0.gmt")],
            "signatures": str(repo / "resources/genesets/immune_signatures.tsv"),
        },
        "expression": {
            "markers": str(repo / "resources/markers/cell_type_markers.tsv"),
            # two DE profiles keep the runs short (the DE step has its own tests)
            "de": {"cell_types": ["macrophage_m2", "all"]},
        },
    }
    config.update(overrides)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_tiny_tables(workdir, tool):
    """The tiny cohort's tables in workdir/tables, pointing at data in workdir/cohort."""
    subprocess.run(
        [tool("carmscope-synthetic"), "tables", "--preset", "tiny", *TINY_TABLES_ARGS],
        cwd=workdir,
        check=True,
    )


def snakemake(repo, tool, workdir, *args, timeout=900):
    command = [
        tool("snakemake"),
        "--snakefile",
        str(repo / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "2",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, repo, tool):
    workdir = tmp_path_factory.mktemp("tiny_workflow")
    write_tiny_tables(workdir, tool)
    write_config(workdir, repo)
    result = snakemake(repo, tool, workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def test_synthetic_rule_writes_every_file_the_tables_name(tiny_run):
    samples = pd.read_csv(tiny_run / "tables/samples.tsv", sep="\t", keep_default_na=False)
    for column in ("counts", "reads"):
        for path in samples[column]:
            if path:
                assert (tiny_run / "tables" / path).exists(), path
    assert (tiny_run / "cohort/truth/samples.tsv").exists()


def test_input_inventory_matches_truth(tiny_run):
    inventory = pd.read_csv(tiny_run / "results/qc/inputs.tsv", sep="\t").set_index("sample_id")
    samples = pd.read_csv(tiny_run / "tables/samples.tsv", sep="\t").set_index("sample_id")
    assert list(inventory.index) == list(samples.index)
    truth = pd.read_csv(tiny_run / "cohort/truth/samples.tsv", sep="\t").set_index("sample_id")
    scrna = samples.index[samples["assay"] == "scrna"]
    assert (inventory.loc[scrna, "n_cells"] == truth.loc[scrna, "n_cells"]).all()
    assert (inventory.loc[scrna, "reads_with_cell_barcode"] > 0.5).all()
    cfdna = samples.index[samples["assay"] == "cfdna"]
    assert (inventory.loc[cfdna, "reads_sort_order"] == "coordinate").all()
    assert (inventory.loc[cfdna, "n_variants"] > 0).all()


def test_second_run_has_nothing_to_do(tiny_run, repo, tool):
    result = snakemake(repo, tool, tiny_run, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def test_bad_table_stops_before_any_job(tmp_path, repo, tool):
    shutil.copytree(repo / "config/test", tmp_path / "tables")
    samples = tmp_path / "tables/samples.tsv"
    lines = samples.read_text().splitlines()
    fields = lines[2].split("\t")
    fields[3] = "eight"  # day
    lines[2] = "\t".join(fields)
    samples.write_text("\n".join(lines) + "\n")
    write_config(tmp_path, repo)
    result = snakemake(repo, tool, tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "line 3" in output and "'day'" in output, output[-3000:]
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "cohort").exists()


def test_tables_disagreeing_with_generator_stop_before_any_job(tmp_path, repo, tool):
    write_tiny_tables(tmp_path, tool)
    write_config(
        tmp_path, repo, synthetic={"outdir": "cohort", "preset": "tiny", "templates": [0, 7, 2, 13]}
    )
    result = snakemake(repo, tool, tmp_path, "--dry-run")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "disagree with what the generator makes" in output, output[-3000:]
    assert "CARM-003_D8_bulk is not in the synthetic cohort's design" in output


# --- result tables and report (docs/outputs.md) -----------------------------------------------


def repo_path(relative):
    return Path(__file__).resolve().parents[2] / relative


def read_result(workdir, name):
    return pd.read_csv(workdir / f"results/tables/{name}.tsv", sep="\t", dtype={"her2_ihc": str})


def test_patient_table_answers_equal_truth_and_step_outputs(tiny_run):
    table = read_result(tiny_run, "patients").set_index("patient_id")
    sheet = pd.read_csv(tiny_run / "tables/patients.tsv", sep="\t", dtype=str).set_index(
        "patient_id"
    )
    truth = pd.read_csv(tiny_run / "cohort/truth/patients.tsv", sep="\t").set_index("patient_id")
    assert list(table.index) == list(sheet.index)  # one row per patient, sheet order
    assert (table["dosing"] == sheet["dosing"]).all()
    assert (table["car_detected"] == truth.loc[table.index, "car_positive"]).all()
    # CD8 fractions: exactly the expression stage's pairs, and within annotation error of truth
    paired = pd.read_csv(tiny_run / "results/expression/scrna/paired_values.tsv", sep="\t")
    cd8 = paired[paired["metric"] == "fraction_of_cells/cd8_t"].set_index("patient_id")
    for patient in cd8.index:
        assert table.loc[patient, "cd8_fraction_baseline"] == cd8.loc[patient, "baseline"]
        assert table.loc[patient, "cd8_fraction_delta"] == cd8.loc[patient, "delta"]
    for side in ("baseline", "post"):
        error = (table[f"cd8_fraction_{side}"] - truth[f"cd8_fraction_{side}"]).abs()
        assert (error < 0.02).all(), error
    # every score column: exactly the expression stage's baseline/post/delta of the pair
    scores = {"cd8_score": "all/CD8_T_cells/mean_log2cpm"}
    for gene_set in read_gmt(repo_path("resources/genesets/hallmark_inflammation.v7.0.gmt")):
        scores[gene_set] = f"all/{gene_set}/mean_log2cpm"
    by_metric = paired.set_index(["patient_id", "metric"])
    for prefix, metric in scores.items():
        for patient in cd8.index:
            source = by_metric.loc[(patient, metric)]
            for side in ("baseline", "post", "delta"):
                assert table.loc[patient, f"{prefix}_{side}"] == source[side], (prefix, side)
    car = pd.read_csv(tiny_run / "results/car/summary.tsv", sep="\t").set_index("sample_id")
    for _, row in table.iterrows():
        source = car.loc[row["car_sample_id"]]
        assert row["car_reads_per_million"] == source["car_reads_per_million"]
        assert row["car_positive_cell_fraction"] == source["car_positive_fraction"]
    changed = truth["cd8_fraction_delta"].abs() > 0.02
    assert (table.loc[changed, "cd8_up"] == (truth.loc[changed, "cd8_fraction_delta"] > 0)).all()
    inflamed = truth["inflammation_log2fc"] > 0
    assert table.loc[inflamed, "inflammation_up"].all()
    assert (table.loc[~inflamed, "inflammation_delta_mean"].abs() < 0.1).all()
    # ctDNA: the stage's per-patient table and the truth's flags; empty when not evaluable
    ctdna = pd.read_csv(tiny_run / "results/ctdna/patients.tsv", sep="\t").set_index("patient_id")
    evaluable = ctdna.index[ctdna["evaluable"]]
    assert (table.loc[evaluable, "ctdna_nadir_mean_vaf"] == ctdna.loc[evaluable, "nadir_vaf"]).all()
    for ours, theirs in (
        ("baseline_mean_vaf", "baseline_vaf"),
        ("nadir_day", "nadir_day"),
        ("nadir_change_pct", "best_change_pct"),
        ("latest_change_pct", "latest_change_pct"),
    ):
        assert (table.loc[evaluable, f"ctdna_{ours}"] == ctdna.loc[evaluable, theirs]).all()
    for flag in ("molecular_response", "transient_decrease", "clearance", "progression"):
        assert (
            table.loc[evaluable, f"ctdna_{flag}"] == truth.loc[evaluable, f"ctdna_{flag}"]
        ).all()
    absent = table.index.difference(evaluable)
    assert table.loc[absent, "ctdna_molecular_response"].isna().all()
    assert (table.loc[absent, "ctdna_reason"].str.len() > 0).all()


def test_sample_table_carries_every_per_sample_figure(tiny_run):
    table = read_result(tiny_run, "samples").set_index("sample_id")
    sheet = pd.read_csv(tiny_run / "tables/samples.tsv", sep="\t").set_index("sample_id")
    assert list(table.index) == list(sheet.index)
    car = pd.read_csv(tiny_run / "results/car/summary.tsv", sep="\t").set_index("sample_id")
    assert (table.loc[car.index, "car.reads"] == car["car_reads"]).all()
    metrics = pd.read_csv(tiny_run / "results/expression/scrna/metrics.tsv", sep="\t")
    row = metrics.iloc[len(metrics) // 2]
    column = "expr." + row["metric"].replace("/", ".")
    assert table.loc[row["sample_id"], column] == pytest.approx(row["value"], rel=1e-12)
    plasma = pd.read_csv(tiny_run / "results/ctdna/samples.tsv", sep="\t").set_index("sample_id")
    assert (table.loc[plasma.index, "ctdna.mean_vaf"] == plasma["mean_vaf"]).all()


def test_cohort_summary_counts_the_patient_table(tiny_run):
    patients = read_result(tiny_run, "patients")
    summary = read_result(tiny_run, "cohort_summary")
    rows = summary.set_index(["stratum", "group", "endpoint"])
    car = rows.loc[("all", "all", "car_detected")]
    assert car["n_positive"] == patients["car_detected"].sum()
    assert car["n_evaluable"] == patients["car_detected"].notna().sum()
    for her2, group in patients.groupby("her2_ihc"):
        assert rows.loc[("her2_ihc", her2, "car_detected"), "n_patients"] == len(group)
    assert set(summary.loc[summary["kind"] == "paired_test", "endpoint"]) >= {
        "cd8_fraction_delta",
        "cd8_score_delta",
        "HALLMARK_INFLAMMATORY_RESPONSE_delta",
    }


def test_workbook_and_dictionary_cover_the_tables(tiny_run):
    from carmscope.tables.dictionary import undocumented

    sheets = pd.read_excel(tiny_run / "results/tables/carmscope_results.xlsx", sheet_name=None)
    assert list(sheets) == ["patients", "samples", "cohort_summary", "dictionary"]
    clinical = pd.read_csv(tiny_run / "tables/patients.tsv", sep="\t", nrows=0).columns
    for name in ("patients", "samples", "cohort_summary"):
        tsv = read_result(tiny_run, name)
        assert list(sheets[name].columns) == list(tsv.columns)
        assert len(sheets[name]) == len(tsv)
        assert undocumented(name, list(tsv.columns), clinical) == [], name
    panels = (tiny_run / "results/report/patients").glob("*.png")
    assert sorted(p.name for p in panels) == [
        f"{patient}.png" for patient in read_result(tiny_run, "patients")["patient_id"]
    ]


def test_report_is_self_contained_html_with_every_patient(tiny_run, repo, tool, tmp_path):
    report = tmp_path / "report.html"
    result = snakemake(repo, tool, tiny_run, "--report", str(report))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    html = report.read_text()
    for patient in read_result(tiny_run, "patients")["patient_id"]:
        assert f"{patient}.png" in html
    for text in ("patients.tsv", "cohort_summary.tsv", "Clopper-Pearson", "Wilcoxon"):
        assert text in html
