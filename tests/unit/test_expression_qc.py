"""Per-cell QC on synthetic biopsies (damaged cells removed) and normalisation."""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from carmscope.expression.qc import (
    QCThresholds,
    filter_cells,
    mito_genes,
    normalize_log1p,
    qc_metrics,
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
