"""Benchmark: carmscope's allele counting beside ``bcftools mpileup -a AD`` on the same sites.

The issue's yardstick: 200 tumour variants x 6 plasma samples at 2,000x unique depth, counted by
``carmscope.ctdna.alleles.count_alleles`` (what the workflow's ctdna_count_alleles jobs run)
and by ``bcftools mpileup -a AD`` restricted to the same sites, timed in one hyperfine run.
Our counting should take at most 1.5x bcftools' time.

    python benchmarks/ctdna_counting.py [--folder DIR] [--runs 3]

The data are simulated once into ``--folder`` (default ``$TMPDIR/carmscope-ctdna-counting``,
~400 MB, kept between runs) with the synthetic cohort's cfDNA generator: two patients with 100 SNVs
each (a 200-variant panel), three plasma samples each, Poisson(2,000) unique fragments per
site, 15% of fragments with marked duplicates, 2x100 bp reads. Both tools read every BAM in
turn, one process for ours (as one job per sample would, minus the job start-up) and one
``bcftools`` call per BAM; both apply the same filters (MAPQ >= 20, base quality >= 20,
duplicates/secondary/supplementary/QC-fail reads skipped, no BAQ, no depth cap). Needs
``hyperfine`` and ``bcftools`` on the PATH (Debian: ``apt-get install hyperfine bcftools``);
without them the two commands are timed here with ``time.perf_counter`` and bcftools falls
back to pysam's bundled copy (slower than Debian's build, so the ratio then flatters us).

Job start-up: ``startup --bam B --panel P --against SRC`` times, in one hyperfine run, what one
``ctdna_count_alleles`` job does (start Python, import what the job script imports, read the
panel, count one small plasma BAM, write the table; the ``job`` action) with this checkout's
``src`` and with another checkout's (``SRC``, e.g. commit 173f41e, before the shared core;
``--against-path`` adds folders to its ``PYTHONPATH``, e.g. a ``pip install --target`` of the
JIT compiler that commit needs: ``CHANGELOG.md``, issue 14), and checks that both write the
same table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS_PER_PATIENT = 100
PATIENTS = 2
TEMPLATE = 3  # a synthetic template with three plasma samples (days 0, 8, 29)
DEPTH = 2000
MPILEUP_OPTIONS = [
    "--annotate", "AD",
    "--min-MQ", "20",
    "--min-BQ", "20",
    "--ff", "UNMAP,SECONDARY,QCFAIL,DUP,SUPPLEMENTARY",
    "--no-BAQ",
    "--max-depth", "100000000",
    "--delta-BQ", "255",
    "--max-BQ", "255",
    "--skip-indels",
    "--no-version",
    "--output-type", "v",
]  # fmt: skip
"""The options of the bcftools oracle of the tests (``tests/bcftools_oracle.py``; same filters
as ours)."""


def simulate(folder: Path) -> None:
    """Reference, 200-variant panel and six 2,000x plasma BAMs (skipped when present)."""
    from carmscope.synthetic import genome, plasma_bam, tumour_variants
    from carmscope.synthetic.design import CohortParams, design_cohort

    if (folder / "done").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    params = CohortParams(
        n_patients=PATIENTS,
        templates=(TEMPLATE,) * PATIENTS,
        variants_per_patient=VARIANTS_PER_PATIENT,
        indels_per_patient=0,  # bcftools mpileup -a AD with -I counts SNVs only
        cfdna_depth=DEPTH,
        reference_contigs=4,
        reference_contig_length=100_000,
    )
    patients = design_cohort(params)
    contigs = genome.make_reference(params)
    genome.write_reference(folder / "genome.fa", contigs)
    panel = tumour_variants.design_variants(patients, contigs, params)
    panel[["chrom", "pos", "ref", "alt"]].to_csv(folder / "panel.tsv", sep="\t", index=False)
    order = {chrom: i for i, chrom in enumerate(contigs)}
    sites = panel[["chrom", "pos"]].drop_duplicates()
    sites = sites.assign(order=sites["chrom"].map(order)).sort_values(["order", "pos"])
    sites[["chrom", "pos", "pos"]].to_csv(folder / "sites.tsv", sep="\t", header=False, index=False)
    for patient in patients:
        for sample in patient.samples:
            if sample.assay == "cfdna":
                bam = folder / f"{sample.sample_id}.bam"
                print(f"simulating {bam.name}", file=sys.stderr, flush=True)
                plasma_bam.write_plasma_bam(bam, sample, patient, panel, contigs, params)
    (folder / "done").touch()


def bams(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.bam"))


def count(folder: Path, pysam_path: bool = False) -> None:
    """What the ctdna_count_alleles jobs do, for every BAM: count the panel, write a TSV.

    ``pysam_path`` counts with the pysam engine (``engine="pysam"``), the counting as it was
    before the record scan: the same rules and tables.
    """
    import pandas as pd

    from carmscope.ctdna import alleles

    engine = "pysam" if pysam_path else "records"
    panel = pd.read_csv(folder / "panel.tsv", sep="\t", dtype={"chrom": str})
    out = folder / ("counts-pysam" if pysam_path else "counts")
    out.mkdir(exist_ok=True)
    for bam in bams(folder):
        table = alleles.count_alleles(bam, panel, engine=engine)
        table.to_csv(out / f"{bam.stem}.tsv", sep="\t", index=False)


def bcftools_command(folder: Path) -> str:
    """One ``bcftools mpileup`` per BAM, in one shell command."""
    executable = shutil.which("bcftools")
    if executable is None:  # pysam's bundled bcftools, through this script
        prefix = f"{shlex.quote(sys.executable)} {shlex.quote(__file__)} pysam-mpileup"
    else:
        prefix = shlex.quote(executable) + " mpileup"
    options = " ".join(shlex.quote(o) for o in MPILEUP_OPTIONS)
    calls = [
        f"{prefix} {options} --fasta-ref {folder / 'genome.fa'} --regions-file "
        f"{folder / 'sites.tsv'} --output /dev/null {bam}"
        for bam in bams(folder)
    ]
    return " && ".join(calls)


def compare_counts(folder: Path) -> tuple[int, int]:
    """Sites (of all BAMs) where our REF and ALT counts equal bcftools' AD, and all sites.

    Runs once more, untimed: bcftools mpileup per BAM into ``folder/bcftools/``, and our
    counting into ``folder/counts/`` (the timed command writes the same tables).
    """
    import pandas as pd
    import pysam

    count(folder)
    out = folder / "bcftools"
    out.mkdir(exist_ok=True)
    equal = total = 0
    for bam in bams(folder):
        vcf = out / f"{bam.stem}.vcf"
        command = bcftools_command(folder).split(" && ")[0].replace(str(bams(folder)[0]), str(bam))
        command = command.replace("--output /dev/null", f"--output {shlex.quote(str(vcf))}")
        subprocess.run(command, shell=True, check=True, stderr=subprocess.DEVNULL)
        theirs = {}
        with pysam.VariantFile(str(vcf)) as records:
            for record in records:
                depths = next(iter(record.samples.values()))["AD"]
                theirs[(record.chrom, record.pos)] = dict(zip(record.alleles, depths, strict=True))
        ours = pd.read_csv(folder / "counts" / f"{bam.stem}.tsv", sep="\t", dtype={"chrom": str})
        for row in ours.itertuples(index=False):
            found = theirs.get((row.chrom, int(row.pos)), {})
            total += 1
            equal += (found.get(row.ref, 0), found.get(row.alt, 0)) == (
                int(row.ref_count),
                int(row.alt_count),
            )
    return equal, total


def ours_command(folder: Path, pysam_path: bool = False) -> str:
    command = f"{shlex.quote(sys.executable)} {shlex.quote(__file__)} count --folder {folder}"
    return command + (" --pysam-path" if pysam_path else "")


def time_commands(commands: dict[str, str], runs: int) -> dict[str, dict[str, object]]:
    """Wall times and mean CPU (user, system) seconds of each command: hyperfine when
    installed, else time.perf_counter and the children's resource usage."""
    if shutil.which("hyperfine"):
        export = Path(os.environ.get("TMPDIR", "/tmp")) / f"ctdna-bench-{os.getpid()}.json"
        named = [arg for name, command in commands.items() for arg in ("-n", name, command)]
        options = ["--warmup", "1", "--runs", str(runs), "--export-json", str(export)]
        subprocess.run(["hyperfine", *options, *named], check=True)
        results = json.loads(export.read_text())["results"]
        export.unlink()
        return {
            result["command"]: {
                "times": result["times"],
                "user": result["user"],
                "system": result["system"],
            }
            for result in results
        }
    found: dict[str, dict[str, object]] = {}
    for name, command in commands.items():
        subprocess.run(command, shell=True, check=True, stderr=subprocess.DEVNULL)  # warm-up
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(command, shell=True, check=True, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        found[name] = {
            "times": times,
            "user": (after.ru_utime - before.ru_utime) / runs,
            "system": (after.ru_stime - before.ru_stime) / runs,
        }
    return found


def job(panel_path: str, bam_path: str, output: str) -> None:
    """What one ctdna_count_alleles job does for a BAM, without Snakemake (``startup``): this
    checkout's job function, or an older checkout's DataFrame path (its script's imports)."""
    sample = {"sample_id": "S", "patient_id": "P", "timepoint": "D8", "day": 8}
    with contextlib.suppress(ImportError):  # an older checkout has no verdict module
        from carmscope.verdict import leave_out  # noqa: F401  (the job imports it)
    try:
        from carmscope.ctdna.sample_counts import write_sample_counts
    except ImportError:  # an older checkout (e.g. 173f41e, the reference of the docs)
        from carmscope.ctdna.sample_counts import bam_counts, label_counts, read_panel
        from carmscope.ctdna.vendor import read_vendor_table  # noqa: F401  (the job imports it)

        counts = bam_counts(bam_path, read_panel(panel_path), {})
        label_counts(counts, sample, "bam").to_csv(output, sep="\t", index=False)
    else:
        write_sample_counts(output, panel_path, sample, {}, bam=bam_path)


def startup(args: argparse.Namespace) -> int:
    """Time one job's work with this checkout and with ``args.against`` (one hyperfine run)."""
    here = Path(__file__).resolve().parents[1] / "src"
    against = os.pathsep.join([str(Path(args.against).resolve()), *args.against_path])
    folder = Path(tempfile.mkdtemp(prefix="ctdna-startup-"))
    commands = {}
    for name, path in (("this checkout", str(here)), ("against", against)):
        output = folder / f"{name.replace(' ', '_')}.tsv"
        job_arguments = ["job", args.panel, args.bam, str(output)]
        command = [sys.executable, str(Path(__file__).resolve()), *job_arguments]
        commands[name] = f"env PYTHONPATH={shlex.quote(path)} " + shlex.join(command)
    load_before = os.getloadavg()
    results = time_commands(commands, args.runs)
    load_after = os.getloadavg()
    tables = {path.read_bytes() for path in folder.glob("*.tsv")}
    print(f"load average (1 min) before: {load_before[0]:.2f}, after: {load_after[0]:.2f}")
    for name, result in results.items():
        times = result["times"]
        print(
            f"  {name:14s} wall mean {statistics.mean(times):.2f} s, fastest {min(times):.2f} s; "
            f"CPU {result['user'] + result['system']:.2f} s "
            f"(user {result['user']:.2f} + system {result['system']:.2f})"
        )
    cpu = {name: result["user"] + result["system"] for name, result in results.items()}
    wall = {name: statistics.mean(result["times"]) for name, result in results.items()}
    print(
        f"  this checkout starts {cpu['against'] - cpu['this checkout']:.2f} s of CPU and "
        f"{wall['against'] - wall['this checkout']:.2f} s of wall time sooner"
    )
    print(f"  tables identical: {len(tables) == 1}")
    return 0 if len(tables) == 1 else 1


def versions() -> str:
    import pysam

    bcftools = shutil.which("bcftools")
    if bcftools:
        first = subprocess.run([bcftools, "--version"], capture_output=True, text=True)
        tool = first.stdout.splitlines()[0]
    else:
        tool = f"pysam {pysam.__version__} bundled bcftools"
    return (
        f"{tool}; pysam {pysam.__version__}; Python {sys.version.split()[0]}; {os.cpu_count()} CPUs"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "action",
        nargs="?",
        default="bench",
        choices=["bench", "count", "pysam-mpileup", "job", "startup"],
    )
    parser.add_argument(
        "--folder",
        type=Path,
        default=Path(tempfile.gettempdir()) / "carmscope-ctdna-counting",
        help="data folder (simulated once, ~400 MB)",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each command")
    parser.add_argument(
        "--pysam-path",
        action="store_true",
        help="also time count_alleles with the record scan off (the pysam path it replaced); "
        "with 'count': count that way",
    )
    parser.add_argument("--bam", help="startup: a small plasma BAM (e.g. the tiny cohort's)")
    parser.add_argument("--panel", help="startup: its panel (results/ctdna/panel.tsv)")
    parser.add_argument("--against", help="startup: the src folder of the other checkout")
    parser.add_argument(
        "--against-path", action="append", default=[], help="startup: more PYTHONPATH for it"
    )
    args, rest = parser.parse_known_args(argv)
    if args.action == "job":
        job(*rest)
        return 0
    if args.action == "startup":
        if not (args.bam and args.panel and args.against):
            parser.error("startup needs --bam, --panel and --against")
        return startup(args)
    if args.action == "pysam-mpileup":  # fallback without a bcftools executable
        import pysam.bcftools

        pysam.bcftools.mpileup(*rest, catch_stdout=False)
        return 0
    if args.action == "count":
        count(args.folder, args.pysam_path)
        return 0
    simulate(args.folder)
    ours_name, theirs_name = "carmscope count_alleles", "bcftools mpileup -a AD"
    commands = {ours_name: ours_command(args.folder)}
    commands[theirs_name] = bcftools_command(args.folder)
    if args.pysam_path:
        commands["count_alleles, pysam path"] = ours_command(args.folder, pysam_path=True)
    load_before = os.getloadavg()
    results = time_commands(commands, args.runs)
    load_after = os.getloadavg()
    n = len(bams(args.folder))
    print(f"\n{versions()}")
    loads = (
        " ".join(f"{value:.2f}" for value in load_before),
        " ".join(f"{value:.2f}" for value in load_after),
    )
    print(f"load average (1, 5, 15 min) before: {loads[0]}, after: {loads[1]}")
    size = f"{PATIENTS * VARIANTS_PER_PATIENT} variants x {n} samples at {DEPTH}x"
    print(f"{size} (median wall time of {args.runs} runs; mean CPU = user + system):")
    wall = {name: statistics.median(result["times"]) for name, result in results.items()}
    cpu = {name: result["user"] + result["system"] for name, result in results.items()}
    for name in results:
        print(f"  {name:28s} wall {wall[name]:7.2f} s   CPU {cpu[name]:7.2f} s")
    for name in results:
        if name != theirs_name:
            print(
                f"  ratio {name} / bcftools: wall {wall[name] / wall[theirs_name]:.2f}x, "
                f"CPU {cpu[name] / cpu[theirs_name]:.2f}x"
            )
    print("  (target: at most 0.25x of bcftools' CPU time)")
    equal, total = compare_counts(args.folder)
    print(f"  REF and ALT counts equal to bcftools' AD at {equal} of {total} sites")
    return 0


if __name__ == "__main__":
    sys.exit(main())
