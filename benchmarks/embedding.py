"""UMAP connectivities and the embedding step: first call in a fresh process, ours beside scanpy's.

Every embedding job of the pipeline is a new Python process, so what counts is the first call:
``scanpy.pp.neighbors(method="umap")`` calls ``umap.umap_.fuzzy_simplicial_set``, which
umap-learn compiles just in time at its first call in every process; at 8,192 cells and more
scanpy also searches neighbours with pynndescent, compiled the same way.
``carmscope.expression.connectivity.umap_neighbors`` computes the same graph with scikit-learn's
exact search and the fuzzy simplicial set in NumPy.

Subcommands (each measures in its own process and prints one JSON line):

* ``neighbors --path scanpy|carmscope --cells N``: N cells in 30 dimensions (a seeded mixture
  of 8 Gaussian populations, as PCs look), the neighbour graph with 15 neighbours:
  ``sc.pp.neighbors(adata, use_rep="X_pca", transformer="sklearn")`` (scanpy's default below
  8,192 cells) or ``umap_neighbors``; CPU and wall time of the first and of a second call.
* ``embed --path scanpy|carmscope --cells N``: N log-normalised cells (Poisson counts of 8
  populations over 2,000 genes), the whole embedding of one sample with the default settings
  (2,000 HVGs, 30 PCs, 15 neighbours, Leiden, UMAP): bare scanpy (``sc.pp.highly_variable_genes``,
  ``sc.pp.pca``, ``sc.pp.neighbors``, ``sc.tl.leiden``, ``sc.tl.umap``, the same parameters)
  or ``carmscope.expression.embedding.embed_cells``; CPU and wall time of the first call.
* ``knn --path pynndescent|carmscope --cells N``: the k-NN search alone at sizes where scanpy
  would use pynndescent: ``pynndescent.PyNNDescentTransformer`` with scanpy's parameters, or
  ``umap_neighbors`` (exact search and connectivities); first call.
* ``run``: all of the above, each in a fresh process (``neighbors`` and ``embed`` at 1,500
  cells, the demo's biopsy size, and 3,000, a patient's two samples; ``knn`` at 20,000), and
  the ratios scanpy / carmscope of CPU time.

The process is bound to 2 cores, which caps every thread pool (``harness.py``). Usage::

    .venv/bin/python benchmarks/embedding.py run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

from harness import load_average  # first: binds to the cores

# isort: split
import numpy as np

N_NEIGHBORS = 15
N_POPULATIONS = 8


def _pcs(n_cells: int, seed: int = 0) -> np.ndarray:
    """Cells x 30 coordinates: 8 Gaussian populations."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(N_POPULATIONS, 30))
    labels = rng.integers(N_POPULATIONS, size=n_cells)
    return (centres[labels] + rng.normal(size=(n_cells, 30))).astype(np.float32)


def _cells(n_cells: int, seed: int = 0):
    """Log-normalised cells: Poisson counts of 8 populations over 2,000 genes."""
    import anndata
    from scipy import sparse

    rng = np.random.default_rng(seed)
    rates = rng.gamma(0.3, 1.0, size=(N_POPULATIONS, 2000))
    labels = rng.integers(N_POPULATIONS, size=n_cells)
    counts = rng.poisson(rates[labels]).astype(np.float32)
    totals = np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    return anndata.AnnData(X=sparse.csr_matrix(np.log1p(counts / totals * 1e4)))


def _timed(call) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    call()
    return {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}


def neighbors_benchmark(path: str, n_cells: int) -> dict:
    import anndata
    import scanpy as sc

    from carmscope.expression.connectivity import umap_neighbors

    adata = anndata.AnnData(X=np.zeros((n_cells, 1), dtype=np.float32))
    adata.obsm["X_pca"] = _pcs(n_cells)

    def call():
        if path == "scanpy":
            sc.pp.neighbors(adata, N_NEIGHBORS, use_rep="X_pca", transformer="sklearn")
        else:
            umap_neighbors(adata, N_NEIGHBORS, use_rep="X_pca")

    first, second = _timed(call), _timed(call)
    return {"first": first, "second": second}


