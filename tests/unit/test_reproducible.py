"""Same data, same bytes: gzip headers without a time, figures without a date or random IDs."""

import gzip
import subprocess
import sys
import time

import pandas as pd
import pytest

from carmscope.reproducible import write_tsv

FIGURE = """
import sys, matplotlib
matplotlib.use("Agg")
from matplotlib.figure import Figure
from carmscope.reproducible import save_figure
figure = Figure()
axes = figure.subplots()
axes.plot([1, 2, 3], [3, 1, 2], label="a")
axes.legend()
save_figure(figure, sys.argv[1])
"""


def test_gzipped_tables_carry_no_time(tmp_path):
    table = pd.DataFrame({"barcode": ["AAAC-1", "AAAG-1"], "car_umis": [3, 0]})
    path = tmp_path / "cells.tsv.gz"
    write_tsv(table, path, index=False)
    first = path.read_bytes()
    time.sleep(1.1)
    write_tsv(table, path, index=False)
    assert path.read_bytes() == first
    assert first[4:8] == b"\0\0\0\0"  # gzip MTIME
    assert gzip.decompress(first).decode().splitlines()[1] == "AAAC-1\t3"


@pytest.mark.parametrize("suffix", ["svg", "pdf", "png"])
def test_figures_are_the_same_bytes_in_two_processes(tmp_path, suffix):
    paths = []
    for name in ("a", "b"):
        path = tmp_path / name / f"figure.{suffix}"
        path.parent.mkdir()
        subprocess.run([sys.executable, "-c", FIGURE, str(path)], check=True)
        paths.append(path)
        time.sleep(1.1)
    assert paths[0].read_bytes() == paths[1].read_bytes()
