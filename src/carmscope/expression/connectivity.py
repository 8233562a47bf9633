"""UMAP's fuzzy simplicial set (the neighbour graph's connectivities) in NumPy and SciPy.

The connectivities scanpy stores in ``obsp["connectivities"]`` for ``method="umap"`` are the
fuzzy union of each cell's local fuzzy simplicial set (McInnes, Healy & Melville 2018,
arXiv:1802.03426, section 3.1 and appendix): from its k nearest neighbours (itself first, at
distance 0) each cell gets

* ``rho``, the distance to its nearest neighbour at a non-zero distance (``local_connectivity``
  1), so that every cell is connected to at least one other at strength 1;
* ``sigma``, found by bisection so that ``sum_j exp(-max(0, d_j - rho) / sigma) = log2(k)``
  over the neighbours other than the first column (64 steps, stopping within 1e-5; from an
  upper bound of float32's largest value, doubling while unbounded), then at least 1e-3 times
  the mean distance of the row (of the whole matrix when ``rho`` is 0);
* a membership strength ``exp(-(d - rho) / sigma)`` to each neighbour: 1 where
  ``d - rho <= 0`` (or ``sigma`` is 0), 0 to itself;

and the graph is the fuzzy union ``A + A^T - A o A^T`` of these directed strengths.

Why hand-written (measured, ``benchmarks/embedding.py``, CPU seconds on the project's 2-core
machine): umap-learn computes this with functions compiled just in time at their first call in
every process, and each embedding job of the pipeline is a new process. The first
``sc.pp.neighbors(method="umap")`` of a process took 5.6 s at 1,500 cells (0.1 s for a second
call); :func:`umap_neighbors` took 0.34 s on its first call, of which
:func:`fuzzy_simplicial_set` is 0.01 s (0.08 s at 20,000 cells). It follows umap-learn 0.5's
``smooth_knn_dist`` and ``compute_membership_strengths`` operation by operation (differences and
strengths in float32, the bisection in float64, as their compiled loops compute them), so the
result equals ``umap.umap_.fuzzy_simplicial_set`` to float32 rounding
(``tests/unit/test_expression_connectivity.py`` compares the two through scanpy).
"""

from __future__ import annotations

import anndata
import numpy as np
from scipy import sparse

N_ITER = 64
"""Bisection steps for sigma (umap-learn's ``n_iter``)."""
SMOOTH_K_TOLERANCE = 1e-5
"""The bisection stops when the sum of strengths is this close to its target."""
MIN_K_DIST_SCALE = 1e-3
"""Sigma is at least this fraction of the mean neighbour distance."""
FLOAT32_MAX = float(np.finfo(np.float32).max)
"""Upper bound of the bisection before it has one (umap-learn's ``NPY_FLOATMAX``)."""


def exp32(x: np.ndarray) -> np.ndarray:
    """``exp`` of float32 values rounded once to float32 (as C's ``expf``; NumPy's own
    float32 ``exp`` may differ from it in the last bit)."""
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(x.astype(np.float64)).astype(np.float32)