def embed_benchmark(path: str, n_cells: int) -> dict:
    import scanpy as sc

    from carmscope.expression.embedding import EmbeddingSettings, embed_cells

    adata = _cells(n_cells)
    settings = EmbeddingSettings()

    def bare_scanpy():
        sc.pp.highly_variable_genes(adata, n_top_genes=settings.n_top_genes, flavor="seurat")
        sc.pp.pca(adata, n_comps=settings.n_pcs, mask_var="highly_variable", svd_solver="arpack")
        sc.pp.neighbors(adata, settings.n_neighbors, use_rep="X_pca")
        sc.tl.leiden(adata, flavor="igraph", n_iterations=2, directed=False)
        sc.tl.umap(adata, min_dist=settings.umap_min_dist)

    first = _timed(bare_scanpy if path == "scanpy" else lambda: embed_cells(adata, settings))
    return {"first": first}


def knn_benchmark(path: str, n_cells: int) -> dict:
    import anndata

    from carmscope.expression.connectivity import umap_neighbors

    pcs = _pcs(n_cells)
    if path == "pynndescent":
        from pynndescent import PyNNDescentTransformer

        transformer = PyNNDescentTransformer(  # scanpy's parameters (neighbors/__init__.py)
            n_neighbors=N_NEIGHBORS,
            metric="euclidean",
            random_state=0,
            n_trees=min(64, 5 + round(n_cells**0.5 / 20.0)),
            n_iters=max(5, round(np.log2(n_cells))),
        )
        return {"first": _timed(lambda: transformer.fit_transform(pcs))}
    adata = anndata.AnnData(X=np.zeros((n_cells, 1), dtype=np.float32))
    adata.obsm["X_pca"] = pcs
    return {"first": _timed(lambda: umap_neighbors(adata, N_NEIGHBORS, use_rep="X_pca"))}


BENCHMARKS = {"neighbors": neighbors_benchmark, "embed": embed_benchmark, "knn": knn_benchmark}
RUNS = [
    ("neighbors", 1500, ("scanpy", "carmscope")),
    ("neighbors", 3000, ("scanpy", "carmscope")),
    ("embed", 1500, ("scanpy", "carmscope")),
    ("embed", 3000, ("scanpy", "carmscope")),
    ("knn", 20000, ("pynndescent", "carmscope")),
]


def run_all() -> None:
    print(load_average())
    for command, n_cells, paths in RUNS:
        results = {}
        for path in paths:
            output = subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__)),
                    command,
                    "--path",
                    path,
                    "--cells",
                    str(n_cells),
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            results[path] = json.loads(output.strip().splitlines()[-1])
        reference, ours = (results[p]["first"] for p in paths)
        line = (
            f"{command} {n_cells} cells, first call: {paths[0]} {reference['cpu_s']:.2f} s CPU "
            f"({reference['wall_s']:.2f} s wall), {paths[1]} {ours['cpu_s']:.2f} s CPU "
            f"({ours['wall_s']:.2f} s wall), ratio {reference['cpu_s'] / ours['cpu_s']:.1f}x"
        )
        if "second" in results[paths[0]]:
            line += "; second call: " + ", ".join(
                f"{p} {results[p]['second']['cpu_s']:.3f} s CPU" for p in paths
            )
        print(line, flush=True)
    print(load_average())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in BENCHMARKS:
        command = commands.add_parser(name)
        command.add_argument("--path", required=True)
        command.add_argument("--cells", type=int, required=True)
    commands.add_parser("run")
    args = parser.parse_args()
    if args.command == "run":
        run_all()
        return
    warnings.filterwarnings("ignore")
    print(json.dumps(BENCHMARKS[args.command](args.path, args.cells)))


if __name__ == "__main__":
    main()
