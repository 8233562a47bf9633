"""Single-sample gene-set scores on pseudobulk (scRNA) or bulk RNA-seq profiles.

Every score of a sample is computed from that sample alone, so adding or removing samples never
changes it (a z-score across samples would).

Profile
    scRNA: the sum of raw counts over QC-passed cells (all of them, or the cells of one
    compartment, e.g. macrophages); bulk: the gene counts. Then counts per million
    (``CPM = 1e6 * count / total``) and ``log2(CPM + 1)``.
Primary score: ``mean_log2cpm``
    The mean ``log2(CPM + 1)`` of the set's genes found in the profile. Its difference between
    two samples is the mean log2 fold change of the set's genes, in the same units for bulk and
    pseudobulk, and it works for sets of any size (two-gene signatures included).
Secondary score: ``singscore`` (Foroutan et al. 2018)
    Genes ranked by ``log2(CPM + 1)`` in increasing order (ties: minimum rank, the singscore
    default); with ``N`` genes in the profile and ``n`` set genes found,
    ``(mean rank - (n + 1) / 2) / (N - n) - 0.5``, in [-0.5, 0.5]. Rank-based, so robust to a
    few very highly expressed set genes, but it depends on the gene universe.
Cytolytic activity: ``rooney_cyt`` (Rooney et al. 2015)
    ``sqrt((CPM(GZMA) + 0.01) * (CPM(PRF1) + 0.01))``: Rooney's geometric mean with CPM in place
    of TPM (UMI counts have no gene-length bias; bulk counts are treated the same way).

No minimum set size: a set is scored if at least one of its genes is in the profile; a set with
none is reported with ``status`` ``missing`` and the reason, never dropped. Genes found / total
are reported for every set.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

from carmscope.celltypes import MACROPHAGE_TYPES, T_CELL_TYPES
from carmscope.genesets import read_gmt, read_signature_table

if TYPE_CHECKING:  # annotations only: importing anndata takes most of a second
    import anndata

CYTOLYTIC_GENES = ("GZMA", "PRF1")
CYTOLYTIC_PSEUDOCOUNT = 0.01
"""Added to each gene's CPM before the geometric mean (Rooney et al. 2015 add 0.01 to TPM)."""
MIN_CELLS = 10
"""Minimum cells for a compartment's pseudobulk to be scored."""
PRIMARY_METHOD = "mean_log2cpm"
CYT_METHOD = "rooney_cyt"

COMPARTMENTS: dict[str, frozenset[str] | None] = {
    "all": None,
    "macrophage": MACROPHAGE_TYPES,
    "t_cell": T_CELL_TYPES,
}
"""Pseudobulk compartments: name -> cell types (``None``: every QC-passed cell)."""

SCORE_COLUMNS = (
    "compartment",
    "n_cells",
    "collection",
    "gene_set",
    "n_genes",
    "n_found",
    "genes_missing",
    "score_method",
    "score",
    "singscore",
    "status",
    "reason",
)
"""Columns of a score table, in order."""


