"""Scaling of the workflow with cohort size: DAG build (dry run) and local run, per patient.

For synthetic cohorts of 14, 100 and 500 patients (tables from ``carmscope-synthetic tables``)
it times, each in a fresh Snakemake process:

* ``parse``: ``snakemake --list-rules`` (import, config and table validation; no DAG);
* ``dry run``: ``snakemake --dry-run`` (parse + DAG build + planning), in two layouts:

  - *synthetic*: the tables point into the synthetic cohort folder, so the DAG has the
    ``synthetic_*`` jobs (one per patient) that write the input files (the bundled cohort,
    the scaling runs);
  - *existing data*: the tables point at input files that already exist (empty placeholders
    here), as with a real trial: no synthetic job;

  and, for the synthetic layout, also with ``--notemp`` (see docs/cluster.md: Snakemake's
  temp-file bookkeeping costs time per job times the outputs of the job's dependencies);
* ``SLURM jobs``: what ``--profile profiles/slurm --dry-run`` (existing data) would submit:
  group jobs plus ungrouped jobs of rules that are not local rules (no cluster needed);
* ``local run``: ``snakemake --cores N`` end to end (synthetic layout, data written by the
  workflow), for the sizes given with ``--run`` (default 14; 100 patients take about 45 min on
  2 cores, 500 about 4 h), with seconds per job by rule from Snakemake's log.

Per-sample sizes are the tiny preset's (300 cells per biopsy, cfDNA depth 200, 20,000 bulk
reads, ...) on the default preset's design, so a run measures the workflow's per-job cost, not
the analyses on large files; the reference genome grows with the cohort (the cfDNA panel needs
about 1 kb of genome per variant site). ctDNA runs with the panel-of-normals background
(``ctdna.background: normals``, three synthetic normals) on tumour-informed per-patient plasma
panels (``plasma_panel: patient``): with the cohort background every plasma sample is counted
at every patient's sites, a cost that grows as patients x patients by design (docs/ctdna.md).

Every timing is wall clock and CPU (user + system of the Snakemake process and its children),
the median of ``--repeats`` for dry runs.

Prints a Markdown table; with ``--docs`` writes it into docs/cluster.md between the
``<!-- scaling:begin -->`` and ``<!-- scaling:end -->`` markers (appended if absent).

Usage::

    .venv/bin/python benchmarks/scaling.py [--sizes 14 100 500] [--run 14] [--cores 2]
        [--repeats 3] [--folder DIR] [--docs]

Work folders (default: $TMPDIR/carmscope-scaling) keep every log and scaling.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import yaml

from carmscope.synthetic.design import params_from_config, plasma_normals
from carmscope.workflow_files import local_rules, rule_files, synthetic_workdir_config

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOCS = REPO / "docs/cluster.md"
BEGIN, END = "<!-- scaling:begin -->", "<!-- scaling:end -->"
PROGRESS_SECONDS = 30.0

# Per-sample sizes of the tiny preset, on the default preset's design.
SMALL_SAMPLES = {
    "cells_per_biopsy": 300,
    "median_umis_per_cell": 2500,
    "n_background_genes": 2000,
    "host_reads_per_cell": 10,
    "bulk_reads": 20_000,
    "cfdna_depth": 200,
    "n_plasma_normals": 3,
    "plasma_panel": "patient",
}
VARIANTS_PER_PATIENT = 8  # default preset
CONTIG_LENGTH = 60_000  # default preset
BP_PER_SITE = 1_000  # sites are >= 500 bp apart and drawn at random: leave room


def reference_contigs(n_patients: int) -> int:
    """Contigs of the synthetic reference that leave room for the cohort's variant panel."""
    usable = CONTIG_LENGTH - 2_000
    return max(3, math.ceil(n_patients * VARIANTS_PER_PATIENT * BP_PER_SITE / usable))


def synthetic_overrides(n_patients: int) -> dict[str, int]:
    return {
        "n_patients": n_patients,
        "reference_contigs": reference_contigs(n_patients),
        **SMALL_SAMPLES,
    }


