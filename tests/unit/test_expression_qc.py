"""Per-cell QC on synthetic biopsies (damaged cells removed) and normalisation."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from scipy import sparse

from carmscope.expression.qc import (
    QCThresholds,
    filter_cells,
    mito_genes,
    normalize_log1p,
    normalize_total_inplace,
    qc_metrics,
    subset_rows_inplace,
)
from carmscope.genesets import read_gmt, read_signature_table
from carmscope.synthetic.design import PRESETS, design_cohort
from carmscope.synthetic.expression import simulate_biopsy
from carmscope.synthetic.genes import MITOCHONDRIAL_GENES, gene_table

GENESETS = Path(__file__).resolve().parents[2] / "resources" / "genesets"
TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def biopsies():
    """Every scRNA biopsy of the tiny cohort as AnnData of raw counts, truth in ``obs``."""
    hallmarks = read_gmt(GENESETS / "hallmark_inflammation.v7.0.gmt")
    genes = gene_table(
        TINY, {**hallmarks, **read_signature_table(GENESETS / "immune_signatures.tsv")}
    )
    inflammatory = {gene for genes_ in hallmarks.values() for gene in genes_}
    result = []
    for patient in design_cohort(TINY):
        for sample in patient.samples:
            if sample.assay == "scrna":
                cells = simulate_biopsy(sample, patient, TINY, genes, inflammatory)
                result.append(
                    anndata.AnnData(
                        sparse.csr_matrix(cells.matrix, dtype=np.float32),
                        obs=cells.cells.drop(columns="barcode"),
                        var=pd.DataFrame(index=genes["gene_symbol"].to_numpy()),
                    )
                )
    return result


def test_mito_genes_case_insensitive():
    names = pd.Index(["MT-CO1", "mt-Nd1", "MTOR", "CD8A", "MT-ND4L"])
    assert mito_genes(names).tolist() == [True, True, False, False, True]


def test_qc_metrics_hand_made_ignores_stored_zeros():
    matrix = sparse.csr_matrix(
        (
            np.array([3.0, 0.0, 1.0, 6.0, 2.0], dtype=np.float32),  # an explicitly stored zero
            np.array([0, 1, 2, 0, 2]),
            np.array([0, 3, 5, 5]),
        ),
        shape=(3, 3),
    )
    adata = anndata.AnnData(matrix, var=pd.DataFrame(index=["CD3D", "MT-CO1", "MT-ND1"]))
    metrics = qc_metrics(adata)
    assert metrics["n_genes"].tolist() == [2, 2, 0]
    assert metrics["total_counts"].tolist() == [4.0, 8.0, 0.0]
    assert metrics["mito_fraction"].tolist() == pytest.approx([0.25, 0.25, 0.0])


def test_qc_removes_the_damaged_cells(biopsies):
    for adata in biopsies:
        adata = adata.copy()
        truth = adata.obs["low_quality"].to_numpy()
        assert truth.sum() > 0
        filtered, summary = filter_cells(adata, sample_id="s")
        removed = ~adata.obs["qc_pass"].to_numpy()
        assert removed[truth].all(), "every damaged cell is removed"
        assert (~removed[~truth]).mean() >= 0.99, "good cells are kept"
        assert not filtered.obs["low_quality"].any()
        assert summary["cells_before"] == adata.n_obs
        assert summary["cells_after"] == filtered.n_obs == int((~removed).sum())
        assert summary["cells_removed"] == int(removed.sum())
        assert summary["failed_max_mito_fraction"] >= truth.sum()  # mito alone catches them
        assert summary["n_mito_genes"] == len(MITOCHONDRIAL_GENES)
        assert filtered.n_vars == adata.n_vars, "genes are never filtered"
        assert sparse.issparse(filtered.X)


def test_qc_thresholds_each_criterion_counts(biopsies):
    adata = biopsies[0].copy()
    n_genes = qc_metrics(adata)["n_genes"].to_numpy()
    cap = int(np.quantile(n_genes, 0.9))
    _, summary = filter_cells(
        adata,
        QCThresholds(min_genes=0, min_counts=0, max_mito_fraction=1.0, max_genes=cap),
    )
    assert summary["failed_max_genes"] == int((n_genes > cap).sum()) > 0
    assert summary["failed_min_genes"] == summary["failed_min_counts"] == 0
    assert summary["cells_removed"] == summary["failed_max_genes"]
    assert summary["threshold_max_genes"] == cap


def test_qc_thresholds_from_mapping():
    thresholds = QCThresholds.from_mapping({"min_genes": 100, "max_mito_fraction": 0.1})
    assert thresholds.min_genes == 100 and thresholds.min_counts == 500
    assert QCThresholds.from_mapping(None) == QCThresholds()
    with pytest.raises(ValueError, match="unknown QC setting"):
        QCThresholds.from_mapping({"min_gene": 100})
    with pytest.raises(ValueError, match="fraction"):
        QCThresholds(max_mito_fraction=20)


def test_normalize_log1p_keeps_counts_and_sparsity(biopsies):
    adata, _ = filter_cells(biopsies[1].copy())
    raw = adata.X.copy()
    normalize_log1p(adata)
    assert sparse.issparse(adata.X) and sparse.issparse(adata.layers["counts"])
    assert (adata.layers["counts"] != raw).nnz == 0
    totals = np.asarray(adata.X.expm1().sum(axis=1)).ravel()
    assert totals == pytest.approx(np.full(adata.n_obs, 1e4), rel=1e-4)
    assert adata.X.nnz == raw.nnz
    assert adata.uns["normalization"]["target_sum"] == 1e4


def test_qc_metrics_stored_zeros_after_empty_rows():
    matrix = sparse.csr_matrix(
        (
            np.array([0.0, 2.0, 0.0, 0.0, 5.0, 1.0], dtype=np.float32),
            np.array([0, 1, 0, 1, 2, 0]),
            np.array([0, 2, 2, 2, 5, 6]),  # rows 1 and 2 empty
        ),
        shape=(5, 3),
    )
    adata = anndata.AnnData(matrix, var=pd.DataFrame(index=["A", "B", "MT-C"]))
    metrics = qc_metrics(adata)
    assert metrics["n_genes"].tolist() == [1, 0, 0, 1, 1]
    assert metrics["total_counts"].tolist() == [2.0, 0.0, 0.0, 5.0, 1.0]


# --- in-place filtering and normalisation -----------------------------------------------------


def _random_counts(n_rows: int, n_cols: int, seed: int, cls=sparse.csr_matrix):
    """Random CSR counts with empty rows and explicitly stored zeros."""
    rng = np.random.default_rng(seed)
    matrix = sparse.random(
        n_rows, n_cols, density=0.3, format="csr", dtype=np.float32, random_state=seed
    )
    matrix.data = rng.integers(0, 20, matrix.nnz).astype(np.float32)  # some stored zeros
    matrix = sparse.csr_matrix(matrix)
    for row in (1, 2, n_rows - 1):
        matrix.data[matrix.indptr[row] : matrix.indptr[row + 1]] = 0
    matrix.eliminate_zeros()
    matrix.data[::7] = 0  # explicit zeros again, after the empty rows were made
    return cls(matrix)


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
@pytest.mark.parametrize("pattern", ["alternate", "none", "all", "first", "last", "random"])
@pytest.mark.parametrize("cls", [sparse.csr_matrix, sparse.csr_array])
def test_subset_rows_inplace_equals_indexing(chunk_size, pattern, cls):
    matrix = _random_counts(40, 15, seed=3, cls=cls)
    n_rows = matrix.shape[0]
    keep = {
        "alternate": np.arange(n_rows) % 2 == 0,
        "none": np.zeros(n_rows, dtype=bool),
        "all": np.ones(n_rows, dtype=bool),
        "first": np.arange(n_rows) > 0,
        "last": np.arange(n_rows) < n_rows - 1,
        "random": np.random.default_rng(1).random(n_rows) < 0.7,
    }[pattern]
    expected = matrix.copy()[keep]
    result = subset_rows_inplace(matrix, keep, chunk_size=chunk_size)
    assert type(result) is cls
    assert result.shape == expected.shape and result.dtype == expected.dtype
    assert np.array_equal(result.indptr, expected.indptr)
    assert np.array_equal(result.indices, expected.indices)
    assert np.array_equal(result.data, expected.data)  # explicit zeros kept, same order


def test_subset_rows_inplace_reuses_the_arrays():
    matrix = _random_counts(200, 30, seed=4).copy()  # arrays that own their memory
    keep = np.ones(200, dtype=bool)
    keep[[0, 5, 6, 150]] = False
    expected = matrix.copy()[keep]
    data, indices = matrix.data, matrix.indices
    result = subset_rows_inplace(matrix, keep, chunk_size=16)
    assert np.shares_memory(result.data, data) and np.shares_memory(result.indices, indices)
    assert (result != expected).nnz == 0


def test_subset_rows_inplace_rejects_bad_masks():
    matrix = _random_counts(10, 5, seed=0)
    with pytest.raises(ValueError, match="boolean mask of 10 rows"):
        subset_rows_inplace(matrix, np.ones(9, dtype=bool))
    with pytest.raises(ValueError, match="boolean mask"):
        subset_rows_inplace(matrix, np.arange(10))


def test_filter_cells_without_copy_gives_the_same_result(biopsies):
    for adata in biopsies:
        copied_input = adata.copy()
        moved_input = adata.copy()
        data = moved_input.X.data
        expected, expected_summary = filter_cells(copied_input, sample_id="s")
        filtered, summary = filter_cells(moved_input, sample_id="s", copy=False)
        assert summary == expected_summary
        assert filtered.obs.equals(expected.obs) and filtered.var.equals(expected.var)
        assert np.array_equal(filtered.X.indptr, expected.X.indptr)
        assert np.array_equal(filtered.X.indices, expected.X.indices)
        assert np.array_equal(filtered.X.data, expected.X.data)
        assert np.shares_memory(filtered.X.data, data), "the counts were moved, not copied"
        # the unfiltered object keeps every cell's QC columns, not the matrix
        assert moved_input.X is None
        assert moved_input.obs.equals(copied_input.obs)
        assert moved_input.obs["qc_pass"].sum() == filtered.n_obs


def test_filter_cells_without_copy_on_dense_counts_copies(biopsies):
    adata = biopsies[0].copy()
    adata.X = adata.X.toarray()
    expected, _ = filter_cells(adata.copy())
    filtered, _ = filter_cells(adata, copy=False)
    assert np.array_equal(filtered.X, expected.X)
    assert adata.X is not None  # nothing to compact in place: a plain copy


def _scanpy_normalised(matrix, target_sum=1e4):
    reference = anndata.AnnData(matrix.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Some cells have zero counts"
        sc.pp.normalize_total(reference, target_sum=target_sum)
    return reference.X


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("chunk_size", [1, 7, 4096])
def test_normalize_total_inplace_matches_scanpy_bit_for_bit(dtype, chunk_size):
    matrix = _random_counts(60, 30, seed=5).astype(dtype)
    expected = _scanpy_normalised(matrix)
    structure = (matrix.indices.copy(), matrix.indptr.copy())
    raw_totals = np.asarray(matrix.sum(axis=1)).ravel()
    with pytest.warns(UserWarning, match="zero counts"):  # the empty rows
        totals = normalize_total_inplace(matrix, 1e4, chunk_size=chunk_size)
    assert matrix.dtype == expected.dtype == dtype
    assert np.array_equal(matrix.data, expected.data)
    assert np.array_equal(matrix.indices, structure[0])
    assert np.array_equal(matrix.indptr, structure[1])
    assert np.array_equal(totals, raw_totals.astype(dtype))
    rows = np.asarray(matrix.sum(axis=1)).ravel()
    assert rows[raw_totals > 0] == pytest.approx(1e4, rel=1e-5)
    assert (rows[raw_totals == 0] == 0).all()


def test_normalize_total_inplace_rejects_what_scanpy_would_widen():
    matrix = _random_counts(5, 5, seed=0)
    with pytest.raises(TypeError, match="CSR matrix of floats"):
        normalize_total_inplace(matrix.astype(np.int64))
    with pytest.raises(TypeError, match="CSR matrix of floats"):
        normalize_total_inplace(matrix.tocsc())
    with pytest.raises(TypeError, match="dtype float32"):
        normalize_total_inplace(matrix, np.float64(1e4))


def test_normalize_log1p_matches_scanpy_and_shares_the_structure(biopsies):
    adata, _ = filter_cells(biopsies[2].copy())
    reference = adata.copy()
    reference.layers["counts"] = reference.X.copy()
    sc.pp.normalize_total(reference, target_sum=1e4)
    sc.pp.log1p(reference)
    normalize_log1p(adata)
    assert np.array_equal(adata.X.data, reference.X.data)
    assert np.array_equal(adata.X.indices, reference.X.indices)
    counts = adata.layers["counts"]
    assert np.array_equal(counts.data, reference.layers["counts"].data)
    # only the values are duplicated; indices and indptr are X's own arrays
    assert np.shares_memory(counts.indices, adata.X.indices)
    assert np.shares_memory(counts.indptr, adata.X.indptr)
    assert not np.shares_memory(counts.data, adata.X.data)
    assert adata.uns["log1p"] == reference.uns["log1p"]


def test_normalize_log1p_unsorted_indices_fall_back_to_a_copy(biopsies):
    adata, _ = filter_cells(biopsies[0].copy())
    matrix = adata.X
    first, last = matrix.indptr[0], matrix.indptr[1]
    matrix.indices[first:last] = matrix.indices[first:last][::-1].copy()  # row 0 unsorted
    matrix.data[first:last] = matrix.data[first:last][::-1].copy()
    matrix.has_sorted_indices = False
    raw = matrix.copy()
    normalize_log1p(adata)
    counts = adata.layers["counts"]
    assert not np.shares_memory(counts.indices, adata.X.indices)
    assert (counts != raw).nnz == 0
    totals = np.asarray(adata.X.expm1().sum(axis=1)).ravel()
    assert totals == pytest.approx(np.full(adata.n_obs, 1e4), rel=1e-4)
