"""UMAP connectivities in NumPy (carmscope.expression.connectivity) against umap-learn's, as
scanpy computes them, and the embedding built on them."""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import umap.umap_
from scipy import sparse
from sklearn.manifold import trustworthiness
from sklearn.metrics import adjusted_rand_score

from carmscope.expression import embedding
from carmscope.expression.connectivity import (
    fuzzy_simplicial_set,
    knn_from_distances,
    umap_neighbors,
)
from carmscope.expression.embedding import EmbeddingSettings, embed_cells
from carmscope.io.tenx import read_counts

REAL_10X = (
    Path(__file__).resolve().parents[1] / "data/tenx/scanpy/3.0.0/filtered_feature_bc_matrix.h5"
)


def _with_pcs(pcs: np.ndarray) -> anndata.AnnData:
    adata = anndata.AnnData(X=np.zeros((pcs.shape[0], 1), dtype=np.float32))
    adata.obsm["X_pca"] = np.asarray(pcs, dtype=np.float32)
    return adata


def _assert_same_graph(pcs: np.ndarray, n_neighbors: int) -> anndata.AnnData:
    """Our graph equals scanpy's ``sc.pp.neighbors(method="umap")`` (umap-learn's fuzzy
    simplicial set): same distances, same edges, strengths to float32 rounding."""
    scanpy_graph, ours = _with_pcs(pcs), _with_pcs(pcs)
    sc.pp.neighbors(scanpy_graph, n_neighbors, use_rep="X_pca", method="umap", random_state=0)
    umap_neighbors(ours, n_neighbors, use_rep="X_pca", random_state=0)
    expected, got = scanpy_graph.obsp["connectivities"], ours.obsp["connectivities"]
    assert isinstance(got, sparse.csr_matrix) and got.dtype == np.float32
    assert got.shape == expected.shape
    np.testing.assert_array_equal(
        (got != 0).toarray(), (expected != 0).toarray(), err_msg="different edges"
    )
    np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-5, atol=1e-6)
    assert (got != got.T).nnz == 0
    assert (ours.obsp["distances"] != scanpy_graph.obsp["distances"]).nnz == 0
    assert ours.uns["neighbors"] == scanpy_graph.uns["neighbors"]
    assert ours.uns["neighbors"]["params"]["method"] == "umap"
    return ours


def test_connectivities_equal_umap_learns_on_a_real_10x_matrix():
    adata = read_counts(REAL_10X)  # Cell Ranger 3, 1107 cells x 507 genes (chr21)
    adata = adata[np.asarray(adata.X.sum(axis=1)).ravel() > 0].copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=20, svd_solver="arpack", random_state=0)
    assert adata.n_obs > 1000
    graph = _assert_same_graph(adata.obsm["X_pca"], 15)
    assert graph.obsp["connectivities"].nnz > 15 * adata.n_obs


def test_duplicate_cells_at_distance_zero_give_umap_learns_graph():
    rng = np.random.default_rng(1)
    pcs = rng.normal(size=(200, 10))
    pcs[1:4] = pcs[0]  # four identical cells
    pcs[10] = pcs[11]  # and a pair
    graph = _assert_same_graph(pcs, 15)
    strengths = graph.obsp["connectivities"]
    assert strengths[0, 1] == pytest.approx(1.0) and strengths[10, 11] == pytest.approx(1.0)


def test_equal_distances_and_ties_give_umap_learns_graph():
    # every cell at the same distance from every other (the vertices of a simplex), then cells
    # on an integer lattice (many tied distances)
    _assert_same_graph(np.eye(30) * 3.0, 10)
    lattice = np.array([[x, y] for x in range(12) for y in range(12)], dtype=float)
    _assert_same_graph(lattice, 8)


def test_two_neighbours_give_umap_learns_graph():
    pcs = np.random.default_rng(2).normal(size=(60, 5))
    graph = _assert_same_graph(pcs, 2)
    # each cell is tied to its nearest neighbour at strength 1 (its only one, rho = d)
    assert (graph.obsp["connectivities"].max(axis=1).toarray() == 1.0).all()


@pytest.mark.parametrize("n_neighbors", [2, 5, 15])
def test_fuzzy_simplicial_set_equals_umap_learns_on_a_knn_graph_with_gaps(n_neighbors):
    # fewer neighbours than asked for some cells (-1), zero distances, ties
    rng = np.random.default_rng(n_neighbors)
    n_cells = 80
    distances = np.sort(rng.gamma(2.0, 1.0, size=(n_cells, n_neighbors)), axis=1)
    distances[:, 0] = 0.0
    distances[5, 1:3] = 0.0
    distances[6, 1:] = distances[6, 1]
    indices = np.array([rng.permutation(np.delete(np.arange(n_cells), i)) for i in range(n_cells)])
    indices = np.hstack([np.arange(n_cells)[:, None], indices[:, : n_neighbors - 1]])
    indices[7, -1] = -1
    distances = distances.astype(np.float32)
    expected, _, _ = umap.umap_.fuzzy_simplicial_set(
        sparse.coo_matrix((n_cells, 1)),
        n_neighbors,
        None,
        None,
        knn_indices=indices,
        knn_dists=distances,
    )
    got = fuzzy_simplicial_set(indices, distances)
    expected = expected.tocsr()
    np.testing.assert_array_equal((got != 0).toarray(), (expected != 0).toarray())
    np.testing.assert_allclose(got.toarray(), expected.toarray(), rtol=1e-5, atol=1e-6)


