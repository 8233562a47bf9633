"""What the expression benchmarks share: the cores they run on, resource paths, peak memory, load.

Import it first (``import harness`` before NumPy), from a script run as
``.venv/bin/python benchmarks/NAME.py``: the process must be bound to its cores before NumPy,
a BLAS library, OpenMP or a JIT-compiled kernel of scanpy starts its threads.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

CORES = 2
"""The benchmarks run on at most this many cores (the development machine's 2), wherever they
run: the process and its children are bound to the first ``CORES`` CPUs it may use. OpenBLAS,
OpenMP and the JIT compiler behind scanpy's and umap-learn's kernels each size their thread
pools by the CPUs a process may run on, so one binding caps every pool (checked with
threadpoolctl), and the figures in docs/ stay comparable on a larger machine. Only a benchmark
run as a script is bound: a test that imports a benchmark module keeps its worker's CPUs."""
if Path(sys.argv[0]).resolve().parent == Path(__file__).resolve().parent:
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:CORES])

REPO = Path(__file__).resolve().parents[1]
MARKERS = REPO / "resources/markers/cell_type_markers.tsv"
GMT = REPO / "resources/genesets/hallmark_inflammation.v7.0.gmt"
SIGNATURES = REPO / "resources/genesets/immune_signatures.tsv"


def peak_rss_kib(command: list[str]) -> int:
    """Maximum resident set size (KiB) of a command, from GNU time."""
    result = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=True
    )
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    if match is None:
        raise RuntimeError(f"no peak RSS in GNU time output:\n{result.stderr}")
    return int(match.group(1))


def own_peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB; Linux ``ru_maxrss`` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> str:
    """The 1, 5 and 15 minute load averages and the number of cores, for the report."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f}, {five:.1f}, {fifteen:.1f} on {os.cpu_count()} cores"