def write_workdir(workdir: Path, n_patients: int, layout: str) -> Path:
    """Tables and config for one cohort in ``workdir``.

    layout "synthetic": data under cohort/, written by the synthetic_* rules;
    layout "existing": data under data/, as empty placeholder files that already exist.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = "cohort" if layout == "synthetic" else "data"
    overrides = synthetic_overrides(n_patients)
    config = synthetic_workdir_config(workdir, REPO, "config/config.yaml", overrides, data_dir)
    # the normals of the cohort the tables were written from (the config's preset + overrides)
    cohort = params_from_config(config["synthetic"])
    normals = [f"{data_dir}/{path}" for path in plasma_normals(cohort)]
    config["ctdna"].update(background="normals", panel_of_normals=normals)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if layout == "existing":
        placeholders = [config["ctdna"].get("reference"), *normals]
        for table, columns in (
            ("samples", ("counts", "reads")),
            ("patients", ("tumor_variants",)),
        ):
            frame = pd.read_csv(workdir / f"tables/{table}.tsv", sep="\t", dtype=str)
            for column in columns:
                placeholders += [f"tables/{p}" for p in frame[column].dropna() if p]
        for path in filter(None, placeholders):
            target = workdir / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
            if target.suffix == ".bam":
                Path(f"{target}.bai").touch()
    return workdir


def process_cpu(pid: int) -> float | None:
    """CPU seconds of a running process and of the children it has reaped (and theirs):
    utime + stime + cutime + cstime from /proc; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # from field 3 (state) on
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def timed(
    command: list[str], log: Path, timeout: float, progress: Path | None = None
) -> dict[str, float | int]:
    """Run a command with output to ``log``: wall and CPU seconds, exit status.

    A command over ``timeout`` gets SIGTERM (Snakemake then stops its jobs and exits, so
    their CPU is counted) and status -1. With ``progress``, wall and CPU so far are written
    there every ``PROGRESS_SECONDS``: what is left of a run killed from outside.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
        while True:
            left = timeout - (time.perf_counter() - t0)
            try:
                status = process.wait(timeout=min(left, PROGRESS_SECONDS) if progress else left)
                break
            except subprocess.TimeoutExpired:
                if time.perf_counter() - t0 >= timeout:
                    process.terminate()
                    process.wait()
                    status = -1
                    break
                if progress and (cpu := process_cpu(process.pid)) is not None:
                    wall = time.perf_counter() - t0
                    progress.write_text(json.dumps({"wall": wall, "cpu": cpu}))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu, "status": status}


def snakemake(workdir: Path, *args: str) -> list[str]:
    return [
        str(BIN / "snakemake"),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        *args,
    ]


def job_count(log: Path) -> int | None:
    match = re.search(r"^total\s+(\d+)", log.read_text(), flags=re.MULTILINE)
    return int(match.group(1)) if match else None


def slurm_submissions(log: Path) -> int:
    """SLURM jobs a ``--profile profiles/slurm --dry-run`` plans: group jobs plus ungrouped
    jobs of rules that are not local rules (group members are indented in its output)."""
    text = log.read_text()
    local = local_rules(rule_files(REPO)) | {"all"}
    groups = len(re.findall(r"Group job \w+ \(", text))
    single = [name for name in re.findall(r"^rule (\w+):", text, re.MULTILINE) if name not in local]
    return groups + len(single)


def median_timing(command, log, repeats, timeout):
    runs = [timed(command, log, timeout) for _ in range(repeats)]
    failed = [run for run in runs if run["status"] != 0]
    if failed:
        tail = log.read_text()[-3000:]
        raise RuntimeError(f"{' '.join(command)} failed (see {log}):\n{tail}")
    return {
        "wall": statistics.median(run["wall"] for run in runs),
        "cpu": statistics.median(run["cpu"] for run in runs),
    }


def rule_seconds(logs: list[Path]) -> dict[str, tuple[int, float]]:
    """(jobs, wall seconds per job) by rule, from a local run's logs (1 s resolution; jobs
    a cut-short run did not finish are left out)."""
    per_rule = {}
    for log in logs:
        job_seconds(log, per_rule)
    return {name: (len(v), sum(v) / len(v)) for name, v in per_rule.items()}


def job_seconds(log: Path, per_rule: dict[str, list[float]]) -> None:
    """Add the wall seconds of every job finished in ``log`` to ``per_rule``."""
    starts = {}
    stamp = rule = None
    for line in log.read_text().splitlines():
        if match := re.fullmatch(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", line.strip()):
            stamp = datetime.strptime(match.group(1), "%a %b %d %H:%M:%S %Y")
        elif match := re.match(r"(?:local)?rule (\w+):", line):
            rule = match.group(1)
        elif (match := re.match(r"\s+jobid: (\d+)", line)) and rule:
            starts[match.group(1)] = (stamp, rule)
        elif (match := re.match(r"Finished jobid: (\d+)", line)) and match.group(1) in starts:
            start, name = starts.pop(match.group(1))
            per_rule.setdefault(name, []).append((stamp - start).total_seconds())


def local_run(folder: Path, workdir: Path, n: int, args) -> dict:
    """Run the cohort end to end; with ``args.resume``, continue a run cut short.

    A run may take longer than the machine stays up (500 patients on 2 cores: hours). Each
    start is a segment with its own log; ``n{n}.run_segments.json`` keeps the finished and
    cut-short segments (a segment killed from outside as of its last progress record, at
    most ``PROGRESS_SECONDS`` old) and the run's cost is their sum. That includes the jobs
    killed mid-way and redone and one DAG build per segment: a segmented run slightly
    overstates the cost of an uninterrupted one.
    """
    segments_file = folder / f"n{n}.run_segments.json"
    progress = folder / f"n{n}.run_progress.json"
    segments = []
    if args.resume and segments_file.exists():
        segments = json.loads(segments_file.read_text())
    if args.resume and progress.exists():
        cut_short = json.loads(progress.read_text())
        segments.append({**cut_short, "status": "killed", "log": f"n{n}.run.{len(segments)}.log"})
    progress.unlink(missing_ok=True)
    if not segments or segments[-1]["status"] != 0:
        if segments:  # a run killed from outside leaves its lock behind
            subprocess.run(snakemake(workdir, "--unlock"), check=True, capture_output=True)
        log = folder / f"n{n}.run.{len(segments)}.log"
        segments_file.write_text(json.dumps(segments, indent=1))
        run = timed(
            snakemake(
                workdir,
                "--cores",
                str(args.cores),
                "--rerun-incomplete" if segments else "--forceall",
            ),
            log,
            args.run_timeout,
            progress=progress,
        )
        progress.unlink(missing_ok=True)
        segments.append({**run, "log": log.name})
        segments_file.write_text(json.dumps(segments, indent=1))
        if run["status"] != 0:
            tail = log.read_text()[-3000:]
            raise RuntimeError(
                f"local run of {n} patients failed or timed out (--resume continues it):\n{tail}"
            )
    return {
        "run": {
            "wall": sum(segment["wall"] for segment in segments),
            "cpu": sum(segment["cpu"] for segment in segments),
            "segments": len(segments),
        },
        "run_rules": rule_seconds([folder / segment["log"] for segment in segments]),
    }


def measure(args) -> dict:
    folder = args.folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    python = platform.python_version()
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {python}",
        "date": datetime.now().strftime("%Y-%m-%d"),
        "cores": args.cores,
        "repeats": args.repeats,
        "sizes": {},
    }
    for n in args.sizes:
        row: dict = {"patients": n, "reference_contigs": reference_contigs(n)}
        synthetic = folder / f"n{n}"
        if not (args.resume and (synthetic / "config.yaml").exists()):
            # rewriting the tables of a run to be resumed would make Snakemake redo it
            write_workdir(synthetic, n, "synthetic")
        samples = pd.read_csv(synthetic / "tables/samples.tsv", sep="\t")
        row["samples"] = len(samples)
        if not args.no_dry_runs:
            log = folder / f"n{n}.dryrun.log"
            print(f"[scaling] {n} patients: parse and dry runs", file=sys.stderr, flush=True)
            row["parse"] = median_timing(
                snakemake(synthetic, "--list-rules"), folder / f"n{n}.parse.log", args.repeats, 600
            )
            row["dry_synthetic"] = median_timing(
                snakemake(synthetic, "--dry-run"), log, args.repeats, args.timeout
            )
            row["jobs"] = job_count(log)
            row["dry_synthetic_notemp"] = median_timing(
                snakemake(synthetic, "--dry-run", "--notemp"),
                folder / f"n{n}.dryrun_notemp.log",
                args.repeats,
                args.timeout,
            )
            existing = write_workdir(folder / f"n{n}_existing", n, "existing")
            existing_log = folder / f"n{n}.dryrun_existing.log"
            row["dry_existing"] = median_timing(
                snakemake(existing, "--dry-run"), existing_log, args.repeats, args.timeout
            )
            row["jobs_existing"] = job_count(existing_log)
            slurm_log = folder / f"n{n}.dryrun_slurm.log"
            row["dry_slurm"] = median_timing(
                snakemake(existing, "--profile", str(REPO / "profiles/slurm"), "--dry-run"),
                slurm_log,
                1,
                args.timeout,
            )
            row["slurm_jobs"] = slurm_submissions(slurm_log)
        if n in args.run:
            print(f"[scaling] {n} patients: local run", file=sys.stderr, flush=True)
            row.update(local_run(folder, synthetic, n, args))
        results["sizes"][n] = row
        print(json.dumps(row), file=sys.stderr, flush=True)
        # after every size: a long run cut short keeps the sizes it finished (--from-json)
        (folder / "scaling.json").write_text(json.dumps(results, indent=1))
    return results


def per_patient(value: float, n: int) -> str:
    return f"{value:.1f} ({value / n:.3f})"


def timing_cell(row: dict, n: int, key: str, clock: str) -> str:
    """Seconds (per patient) of one timing of a size, or "not run" (sizes measured in parts,
    e.g. a local run without dry runs)."""
    return per_patient(row[key][clock], n) if key in row else "not run"


def markdown(results: dict) -> str:
    sizes = results["sizes"]
    lines = [
        f"Measured {results['date']} on {results['machine']} (`benchmarks/scaling.py`; dry "
        f"runs: median of {results['repeats']}; local runs with `--cores "
        f"{results['cores']}`). Cells: seconds (seconds per patient). CPU is user + system "
        "of Snakemake and its jobs, which other load on the machine hardly changes; wall "
        "clock is given where it matters.",
        "",
        "| patients | samples | jobs (synthetic / existing data) | SLURM jobs "
        "| parse CPU | dry run CPU, synthetic | dry run CPU, synthetic, `--notemp` "
        "| dry run CPU, existing data | dry run wall, existing data "
        "| local run CPU | local run wall |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, row in sorted(sizes.items(), key=lambda item: int(item[0])):
        n = int(n)
        timings = [
            timing_cell(row, n, key, clock)
            for key, clock in (
                ("parse", "cpu"),
                ("dry_synthetic", "cpu"),
                ("dry_synthetic_notemp", "cpu"),
                ("dry_existing", "cpu"),
                ("dry_existing", "wall"),
                ("run", "cpu"),
                ("run", "wall"),
            )
        ]
        lines.append(
            f"| {n} | {row['samples']} | {row.get('jobs', '')} / {row.get('jobs_existing', '')} "
            f"| {row.get('slurm_jobs', '')} | " + " | ".join(timings) + " |"
        )
    runs = {int(n): row["run_rules"] for n, row in sizes.items() if row.get("run_rules")}
    if runs:
        ns = sorted(runs)
        rules = sorted({rule for table in runs.values() for rule in table})
        lines += [
            "",
            "Local runs, wall-clock seconds per job by rule (jobs in brackets):",
            "",
            "| rule | " + " | ".join(f"{n} patients" for n in ns) + " |",
            "|---|" + "---:|" * len(ns),
        ]
        for rule in rules:
            cells = []
            for n in ns:
                jobs, seconds = runs[n].get(rule, (0, 0.0))
                cells.append(f"{seconds:.1f} ({jobs})" if jobs else "")
            lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_docs(table: str) -> None:
    text = DOCS.read_text() if DOCS.exists() else ""
    block = f"{BEGIN}\n{table}{END}"
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOCS.write_text(text)


def merged(paths: list[Path]) -> dict:
    """Earlier results, for example a long size measured on its own: the last file's header
    (machine, date, settings), every file's sizes (a later file's figures win). ``repeats``
    comes from the last file with dry runs: a file of local runs only has none to repeat."""
    results = [json.loads(path.read_text()) for path in paths]
    sizes: dict[str, dict] = {}
    for result in results:
        for n, row in result["sizes"].items():
            sizes.setdefault(n, {}).update(row)
    with_dry_runs = [
        result
        for result in results
        if any("dry_existing" in row for row in result["sizes"].values())
    ]
    repeats = (with_dry_runs or results)[-1]["repeats"]
    return {**results[-1], "repeats": repeats, "sizes": sizes}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[14, 100, 500])
    parser.add_argument("--run", type=int, nargs="*", default=[14], help="sizes to run locally")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=1800, help="per dry run, seconds")
    parser.add_argument("--run-timeout", type=float, default=3600, help="per local run")
    parser.add_argument(
        "--folder", type=Path, default=Path(tempfile.gettempdir()) / "carmscope-scaling"
    )
    parser.add_argument(
        "--no-dry-runs", action="store_true", help="only the local runs (--run sizes)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue local runs cut short, in the same --folder (see local_run)",
    )
    parser.add_argument("--docs", action="store_true", help="write the table to docs/cluster.md")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        help="only format earlier scaling.json files (a later file's values win for a size)",
    )
    args = parser.parse_args(argv)
    results = merged(args.from_json) if args.from_json else measure(args)
    table = markdown(results)
    print(table)
    if args.docs:
        write_docs(table)


if __name__ == "__main__":
    main()
