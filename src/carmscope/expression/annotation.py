"""Marker-based cell-type assignment, one cell at a time.

Score (a weighted variant of UCell; Andreatta & Carmona 2021)
-------------------------------------------------------------
Within each cell, genes are ranked by expression, highest first (rank 1; ties get their average
rank). A detected marker gene ``g`` at rank ``r`` contributes ``u = max(0, 1 - (r - 1) / R)``
with ``R = max_rank`` (1500, UCell's default); an undetected marker contributes 0. The score of
cell type ``t`` is the weighted mean of ``u`` over its markers found in the matrix. Ranks are
taken within a cell, so the score does not depend on the other cells of the sample: a biopsy
that is 90% tumour cells is scored exactly as one that is 10%.

Assignment
----------
* background: the median of the cell's scores over all cell types (most types are absent from
  any one cell, so this is the score of markers the cell does not express);
* label: the best-scoring type; ``cell_type_score`` = best score - background;
  ``cell_type_confidence`` = best score - second-best score (the margin);
* ``unassigned`` when the score is below ``min_score`` (0.10) or the margin below
  ``min_margin`` (0.05).

Only the marker columns of the matrix are read per chunk of cells; the sparse matrix is never
densified.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import anndata
import numpy as np
import pandas as pd
from scipy import sparse

from carmscope.celltypes import CELL_TYPES, UNASSIGNED
from carmscope.io.tenx import gene_name_type
from carmscope.messages import quoted

MARKER_COLUMNS = ("cell_type", "gene")
"""Required columns of a marker table; ``weight`` (default 1) and ``source`` are optional."""
MAX_RANK = 1500
MIN_SCORE = 0.10
MIN_MARGIN = 0.05
CHUNK_CELLS = 4096
"""Cells ranked at once (bounds the working memory to one chunk's non-zero entries)."""


class MarkerCoverageError(ValueError):
    """A count matrix in which some cell type has none of its marker genes: the sample's
    annotation is not evaluable (see :func:`check_marker_coverage`)."""


class MarkerTableError(ValueError):
    """A marker table that cannot be used; the message starts with the file's path."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


def read_markers(path: str | os.PathLike, cell_types: Sequence[str] = CELL_TYPES) -> pd.DataFrame:
    """Read a marker table (TSV): ``cell_type``, ``gene``, optional ``weight`` and ``source``.

    Parameters
    ----------
    path
        The table; blank lines are skipped.
    cell_types
        Allowed labels (default the pipeline's vocabulary,
        :data:`carmscope.celltypes.CELL_TYPES`).

    Returns
    -------
    pandas.DataFrame
        Columns ``cell_type``, ``gene``, ``weight`` (float, default 1) and ``source`` (default
        ''), one row per distinct (cell type, gene).

    Raises
    ------
    MarkerTableError
        Unreadable file, missing column, unknown cell type, empty gene, a weight that is not a
        positive number, a (cell type, gene) pair listed twice, or no rows.
    """
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, skip_blank_lines=True)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise MarkerTableError(path, f"cannot be read as a TSV ({error})") from None
    except pd.errors.EmptyDataError:
        raise MarkerTableError(path, "empty file") from None
    missing = [column for column in MARKER_COLUMNS if column not in table.columns]
    if missing:
        raise MarkerTableError(path, f"missing column(s) {missing}; found {list(table.columns)}")
    if table.empty:
        raise MarkerTableError(path, "no markers")
    table = table.apply(lambda column: column.str.strip())
    if "weight" not in table:
        table["weight"] = "1"
    if "source" not in table:
        table["source"] = ""
    allowed = set(cell_types)
    for row, record in enumerate(table.itertuples(index=False), start=2):
        if record.cell_type not in allowed:
            raise MarkerTableError(
                path,
                f"line {row}: unknown cell type {record.cell_type!r}; use one of "
                f"{', '.join(cell_types)}",
            )
        if not record.gene:
            raise MarkerTableError(path, f"line {row}: empty gene")
        weight = pd.to_numeric(record.weight or "1", errors="coerce")
        if not np.isfinite(weight) or weight <= 0:
            raise MarkerTableError(
                path, f"line {row}: weight {record.weight!r} is not a positive number"
            )
    duplicated = table.duplicated(["cell_type", "gene"])
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise MarkerTableError(
            path,
            f"line {row + 2}: {table['gene'].iloc[row]!r} is listed twice for "
            f"{table['cell_type'].iloc[row]!r}",
        )
    table["weight"] = pd.to_numeric(table["weight"].replace("", "1"))
    return table[["cell_type", "gene", "weight", "source"]].reset_index(drop=True)


def _weights(
    markers: pd.DataFrame, var_names: pd.Index
) -> tuple[np.ndarray, np.ndarray, list[str], pd.DataFrame]:
    """Marker columns, genes x types weight matrix (columns sum to 1), types and coverage."""
    types = list(dict.fromkeys(markers["cell_type"]))
    present = markers[markers["gene"].isin(var_names)]
    genes = list(dict.fromkeys(present["gene"]))
    columns = var_names.get_indexer(genes)
    weights = np.zeros((len(genes), len(types)))
    row_of = {gene: i for i, gene in enumerate(genes)}
    for record in present.itertuples(index=False):
        weights[row_of[record.gene], types.index(record.cell_type)] = float(
            getattr(record, "weight", 1.0)
        )
    totals = weights.sum(axis=0)
    weights = np.divide(weights, totals, out=np.zeros_like(weights), where=totals > 0)
    coverage = pd.DataFrame(
        [
            {
                "cell_type": cell_type,
                "n_markers": int((markers["cell_type"] == cell_type).sum()),
                "n_found": int((present["cell_type"] == cell_type).sum()),
                "missing": ";".join(
                    markers.loc[
                        (markers["cell_type"] == cell_type) & ~markers["gene"].isin(var_names),
                        "gene",
                    ]
                ),
            }
            for cell_type in types
        ]
    )
    return columns, weights, types, coverage


def _names_look_like(var_names: Sequence[str]) -> str:
    examples = ", ".join(quoted(name) for name in list(var_names)[:3])
    return f"its feature names look like {gene_name_type(var_names) or 'nothing'}: {examples}"


def check_marker_coverage(
    markers: pd.DataFrame, var_names: Sequence[str], *, sample_id: str = "", counts_file: str = ""
) -> pd.DataFrame:
    """Check that every cell type of the marker table has a marker gene in the matrix.

    A real matrix can hold a subset of genes, Ensembl IDs or probe IDs as names, or another
    species' genes; marker scores would then compare types scored on different evidence.

    Parameters
    ----------
    markers
        Marker table (:func:`read_markers`).
    var_names
        The matrix's feature names.
    sample_id, counts_file
        Named in the error.

    Returns
    -------
    pandas.DataFrame
        Per cell type ``n_markers``, ``n_found`` and the ``missing`` genes.

    Raises
    ------
    MarkerCoverageError
        One line naming the sample and file, the marker genes found per cell type and the
        way on (gene symbols as the features file's second column).
    """
    _, _, _, coverage = _weights(markers, pd.Index(var_names))
    lacking = coverage.loc[coverage["n_found"] == 0, "cell_type"].tolist()
    if lacking:
        found = ", ".join(
            f"{row.cell_type} {row.n_found}/{row.n_markers}" for row in coverage.itertuples()
        )
        raise MarkerCoverageError(
            f"sample {sample_id} ({counts_file}): cell-type annotation not evaluable: no marker "
            f"gene of {', '.join(lacking)} in the matrix ({_names_look_like(var_names)}); "
            f"marker genes found per cell type: {found}; give human gene symbols as the "
            "features file's second column (map gene IDs to symbols) or a marker table "
            "(expression.markers) of the matrix's genes"
        )
    return coverage


def _rank_contributions(
    block: sparse.csr_matrix, columns: np.ndarray, max_rank: int
) -> sparse.csr_matrix:
    """``u = max(0, 1 - (rank - 1) / max_rank)`` of the marker columns of a block of cells."""
    n_cells = block.shape[0]
    rows = np.repeat(np.arange(n_cells, dtype=np.int64), np.diff(block.indptr))
    values = block.data.astype(np.float64)
    detected = values > 0
    rows, values = rows[detected], values[detected]
    span = float(values.max()) + 1.0 if values.size else 1.0
    keys = np.sort(rows * span + values)  # every row's detected values, ascending, row by row
    row_end = np.searchsorted(keys, np.arange(1, n_cells + 1) * span, side="left")
    markers = block[:, columns].tocoo()
    keep = markers.data > 0
    m_rows, m_cols = markers.row[keep], markers.col[keep]
    m_keys = m_rows * span + markers.data[keep].astype(np.float64)
    right = np.searchsorted(keys, m_keys, side="right")
    left = np.searchsorted(keys, m_keys, side="left")
    rank = 1.0 + (row_end[m_rows] - right) + (right - left - 1) / 2.0
    contribution = np.clip(1.0 - (rank - 1.0) / max_rank, 0.0, 1.0)
    return sparse.csr_matrix((contribution, (m_rows, m_cols)), shape=(n_cells, len(columns)))


def marker_scores(
    adata: anndata.AnnData,
    markers: pd.DataFrame,
    *,
    layer: str | None = None,
    max_rank: int = MAX_RANK,
    chunk_size: int = CHUNK_CELLS,
) -> pd.DataFrame:
    """Score every cell for every cell type of a marker table (see the module docstring).

    Parameters
    ----------
    adata
        Counts or log-normalised expression (ranks within a cell are the same for both).
    markers
        Marker table as from :func:`read_markers` (``weight`` optional).
    layer
        Layer to rank; ``X`` when ``None``.
    max_rank
        Rank at which a marker stops contributing (UCell's ``maxRank``).
    chunk_size
        Cells processed at once.

    Returns
    -------
    pandas.DataFrame
        Cells x cell types, scores in [0, 1]; a type without any marker in the matrix scores
        NaN. ``attrs["coverage"]`` holds markers found/total per type.

    Raises
    ------
    ValueError
        No marker gene of the table is in the matrix.
    """
    columns, weights, types, coverage = _weights(markers, adata.var_names)
    if len(columns) == 0:
        raise MarkerCoverageError(
            f"none of the marker genes is in the matrix ({_names_look_like(adata.var_names)})"
        )
    matrix = adata.X if layer is None else adata.layers[layer]
    if not sparse.issparse(matrix):
        matrix = sparse.csr_matrix(matrix)
    scores = np.empty((adata.n_obs, len(types)))
    for start in range(0, adata.n_obs, chunk_size):
        block = sparse.csr_matrix(matrix[start : start + chunk_size])
        scores[start : start + block.shape[0]] = (
            _rank_contributions(block, columns, max_rank) @ weights
        )
    scores[:, (coverage["n_found"] == 0).to_numpy()] = np.nan
    frame = pd.DataFrame(scores, index=adata.obs_names, columns=types)
    frame.attrs["coverage"] = coverage
    return frame


def assign_labels(
    scores: pd.DataFrame, *, min_score: float = MIN_SCORE, min_margin: float = MIN_MARGIN
) -> pd.DataFrame:
    """Best type, background-subtracted score and margin of each cell, from its type scores.

    Parameters
    ----------
    scores
        Cells x types, as from :func:`marker_scores` (NaN columns are ignored).
    min_score
        Minimum best score minus background (the median over types) to assign a type.
    min_margin
        Minimum difference between the best and second-best score to assign a type.

    Returns
    -------
    pandas.DataFrame
        ``cell_type`` (``unassigned`` below either threshold), ``best_type`` (before
        thresholds), ``cell_type_score`` and ``cell_type_confidence`` (the margin).
    """
    values = scores.to_numpy(dtype=float)
    usable = ~np.all(np.isnan(values), axis=0)
    values, types = values[:, usable], np.asarray(scores.columns[usable], dtype=object)
    if values.shape[1] == 0:
        raise ValueError("no cell type has a marker in the matrix")
    order = np.argsort(-values, axis=1, kind="stable")
    best = np.take_along_axis(values, order[:, :1], axis=1).ravel()
    second = (
        np.take_along_axis(values, order[:, 1:2], axis=1).ravel()
        if values.shape[1] > 1
        else np.zeros_like(best)
    )
    score = best - np.median(values, axis=1)
    margin = best - second
    best_type = types[order[:, 0]]
    confident = (score >= min_score) & (margin >= min_margin)
    return pd.DataFrame(
        {
            "cell_type": np.where(confident, best_type, UNASSIGNED),
            "best_type": best_type,
            "cell_type_score": score,
            "cell_type_confidence": margin,
        },
        index=scores.index,
    )


def annotate_cells(
    adata: anndata.AnnData,
    markers: pd.DataFrame,
    *,
    layer: str | None = None,
    min_score: float = MIN_SCORE,
    min_margin: float = MIN_MARGIN,
    max_rank: int = MAX_RANK,
    key: str = "cell_type",
) -> pd.DataFrame:
    """Annotate cells with a cell type from markers, in place.

    Parameters
    ----------
    adata
        QC-passed cells (counts or log-normalised; see :func:`marker_scores`).
    markers
        Marker table (:func:`read_markers`).
    layer, max_rank
        See :func:`marker_scores`.
    min_score, min_margin
        See :func:`assign_labels`.
    key
        ``obs`` column for the labels.

    Returns
    -------
    pandas.DataFrame
        The per-type scores (cells x types). ``adata`` gets ``obs[key]`` (categorical over
        :data:`CELL_TYPES` and ``unassigned``), ``obs[key + "_score"]``,
        ``obs[key + "_confidence"]``, ``obsm[key + "_scores"]`` and
        ``uns[key + "_annotation"]`` (method, thresholds, marker coverage).
    """
    scores = marker_scores(adata, markers, layer=layer, max_rank=max_rank)
    labels = assign_labels(scores, min_score=min_score, min_margin=min_margin)
    adata.obs[key] = pd.Categorical(labels["cell_type"], categories=[*CELL_TYPES, UNASSIGNED])
    adata.obs[f"{key}_score"] = labels["cell_type_score"].to_numpy()
    adata.obs[f"{key}_confidence"] = labels["cell_type_confidence"].to_numpy()
    adata.obsm[f"{key}_scores"] = pd.DataFrame(
        scores.to_numpy(), index=adata.obs_names, columns=list(scores.columns)
    )
    coverage = scores.attrs["coverage"]
    adata.uns[f"{key}_annotation"] = {
        "method": "weighted UCell-style within-cell rank score",
        "max_rank": int(max_rank),
        "min_score": float(min_score),
        "min_margin": float(min_margin),
        "coverage": {column: coverage[column].tolist() for column in coverage},
    }
    return scores


def annotate_if_evaluable(
    adata: anndata.AnnData,
    markers: pd.DataFrame,
    *,
    sample_id: str = "",
    counts_file: str = "",
    key: str = "cell_type",
    **settings,
) -> str:
    """Annotate cells (:func:`annotate_cells`) when every cell type has a marker gene in the
    matrix; otherwise leave them unlabelled and say why.

    Parameters
    ----------
    adata
        QC-passed cells.
    markers
        Marker table (:func:`read_markers`).
    sample_id, counts_file
        Named in the reason.
    key
        ``obs`` column for the labels.
    **settings
        ``layer``, ``min_score``, ``min_margin``, ``max_rank`` of :func:`annotate_cells`.

    Returns
    -------
    str
        '' when annotated; else the one-line reason of :func:`check_marker_coverage`, with
        ``obs[key]`` '' and its score and confidence NaN for every cell.
    """
    try:
        check_marker_coverage(
            markers, adata.var_names, sample_id=sample_id, counts_file=counts_file
        )
    except MarkerCoverageError as error:
        adata.obs[key] = ""
        adata.obs[f"{key}_score"] = np.nan
        adata.obs[f"{key}_confidence"] = np.nan
        return str(error)
    annotate_cells(adata, markers, key=key, **settings)
    return ""
