"""Per-sample scRNA expression steps on a 50,000-cell sample: the pipeline beside bare scanpy.

Goal (issue 3): on 2 cores the pipeline's per-sample steps take at most 20% longer than the bare
scanpy calls of the same steps, and peak memory is at most 3x the sparse count matrix
(``data + indices + indptr`` bytes of the CSR matrix as read).

Subcommands:

* ``make-data OUT.h5``: a 50,000-cell synthetic biopsy (a post-infusion scRNA sample of the
  default preset's design, ``cells_per_biopsy=50000``), written as a Cell Ranger v3 HDF5 file;
  kept if it already exists.
* ``pipeline IN.h5``: the steps of ``workflow/scripts/expression_scrna.py`` in the same order
  (read, QC, normalisation, marker annotation, gene-set scores, composition metrics, the per-cell
  table) without writing the output files.
* ``scanpy IN.h5``: the bare scanpy equivalents: ``sc.read_10x_h5``,
  ``sc.pp.calculate_qc_metrics`` and the same QC thresholds, ``sc.pp.normalize_total`` +
  ``sc.pp.log1p`` (raw counts kept in a layer), ``sc.tl.score_genes`` per cell type of the marker
  table with the best type as label, and ``sc.get.aggregate`` sums of raw counts per cell type
  for the pseudobulk gene-set means (log2 CPM).
* ``run IN.h5``: times both with hyperfine (``--runs 3``), measures the peak RSS of each with
  ``/usr/bin/time -v`` and prints the time ratio and peak RSS / sparse matrix size.

The process is bound to 2 cores, which caps every thread pool (``harness.py``).

Usage::

    .venv/bin/python benchmarks/expression.py make-data /tmp/carmscope-bench/sample50k.h5
    .venv/bin/python benchmarks/expression.py run /tmp/carmscope-bench/sample50k.h5
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from harness import GMT, MARKERS, SIGNATURES, peak_rss_kib  # first: binds to the cores

N_CELLS = 50_000
QC = {"min_genes": 200, "min_counts": 500, "max_mito_fraction": 0.2, "max_genes": None}
ANNOTATION = {"min_score": 0.1, "min_margin": 0.05}
MIN_CELLS = 10


# --- data -------------------------------------------------------------------------------------


def make_data(out: Path) -> None:
    """Write the 50,000-cell sample unless ``out`` exists."""
    if out.exists():
        print(f"{out} exists: kept", file=sys.stderr)
        return
    from carmscope.genesets import read_gmt, read_signature_table
    from carmscope.synthetic import expression, genes, tenx
    from carmscope.synthetic.design import PRESETS, design_cohort

    params = dataclasses.replace(PRESETS["default"], cells_per_biopsy=N_CELLS)
    patients = design_cohort(params)
    choices = [
        (patient, sample)
        for patient in patients
        for sample in patient.samples
        if sample.assay == "scrna"
    ]
    patient, sample = next(
        ((p, s) for p, s in choices if s.car_present), choices[0]
    )  # post-infusion: CAR-Ms and inflammation present
    gmt_sets = read_gmt(GMT)
    gene_table = genes.gene_table(params, {**gmt_sets, **read_signature_table(SIGNATURES)})
    inflammatory = expression.responding_genes(
        {gene for members in gmt_sets.values() for gene in members},
        params.inflammatory_response_fraction,
        params.seed,
    )
    biopsy = expression.simulate_biopsy(sample, patient, params, gene_table, inflammatory)
    out.parent.mkdir(parents=True, exist_ok=True)
    tenx.write_tenx_h5(
        out, biopsy.matrix, biopsy.barcodes, biopsy.genes, library_id=sample.sample_id
    )
    print(
        f"{out}: {sample.sample_id}, {biopsy.matrix.shape[0]} cells x "
        f"{biopsy.matrix.shape[1]} genes, {biopsy.matrix.nnz} non-zero",
        file=sys.stderr,
    )


# --- the two implementations ------------------------------------------------------------------


def run_pipeline(path: Path) -> None:
    """The steps of workflow/scripts/expression_scrna.py, in order, without writing files."""
    import pandas as pd

    from carmscope.expression.annotation import annotate_cells, read_markers
    from carmscope.expression.composition import cell_type_table, composition_metrics
    from carmscope.expression.io import read_counts
    from carmscope.expression.qc import QCThresholds, filter_cells, normalize_log1p
    from carmscope.expression.scoring import (
        load_collections,
        score_scrna_sample,
        scores_to_metrics,
    )

    sample_id = path.stem
    adata = read_counts(path)
    cells, summary = filter_cells(
        adata, QCThresholds.from_mapping(QC), sample_id=sample_id, copy=False
    )
    qc_table = adata.obs
    del adata
    normalize_log1p(cells)
    annotate_cells(cells, read_markers(MARKERS), **ANNOTATION)
    collections = load_collections([GMT], [SIGNATURES])
    scores = score_scrna_sample(cells, collections, min_cells=MIN_CELLS)
    metrics = pd.concat(
        [scores_to_metrics(scores), composition_metrics(cells, min_cells=MIN_CELLS)],
        ignore_index=True,
    )
    per_cell = qc_table.join(
        cells.obs[["cell_type", "cell_type_score", "cell_type_confidence"]].astype(
            {"cell_type": str}
        )
    )
    per_cell["cell_type"] = per_cell["cell_type"].fillna("")
    composition = cell_type_table(cells.obs)
    print(
        f"pipeline: {summary['cells_after']} cells, {len(scores)} scores, {len(metrics)} metrics, "
        f"{len(per_cell)} per-cell rows, {len(composition)} cell types",
        file=sys.stderr,
    )


def run_scanpy(path: Path) -> None:
    """Bare scanpy calls for the same steps."""
    import numpy as np
    import pandas as pd
    import scanpy as sc

    from carmscope.celltypes import MACROPHAGE_TYPES, T_CELL_TYPES
    from carmscope.genesets import read_gmt, read_signature_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        adata = sc.read_10x_h5(path)
    adata.var_names_make_unique()
    # QC: same thresholds
    adata.var["mt"] = adata.var_names.str.upper().str.startswith("MT-")
    sc.pp.calculate_qc_metrics(adata, qc_vars=["mt"], percent_top=None, inplace=True)
    keep = (
        (adata.obs["n_genes_by_counts"] >= QC["min_genes"])
        & (adata.obs["total_counts"] >= QC["min_counts"])
        & (adata.obs["pct_counts_mt"] <= 100 * QC["max_mito_fraction"])
    ).to_numpy()
    cells = adata[keep].copy()
    # normalisation, raw counts kept for the pseudobulk
    cells.layers["counts"] = cells.X.copy()
    sc.pp.normalize_total(cells, target_sum=1e4)
    sc.pp.log1p(cells)
    # annotation analogue: score_genes per cell type, best type wins
    markers = pd.read_csv(MARKERS, sep="\t")
    types = []
    for cell_type, table in markers.groupby("cell_type", sort=False):
        genes = [gene for gene in table["gene"] if gene in cells.var_names]
        if genes:
            sc.tl.score_genes(cells, genes, score_name=f"score_{cell_type}", random_state=0)
            types.append(cell_type)
    values = cells.obs[[f"score_{t}" for t in types]].to_numpy()
    best = np.argmax(values, axis=1)
    ordered = np.sort(values, axis=1)
    margin = ordered[:, -1] - ordered[:, -2]
    cells.obs["cell_type"] = pd.Categorical(
        np.where(margin >= ANNOTATION["min_margin"], np.asarray(types)[best], "unassigned")
    )
    # pseudobulk per cell type (sum of raw counts), then per compartment, log2 CPM set means
    bulk = sc.get.aggregate(cells, by="cell_type", func="sum", layer="counts")
    sums = pd.DataFrame(bulk.layers["sum"], index=bulk.obs_names, columns=bulk.var_names)
    sets = {**read_gmt(GMT), **read_signature_table(SIGNATURES)}
    compartments = {
        "all": list(sums.index),
        "macrophage": [t for t in sums.index if t in MACROPHAGE_TYPES],
        "t_cell": [t for t in sums.index if t in T_CELL_TYPES],
    }
    rows = []
    for compartment, members in compartments.items():
        profile = sums.loc[members].sum(axis=0)
        if profile.sum() <= 0:
            continue
        log2cpm = np.log2(profile / profile.sum() * 1e6 + 1.0)
        for name, genes in sets.items():
            found = [gene for gene in genes if gene in log2cpm.index]
            rows.append((compartment, name, float(log2cpm[found].mean()) if found else np.nan))
    composition = cells.obs["cell_type"].value_counts(normalize=True)
    print(
        f"scanpy: {cells.n_obs} cells, {len(rows)} scores, {len(composition)} cell types",
        file=sys.stderr,
    )


# --- measurement ------------------------------------------------------------------------------


def sparse_bytes(path: Path) -> tuple[int, int, int]:
    """Bytes of data + indices + indptr of the CSR matrix as read, and its shape."""
    from carmscope.expression.io import read_counts

    matrix = read_counts(path).X
    return (
        matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes,
        matrix.shape[0],
        matrix.nnz,
    )


def run(path: Path, runs: int, export: Path | None) -> None:
    python = sys.executable
    script = str(Path(__file__).resolve())
    commands = {name: [python, script, name, str(path)] for name in ("pipeline", "scanpy")}
    with tempfile.TemporaryDirectory() as folder:
        markdown = export or Path(folder) / "hyperfine.md"
        json_path = Path(folder) / "hyperfine.json"
        subprocess.run(
            [
                "hyperfine",
                "--runs",
                str(runs),
                "--warmup",
                "1",
                "--export-markdown",
                str(markdown),
                "--export-json",
                str(json_path),
                *(
                    item
                    for name, command in commands.items()
                    for item in ("--command-name", name, " ".join(command))
                ),
            ],
            check=True,
            env=os.environ,
        )
        import json

        results = {r["command"]: r for r in json.loads(json_path.read_text())["results"]}
        table = markdown.read_text()
    rss = {name: peak_rss_kib(command) for name, command in commands.items()}
    size, n_cells, nnz = sparse_bytes(path)
    mean = {name: results[name]["mean"] for name in commands}
    print()
    print(table)
    print(f"cells: {n_cells}, non-zero: {nnz}, sparse matrix: {size / 2**20:.1f} MiB")
    print(
        f"time pipeline/scanpy: {mean['pipeline'] / mean['scanpy']:.3f} "
        f"({mean['pipeline']:.2f} s / {mean['scanpy']:.2f} s, means of {runs})"
    )
    for name in commands:
        print(
            f"peak RSS {name}: {rss[name] / 1024:.1f} MiB = "
            f"{rss[name] * 1024 / size:.2f} x sparse matrix"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("make-data").add_argument("out", type=Path)
    commands.add_parser("pipeline").add_argument("input", type=Path)
    commands.add_parser("scanpy").add_argument("input", type=Path)
    runner = commands.add_parser("run")
    runner.add_argument("input", type=Path)
    runner.add_argument("--runs", type=int, default=3)
    runner.add_argument("--export-markdown", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.command == "make-data":
        make_data(args.out)
    elif args.command == "pipeline":
        run_pipeline(args.input)
    elif args.command == "scanpy":
        run_scanpy(args.input)
    else:
        run(args.input, args.runs, args.export_markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
