"""Reading the workflow's own files for tests and benchmarks."""

import subprocess

import pandas as pd

from carmscope.workflow_files import (
    local_rules,
    localised_config,
    rule_blocks,
    rule_files,
    synthetic_workdir_config,
)


def test_localised_config_moves_cohort_paths_and_anchors_repository_paths(repo):
    config = {
        "synthetic": {"outdir": "resources/synthetic_cohort/tiny", "preset": "tiny"},
        "ctdna": {"reference": "resources/synthetic_cohort/tiny/reference/genome.fa"},
        "genesets": {"gmt": ["resources/genesets/hallmark_inflammation.v7.0.gmt"]},
        "tables": {"strata": ["her2_ihc"]},
    }
    local = localised_config(config, repo, "cohort")
    assert local["ctdna"]["reference"] == "cohort/reference/genome.fa"
    assert local["genesets"]["gmt"] == [str(repo / config["genesets"]["gmt"][0])]
    assert local["tables"] == {"strata": ["her2_ihc"]}


def test_local_rules_of_the_workflow(repo):
    local = local_rules(rule_files(repo))
    assert {"result_tables", "report_figures", "gather_input_inspection"} <= local
    assert "expression_scrna" not in local


def test_rule_blocks_name_rules_made_in_a_loop(tmp_path):
    path = tmp_path / "rules.smk"
    path.write_text(
        "rule plain:\n    threads: 2\n\n"
        "for shape in SHAPES:\n\n"
        "    rule:\n        name:\n            shape.name\n        threads: 1\n"
        "        localrule: True\n\n"
        "rule after:\n    threads: 3\n"
    )
    blocks = rule_blocks([path])
    assert set(blocks) == {"plain", "<shape.name>", "after"}
    assert "threads: 1" in blocks["<shape.name>"] and "after" not in blocks["<shape.name>"]
    assert local_rules([path]) == {"<shape.name>"}


def test_synthetic_workdir_config_writes_the_tables_the_cli_writes(repo, tool, tmp_path):
    """Tables as `carmscope-synthetic tables` writes them for the same cohort, data under
    data_dir of the work folder, and a config that points at them and keeps the overrides."""
    overrides = {"seed": 9, "cfdna_depth": 150}
    workdir = tmp_path / "work"
    config = synthetic_workdir_config(workdir, repo, "config/test/config.yaml", overrides, "data")
    expected = tmp_path / "cli"
    expected.mkdir()
    subprocess.run(
        [
            *(tool("carmscope-synthetic"), "tables", "--preset", "tiny"),
            *("--set", "seed=9", "--set", "cfdna_depth=150"),
            *("--data-dir", "data", "--out", "tables"),
        ],
        cwd=expected,
        check=True,
        capture_output=True,
    )
    for name in ("patients.tsv", "samples.tsv"):
        assert (workdir / "tables" / name).read_text() == (expected / "tables" / name).read_text()
    samples = pd.read_csv(workdir / "tables/samples.tsv", sep="\t", keep_default_na=False)
    assert samples["patient_id"].nunique() == 4  # the tiny preset
    first = next(path for path in samples["reads"] if path)
    assert (workdir / "tables" / first).resolve().is_relative_to(workdir / "data")
    assert config["patients"] == "tables/patients.tsv"
    assert config["samples"] == "tables/samples.tsv"
    assert config["synthetic"] == {"outdir": "cohort", "preset": "tiny", **overrides}
    assert config["ctdna"]["reference"] == "data/reference/genome.fa"
    assert config["car"]["construct"] == str(repo / "resources/car/anti_her2_car.fa")
