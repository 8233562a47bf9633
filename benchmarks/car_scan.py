"""Benchmark of the CAR scan against ``samtools view -c`` on the same BAM.

Builds (once, then reuses) a 10x-style BAM of at least 2 million reads with
:func:`carmscope.synthetic.benchmark_bam.write_benchmark_bam`, its index and a BED of the host loci
(CD8A, CD247), then times in one run, with hyperfine when it is installed (else repeated
wall-clock timings):

* ``samtools view -c`` (single-threaded, and with ``-@`` threads for reference);
* the CAR scan single-threaded and with threads (``python -m carmscope.car scan --per-cell``);
* the CAR scan in targeted mode (unmapped reads and soft-clipped reads in the host loci).

It prints each command's mean time and its ratio to single-threaded samtools, and checks that
every mode finds the same CAR reads. It also times the scan inside one Python process after a
warm-up, which leaves out start-up (Python and imports): the cost per read
that dominates on real, larger BAMs.

Usage::

    .venv/bin/python benchmarks/car_scan.py [--reads 2000000] [--folder DIR] [--threads 2]

Needs Debian's samtools (``apt-get install -y samtools``); hyperfine is optional
(``apt-get install -y hyperfine``). Results are in ``docs/car_detection.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED = 508
MIN_READS = 2_000_000


def build_bam(folder: Path, n_reads: int) -> tuple[Path, Path]:
    """The benchmark BAM (+ index) and the host-loci BED, built unless already there."""
    sys.path.insert(0, str(REPO / "src"))
    from carmscope.construct import read_construct
    from carmscope.synthetic.benchmark_bam import write_benchmark_bam
    from carmscope.synthetic.host_transcripts import host_transcripts

    path = folder / f"benchmark_{n_reads}.bam"
    bed = folder / "host_loci.bed"
    construct = read_construct()
    hosts = host_transcripts(SEED, construct)
    if not (path.exists() and Path(f"{path}.bai").exists()):
        print(f"writing {path} ({n_reads:,} reads; a few minutes)", file=sys.stderr, flush=True)
        truth = write_benchmark_bam(path, n_reads, construct, hosts, SEED)
        truth.to_csv(folder / f"benchmark_{n_reads}.truth.tsv", sep="\t", index=False)
    bed.write_text("".join(f"{name}\t0\t{len(hosts[name])}\n" for name in ("CD8A", "CD247")))
    return path, bed


def commands(bam: Path, bed: Path, threads: int) -> dict[str, str]:
    """The timed commands by label."""
    scan = f"{shlex.quote(sys.executable)} -m carmscope.car scan {shlex.quote(str(bam))} --per-cell"
    return {
        "samtools view -c": f"samtools view -c {bam}",
        f"samtools view -c -@ {threads}": f"samtools view -c -@ {threads} {bam}",
        "car scan, 1 thread": f"{scan} --threads 1",
        f"car scan, {threads} threads": f"{scan} --threads {threads}",
        "car scan, targeted": f"{scan} --targeted --bed {bed}",
    }


Timing = tuple[float, float, float, float]
"""Mean, median and fastest wall-clock seconds and mean CPU (user + system) seconds."""


def run_hyperfine(labelled: dict[str, str], runs: int, folder: Path) -> dict[str, Timing]:
    """Timings of each command by hyperfine (one warm-up run first)."""
    export = folder / "hyperfine.json"
    arguments = ["hyperfine", "--warmup", "1", "--runs", str(runs), "--export-json", str(export)]
    for label, command in labelled.items():
        arguments += ["--command-name", label, command]
    subprocess.run(arguments, check=True, env=_environment())
    results = json.loads(export.read_text())["results"]
    return {
        result["command"]: (
            result["mean"],
            result["median"],
            result["min"],
            result["user"] + result["system"],
        )
        for result in results
    }


def run_timed(labelled: dict[str, str], runs: int) -> dict[str, Timing]:
    """Timings of each command, runs interleaved, after a warm-up (no hyperfine)."""
    walls: dict[str, list[float]] = {label: [] for label in labelled}
    cpus: dict[str, list[float]] = {label: [] for label in labelled}
    for round_number in range(runs + 1):
        for label, command in labelled.items():
            before = os.times()
            start = time.perf_counter()
            subprocess.run(
                shlex.split(command), check=True, capture_output=True, env=_environment()
            )
            wall = time.perf_counter() - start
            after = os.times()
            if round_number:
                walls[label].append(wall)
                cpus[label].append(
                    after.children_user
                    - before.children_user
                    + after.children_system
                    - before.children_system
                )
    return {
        label: (
            statistics.mean(walls[label]),
            statistics.median(walls[label]),
            min(walls[label]),
            statistics.mean(cpus[label]),
        )
        for label in labelled
    }


def _environment() -> dict[str, str]:
    """The commands' environment: the source tree's package, with its bytecode as installed.

    ``PYTHONDONTWRITEBYTECODE`` is dropped (some sandboxes set it): with it every command would
    compile carmscope's modules from source, about 20 ms that no installed package pays.
    """
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**environment, "PYTHONPATH": str(REPO / "src")}


def compile_bytecode() -> None:
    """Compile the package's bytecode once, as ``pip install`` does, before anything is timed."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(REPO / "src" / "carmscope")],
        check=True,
        env=_environment(),
    )


