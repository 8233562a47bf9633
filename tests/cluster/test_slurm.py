"""The workflow on a real SLURM cluster, through Snakemake's SLURM executor plugin (issue 6).

The cluster is a single node that tools/slurm/start_local_cluster.sh starts from Debian's packages
(slurmctld, slurmd, munge, slurmdbd with a local MariaDB, so `sacct` works as on a real cluster).
That needs root and installs packages, so these tests are marked `slurm` (left out of `make test`)
and run with `make test-slurm` (which .ci/run calls after `make test`); they also need
CARMSCOPE_TEST_SLURM=1 (the make target sets it) and skip, saying why, when it is not set or the
machine cannot host the cluster (not root, not Debian, no apt-get, packages not installable).
Every daemon the tests started is stopped at the end, also when a test fails; every Snakemake
run has a time limit.

The tiny synthetic cohort runs once locally and once with `--profile profiles/slurm`: every TSV
under results/ must be the same, the jobs must show up in SLURM's accounting, and a job that fails
in SLURM must fail the run, with the rule's log, in bounded time.

The cluster policy that needs no cluster (resources, groups, local rules, profiles) is tested in
test_profiles.py, in the default selection.
"""

import fcntl
import gzip
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import yaml

from carmscope.vocabulary import BLOOD_MEASURE_ASSAYS
from carmscope.workflow_files import synthetic_workdir_config

