"""The ``vdj`` join: each clone's cells and their annotated cell types.

A scRNA sample's ``vdj`` file (10x ``filtered_contig_annotations.csv`` or AIRR with
``cell_id``) is read like any repertoire (:func:`carmscope.tcr.io.read_repertoire`); its cells
join the expression stage's per-cell table (``barcode``, ``cell_type``) by barcode. Barcodes
match exactly, or, when none does, after dropping a GEM-well suffix (``-1``) on both sides.

Exhaustion of a cell: the mean log-normalised expression (``ln(1 + 1e4 x count / total)``, the
expression stage's ``X``) of the expression stage's exhaustion genes
(:data:`carmscope.expression.composition.EXHAUSTION_GENES`: PDCD1, HAVCR2, LAG3, TIGIT, TOX,
CTLA4) found in the matrix; empty for cells not in the processed matrix (removed by QC).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carmscope.tcr.io import Repertoire, RepertoireError

CD8_TYPE = "cd8_t"
"""The cell-type label of CD8+ T cells (:data:`carmscope.celltypes.CELL_TYPES`)."""


def _strip_well(barcodes: pd.Series) -> pd.Series:
    return barcodes.astype(str).str.replace(r"-\d+$", "", regex=True)


def annotate_cells(
    repertoire: Repertoire, cell_types: pd.DataFrame, cells_path: str
) -> pd.DataFrame:
    """The repertoire's cells with their ``cell_type`` ('' for cells the expression stage did
    not annotate, e.g. removed by QC).

    Parameters
    ----------
    repertoire
        A cell-level repertoire (``repertoire.cells`` not None).
    cell_types
        The expression stage's per-cell table: ``barcode``, ``cell_type``.
    cells_path
        Where ``cell_types`` came from (for the error message).

    Raises
    ------
    RepertoireError
        The file has no cells, or none of its barcodes is a cell of the sample.
    """
    if repertoire.cells is None:
        raise RepertoireError(
            f"{repertoire.path}: a vdj file must give cells (10x filtered_contig_annotations"
            f".csv or AIRR with cell_id); this is {repertoire.format} without cells"
        )
    cells = repertoire.cells.copy()
    types = cell_types.set_index(cell_types["barcode"].astype(str))["cell_type"]
    types = types.fillna("").astype(str)
    matched = cells["barcode"].isin(types.index)
    if not matched.any():
        stripped = pd.Series(types.to_numpy(), index=_strip_well(pd.Series(types.index)))
        stripped = stripped[~stripped.index.duplicated()]
        keys = _strip_well(cells["barcode"])
        if keys.isin(stripped.index).any():
            cells["cell_type"] = keys.map(stripped).fillna("").to_numpy()
            return cells
        example = ", ".join(cells["barcode"].head(3))
        raise RepertoireError(
            f"{repertoire.path}: column 'barcode' (line 2 on): none of its {len(cells)} cell "
            f"barcodes (e.g. {example}) is a cell of the sample's count matrix ({cells_path}: "
            f"{len(types)} cells, e.g. {', '.join(types.index[:3])}); is it the vdj file of "
            "another sample?"
        )
    cells["cell_type"] = cells["barcode"].map(types).fillna("").to_numpy()
    return cells


def exhaustion_scores(adata, genes=None) -> pd.Series:
    """Per barcode of a processed AnnData (log-normalised ``X``): mean expression of the
    exhaustion genes present (NaN for every cell when none is)."""
    from carmscope.expression.composition import EXHAUSTION_GENES

    found = [gene for gene in (genes or EXHAUSTION_GENES) if gene in adata.var_names]
    if not found:
        return pd.Series(np.nan, index=adata.obs_names, name="exhaustion")
    values = adata[:, found].X
    values = values.toarray() if hasattr(values, "toarray") else np.asarray(values)
    return pd.Series(values.mean(axis=1), index=adata.obs_names, name="exhaustion")


def clone_exhaustion(cells: pd.DataFrame) -> pd.DataFrame:
    """Mean exhaustion of each clone's scored cells: ``clone_id``, ``mean_exhaustion``."""
    scored = cells.dropna(subset=["exhaustion"])
    table = scored.groupby("clone_id", sort=False)["exhaustion"].mean()
    return table.rename("mean_exhaustion").reset_index()


def exhaustion_of(cells: pd.DataFrame, clones: set[str]) -> tuple[float, float]:
    """Mean exhaustion of the CD8 T cells in ``clones``, and of the other CD8 T cells (NaN
    where there is no scored cell)."""
    cd8 = cells[(cells["cell_type"] == CD8_TYPE)].dropna(subset=["exhaustion"])
    inside = cd8["clone_id"].isin(clones)
    mean_in = float(cd8.loc[inside, "exhaustion"].mean()) if inside.any() else np.nan
    mean_out = float(cd8.loc[~inside, "exhaustion"].mean()) if (~inside).any() else np.nan
    return mean_in, mean_out


def cell_type_counts(cells: pd.DataFrame) -> pd.DataFrame:
    """Cells per clone and cell type: ``clone_id`` and one ``cells_{type}`` column per type
    (``cells_unannotated`` for cells without a type)."""
    labels = cells["cell_type"].replace("", "unannotated")
    table = pd.crosstab(cells["clone_id"], labels)
    table.columns = [f"cells_{label}" for label in table.columns]
    return table.reset_index()


def cd8_fraction(cells: pd.DataFrame, clones: set[str]) -> tuple[float, int]:
    """Among the annotated cells whose clone is in ``clones``: fraction CD8 T, and their number
    (NaN, 0 when there is none)."""
    mine = cells[cells["clone_id"].isin(clones) & (cells["cell_type"] != "")]
    if not len(mine):
        return np.nan, 0
    return float((mine["cell_type"] == CD8_TYPE).mean()), len(mine)