def check_agreement(labelled: dict[str, str]) -> str:
    """The CAR scan's output, identical in every mode (else an error)."""
    outputs = {
        label: subprocess.run(
            shlex.split(command), check=True, capture_output=True, text=True, env=_environment()
        ).stdout
        for label, command in labelled.items()
        if label.startswith("car scan")
    }
    lines = {label: output.splitlines()[1].split("\t")[3:] for label, output in outputs.items()}
    if len({tuple(values) for values in lines.values()}) != 1:
        raise SystemExit(f"CAR scan modes disagree: {lines}")
    return next(iter(outputs.values()))


def in_process(bam: Path, threads: int, runs: int) -> dict[str, Timing]:
    """Timings of the scan itself inside this process (1 and ``threads`` threads), after a
    warm-up: no start-up."""
    from carmscope.car.kmers import build_index
    from carmscope.car.scan import ScanSettings, scan_reads
    from carmscope.construct import read_construct

    index = build_index([read_construct()])
    scan_reads(bam, index, ScanSettings(per_cell=True))
    timings = {}
    for count in (1, threads):
        walls, cpus = [], []
        for _ in range(runs):
            cpu, start = time.process_time(), time.perf_counter()
            scan_reads(bam, index, ScanSettings(per_cell=True, threads=count))
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
        label = f"car scan in-process, {count} thread{'s' if count > 1 else ''}"
        timings[label] = (
            statistics.mean(walls),
            statistics.median(walls),
            min(walls),
            statistics.mean(cpus),
        )
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=MIN_READS)
    parser.add_argument("--folder", default=str(Path(tempfile.gettempdir()) / "carmscope-bench"))
    parser.add_argument("--threads", type=int, default=max(2, os.cpu_count() or 2))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    if args.reads < MIN_READS:
        parser.error(f"--reads must be at least {MIN_READS:,}")
    if shutil.which("samtools") is None:
        raise SystemExit("samtools not found: apt-get install -y samtools")
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    bam, bed = build_bam(folder, args.reads)
    labelled = commands(bam, bed, args.threads)
    compile_bytecode()
    print(check_agreement(labelled), end="")
    load_before = os.getloadavg()
    if shutil.which("hyperfine"):
        means = run_hyperfine(labelled, args.runs, folder)
    else:
        means = run_timed(labelled, args.runs)
    means.update(in_process(bam, args.threads, args.runs))
    load_after = os.getloadavg()
    reference = means["samtools view -c"]
    print(f"\nBAM: {bam} ({bam.stat().st_size / 1e6:.0f} MB), cores: {os.cpu_count()}")
    print(f"load average (1 min) before: {load_before[0]:.1f}, after: {load_after[0]:.1f}")
    statistics_names = ("mean", "median", "fastest", "CPU")
    header = " | ".join(f"{name} (s) | x samtools" for name in statistics_names)
    print(f"| command | {header} |")
    print("|---|" + "---:|---:|" * len(statistics_names))
    for label, timing in means.items():
        pairs = zip(timing, reference, strict=True)
        cells = [f"{value:.2f} | {value / base:.2f}" for value, base in pairs]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
