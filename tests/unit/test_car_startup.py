"""The CAR scan command starts light: it imports neither NumPy nor pandas (docs/car_detection.md,
"Speed": they cost more start-up than the scan of a 2-million-read BAM leaves room for), nor
the slowest-starting standard-library modules."""

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from carmscope.construct import read_construct
from carmscope.synthetic.benchmark_bam import benchmark_cells
from carmscope.synthetic.design import PRESETS, rng_for
from carmscope.synthetic.host_transcripts import host_transcripts
from carmscope.synthetic.tenx_bam import write_tenx_bam

SEED = 508
HEAVY = {"numpy", "pandas", "pyarrow", "matplotlib", "pysam", "concurrent"}
"""Packages the command must not load (``concurrent.futures``: only scans of over four threads)."""
SLOW_STANDARD_LIBRARY = {"dataclasses", "inspect", "pathlib", "shutil"}
"""Standard-library modules it must not load either: together 20-25 ms of its start-up, about
5% of a 2-million-read scan (docs/car_detection.md, "Benchmark")."""

PROGRAM = """
import contextlib, io, json, sys
from carmscope.car.__main__ import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    status = main(sys.argv[1:])
print(json.dumps({"status": status, "output": out.getvalue(), "modules": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def bam(tmp_path_factory):
    car = read_construct()
    path = tmp_path_factory.mktemp("car_startup") / "sample.bam"
    cells = benchmark_cells(300, rng_for(SEED, "car_startup_cells"))
    params = replace(PRESETS["tiny"], host_reads_per_cell=10)
    write_tenx_bam(path, cells, car, host_transcripts(SEED, car), params, rng_for(SEED, "bam"))
    return path


@pytest.mark.parametrize("threads", [1, 2])
def test_scan_command_imports_no_numpy_or_pandas(bam, threads):
    arguments = ["scan", str(bam), "--per-cell", "--threads", str(threads)]
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, *arguments], capture_output=True, text=True, check=True
    )
    found = json.loads(run.stdout)
    assert found["status"] == 0
    header, row = found["output"].splitlines()
    assert header.split("\t") == [
        "construct",
        "total_reads",
        "scanned_reads",
        "car_reads",
        "car_umis",
    ]
    assert int(row.split("\t")[3]) > 0  # it did find CAR reads
    heavy = [name for name in found["modules"] if name.split(".")[0] in HEAVY]
    assert heavy == []
    slow = [name for name in found["modules"] if name in SLOW_STANDARD_LIBRARY]
    assert slow == []
