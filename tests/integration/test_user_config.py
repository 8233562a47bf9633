"""Config layering: the bundled config/config.yaml is the demo's (the synthetic cohort, `make
run`) and applies only when the command line brings no config; a user's config stands alone,
every key it leaves out taking the schema's default, so none of the demo's paths reach its run.
What a user's cohort needs and lacks is named at parse time (here: ctdna.reference for CRAM
plasma)."""

import re

import pandas as pd
import pytest
import yaml

from tests.integration.test_workflow import snakemake

pytestmark = pytest.mark.integration

DEMO = "synthetic_cohort/default"


@pytest.fixture
def workdir(tmp_path, repo):
    """A working folder laid out like the repository root, where users run the workflow: the
    bundled config/ (with the demo's config.yaml) and resources/ are there."""
    for name in ("config", "resources"):
        (tmp_path / name).symlink_to(repo / name)
    return tmp_path


def dry_run(repo, tool, workdir, *args, configfile=None):
    result = snakemake(repo, tool, workdir, "--dry-run", *args, configfile=configfile)
    return result.returncode, result.stdout + result.stderr


def user_config(workdir, patients, samples, **sections):
    """patients, samples and car: all a user's config needs (written to config.yaml)."""
    config = {
        "patients": str(patients),
        "samples": str(samples),
        "car": {
            "construct": "resources/car/anti_her2_car.fa",
            "segments": "resources/car/anti_her2_car.segments.tsv",
        },
        **sections,
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return "config.yaml"


def job_blocks(output, rule):
    """The dry run's block of each job of ``rule``."""
    return re.findall(rf"rule {rule}:\n((?:[ \t]+\S.*\n)+)", output)


def test_a_minimal_user_config_inherits_no_demo_path(workdir, repo, tool, tiny_cohort):
    config = user_config(workdir, tiny_cohort / "patients.tsv", tiny_cohort / "samples.tsv")
    code, output = dry_run(repo, tool, workdir, configfile=config)
    assert code == 0, output[-3000:]
    assert DEMO not in output and "rule synthetic_" not in output
    (panel,) = job_blocks(output, "ctdna_panel")
    assert "genome.fa" not in panel  # ctdna.reference: the schema's null, not the demo's FASTA
    samples = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t")
    assert len(job_blocks(output, "ctdna_count_alleles")) == (samples["assay"] == "cfdna").sum()
    # the same tables named with --config alone: no demo either
    tables = [f"patients={tiny_cohort / 'patients.tsv'}", f"samples={tiny_cohort / 'samples.tsv'}"]
    code, output = dry_run(repo, tool, workdir, "--config", *tables)
    assert code == 0, output[-3000:]
    assert DEMO not in output and "rule synthetic_" not in output


def test_without_a_config_the_demo_runs(workdir, repo, tool):
    code, output = dry_run(repo, tool, workdir)
    assert code == 0, output[-3000:]
    # the demo ships three plasma normals, so its ctDNA background (auto) is the normals':
    # one panel per patient, checked against the demo's reference
    panels = job_blocks(output, "ctdna_patient_panel")
    assert panels and not job_blocks(output, "ctdna_panel")
    assert all(f"resources/{DEMO}/reference/genome.fa" in panel for panel in panels)
    assert len(job_blocks(output, "synthetic_normal")) == 3
    assert "rule synthetic_reference:" in output


def test_cram_plasma_without_ctdna_reference_is_named_at_parse_time(
    workdir, repo, tool, tiny_cohort
):
    samples = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    cram = workdir / "plasma.cram"
    cram.touch()
    (workdir / "plasma.cram.crai").touch()
    chosen = samples.index[samples["assay"] == "cfdna"][0]
    samples.loc[chosen, "reads"] = str(cram)
    path_columns = [c for c in ("counts", "reads", "vdj") if c in samples.columns]
    for column in path_columns:  # the other paths: absolute, as the table moves
        samples[column] = [
            path if not path or path.startswith("/") else str(tiny_cohort / path)
            for path in samples[column]
        ]
    samples.to_csv(workdir / "samples.tsv", sep="\t", index=False)
    config = user_config(workdir, tiny_cohort / "patients.tsv", workdir / "samples.tsv")
    code, output = dry_run(repo, tool, workdir, configfile=config)
    assert code != 0
    assert "config ctdna.reference is not set" in output, output[-1500:]
    assert "are CRAM (plasma.cram)" in output  # the path as the sheet gives it (relative)
    assert not (workdir / "results").exists()
    # with the key set, only the CRAM's count job reads the FASTA
    reference = str(tiny_cohort / "reference/genome.fa")
    config = user_config(
        workdir,
        tiny_cohort / "patients.tsv",
        workdir / "samples.tsv",
        ctdna={"reference": reference},
    )
    code, output = dry_run(repo, tool, workdir, configfile=config)
    assert code == 0, output[-3000:]
    counts = job_blocks(output, "ctdna_count_alleles")
    with_reference = [block for block in counts if reference in block.split("\n")[0]]
    assert len(with_reference) == 1 and "plasma.cram" in with_reference[0]
