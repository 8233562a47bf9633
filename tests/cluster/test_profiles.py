"""Cluster policy that needs no cluster (docs/cluster.md): every rule declares threads and
resources that grow with attempt, the SLURM profile's groups and the rules' `group:` agree,
cohort-level rules are local rules, the workstation profile (which Snakemake applies to every
run as the workflow profile) does not override the SLURM profile, and the SLURM profile plans
the tiny cohort with the installed executor plugin.
"""

import re
import subprocess

import test_slurm
import yaml
from test_slurm import REPO, SLURM_PROFILE, snakemake_command, write_workdir

from carmscope import workflow_files

RULE_FILES = workflow_files.rule_files(REPO)
ACTIONS = ("shell:", "script:", "run:", "wrapper:", "notebook:", "cwl:")
# Rules that aggregate the cohort's small per-sample tables into one: on the submit host
# (at least these; later stages add their own, e.g. with `localrule: True`).
EXPECTED_LOCAL = {
    "synthetic_reference",
    "synthetic_truth",
    "gather_input_inspection",
    "expression_paired",
    "car_calls",
    "ctdna_panel",
    "ctdna_plots",
}
# Light per-sample rules: grouped, so a cohort does not flood the queue.
EXPECTED_GROUPS = {
    "inspect_inputs": "inspect",
    "inspect_blood_draws": "inspect",
    "expression_bulk": "bulk_scores",
    "expression_car_cells": "car_cell_types",
    "ctdna_patient_panel": "ctdna_counts",
    "ctdna_count_alleles": "ctdna_counts",
    "ctdna_count_normals": "ctdna_counts",
    "tcr_clones": "tcr_samples",
    "tcr_changes": "tcr_samples",
}


def rule_blocks():
    return workflow_files.rule_blocks(RULE_FILES)


def local_rules():
    return workflow_files.local_rules(RULE_FILES)


def resource_expression(block, name):
    """Text of `name=...` in a block's resources (up to the next resource or directive)."""
    match = re.search(rf"^\s*{name}\s*=(.*?)(?=^\s*\w+\s*=|^\s*\w+:|\Z)", block, re.M | re.S)
    return match.group(1).strip().rstrip(",") if match else None


def test_every_rule_declares_threads_and_resources_that_grow_with_attempt():
    """Every rule with an action declares threads, mem_mb and runtime, as functions of attempt
    (a lambda naming `attempt`, or wiring.resources.scaled, which multiplies by it)."""
    problems = []
    for name, block in rule_blocks().items():
        if not any(action in block for action in ACTIONS):
            continue  # e.g. `all`: nothing runs
        if not re.search(r"^\s*threads:", block, re.M):
            problems.append(f"{name}: no threads")
        for resource in ("mem_mb", "runtime"):
            expression = resource_expression(block, resource)
            if expression is None:
                problems.append(f"{name}: no {resource}")
            elif "attempt" not in expression and not expression.startswith("scaled("):
                problems.append(f"{name}: {resource} does not grow with attempt: {expression}")
    assert not problems, "\n".join(problems)


def test_cohort_level_rules_are_local_rules():
    local = local_rules()
    assert local >= EXPECTED_LOCAL, f"not local rules: {sorted(EXPECTED_LOCAL - local)}"
    assert local <= set(rule_blocks()), f"unknown rules: {local - set(rule_blocks())}"
    # the heavy single jobs and every per-sample (or per-patient) rule run in SLURM
    for name in ("synthetic_normal", "car_index", "ctdna_calls", *EXPECTED_GROUPS):
        assert name not in local, f"{name} should be a SLURM job"
    assert "<_shape.name>" not in local, "the synthetic patients' rules should be SLURM jobs"


def test_the_per_patient_synthetic_rules_are_found():
    """The synthetic patients' rules are made in a loop; the checks above must see them."""
    assert "threads: 1" in rule_blocks()["<_shape.name>"]


def test_light_per_sample_rules_are_grouped_as_the_profile_says():
    blocks = rule_blocks()
    declared = {
        name: match.group(1)
        for name, block in blocks.items()
        if (match := re.search(r"^\s*group:\s*\n?\s*[\"'](\w+)[\"']", block, re.M))
    }
    assert declared.items() >= EXPECTED_GROUPS.items(), declared
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    assert set(profile["group-components"]) == set(declared.values())
    assert not set(declared) & local_rules(), "a local rule cannot be part of a group job"


def test_workflow_profile_does_not_override_the_slurm_profile(monkeypatch):
    """Snakemake applies profiles/default to every run as the workflow profile, and its keys
    win over --profile: it must not carry keys that differ on a cluster."""
    from snakemake.cli import parse_args

    monkeypatch.chdir(REPO)
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    _, args = parse_args(["--snakefile", str(REPO / "Snakefile"), "--profile", str(SLURM_PROFILE)])
    effective = {
        "executor": args.executor,
        "jobs": args.jobs,
        "cores": args.cores,
        "local-cores": args.local_cores,
        "latency-wait": args.latency_wait,
        "retries": args.retries,
        "keep-going": args.keep_going,
    }
    wrong = {
        key: (value, profile[key])
        for key, value in effective.items()
        if key in profile and value != profile[key]
    }
    assert not wrong, f"effective value vs profiles/slurm (overridden by profiles/default): {wrong}"


def test_slurm_profile_dry_run(tmp_path, tool):
    """The profile parses with the installed plugin and plans the tiny cohort (no SLURM
    needed): the light per-sample rules are planned as group jobs."""
    workdir = write_workdir(tmp_path)
    result = subprocess.run(
        snakemake_command(tool, workdir, "--profile", str(SLURM_PROFILE), "--dry-run"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "synthetic_patient_scrna2_cfdna4" in output and "synthetic_truth" in output
    groups = set(re.findall(r"Group job (\w+) \(", output))
    assert groups == set(EXPECTED_GROUPS.values()), output[-3000:]


def test_slurm_tests_skip_with_a_reason_where_the_machine_cannot_host_the_cluster(monkeypatch):
    monkeypatch.delenv(test_slurm.ENABLE, raising=False)
    assert "make test-slurm" in test_slurm.why_no_slurm()
    monkeypatch.setenv(test_slurm.ENABLE, "1")
    monkeypatch.setattr(test_slurm.os, "geteuid", lambda: 1000)
    assert "needs root" in test_slurm.why_no_slurm()
    monkeypatch.setattr(test_slurm.os, "geteuid", lambda: 0)
    monkeypatch.setattr(test_slurm.shutil, "which", lambda name: None)
    assert "needs Debian" in test_slurm.why_no_slurm()


def test_scheduler_subsample_still_fills_the_slurm_queue(monkeypatch):
    """profiles/default bounds the ready jobs the scheduler looks at per round (a cold run of
    hundreds of patients has thousands ready); on a cluster that bound must not be what keeps
    the queue below the SLURM profile's `jobs` limit."""
    from snakemake.cli import parse_args

    monkeypatch.chdir(REPO)
    profile = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    _, args = parse_args(["--snakefile", str(REPO / "Snakefile"), "--profile", str(SLURM_PROFILE)])
    assert args.scheduler_subsample is not None, "profiles/default sets no scheduler-subsample"
    assert args.scheduler_subsample >= profile["jobs"], (args.scheduler_subsample, profile["jobs"])
