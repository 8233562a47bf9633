"""The workflow end to end on the tiny synthetic cohort, through Snakemake itself.

The cohort is set up the way a user sets up a scaling run: the generator writes only the tables,
and the workflow's synthetic_cohort rule writes the data they point to.
"""

import shutil
import subprocess

import pandas as pd
import pytest
import yaml

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
        "expression": {"markers": str(repo / "resources/markers/cell_type_markers.tsv")},
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
