"""What the expression benchmarks share: thread limits, resource paths, peak memory, load.

Import it first (``import harness`` before NumPy), from a script run as
``.venv/bin/python benchmarks/NAME.py``: the limits must be in the environment before NumPy,
umap-learn's JIT compiler or a BLAS library starts its threads.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
from pathlib import Path

THREADS = "2"
"""Threads of OpenMP, BLAS and the JIT compiler umap-learn uses (the machine's 2 cores), unless
already set."""
for _variable in (
    "OMP_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
):
    os.environ.setdefault(_variable, THREADS)

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