def smooth_knn_dist(distances: np.ndarray, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell ``sigma`` and ``rho`` of UMAP's local fuzzy sets (``local_connectivity`` 1).

    Parameters
    ----------
    distances
        Cells x neighbours distances, each row sorted, the cell itself first (distance 0).
    k
        Neighbourhood size whose ``log2`` is the target sum of strengths.

    Returns
    -------
    sigmas, rhos
        float32 arrays, one value per cell.
    """
    distances = np.asarray(distances, dtype=np.float32)
    n_cells = distances.shape[0]
    positive = distances > 0.0
    has_positive = positive.any(axis=1)
    first_positive = np.argmax(positive, axis=1)
    rhos = np.where(
        has_positive, distances[np.arange(n_cells), first_positive], np.float32(0.0)
    ).astype(np.float32)
    target = float(np.log2(k))
    # the strength of each neighbour but the first, as a function of sigma (``mid``); the
    # differences in float32, the bisection in float64 (what umap-learn's compiled loop does)
    excess = (distances[:, 1:] - rhos[:, None]).astype(np.float64)
    above = excess > 0.0
    lo = np.zeros(n_cells)
    hi = np.full(n_cells, FLOAT32_MAX, dtype=np.float64)
    mid = np.ones(n_cells)
    active = np.ones(n_cells, dtype=bool)
    for _ in range(N_ITER):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        with np.errstate(over="ignore", under="ignore"):
            strengths = np.where(above[rows], np.exp(-(excess[rows] / mid[rows, None])), 1.0)
        psum = np.zeros(rows.size)
        for column in range(strengths.shape[1]):  # in column order, as umap-learn adds
            psum += strengths[:, column]
        done = np.abs(psum - target) < SMOOTH_K_TOLERANCE
        too_wide = (psum > target) & ~done
        shrink = rows[too_wide]
        hi[shrink] = mid[shrink]
        mid[shrink] = (lo[shrink] + hi[shrink]) / 2.0
        grow = rows[~too_wide & ~done]
        lo[grow] = mid[grow]
        mid[grow] = np.where(hi[grow] >= FLOAT32_MAX, mid[grow] * 2.0, (lo[grow] + hi[grow]) / 2.0)
        active[rows[done]] = False
    sigmas = mid.astype(np.float32)
    floor = MIN_K_DIST_SCALE * np.where(
        rhos > 0.0, distances.mean(axis=1, dtype=np.float64), distances.mean(dtype=np.float64)
    )
    sigmas = np.where(sigmas < floor, floor, sigmas).astype(np.float32)
    return sigmas, rhos


def membership_strengths(
    knn_indices: np.ndarray, knn_dists: np.ndarray, sigmas: np.ndarray, rhos: np.ndarray
) -> sparse.csr_matrix:
    """Directed strengths of each cell's local fuzzy set as a cells x cells CSR matrix.

    Entries whose index is -1 (a neighbour not found) are left out; the cell's strength to
    itself is 0 (not stored).
    """
    n_cells, n_neighbors = knn_indices.shape
    knn_dists = np.asarray(knn_dists, dtype=np.float32)
    excess = knn_dists - rhos[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        values = exp32(-(excess / sigmas[:, None]))
    values = np.where((excess <= 0.0) | (sigmas[:, None] == 0.0), np.float32(1.0), values)
    rows = np.repeat(np.arange(n_cells), n_neighbors)
    columns = np.asarray(knn_indices).ravel()
    values = np.where(columns == rows, np.float32(0.0), values.ravel()).astype(np.float32)
    found = columns != -1
    strengths = sparse.coo_matrix(
        (values[found], (rows[found], columns[found])), shape=(n_cells, n_cells)
    ).tocsr()  # duplicate entries are summed, as umap-learn's COO matrix does
    strengths.eliminate_zeros()
    return strengths


def fuzzy_simplicial_set(
    knn_indices: np.ndarray, knn_dists: np.ndarray, n_neighbors: int | None = None
) -> sparse.csr_matrix:
    """UMAP connectivities from a k-NN graph: the fuzzy union of the cells' local fuzzy sets.

    Parameters
    ----------
    knn_indices
        Cells x k indices of each cell's nearest neighbours, the cell itself first (as scanpy
        passes them to umap-learn); -1 where a neighbour is missing.
    knn_dists
        The distances to them, each row sorted (the first 0).
    n_neighbors
        k of the target ``log2(k)``; the number of columns when None.

    Returns
    -------
    scipy.sparse.csr_matrix
        Symmetric cells x cells float32 connectivities (what scanpy stores in
        ``obsp["connectivities"]``).
    """
    knn_indices = np.asarray(knn_indices)
    knn_dists = np.asarray(knn_dists, dtype=np.float32)
    if knn_indices.shape != knn_dists.shape or knn_indices.ndim != 2:
        raise ValueError(
            f"k-NN indices {knn_indices.shape} and distances {knn_dists.shape} must be two "
            "matrices of the same shape"
        )
    k = knn_indices.shape[1] if n_neighbors is None else int(n_neighbors)
    sigmas, rhos = smooth_knn_dist(knn_dists, float(k))
    strengths = membership_strengths(knn_indices, knn_dists, sigmas, rhos)
    transpose = strengths.T.tocsr()
    union = strengths + transpose - strengths.multiply(transpose)
    union = sparse.csr_matrix(union, dtype=np.float32)
    union.eliminate_zeros()
    return union


def knn_from_distances(distances: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """k-NN indices and distances (the cell itself first, at 0) from scanpy's distance graph.

    Parameters
    ----------
    distances
        ``obsp["distances"]`` as ``scanpy`` writes it for an exact (sklearn) search: the same
        number of stored neighbours in every row, in order of distance, the cell itself left
        out (duplicates of a cell kept as stored zeros).

    Returns
    -------
    indices, distances
        Cells x (stored neighbours + 1) arrays, as scanpy passes them to umap-learn.
    """
    distances = sparse.csr_matrix(distances)
    stored = np.diff(distances.indptr)
    if stored.size and (stored != stored[0]).any():
        raise ValueError(
            "the distance graph has rows with different numbers of neighbours "
            f"({stored.min()} to {stored.max()}); expected an exact k-NN graph"
        )
    n_cells = distances.shape[0]
    width = int(stored[0]) if stored.size else 0
    cells = np.arange(n_cells)[:, None]
    indices = np.hstack([cells, distances.indices.reshape(n_cells, width)])
    values = np.hstack(
        [np.zeros((n_cells, 1), dtype=distances.dtype), distances.data.reshape(n_cells, width)]
    )
    return indices, values


def umap_neighbors(
    adata: anndata.AnnData, n_neighbors: int, *, use_rep: str, random_state: int = 0
) -> None:
    """``scanpy.pp.neighbors(method="umap")`` with the connectivities of this module, in place.

    The k nearest neighbours come from scanpy (``scanpy.Neighbors.compute_neighbors`` with
    ``method=None``: exact euclidean search by scikit-learn, as scanpy itself does below 8,192
    cells, here at every size so that no pynndescent function is compiled either); the
    connectivities from :func:`fuzzy_simplicial_set`. The object then holds what
    ``scanpy.pp.neighbors`` writes: ``obsp["distances"]``, ``obsp["connectivities"]`` and
    ``uns["neighbors"]`` with ``params["method"] == "umap"``, which ``scanpy.tl.leiden`` and
    ``scanpy.tl.umap`` read.

    Parameters
    ----------
    adata
        Cells with the representation ``obsm[use_rep]``.
    n_neighbors
        Neighbours per cell, the cell itself included (scanpy's convention).
    use_rep
        ``obsm`` key of the representation (e.g. ``"X_pca"``).
    random_state
        Recorded in the parameters as scanpy does (the exact search draws no random number).
    """
    import scanpy as sc  # here: its import takes seconds

    graph = sc.Neighbors(adata)
    graph.compute_neighbors(
        int(n_neighbors),
        use_rep=use_rep,
        method=None,
        transformer="sklearn",
        random_state=random_state,
    )
    indices, distances = knn_from_distances(graph.distances)
    adata.uns["neighbors"] = {
        "connectivities_key": "connectivities",
        "distances_key": "distances",
        "params": {
            "n_neighbors": int(graph.n_neighbors),
            "method": "umap",
            "random_state": random_state,
            "metric": "euclidean",
            "use_rep": use_rep,
        },
    }
    adata.obsp["distances"] = graph.distances
    adata.obsp["connectivities"] = fuzzy_simplicial_set(
        indices, distances, n_neighbors=graph.n_neighbors
    )
