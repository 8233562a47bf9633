"""Per-cell quality control and library-size normalisation of single-cell counts.

A cell passes QC when it has at least ``min_genes`` detected genes, at least ``min_counts`` UMIs,
at most ``max_mito_fraction`` of its UMIs on mitochondrial genes (symbols starting ``MT-``, any
case) and, if ``max_genes`` is set, at most ``max_genes`` detected genes (a crude doublet
filter, off by default). Genes are never filtered: every gene stays available for scoring.

Normalisation (:func:`normalize_log1p`) scales each cell to 10,000 counts and takes the natural
log of 1 plus the value (``scanpy.pp.normalize_total(target_sum=1e4)`` then
``scanpy.pp.log1p``); the raw counts stay in ``layers["counts"]``. Everything stays sparse.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import anndata
import numpy as np
import pandas as pd
import scanpy as sc
from scipy import sparse

COUNTS_LAYER = "counts"
"""Layer holding raw counts after :func:`normalize_log1p`."""


@dataclass(frozen=True)
class QCThresholds:
    """Per-cell QC thresholds (see ``docs/expression.md`` for the reasoning and references).

    Attributes
    ----------
    min_genes
        Minimum detected genes (count > 0) per cell.
    min_counts
        Minimum UMIs per cell.
    max_mito_fraction
        Maximum fraction of a cell's UMIs on mitochondrial genes (0-1, not percent).
    max_genes
        Maximum detected genes per cell (doublet filter); ``None`` to switch it off.
    mito_prefix
        Prefix of mitochondrial gene symbols, matched case-insensitively (``MT-`` also matches
        mouse ``mt-``).
    """

    min_genes: int = 200
    min_counts: int = 500
    max_mito_fraction: float = 0.20
    max_genes: int | None = None
    mito_prefix: str = "MT-"

    def __post_init__(self) -> None:
        if self.min_genes < 0 or self.min_counts < 0:
            raise ValueError("min_genes and min_counts must be >= 0")
        if not 0.0 < self.max_mito_fraction <= 1.0:
            raise ValueError("max_mito_fraction is a fraction in (0, 1]")
        if self.max_genes is not None and self.max_genes < self.min_genes:
            raise ValueError("max_genes must be at least min_genes")

    @classmethod
    def from_mapping(cls, values: dict | None) -> QCThresholds:
        """Thresholds from a config mapping; keys left out keep their defaults."""
        values = dict(values or {})
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(
                f"unknown QC setting(s) {sorted(unknown)}; use {sorted(cls.__dataclass_fields__)}"
            )
        return cls(**values)


def mito_genes(var_names: pd.Index, prefix: str = "MT-") -> np.ndarray:
    """Boolean mask of mitochondrial genes: symbols starting with ``prefix`` (any case)."""
    return np.asarray(var_names.str.upper().str.startswith(prefix.upper()), dtype=bool)


def qc_metrics(adata: anndata.AnnData, mito_prefix: str = "MT-") -> pd.DataFrame:
    """Per-cell QC metrics from raw counts in ``X``, computed sparsely.

    Parameters
    ----------
    adata
        Raw counts (cells x genes), sparse or dense.
    mito_prefix
        Prefix of mitochondrial gene symbols (case-insensitive).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``adata.obs``: ``n_genes`` (genes with count > 0), ``total_counts``,
        ``mito_counts`` and ``mito_fraction`` (0 for a cell without counts).
    """
    matrix = adata.X
    mito = mito_genes(adata.var_names, mito_prefix)
    if sparse.issparse(matrix):
        matrix = sparse.csr_matrix(matrix)
        # stored entries per row, minus explicitly stored zeros
        detected = np.concatenate([[0], np.cumsum(matrix.data != 0)])
        n_genes = detected[matrix.indptr[1:]] - detected[matrix.indptr[:-1]]
    else:
        n_genes = np.count_nonzero(matrix, axis=1)
    total = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
    mito_counts = (
        np.asarray(matrix[:, mito].sum(axis=1), dtype=np.float64).ravel()
        if mito.any()
        else np.zeros(adata.n_obs)
    )
    fraction = np.divide(mito_counts, total, out=np.zeros_like(total), where=total > 0)
    return pd.DataFrame(
        {
            "n_genes": np.asarray(n_genes, dtype=np.int64),
            "total_counts": total,
            "mito_counts": mito_counts,
            "mito_fraction": fraction,
        },
        index=adata.obs_names,
    )


def filter_cells(
    adata: anndata.AnnData, thresholds: QCThresholds | None = None, *, sample_id: str = ""
) -> tuple[anndata.AnnData, dict[str, object]]:
    """Flag and remove cells failing QC.

    Parameters
    ----------
    adata
        Raw counts. Its ``obs`` gets the columns of :func:`qc_metrics`, one boolean
        ``qc_fail_<criterion>`` column per criterion and ``qc_pass`` (modified in place).
    thresholds
        QC thresholds; defaults of :class:`QCThresholds` when ``None``.
    sample_id
        Written into the summary.

    Returns
    -------
    filtered : anndata.AnnData
        A copy holding the cells that pass (all genes kept).
    summary : dict
        ``sample_id``, ``cells_before``, ``cells_after``, ``cells_removed``, one
        ``failed_<criterion>`` count per criterion (a cell failing several criteria counts in
        each, so these can sum to more than ``cells_removed``), ``n_mito_genes`` and the
        thresholds used.
    """
    thresholds = thresholds or QCThresholds()
    metrics = qc_metrics(adata, thresholds.mito_prefix)
    for column in metrics:
        adata.obs[column] = metrics[column].to_numpy()
    failed = {
        "min_genes": metrics["n_genes"].to_numpy() < thresholds.min_genes,
        "min_counts": metrics["total_counts"].to_numpy() < thresholds.min_counts,
        "max_mito_fraction": metrics["mito_fraction"].to_numpy() > thresholds.max_mito_fraction,
        "max_genes": (
            metrics["n_genes"].to_numpy() > thresholds.max_genes
            if thresholds.max_genes is not None
            else np.zeros(adata.n_obs, dtype=bool)
        ),
    }
    passed = ~np.logical_or.reduce(list(failed.values()))
    for criterion, mask in failed.items():
        adata.obs[f"qc_fail_{criterion}"] = mask
    adata.obs["qc_pass"] = passed
    summary: dict[str, object] = {
        "sample_id": sample_id,
        "cells_before": int(adata.n_obs),
        "cells_after": int(passed.sum()),
        "cells_removed": int((~passed).sum()),
        **{f"failed_{criterion}": int(mask.sum()) for criterion, mask in failed.items()},
        "n_mito_genes": int(mito_genes(adata.var_names, thresholds.mito_prefix).sum()),
        **{f"threshold_{key}": value for key, value in asdict(thresholds).items()},
    }
    return adata[passed].copy(), summary


def normalize_log1p(
    adata: anndata.AnnData, target_sum: float = 1e4, counts_layer: str = COUNTS_LAYER
) -> None:
    """Library-size normalise to ``target_sum`` per cell, then ``log1p``, in place.

    Parameters
    ----------
    adata
        Raw counts in ``X`` (sparse stays sparse). Afterwards ``X`` holds
        ``ln(1 + target_sum * count / cell total)`` and ``layers[counts_layer]`` the raw counts;
        ``uns["normalization"]`` records the method.
    target_sum
        Counts per cell after scaling (10,000: "counts per 10k").
    counts_layer
        Layer to keep the raw counts in.
    """
    adata.layers[counts_layer] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=target_sum)
    sc.pp.log1p(adata)
    adata.uns["normalization"] = {
        "method": "normalize_total + log1p",
        "target_sum": float(target_sum),
        "log_base": "e",
        "counts_layer": counts_layer,
    }