class GeneSetError(ValueError):
    """A gene-set collection that cannot be used; the message starts with the file's path."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


@dataclass(frozen=True)
class GeneSetCollection:
    """Gene sets from one file.

    Attributes
    ----------
    name
        Short name (the file name without ``.gmt``/``.tsv``).
    path
        The file.
    kind
        ``gmt`` or ``signatures``.
    sets
        Set name -> genes, in file order.
    """

    name: str
    path: str
    kind: str
    sets: dict[str, list[str]]

    def genes(self) -> set[str]:
        """Every gene of every set."""
        return {gene for genes in self.sets.values() for gene in genes}


def _collection_name(path: str | os.PathLike) -> str:
    name = Path(path).name
    for suffix in (".gmt", ".tsv", ".txt"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def load_gmt(path: str | os.PathLike) -> GeneSetCollection:
    """Read a GMT file (:func:`carmscope.genesets.read_gmt`) as a collection.

    Raises
    ------
    GeneSetError
        The file holds no gene set.
    carmscope.genesets.GeneSetFormatError
        A malformed line (file and line named).
    """
    sets = read_gmt(path)
    if not sets:
        raise GeneSetError(path, "no usable gene set (expected 'name<TAB>description<TAB>genes')")
    return GeneSetCollection(_collection_name(path), str(path), "gmt", sets)


def load_signatures(path: str | os.PathLike) -> GeneSetCollection:
    """Read a signature table (:func:`carmscope.genesets.read_signature_table`) as a collection.

    Raises
    ------
    GeneSetError
        The table holds no signature.
    carmscope.genesets.GeneSetFormatError
        A malformed line (file and line named).
    """
    sets = read_signature_table(path)
    if not sets:
        raise GeneSetError(path, "no usable signature (only a header?)")
    return GeneSetCollection(_collection_name(path), str(path), "signatures", sets)


def load_collections(
    gmt_paths: Sequence[str | os.PathLike] = (), signature_paths: Sequence[str | os.PathLike] = ()
) -> list[GeneSetCollection]:
    """Read GMT files and signature tables; set names must be unique across all of them.

    Raises
    ------
    GeneSetError
        A file without sets, or a set name defined in two files (both named).
    """
    collections = [load_gmt(path) for path in gmt_paths]
    collections += [load_signatures(path) for path in signature_paths]
    seen: dict[str, str] = {}
    for collection in collections:
        for name in collection.sets:
            if name in seen:
                raise GeneSetError(
                    collection.path, f"gene set {name!r} is already defined in {seen[name]}"
                )
            seen[name] = collection.path
    return collections


def check_overlap(collections: Sequence[GeneSetCollection], genes: Collection[str]) -> None:
    """Raise if a collection shares no gene with the profile's genes.

    Raises
    ------
    GeneSetError
        Names the collection's file, with a few of its genes and of the matrix's.
    """
    universe = set(genes)
    for collection in collections:
        wanted = collection.genes()
        if not wanted & universe:
            raise GeneSetError(
                collection.path,
                f"none of its {len(wanted)} genes (e.g. {sorted(wanted)[:3]}) is in the "
                f"expression matrix (e.g. {sorted(universe)[:3]}): are both gene symbols of "
                "the same species?",
            )


# --- profiles ---------------------------------------------------------------------------------


def _counts_matrix(adata: anndata.AnnData, layer: str | None) -> sparse.spmatrix | np.ndarray:
    if layer is not None and layer in adata.layers:
        return adata.layers[layer]
    return adata.X


def pseudobulk(
    adata: anndata.AnnData, *, layer: str | None = "counts", mask: np.ndarray | None = None
) -> pd.Series:
    """Sum of raw counts over cells (sparse column sums).

    Parameters
    ----------
    adata
        Cells x genes; counts from ``layers[layer]`` if present, else ``X`` (which must then
        hold raw counts).
    layer
        Layer of raw counts.
    mask
        Boolean mask of the cells to sum (default all).

    Returns
    -------
    pandas.Series
        Counts per gene (``float64``), indexed by ``var_names``.

    Notes
    -----
    The cells of ``mask`` are summed without copying their rows: a sparse matrix is
    multiplied by the 0/1 mask (in the type ``matrix.sum`` accumulates in), which adds the same
    values in the same order as ``matrix[mask].sum(axis=0)`` and so gives the same totals.
    """
    matrix = _counts_matrix(adata, layer)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (adata.n_obs,):
            raise ValueError(f"mask must have one value per cell ({adata.n_obs})")
    if mask is None or mask.all():
        totals = matrix.sum(axis=0)
    elif sparse.issparse(matrix):
        # the accumulator type of matrix.sum (e.g. int64 for int32 counts)
        dtype = np.zeros(0, dtype=matrix.dtype).sum().dtype
        totals = mask.astype(dtype)[None, :] @ matrix
    else:
        totals = matrix[mask].sum(axis=0)
    totals = np.asarray(totals, dtype=np.float64).ravel()
    return pd.Series(totals, index=adata.var_names.copy(), name="count")


def log2_cpm(counts: pd.Series) -> pd.Series:
    """``log2(CPM + 1)`` of a count profile (``CPM = 1e6 * count / total``)."""
    total = float(counts.sum())
    if total <= 0:
        raise ValueError("a profile with no counts cannot be normalised")
    return np.log2(counts.astype(np.float64) / total * 1e6 + 1.0)


def singscore(expression: pd.Series, genes: Sequence[str]) -> float:
    """Singscore of one set in one profile (Foroutan et al. 2018; up-set, centred).

    Parameters
    ----------
    expression
        Expression of every gene of the profile (any monotone scale).
    genes
        The set's genes found in ``expression`` (at least one).

    Returns
    -------
    float
        ``(mean rank - (n + 1) / 2) / (N - n) - 0.5``; NaN when every gene is in the set.
    """
    return _singscore(_ranks(expression), genes)


def _ranks(expression: pd.Series) -> pd.Series:
    """Increasing ranks, ties sharing the minimum rank (singscore's ``tiesMethod = "min"``)."""
    return expression.rank(method="min")


def _singscore(ranks: pd.Series, genes: Sequence[str]) -> float:
    n_total, n_set = len(ranks), len(genes)
    if n_set == 0 or n_set >= n_total:
        return float("nan")
    mean_rank = float(ranks.loc[list(genes)].mean())
    return (mean_rank - (n_set + 1) / 2) / (n_total - n_set) - 0.5


def cytolytic_activity(counts: pd.Series) -> float:
    """Cytolytic activity (Rooney et al. 2015) of a count profile, on the CPM scale.

    ``sqrt((CPM(GZMA) + 0.01) * (CPM(PRF1) + 0.01))``; NaN if either gene is absent.
    """
    if any(gene not in counts.index for gene in CYTOLYTIC_GENES):
        return float("nan")
    cpm = counts.astype(np.float64) / float(counts.sum()) * 1e6
    values = [float(cpm[gene]) + CYTOLYTIC_PSEUDOCOUNT for gene in CYTOLYTIC_GENES]
    return float(np.exp(np.mean(np.log(values))))


# --- scoring a profile ------------------------------------------------------------------------


def _missing_row(base: dict, reason: str) -> dict:
    return {**base, "score": np.nan, "singscore": np.nan, "status": "missing", "reason": reason}


def score_profile(
    counts: pd.Series,
    collections: Sequence[GeneSetCollection],
    *,
    compartment: str = "all",
    n_cells: int | None = None,
    cytolytic: bool = True,
    unusable: str = "",
) -> pd.DataFrame:
    """Score every set of every collection on one count profile.

    Parameters
    ----------
    counts
        Raw counts per gene (pseudobulk or bulk).
    collections
        Gene-set collections (:func:`load_collections`).
    compartment
        Written into the ``compartment`` column (``all``, ``macrophage``, ``t_cell``, ...).
    n_cells
        Cells summed into the profile (scRNA); NaN for bulk.
    cytolytic
        Also report Rooney's cytolytic activity (set ``cytolytic_activity``, collection
        ``derived``).
    unusable
        If not empty, the profile cannot be scored (e.g. too few cells): every row is
        ``missing`` with this reason.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SCORE_COLUMNS`, one row per set (and one for cytolytic activity).
    """
    if not unusable and float(counts.sum()) <= 0:
        unusable = "the profile has no counts"
    expression = None if unusable else log2_cpm(counts)
    ranks = None if unusable else _ranks(expression)
    present = set(counts.index)
    rows = []
    for collection in collections:
        for name, genes in collection.sets.items():
            found = [gene for gene in genes if gene in present]
            base = {
                "compartment": compartment,
                "n_cells": n_cells,
                "collection": collection.name,
                "gene_set": name,
                "n_genes": len(genes),
                "n_found": len(found),
                "genes_missing": ";".join(gene for gene in genes if gene not in present),
                "score_method": PRIMARY_METHOD,
            }
            if unusable:
                rows.append(_missing_row(base, unusable))
            elif not found:
                rows.append(_missing_row(base, f"none of the {len(genes)} genes is in the matrix"))
            else:
                rows.append(
                    {
                        **base,
                        "score": float(expression.loc[found].mean()),
                        "singscore": _singscore(ranks, found),
                        "status": "ok",
                        "reason": "",
                    }
                )
    if cytolytic:
        found = [gene for gene in CYTOLYTIC_GENES if gene in present]
        base = {
            "compartment": compartment,
            "n_cells": n_cells,
            "collection": "derived",
            "gene_set": "cytolytic_activity",
            "n_genes": len(CYTOLYTIC_GENES),
            "n_found": len(found),
            "genes_missing": ";".join(g for g in CYTOLYTIC_GENES if g not in present),
            "score_method": CYT_METHOD,
        }
        if unusable:
            rows.append(_missing_row(base, unusable))
        elif len(found) < len(CYTOLYTIC_GENES):
            rows.append(_missing_row(base, "needs both GZMA and PRF1"))
        else:
            rows.append(
                {
                    **base,
                    "score": cytolytic_activity(counts),
                    "singscore": np.nan,
                    "status": "ok",
                    "reason": "",
                }
            )
    table = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    table["n_cells"] = table["n_cells"].astype("Int64")
    return table


def score_scrna_sample(
    adata: anndata.AnnData,
    collections: Sequence[GeneSetCollection],
    *,
    compartments: Mapping[str, Collection[str] | None] = COMPARTMENTS,
    compartment_kinds: Collection[str] = ("gmt",),
    key: str = "cell_type",
    layer: str | None = "counts",
    min_cells: int = MIN_CELLS,
) -> pd.DataFrame:
    """Score one scRNA sample: every collection on all cells, GMT sets per compartment.

    Parameters
    ----------
    adata
        QC-passed, annotated cells (``obs[key]``), raw counts in ``layers[layer]`` or ``X``.
    collections
        Gene-set collections.
    compartments
        Name -> cell types whose pseudobulk is scored (``None``: all cells). Default:
        ``all``, ``macrophage`` (M1-like + M2-like) and ``t_cell`` (CD8, CD4, Treg).
    compartment_kinds
        Collection kinds scored in compartments other than ``all`` (default the GMT files:
        the inflammation hallmarks); every collection is scored on ``all``.
    key
        ``obs`` column of cell types.
    layer
        Layer of raw counts.
    min_cells
        A compartment with fewer cells is reported ``missing`` (too few cells).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SCORE_COLUMNS`; cytolytic activity on ``all`` only.

    Raises
    ------
    GeneSetError
        A collection shares no gene with the matrix.
    """
    check_overlap(collections, adata.var_names)
    tables = []
    for name, cell_types in compartments.items():
        if cell_types is None:
            mask = np.ones(adata.n_obs, dtype=bool)
            chosen = list(collections)
        else:
            mask = adata.obs[key].isin(list(cell_types)).to_numpy()
            chosen = [c for c in collections if c.kind in compartment_kinds]
        if not chosen:
            continue
        n_cells = int(mask.sum())
        unusable = (
            f"{n_cells} cell(s) of {'+'.join(sorted(cell_types))} (< {min_cells})"
            if cell_types is not None and n_cells < min_cells
            else ""
        )
        counts = pseudobulk(adata, layer=layer, mask=mask)
        tables.append(
            score_profile(
                counts,
                chosen,
                compartment=name,
                n_cells=n_cells,
                cytolytic=cell_types is None,
                unusable=unusable,
            )
        )
    return pd.concat(tables, ignore_index=True)


def score_bulk_sample(counts: pd.Series, collections: Sequence[GeneSetCollection]) -> pd.DataFrame:
    """Score a bulk RNA-seq sample: every collection and cytolytic activity (compartment ``all``).

    Raises
    ------
    GeneSetError
        A collection shares no gene with the count table.
    """
    check_overlap(collections, counts.index)
    return score_profile(counts, collections, compartment="all", n_cells=None)


def scores_to_metrics(scores: pd.DataFrame) -> pd.DataFrame:
    """Long ``metric``/``value`` table of a score table (NaN kept for missing sets).

    Metric names are ``<compartment>/<gene set>/<method>``, with ``method`` the primary score
    (``mean_log2cpm``, or ``rooney_cyt`` for cytolytic activity) and ``singscore``.
    """
    rows = []
    for record in scores.itertuples(index=False):
        prefix = f"{record.compartment}/{record.gene_set}"
        rows.append({"metric": f"{prefix}/{record.score_method}", "value": record.score})
        if record.score_method == PRIMARY_METHOD:
            rows.append({"metric": f"{prefix}/singscore", "value": record.singscore})
    return pd.DataFrame(rows, columns=["metric", "value"])
