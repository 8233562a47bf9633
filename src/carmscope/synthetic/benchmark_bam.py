"""A large synthetic 10x-style BAM for benchmarks (:func:`write_benchmark_bam`).

CT-0508-like cells (:func:`benchmark_cells`) written by
:func:`carmscope.synthetic.tenx_bam.write_tenx_bam`, as many as the requested read count needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from carmscope.celltypes import CELL_TYPES
from carmscope.construct import (
    Construct,
)
from carmscope.synthetic.design import BASELINE_COMPOSITION, CohortParams, rng_for
from carmscope.synthetic.reads import ReadTruth
from carmscope.synthetic.tenx_bam import write_tenx_bam
from carmscope.synthetic.tenx_library import (
    LOW_QUALITY_READ_FRACTION,
    NO_BARCODE_FRACTION,
    unique_barcodes,
)

BENCHMARK_DAMAGED_FRACTION = 0.05


def benchmark_cells(
    n_cells: int, rng: np.random.Generator, car_fraction: float = 0.25
) -> pd.DataFrame:
    """Cells for a large BAM: CT-0508-like composition, CAR in a fraction of macrophages.

    CAR-carrying macrophages get ``1 + Poisson(3)`` CAR UMIs; 5% of cells are damaged.
    """
    composition = {**BASELINE_COMPOSITION, "cd8_t": 0.08}
    types = np.array([t for t in CELL_TYPES if t in composition])
    weights = np.array([composition[t] for t in types])
    cell_type = types[rng.choice(types.size, size=n_cells, p=weights / weights.sum())]
    macrophage = np.char.startswith(cell_type.astype(str), "macrophage")
    car = macrophage & (rng.random(n_cells) < car_fraction)
    car_umis = np.where(car, 1 + rng.poisson(3.0, n_cells), 0)
    barcodes = sorted(unique_barcodes(n_cells, set(), rng))
    return pd.DataFrame(
        {
            "barcode": [f"{b}-1" for b in barcodes],
            "cell_type": cell_type,
            "low_quality": rng.random(n_cells) < BENCHMARK_DAMAGED_FRACTION,
            "car_umis": car_umis,
        }
    )


def write_benchmark_bam(
    path: str | Path,
    n_reads: int,
    construct: Construct,
    hosts: Mapping[str, str],
    seed: int,
    reads_per_cell: int = 200,
    *,
    truth: ReadTruth | None = None,
) -> pd.DataFrame:
    """A large 10x-style BAM of about ``n_reads`` reads (for benchmarks); per-cell CAR truth.

    Cells of :func:`benchmark_cells`, as many as ``n_reads`` needs at ``reads_per_cell`` host
    reads per good cell; the total is within about 1% of ``n_reads``. See
    :func:`write_tenx_bam` for the file, the return value and ``truth``.
    """
    damaged_loss = BENCHMARK_DAMAGED_FRACTION * (1 - LOW_QUALITY_READ_FRACTION)
    per_cell = reads_per_cell * (1 - damaged_loss) * (1 + NO_BARCODE_FRACTION)
    rng = rng_for(seed, "benchmark_bam", n_reads)
    cells = benchmark_cells(max(1, round(n_reads / per_cell)), rng)
    params = CohortParams(seed=seed, host_reads_per_cell=reads_per_cell)
    return write_tenx_bam(
        path, cells, construct, hosts, params, rng, sample_id="benchmark", truth=truth
    )
