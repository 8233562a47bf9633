"""Per-cell quality control and library-size normalisation of single-cell counts.

A cell passes QC when it has at least ``min_genes`` detected genes, at least ``min_counts`` UMIs,
at most ``max_mito_fraction`` of its UMIs on mitochondrial genes (symbols starting ``MT-``, any
case) and, if ``max_genes`` is set, at most ``max_genes`` detected genes (a crude doublet
filter, off by default). Genes are never filtered: every gene stays available for scoring.

Normalisation (:func:`normalize_log1p`) scales each cell to 10,000 counts and takes the natural
log of 1 plus the value (the values of ``scanpy.pp.normalize_total(target_sum=1e4)`` then
``scanpy.pp.log1p``); the raw counts stay in ``layers["counts"]``. Everything stays sparse.

Memory: a 50,000-cell sample's CSR matrix is close to 1 GB, so these steps avoid whole-matrix
copies. :func:`filter_cells` with ``copy=False`` removes the failing cells by compacting the
matrix in place (:func:`subset_rows_inplace`); :func:`normalize_log1p` scales the values in
place, one chunk of cells at a time, and its raw-count layer shares ``indices`` and ``indptr``
with ``X`` (only the values are duplicated).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import anndata
import numpy as np
import pandas as pd
from scipy import sparse

COUNTS_LAYER = "counts"
"""Layer holding raw counts after :func:`normalize_log1p`."""
CHUNK_ROWS = 2048
"""Cells handled at once by the in-place steps (bounds their temporary arrays)."""


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
        # stored entries per row, minus explicitly stored zeros (found without an
        # entry-sized index array: only the zeros' positions are materialised)
        n_genes = np.diff(matrix.indptr).astype(np.int64)
        zeros = np.flatnonzero(matrix.data == 0)
        if zeros.size:
            rows = np.searchsorted(matrix.indptr, zeros, side="right") - 1
            n_genes -= np.bincount(rows, minlength=matrix.shape[0])
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
    adata: anndata.AnnData,
    thresholds: QCThresholds | None = None,
    *,
    sample_id: str = "",
    copy: bool = True,
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
    copy
        ``True``: ``adata`` is left whole and the passing cells are copied. ``False`` (for a
        CSR ``X``): the passing cells' counts are compacted in place
        (:func:`subset_rows_inplace`) and moved to the returned object without a copy;
        ``adata`` keeps its ``obs`` (every cell, with the QC columns), ``var``, ``uns`` and any
        ``obsm``/``layers``, but its ``X`` becomes ``None``. Use it when only the per-cell QC
        table of the unfiltered cells is needed afterwards: the peak memory is then one count
        matrix instead of two. The result is the same either way.

    Returns
    -------
    filtered : anndata.AnnData
        The cells that pass (all genes kept), as an independent object.
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
    if copy or not isinstance(adata.X, sparse.csr_matrix | sparse.csr_array):
        return adata[passed].copy(), summary
    matrix = adata.X
    adata.X = None  # the counts move to the filtered object
    filtered = adata[passed].copy()
    filtered.X = subset_rows_inplace(matrix, passed)
    return filtered, summary


def subset_rows_inplace(
    matrix: sparse.csr_matrix | sparse.csr_array,
    keep: np.ndarray,
    *,
    chunk_size: int = CHUNK_ROWS,
) -> sparse.csr_matrix | sparse.csr_array:
    """The rows ``keep`` of a CSR matrix, compacted into the matrix's own arrays.

    Equal to ``matrix[keep]`` (same values, same order of stored entries, explicit zeros
    kept), but without a second copy of the values: the kept entries are moved to the front of
    ``matrix.data`` and ``matrix.indices``, one chunk of rows at a time, and the result views
    those arrays (when less than half of the entries are kept, scipy copies them to arrays of
    their own, which frees the rest). ``matrix`` itself is left inconsistent and must not be
    used afterwards.

    Parameters
    ----------
    matrix
        The CSR matrix (consumed).
    keep
        Boolean mask over the rows.
    chunk_size
        Rows moved at once (the temporary arrays hold one chunk's entries).

    Returns
    -------
    scipy.sparse.csr_matrix or csr_array
        ``keep.sum()`` rows, the class and dtypes of ``matrix``.

    Raises
    ------
    ValueError
        ``keep`` is not a boolean mask with one value per row.
    """
    keep = np.asarray(keep)
    if keep.dtype != bool or keep.shape != (matrix.shape[0],):
        raise ValueError(f"keep must be a boolean mask of {matrix.shape[0]} rows")
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    indptr, data, indices = matrix.indptr, matrix.data, matrix.indices
    lengths = np.diff(indptr)
    new_indptr = np.zeros(int(keep.sum()) + 1, dtype=indptr.dtype)
    np.cumsum(lengths[keep], out=new_indptr[1:])
    write = 0
    for start in range(0, matrix.shape[0], chunk_size):
        stop = min(start + chunk_size, matrix.shape[0])
        rows = keep[start:stop]
        if rows.all() and write == indptr[start]:  # nothing removed so far: already in place
            write = int(indptr[stop])
            continue
        first, last = int(indptr[start]), int(indptr[stop])
        entries = np.repeat(rows, lengths[start:stop])
        # the chunk's kept entries are copied out before being written at or before `first`
        moved = data[first:last][entries]
        data[write : write + moved.size] = moved
        indices[write : write + moved.size] = indices[first:last][entries]
        write += moved.size
    nnz = int(new_indptr[-1])
    return type(matrix)(
        (data[:nnz], indices[:nnz], new_indptr), shape=(len(new_indptr) - 1, matrix.shape[1])
    )


def normalize_log1p(
    adata: anndata.AnnData, target_sum: float = 1e4, counts_layer: str = COUNTS_LAYER
) -> None:
    """Library-size normalise to ``target_sum`` per cell, then ``log1p``, in place.

    Parameters
    ----------
    adata
        Raw counts in ``X`` (sparse stays sparse). Afterwards ``X`` holds
        ``ln(1 + target_sum * count / cell total)`` and ``layers[counts_layer]`` the raw counts;
        ``uns["normalization"]`` records the method (and ``uns["log1p"]`` is set, as by
        ``scanpy.pp.log1p``).
    target_sum
        Counts per cell after scaling (10,000: "counts per 10k").
    counts_layer
        Layer to keep the raw counts in.

    Notes
    -----
    The values are those of ``scanpy.pp.normalize_total(target_sum=target_sum)`` then
    ``scanpy.pp.log1p``. For a CSR ``X`` of floats in canonical format (sorted indices, no
    duplicates), the normalisation runs in place one chunk of cells at a time
    (:func:`normalize_total_inplace`) and ``layers[counts_layer]`` is a CSR matrix with its
    own copy of the values but **the same** ``indices`` and ``indptr`` arrays as ``X``: only
    the values are duplicated. Do not change the sparsity structure of ``X`` in place
    afterwards (e.g. ``eliminate_zeros``); work on a copy. Any other ``X`` is copied whole to
    the layer and normalised with scanpy.
    """
    matrix = adata.X
    if (
        isinstance(matrix, sparse.csr_matrix | sparse.csr_array)
        and np.issubdtype(matrix.dtype, np.floating)
        and np.result_type(matrix.dtype, target_sum) == matrix.dtype
        and matrix.has_canonical_format
    ):
        adata.layers[counts_layer] = type(matrix)(
            (matrix.data.copy(), matrix.indices, matrix.indptr), shape=matrix.shape
        )
        normalize_total_inplace(matrix, target_sum)
        np.log1p(matrix.data, out=matrix.data)  # what scanpy.pp.log1p does to sparse values
        adata.uns["log1p"] = {"base": None}
    else:
        import scanpy as sc  # here: its import takes seconds, and the common case needs none

        adata.layers[counts_layer] = adata.X.copy()
        sc.pp.normalize_total(adata, target_sum=target_sum)
        sc.pp.log1p(adata)
    adata.uns["normalization"] = {
        "method": "normalize_total + log1p",
        "target_sum": float(target_sum),
        "log_base": "e",
        "counts_layer": counts_layer,
    }


def normalize_total_inplace(
    matrix: sparse.csr_matrix | sparse.csr_array,
    target_sum: float = 1e4,
    *,
    chunk_size: int = CHUNK_ROWS,
) -> np.ndarray:
    """Scale each row of a CSR matrix of floats to ``target_sum``, in place, chunk by chunk.

    The same values, bit for bit, as ``scanpy.pp.normalize_total(target_sum=target_sum)``
    (scanpy 1.11): row totals accumulated in ``float64`` and stored in the matrix's dtype, the
    factor ``total / target_sum`` (1 for a row without counts, which stays 0), each value
    divided by its row's factor. Only ``matrix.data`` changes; the temporary arrays hold one
    chunk's entries.

    Parameters
    ----------
    matrix
        CSR matrix of ``float32`` or ``float64`` counts, changed in place.
    target_sum
        Total of each row afterwards.
    chunk_size
        Rows scaled at once.

    Returns
    -------
    numpy.ndarray
        The row totals before scaling (the matrix's dtype).

    Raises
    ------
    TypeError
        ``matrix`` is not a CSR matrix of floats, or ``target_sum`` is of a wider type (e.g.
        a ``numpy.float64`` with ``float32`` values: scanpy would return ``float64`` values).
    ValueError
        ``chunk_size`` below 1.
    """
    if not isinstance(matrix, sparse.csr_matrix | sparse.csr_array) or not np.issubdtype(
        matrix.dtype, np.floating
    ):
        raise TypeError("normalize_total_inplace needs a CSR matrix of floats")
    if np.result_type(matrix.dtype, target_sum) != matrix.dtype:
        raise TypeError(f"target_sum {target_sum!r} would change the dtype {matrix.dtype}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    indptr, data = matrix.indptr, matrix.data
    n_rows = matrix.shape[0]
    lengths = np.diff(indptr)
    bounds = [
        (
            start,
            min(start + chunk_size, n_rows),
            int(indptr[start]),
            int(indptr[min(start + chunk_size, n_rows)]),
        )
        for start in range(0, n_rows, chunk_size)
    ]
    totals = np.zeros(n_rows, dtype=data.dtype)
    for start, stop, first, last in bounds:
        rows = np.repeat(np.arange(stop - start), lengths[start:stop])
        totals[start:stop] = np.bincount(rows, weights=data[first:last], minlength=stop - start)
    if not np.all(totals > 0):
        warnings.warn("Some cells have zero counts", UserWarning, stacklevel=2)
    factors = totals / target_sum
    factors = factors + (factors == 0)
    for start, stop, first, last in bounds:
        np.true_divide(
            data[first:last],
            np.repeat(factors[start:stop], lengths[start:stop]),
            out=data[first:last],
        )
    return totals
