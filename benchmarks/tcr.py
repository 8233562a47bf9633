"""Benchmark of the tcr stage's per-patient comparison (issue 16, docs/tcr.md "Benchmark").

Writes a pair of AIRR repertoires (baseline and post, 1,000,000 templates over 300,000 clones
each, power-law clone sizes), then times in one run: ``pandas.read_csv`` of the two files (the
reference), and the whole per-patient comparison (both files read by
``carmscope.tcr.io.read_repertoire``, diversity of both, Fisher/BH change table, overlap).
Both are repeated (``--repeats``, interleaved) and the best time of each is reported, as
``timeit`` does: on a shared machine the minimum is the time the code needs. Prints both times
and their ratio (target <= 3), the same for the CPU time of the process (``time.process_time``;
both sides run in one thread, so on a loaded machine this shows the work apart from waiting for
a core) and the load average.

    .venv/bin/python benchmarks/tcr.py [--out /tmp/tcr_bench]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from carmscope.tcr.compare import changes_and_overlap
from carmscope.tcr.diversity import diversity
from carmscope.tcr.io import read_repertoire

TEMPLATES, CLONES = 1_000_000, 300_000


def write_pair(folder: Path, seed: int = 1) -> list[Path]:
    rng = np.random.default_rng(seed)
    letters = np.array(list("ACDEFGHIKLMNPQRSTVWY"))
    cdr3 = ["CASS" + "".join(row) + "F" for row in rng.choice(letters, (CLONES, 9))]
    genes = rng.choice(["TRBV2", "TRBV6-5", "TRBV7-9", "TRBV20-1", "TRBV28"], CLONES)
    paths = []
    for name in ("baseline", "post"):
        weights = rng.pareto(1.5, CLONES) + 1
        counts = 1 + rng.multinomial(TEMPLATES - CLONES, weights / weights.sum())
        frame = pd.DataFrame(
            {
                "sequence_id": np.arange(CLONES),
                "v_call": pd.Series(genes) + "*01",
                "j_call": "TRBJ2-7*01",
                "junction_aa": cdr3,
                "productive": "T",
                "locus": "TRB",
                "duplicate_count": counts,
            }
        )
        path = folder / f"{name}.tsv"
        frame.to_csv(path, sep="\t", index=False)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="/tmp/tcr_bench")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = write_pair(folder)
    reference, ours, reference_cpu, ours_cpu = [], [], [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        start, start_cpu = time.perf_counter(), time.process_time()
        for path in paths:
            pd.read_csv(path, sep="\t")
        reference.append(time.perf_counter() - start)
        reference_cpu.append(time.process_time() - start_cpu)
        start, start_cpu = time.perf_counter(), time.process_time()
        baseline, post = (read_repertoire(path) for path in paths)
        for rep in (baseline, post):
            diversity(rep.clones["count"].to_numpy(), min(baseline.total, post.total))
        table, overlap = changes_and_overlap(baseline.clones, post.clones)
        ours.append(time.perf_counter() - start)
        ours_cpu.append(time.process_time() - start_cpu)
    rounded = [[round(t, 2) for t in times] for times in (reference, ours)]
    print(f"repeats: {args.repeats} (best of each reported; all: {rounded[0]} / {rounded[1]})")
    print(f"load average (1, 5, 15 min): {os.getloadavg()}, cores: {os.cpu_count()}")
    print(f"templates per file: {baseline.total}, clones: {len(baseline.clones)}")
    print(f"tested clones: {len(table)}, expanded: {int(table['expanded'].sum())}")
    print(f"Morisita-Horn overlap: {overlap:.3f}")
    print(f"pandas.read_csv of both files: {min(reference):.2f} s")
    print(f"whole per-patient comparison:  {min(ours):.2f} s")
    print(f"ratio: {min(ours) / min(reference):.2f} (target <= 3)")
    print(
        f"CPU time: {min(reference_cpu):.2f} s / {min(ours_cpu):.2f} s, "
        f"ratio {min(ours_cpu) / min(reference_cpu):.2f}"
    )


if __name__ == "__main__":
    main()