pytestmark = [pytest.mark.integration, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
START = REPO / "tools/slurm/start_local_cluster.sh"
STOP = REPO / "tools/slurm/stop_local_cluster.sh"
SLURM_PROFILE = REPO / "profiles/slurm"
STATE_DIR = Path(os.environ.get("CARMSCOPE_SLURM_STATE", "/run/carmscope-slurm"))
LOCK = Path("/run/carmscope-slurm-tests.lock")
ENABLE = "CARMSCOPE_TEST_SLURM"

RUN_TIMEOUT = 1500  # seconds for a whole run of the tiny cohort
# `--cores` of the SLURM runs: every job, group jobs included, asks for one CPU, so two jobs
# share the 2-CPU test node (a group job asks for `cores` CPUs but runs its members one after
# another). The local run uses 2 cores: results must not depend on threads.
SLURM_CORES = "1"
FAIL_TIMEOUT = 300  # seconds for the run with a failing job
FAIL_BOUND = 240  # ... which must end (non-zero) within this
# Test-only plugin settings: status checks start 2 s after a submission (not 20 s), the plugin
# keeps the SLURM log of successful jobs too, as evidence, and does not guess an account (the
# flag has no effect in plugin 2.8.0, whose guess fails harmlessly: docs/cluster.md).
TEST_SLURM_ARGS = [
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-keep-successful-logs",
    "--slurm-no-account",
]


def report(request, message):
    """Lines on the terminal, also while pytest captures output (timings for the CI log)."""
    text = "\n".join(f"[slurm] {line}" for line in str(message).strip().splitlines())
    capture = request.config.pluginmanager.getplugin("capturemanager")
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if capture is None or reporter is None:
        print(text, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in text.splitlines():
            reporter.write_line(line)


# ------------------------------------------------------------------------------ the cluster


def why_no_slurm():
    if os.environ.get(ENABLE) != "1":
        return (
            f"set {ENABLE}=1 to run the workflow on a real single-node SLURM (needs root on "
            "Debian; installs SLURM packages and starts daemons; `make test-slurm` sets it)"
        )
    if os.geteuid() != 0:
        return "needs root: tools/slurm/start_local_cluster.sh installs packages, starts daemons"
    if not Path("/etc/debian_version").exists() or shutil.which("apt-get") is None:
        return "needs Debian (apt-get and Debian's slurm-wlm packages)"
    return None


def recorded_daemons():
    """Daemons the start script started and the stop script would stop (by their pid files)."""
    return {path.stem for path in STATE_DIR.glob("*.pid")}


def stop_daemons(request, names):
    if not names:
        return
    try:
        result = subprocess.run(
            [str(STOP), *sorted(names)], capture_output=True, text=True, timeout=180
        )
        report(request, result.stdout + result.stderr)
    except subprocess.TimeoutExpired:
        report(request, f"stop_local_cluster.sh {' '.join(sorted(names))} timed out")


@dataclass
class Cluster:
    cpus: int
    started: set


def exclusive_cluster(request, wait=900):
    """A lock held while these tests use the cluster: another test session on this machine
    waits (at most `wait` seconds, then skips) instead of stopping daemons under it."""
    handle = open(LOCK, "w")  # noqa: SIM115 (closed with the fixture)
    deadline = time.monotonic() + wait
    for attempt in range(10**6):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return handle
        except BlockingIOError:
            if time.monotonic() > deadline:
                handle.close()
                pytest.skip(f"another test session has used the SLURM cluster for {wait} s")
            if attempt == 0:
                report(request, f"waiting for another test session to release {LOCK}")
            time.sleep(5)


@pytest.fixture(scope="module")
def slurm_cluster(request):
    reason = why_no_slurm()
    if reason:
        pytest.skip(reason)
    lock = exclusive_cluster(request)
    before = recorded_daemons()
    started = set()
    t0 = time.monotonic()
    try:
        try:
            result = subprocess.run([str(START)], capture_output=True, text=True, timeout=900)
        except subprocess.TimeoutExpired as error:
            pytest.fail(f"start_local_cluster.sh did not finish in 900 s:\n{error.stdout}")
        finally:
            started = recorded_daemons() - before
        output = result.stdout + result.stderr
        if result.returncode == 3:
            pytest.skip(f"this machine cannot host the SLURM test cluster: {output.strip()[-300:]}")
        assert result.returncode == 0, f"start_local_cluster.sh failed:\n{output[-5000:]}"
        report(request, output)
        report(
            request,
            f"cluster up in {time.monotonic() - t0:.1f} s; daemons started by the tests: "
            f"{', '.join(sorted(started)) or 'none (already running)'}",
        )
        cpus = int(slurm_command("sinfo", "-h", "-o", "%c").split()[0].rstrip("+"))
        yield Cluster(cpus=cpus, started=started)
    finally:
        stop_daemons(request, started)
        lock.close()


def slurm_command(*args):
    result = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"{' '.join(args)} failed: {result.stderr}"
    return result.stdout


def sacct_jobs(run_id, since):
    """(job id, state, comment) of the jobs of one Snakemake run (its SLURM job name)."""
    return [(job, state, comment) for job, state, _, comment in sacct_records(run_id, since)]


def sacct_records(run_id, since):
    """(job id, state, time limit, comment) of the jobs of one Snakemake run."""
    out = slurm_command(
        "sacct",
        "-X",
        "--parsable2",
        "--noheader",
        "--format=JobIdRaw,State,Timelimit,Comment%300",
        f"--starttime={since:%Y-%m-%dT%H:%M:%S}",
        "--endtime=now",
        f"--name={run_id}",
    )
    return [tuple(line.split("|", 3)) for line in out.splitlines() if line.strip()]


# ------------------------------------------------------------------------------- the runs


def write_workdir(workdir, data_dir="cohort"):
    """Tables of the tiny cohort (data under data_dir) and a config for them, in workdir:
    config/test/config.yaml made local to it (workflow_files.synthetic_workdir_config)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = synthetic_workdir_config(workdir, REPO, "config/test/config.yaml", data_dir=data_dir)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir


def snakemake_command(tool, workdir, *args):
    return [
        tool("snakemake"),
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        *args,
    ]


@dataclass
class Run:
    workdir: Path
    returncode: int
    output: str
    seconds: float
    started: datetime


class Snakemake:
    """A Snakemake run in its own process group, output to a log file."""

    def __init__(self, command, workdir, log_path):
        self.workdir, self.log_path = workdir, log_path
        self.log = open(log_path, "w")  # noqa: SIM115 (closed in finish)
        self.started, self.t0, self.seconds = datetime.now(), time.monotonic(), None
        self.process = subprocess.Popen(
            command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def done(self):
        if self.seconds is None and self.process.poll() is not None:
            self.seconds = time.monotonic() - self.t0
        return self.seconds is not None

    def stop(self):
        """Interrupt (Snakemake then cancels its SLURM jobs); kill 60 s later."""
        for sig, grace in ((signal.SIGINT, 60), (signal.SIGKILL, 30)):
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(timeout=grace)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue

    def result(self):
        self.log.close()
        output = Path(self.log_path).read_text()
        return Run(self.workdir, self.process.returncode, output, self.seconds, self.started)


def finish(runs, timeout):
    """Wait for all runs; past the time limit stop those still running and fail. Runs are
    stopped also if the wait itself is interrupted."""
    deadline = time.monotonic() + timeout
    try:
        while not all(run.done() for run in runs) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        late = [run for run in runs if not run.done()]
        for run in late:
            run.stop()
    results = [run.result() for run in runs]
    if late:
        pytest.fail(
            f"snakemake did not finish within {timeout} s; last output:\n"
            + "\n".join(result.output[-4000:] for result in results)
        )
    return results


@pytest.fixture(scope="module")
def runs(request, slurm_cluster, tmp_path_factory, tool):
    """The tiny cohort run locally and through SLURM, at the same time (the SLURM run spends
    much of its time waiting on the scheduler)."""
    base = tmp_path_factory.mktemp("slurm_workflow")
    local_dir = write_workdir(base / "local")
    slurm_dir = write_workdir(base / "slurm")
    local = Snakemake(
        snakemake_command(tool, local_dir, "--cores", "2"), local_dir, base / "local.log"
    )
    slurm = Snakemake(
        snakemake_command(
            tool,
            slurm_dir,
            "--profile",
            str(SLURM_PROFILE),
            "--cores",
            SLURM_CORES,
            *TEST_SLURM_ARGS,
        ),
        slurm_dir,
        base / "slurm.log",
    )
    local_run, slurm_run = finish([local, slurm], RUN_TIMEOUT)
    report(request, f"local run: {local_run.seconds:.0f} s (exit {local_run.returncode})")
    report(request, f"SLURM run: {slurm_run.seconds:.0f} s (exit {slurm_run.returncode})")
    assert local_run.returncode == 0, local_run.output[-5000:]
    assert slurm_run.returncode == 0, slurm_run.output[-8000:]
    return local_run, slurm_run


# ---------------------------------------------------------------------------- comparison

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def result_tables(workdir):
    results = workdir / "results"
    return {
        path.relative_to(results).as_posix(): path
        for path in results.rglob("*")
        if path.is_file() and path.name.endswith((".tsv", ".tsv.gz"))
    }


def read_table(path, workdir):
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if path.name.endswith(".gz") else raw).decode()
    for prefix in {str(workdir), str(workdir.resolve())}:
        text = text.replace(prefix, "<workdir>")
    # MultiQC custom-content tables begin with '#' header lines (their section's metadata)
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return pd.read_csv(io.StringIO("".join(lines)), sep="\t", dtype=str, keep_default_na=False)


def volatile_columns(*tables):
    """Columns holding timestamps or absolute paths outside the workdir: not compared."""
    columns = set()
    for table in tables:
        for column in table.columns:
            values = table[column].astype(str)
            if values.str.contains(TIMESTAMP).any() or values.str.startswith("/").any():
                columns.add(column)
    return columns


def same_values(a, b):
    if a.equals(b):
        return True
    numeric_a = a.apply(pd.to_numeric, errors="coerce")
    numeric_b = b.apply(pd.to_numeric, errors="coerce")
    text_equal = (a == b) | (numeric_a.notna() & numeric_b.notna())
    close = (numeric_a - numeric_b).abs() <= 1e-9 * (1 + numeric_b.abs())
    return bool(text_equal.all().all() and (close | numeric_a.isna()).all().all())


def test_results_equal_those_of_the_local_run(request, runs):
    local, slurm = runs
    local_tables, slurm_tables = result_tables(local.workdir), result_tables(slurm.workdir)
    assert set(local_tables) == set(slurm_tables), (
        f"only local: {sorted(set(local_tables) - set(slurm_tables))}; "
        f"only SLURM: {sorted(set(slurm_tables) - set(local_tables))}"
    )
    samples = pd.read_csv(slurm.workdir / "tables/samples.tsv", sep="\t", dtype=str)
    # every sample's inspection: its own row, or (a blood draw) its patient's draws' file
    draws = samples["assay"].isin(BLOOD_MEASURE_ASSAYS)
    inspected = {f"qc/inputs/{sample}.tsv" for sample in samples.loc[~draws, "sample_id"]}
    inspected |= {f"qc/inputs/blood/{p}.tsv" for p in samples.loc[draws, "patient_id"]}
    assert draws.any() and inspected <= set(slurm_tables)

    differing, skipped = [], []
    for name in sorted(local_tables):
        a = read_table(local_tables[name], local.workdir)
        b = read_table(slurm_tables[name], slurm.workdir)
        volatile = volatile_columns(a, b)
        skipped += [f"{name}:{column}" for column in sorted(volatile)]
        if list(a.columns) != list(b.columns) or a.shape != b.shape:
            differing.append(f"{name}: columns or shape differ")
        elif not same_values(a.drop(columns=volatile), b.drop(columns=volatile)):
            differing.append(name)
    report(
        request,
        f"compared {len(local_tables)} tables under results/; columns left out (timestamps, "
        f"absolute paths): {', '.join(skipped) or 'none'}",
    )
    assert not differing, f"SLURM results differ from the local run's: {differing}"


def test_jobs_ran_through_slurm(request, runs):
    local, slurm = runs
    run_id = re.search(r"SLURM run ID: (\S+)", slurm.output)
    assert run_id, slurm.output[-3000:]
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", slurm.output))
    assert submitted, "no job was submitted to SLURM"

    jobs = sacct_jobs(run_id.group(1), slurm.started - timedelta(minutes=5))
    accounted = {job_id: state for job_id, state, _ in jobs}
    assert submitted <= set(accounted), f"not in sacct: {submitted - set(accounted)}"
    assert all(accounted[job] == "COMPLETED" for job in submitted), jobs

    # Every rule of the local run that is not a localrule here ran in SLURM, alone or in a
    # group job: the plugin names rule (or group and rules) in the job's comment.
    local_run_rules = set(re.findall(r"^localrule (\w+):", local.output, flags=re.MULTILINE))
    local_rules = set(re.findall(r"^localrule (\w+):", slurm.output, flags=re.MULTILINE))
    comments = " ".join(comment for _, _, comment in jobs)
    through_slurm = local_run_rules - local_rules
    missing = {rule for rule in through_slurm if rule not in comments}
    assert not missing, f"rules not seen in SLURM job comments: {missing}\n{jobs}"
    # ... and the plugin kept one log per SLURM job (--slurm-keep-successful-logs).
    slurm_logs = list((slurm.workdir / ".snakemake/slurm_logs").rglob("*.log"))
    assert len(slurm_logs) == len(submitted), slurm_logs
    groups = sorted({c.split("_wildcards_")[0] for _, _, c in jobs if "_wildcards_" not in c})
    report(
        request,
        f"{len(submitted)} SLURM jobs, all COMPLETED in sacct, for rules "
        f"{', '.join(sorted(through_slurm))}; jobs without wildcards (cohort-level or group "
        f"jobs): {', '.join(groups)}; local rules: {', '.join(sorted(local_rules))}",
    )


def test_failing_job_fails_the_run_with_its_log(request, runs, slurm_cluster, tool):
    """A corrupt BAM makes inspect_inputs fail inside SLURM: the run must end non-zero, in
    bounded time, after a retry, and show the rule's log."""
    _, slurm = runs
    workdir = slurm.workdir.parent / "failing"
    write_workdir(workdir, data_dir="data")
    shutil.copytree(slurm.workdir / "cohort", workdir / "data")
    # strict: inspection itself fails on the corrupt file (by default it records the problem
    # and the sample's analyses stop with it)
    with open(workdir / "config.yaml", "a") as config:
        config.write("strict: true\n")
    samples = pd.read_csv(workdir / "tables/samples.tsv", sep="\t", keep_default_na=False)
    sample = samples[(samples["assay"] == "scrna") & (samples["reads"] != "")].iloc[0]
    bam = workdir / "tables" / sample["reads"]
    with open(bam, "r+b") as handle:
        handle.truncate(64)

    target = f"results/qc/inputs/{sample['sample_id']}.tsv"
    # One retry, not the profile's two: the plugin lengthens its status-check interval by 10 s
    # after each check that sees no job complete, so every further failed attempt costs more.
    command = snakemake_command(
        tool,
        workdir,
        "--profile",
        str(SLURM_PROFILE),
        "--cores",
        SLURM_CORES,
        *TEST_SLURM_ARGS,
        "--retries",
        "1",
        target,
    )
    (run,) = finish([Snakemake(command, workdir, workdir / "run.log")], FAIL_TIMEOUT)
    report(request, f"run with a failing SLURM job ended in {run.seconds:.0f} s")
    assert run.returncode != 0, run.output[-5000:]
    assert run.seconds < FAIL_BOUND, f"took {run.seconds:.0f} s"
    assert not (workdir / target).exists()
    assert re.search(r"Error in (rule inspect_inputs|group inspect)", run.output), run.output[
        -5000:
    ]

    rule_log = workdir / f"logs/inspect_inputs/{sample['sample_id']}.log"
    assert rule_log.exists(), run.output[-5000:]
    last_line = [line for line in rule_log.read_text().splitlines() if line.strip()][-1]
    assert last_line.strip() in run.output, (
        f"the rule's log is not shown; its last line: {last_line!r}\n{run.output[-5000:]}"
    )

    run_id = re.search(r"SLURM run ID: (\S+)", run.output).group(1)
    records = sacct_records(run_id, run.started - timedelta(minutes=5))
    states = [state for _, state, _, _ in records]
    assert states == ["FAILED", "FAILED"], f"expected the job and its retry to fail: {records}"
    # the retry asked for more time: runtime grows with attempt (wiring.resources.scaled)
    minutes = [minutes_of(limit) for _, _, limit, _ in records]
    assert minutes[1] > minutes[0], f"time limits of the two attempts: {records}"


def minutes_of(limit):
    """Minutes of a SLURM time limit ([D-]HH:MM:SS or MM:SS)."""
    days, _, clock = limit.rpartition("-")
    parts = [int(part) for part in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return (int(days or 0) * 24 + hours) * 60 + minutes + seconds / 60
