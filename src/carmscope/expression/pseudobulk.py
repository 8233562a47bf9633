"""Pseudobulk count profiles of one scRNA sample per cell type, for differential expression.

Profile
    The raw counts of a sample's QC-passed cells summed per gene over the cells of one cell type
    (``obs["cell_type"]``), and over every QC-passed cell (profile :data:`ALL`). Summing cells
    into one profile per sample and cell type makes the sample, not the cell, the replicate of
    the later test; pseudobulk methods control false discoveries that single-cell tests do not
    (Squair et al. 2021).
Cells per profile
    Every profile is written with its number of cells; the minimum number of cells a profile
    needs to enter a test (``expression.de.min_cells``) is applied by the test, so changing it
    does not re-aggregate the samples.
One sample alone
    A sample's profiles depend on that sample's cells only.

Bulk RNA samples are their own profile (:func:`bulk_profile`): the gene counts, rounded to
integers (RSEM/Salmon expected counts are decimals; DESeq2 models integer counts and the
tximport convention is to round).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from carmscope.celltypes import CELL_TYPES, UNASSIGNED
from carmscope.expression.io import read_bulk_counts

if TYPE_CHECKING:  # annotations only: importing anndata takes most of a second
    import anndata

ALL = "all"
"""Profile of every QC-passed cell of a sample (and the only profile of a bulk sample)."""
CHUNK_CELLS = 8192
"""Cells summed at once (bounds the float64 working copy)."""
PROFILE_NAMES: tuple[str, ...] = (*CELL_TYPES, ALL)
"""Every profile a scRNA sample can have, in reporting order (``unassigned`` cells join
``all`` only)."""


class PseudobulkError(ValueError):
    """A pseudobulk input that cannot be used; the message names the file or setting."""


def pseudobulk_by_cell_type(
    adata: anndata.AnnData,
    *,
    key: str = "cell_type",
    layer: str | None = "counts",
    cell_types: Sequence[str] = CELL_TYPES,
) -> tuple[pd.DataFrame, pd.Series]:
    """Sum raw counts per cell type (and over all cells) in one sparse product.

    Parameters
    ----------
    adata
        QC-passed, annotated cells of one sample; raw counts in ``layers[layer]`` if present,
        else ``X``.
    key
        ``obs`` column of cell-type labels.
    layer
        Layer of raw counts.
    cell_types
        Labels that get a profile (``unassigned`` cells, and unlabelled ones when the
        sample's annotation was not evaluable, count in :data:`ALL` only).

    Returns
    -------
    counts : pandas.DataFrame
        Genes (``var_names``) x profiles (``cell_types`` then :data:`ALL`), ``int64``; a cell
        type without cells is a column of zeros.
    n_cells : pandas.Series
        Cells summed into each profile (same order).

    Notes
    -----
    ``decoupler.pp.pseudobulk`` (Badia-i-Mompel et al. 2022) computes the same sums (a unit
    test compares them) but is not used here: it densifies the cells x genes block of every
    group (``.toarray()``; a 20,000-cell tumour group of 6,700 genes is 0.5 GiB as float32),
    loops over groups with one boolean row selection (a copy) each, and has no all-cells
    profile. Here one sparse indicator matrix (profiles x cells) times the counts gives every
    profile at once without copying the counts; ``benchmarks/de.py`` measures both on 50,000
    cells.
    """
    matrix = adata.layers[layer] if layer is not None and layer in adata.layers else adata.X
    if key not in adata.obs.columns:
        raise PseudobulkError(f"cells have no obs column {key!r} (cell-type annotation)")
    labels = adata.obs[key].astype(str).to_numpy()
    # unlabelled cells ('': the sample's annotation was not evaluable) count in ALL only
    unknown = sorted(set(labels) - set(cell_types) - {UNASSIGNED, ""})
    if unknown:
        raise PseudobulkError(
            f"cell type(s) {unknown} in obs[{key!r}] are not in the vocabulary {list(cell_types)}"
        )
    names = [*cell_types, ALL]
    position = {name: i for i, name in enumerate(cell_types)}
    rows = np.array([position.get(label, -1) for label in labels], dtype=np.int64)
    typed = np.flatnonzero(rows >= 0)
    n_obs = adata.n_obs
    indicator = sparse.csc_matrix(
        (
            np.ones(typed.size + n_obs, dtype=np.float64),
            (
                np.concatenate([rows[typed], np.full(n_obs, len(cell_types))]),
                np.concatenate([typed, np.arange(n_obs)]),
            ),
        ),
        shape=(len(names), n_obs),
    )
    sums = np.zeros((len(names), adata.n_vars), dtype=np.float64)
    for start in range(0, n_obs, CHUNK_CELLS):
        # a chunk of rows at a time in float64: exact integer sums without a float64 copy of
        # the whole matrix
        block = matrix[start : start + CHUNK_CELLS]
        block = block.astype(np.float64) if sparse.issparse(block) else np.asarray(block, float)
        part = indicator[:, start : start + CHUNK_CELLS] @ block
        sums += part.toarray() if sparse.issparse(part) else part
    rounded = np.rint(sums)
    if not np.allclose(sums, rounded, rtol=0, atol=1e-6) or (rounded < 0).any():
        raise PseudobulkError("the count matrix holds values that are not counts")
    counts = pd.DataFrame(rounded.T.astype(np.int64), index=adata.var_names.copy(), columns=names)
    counts.index.name = "gene"
    n_cells = pd.Series(
        np.asarray(indicator.sum(axis=1)).ravel().astype(np.int64), index=names, name="n_cells"
    )
    n_cells.index.name = "cell_type"
    return counts, n_cells


def bulk_profile(path: str | os.PathLike) -> tuple[pd.DataFrame, pd.Series]:
    """A bulk RNA count table as a one-profile (:data:`ALL`) pseudobulk, counts rounded.

    Returns
    -------
    counts, n_cells
        As :func:`pseudobulk_by_cell_type`; ``n_cells`` is NaN (not cells).
    """
    counts = read_bulk_counts(path)
    table = pd.DataFrame({ALL: np.rint(counts.to_numpy(dtype=float)).astype(np.int64)})
    table.index = pd.Index(counts.index, name="gene")
    return table, pd.Series([np.nan], index=pd.Index([ALL], name="cell_type"), name="n_cells")


def write_pseudobulk(
    counts: pd.DataFrame,
    n_cells: pd.Series,
    counts_path: str | os.PathLike,
    cells_path: str | os.PathLike,
) -> None:
    """Write a sample's profiles: ``gene`` then one column per profile; ``cell_type, n_cells``."""
    counts.rename_axis("gene").to_csv(counts_path, sep="\t", lineterminator="\n")
    n_cells.rename("n_cells").rename_axis("cell_type").to_csv(
        cells_path, sep="\t", lineterminator="\n"
    )


def read_pseudobulk(
    counts_path: str | os.PathLike, cells_path: str | os.PathLike
) -> tuple[pd.DataFrame, pd.Series]:
    """Read what :func:`write_pseudobulk` wrote.

    Raises
    ------
    PseudobulkError
        A file without the ``gene`` / ``cell_type``, ``n_cells`` columns (file named).
    """
    counts = pd.read_csv(counts_path, sep="\t", dtype={"gene": str})
    if "gene" not in counts.columns:
        raise PseudobulkError(f"{counts_path}: no 'gene' column")
    counts = counts.set_index("gene")
    cells = pd.read_csv(cells_path, sep="\t", dtype={"cell_type": str})
    if list(cells.columns) != ["cell_type", "n_cells"]:
        raise PseudobulkError(f"{cells_path}: expected columns cell_type, n_cells")
    return counts.astype(np.int64), cells.set_index("cell_type")["n_cells"]