def test_knn_from_distances_puts_each_cell_first_and_refuses_ragged_graphs():
    distances = sparse.csr_matrix(np.array([[0, 1.0, 2.0], [1.0, 0, 3.0], [2.0, 3.0, 0]]))
    indices, values = knn_from_distances(distances)
    np.testing.assert_array_equal(indices, [[0, 1, 2], [1, 0, 2], [2, 0, 1]])
    np.testing.assert_array_equal(values, [[0, 1, 2], [0, 1, 3], [0, 2, 3]])
    ragged = sparse.csr_matrix(np.array([[0, 1.0, 2.0], [1.0, 0, 0], [2.0, 3.0, 0]]))
    with pytest.raises(ValueError, match="different numbers of neighbours"):
        knn_from_distances(ragged)
    with pytest.raises(ValueError, match="same shape"):
        fuzzy_simplicial_set(np.zeros((3, 2), dtype=int), np.zeros((3, 3)))


def test_large_samples_use_the_exact_search_not_pynndescent(monkeypatch):
    import pynndescent

    def refuse(*args, **kwargs):
        raise AssertionError("pynndescent was called")

    monkeypatch.setattr(pynndescent, "PyNNDescentTransformer", refuse)
    pcs = np.random.default_rng(3).normal(size=(8200, 4))  # scanpy: pynndescent from 8,192
    graph = _with_pcs(pcs)
    umap_neighbors(graph, 10, use_rep="X_pca")
    assert graph.obsp["distances"].getnnz(axis=1).min() == 9
    reference = _with_pcs(pcs)
    sc.pp.neighbors(reference, 10, use_rep="X_pca", transformer="sklearn")
    np.testing.assert_allclose(
        graph.obsp["connectivities"].toarray()[:500],
        reference.obsp["connectivities"].toarray()[:500],
        rtol=1e-5,
        atol=1e-6,
    )


# --- the embedding on these connectivities -----------------------------------------------------


def _sample(seed: int = 0) -> anndata.AnnData:
    """Four populations of 80 cells, each with its own block of expressed genes."""
    rng = np.random.default_rng(seed)
    rates = np.full((4, 200), 0.3)
    for k in range(4):
        rates[k, 40 * k : 40 * (k + 1)] = 4.0
    labels = np.repeat(np.arange(4), 80)
    counts = rng.poisson(rates[labels]).astype(np.float32)
    return anndata.AnnData(
        X=sparse.csr_matrix(np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)),
        obs=pd.DataFrame({"population": labels.astype(str)}, index=[f"c{i}" for i in range(320)]),
    )


def _scanpy_neighbors(adata, n_neighbors, *, use_rep, random_state):
    sc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep=use_rep, random_state=random_state)


def test_embedding_matches_scanpys_and_never_compiles_umaps_fuzzy_simplicial_set(monkeypatch):
    settings = EmbeddingSettings(n_top_genes=100, n_pcs=10, n_neighbors=15)
    before = _sample()
    with monkeypatch.context() as patched:  # the embedding as it was: sc.pp.neighbors
        patched.setattr(embedding, "umap_neighbors", _scanpy_neighbors)
        embed_cells(before, settings)

    def refuse(*args, **kwargs):
        raise AssertionError("umap.umap_.fuzzy_simplicial_set was called")

    monkeypatch.setattr(umap.umap_, "fuzzy_simplicial_set", refuse)
    after = _sample()
    assert embed_cells(after, settings) == "computed"
    assert after.uns["neighbors"]["params"]["method"] == "umap"
    # the same graph, the same clusters, a map as faithful to the PCs
    np.testing.assert_allclose(
        after.obsp["connectivities"].toarray(),
        before.obsp["connectivities"].toarray(),
        rtol=1e-5,
        atol=1e-6,
    )
    assert adjusted_rand_score(before.obs["leiden"], after.obs["leiden"]) == 1.0
    assert adjusted_rand_score(after.obs["population"], after.obs["leiden"]) > 0.9
    quality = {
        name: trustworthiness(adata.obsm["X_pca"], adata.obsm["X_umap"], n_neighbors=15)
        for name, adata in (("before", before), ("after", after))
    }
    assert quality["after"] > 0.9
    assert quality["after"] >= quality["before"] - 0.01
