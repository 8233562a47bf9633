"""Cell-type composition of an annotated scRNA biopsy, and what it says about the tumour.

All fractions are of QC-passed cells of one sample:

* ``fraction_of_cells/<type>``: cells of the type / all QC-passed cells (``unassigned``
  included in the denominator, and reported as a type of its own);
* ``fraction_of_immune/<type>``: cells of the type / cells of any immune type
  (:data:`carmscope.celltypes.IMMUNE_CELL_TYPES`), for immune types only;
* ``treg_share_of_cd4``: Treg / (CD4 T + Treg); ``m2_share_of_macrophages``: M2-like /
  (M1-like + M2-like);
* ``cd8_t/exhaustion/mean_log2cpm``: mean ``log2(CPM + 1)`` of :data:`EXHAUSTION_GENES` on the
  pseudobulk of the sample's CD8 T cells (missing with fewer than ``min_cells`` CD8 T cells);
* ``tumour_epithelium/ERBB2/mean_lognorm``: mean over tumour cells of
  ``ln(1 + 1e4 * ERBB2 count / cell total)``; ``tumour_epithelium/ERBB2/fraction_positive``:
  fraction of tumour cells with at least one ERBB2 count.

A ratio whose denominator is 0 is NaN, never 0.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from carmscope.celltypes import CELL_TYPES, IMMUNE_CELL_TYPES, UNASSIGNED
from carmscope.expression.scoring import MIN_CELLS, log2_cpm, pseudobulk

if TYPE_CHECKING:  # annotations only: importing anndata takes most of a second
    import anndata

EXHAUSTION_GENES: tuple[str, ...] = ("PDCD1", "HAVCR2", "LAG3", "TIGIT", "TOX", "CTLA4")
"""Inhibitory receptors and TOX: PD-1, TIM-3, LAG-3, TIGIT, TOX, CTLA-4 (see the docs)."""
TUMOUR_TYPE = "tumour_epithelium"
HER2_GENE = "ERBB2"
CAR_COLUMNS = ("barcode", "car_umis")
NOT_ANNOTATED = "not_annotated"
"""CAR-table barcodes that are not among the annotated (QC-passed) cells."""


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator > 0 else float("nan")


def cell_type_table(obs: pd.DataFrame, key: str = "cell_type") -> pd.DataFrame:
    """Counts and fractions of every cell type among the QC-passed cells of one sample.

    Parameters
    ----------
    obs
        One row per QC-passed cell with the label column ``key``.
    key
        Label column.

    Returns
    -------
    pandas.DataFrame
        One row per type of :data:`CELL_TYPES` then ``unassigned``: ``cell_type``,
        ``immune`` (bool), ``n_cells``, ``fraction_of_cells`` and ``fraction_of_immune``
        (NaN for non-immune types).
    """
    labels = obs[key].astype(str)
    counts = labels.value_counts()
    n_total = len(labels)
    n_immune = int(labels.isin(list(IMMUNE_CELL_TYPES)).sum())
    rows = []
    for cell_type in (*CELL_TYPES, UNASSIGNED):
        n = int(counts.get(cell_type, 0))
        immune = cell_type in IMMUNE_CELL_TYPES
        rows.append(
            {
                "cell_type": cell_type,
                "immune": immune,
                "n_cells": n,
                "fraction_of_cells": _ratio(n, n_total),
                "fraction_of_immune": _ratio(n, n_immune) if immune else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def exhaustion_score(
    adata: anndata.AnnData,
    *,
    key: str = "cell_type",
    layer: str | None = "counts",
    genes: Collection[str] = EXHAUSTION_GENES,
    min_cells: int = MIN_CELLS,
) -> dict[str, object]:
    """Exhaustion of the sample's CD8 T cells: mean ``log2(CPM + 1)`` of ``genes`` on their
    pseudobulk.

    Returns
    -------
    dict
        ``score`` (NaN when missing), ``n_cells``, ``n_found``, ``n_genes`` and ``reason``
        ('' when scored).
    """
    mask = (adata.obs[key].astype(str) == "cd8_t").to_numpy()
    found = [gene for gene in genes if gene in adata.var_names]
    result: dict[str, object] = {
        "score": float("nan"),
        "n_cells": int(mask.sum()),
        "n_found": len(found),
        "n_genes": len(genes),
        "reason": "",
    }
    if mask.sum() < min_cells:
        result["reason"] = f"{int(mask.sum())} CD8 T cell(s) (< {min_cells})"
    elif not found:
        result["reason"] = "none of the exhaustion genes is in the matrix"
    else:
        counts = pseudobulk(adata, layer=layer, mask=mask)
        if counts.sum() <= 0:
            result["reason"] = "the CD8 T cells have no counts"
        else:
            result["score"] = float(log2_cpm(counts).loc[found].mean())
    return result


def erbb2_in_tumour(
    adata: anndata.AnnData,
    *,
    key: str = "cell_type",
    layer: str | None = "counts",
    gene: str = HER2_GENE,
    target_sum: float = 1e4,
) -> dict[str, float]:
    """ERBB2 in the sample's tumour cells, from raw counts (one matrix column, sparse).

    Returns
    -------
    dict
        ``n_tumour_cells``, ``mean_lognorm`` (mean of ``ln(1 + target_sum * count / total)``)
        and ``fraction_positive`` (count > 0); NaN without tumour cells or without the gene.
    """
    matrix = adata.layers[layer] if layer is not None and layer in adata.layers else adata.X
    mask = (adata.obs[key].astype(str) == TUMOUR_TYPE).to_numpy()
    n_tumour = int(mask.sum())
    if n_tumour == 0 or gene not in adata.var_names:
        return {"n_tumour_cells": n_tumour, "mean_lognorm": np.nan, "fraction_positive": np.nan}
    # the gene's column and the row totals, then the tumour cells (no copy of their rows)
    column = np.asarray(matrix[:, [adata.var_names.get_loc(gene)]].sum(axis=1)).ravel()[mask]
    totals = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()[mask]
    lognorm = np.log1p(
        np.divide(column * target_sum, totals, out=np.zeros(n_tumour), where=totals > 0)
    )
    return {
        "n_tumour_cells": n_tumour,
        "mean_lognorm": float(lognorm.mean()),
        "fraction_positive": float((column > 0).mean()),
    }


def composition_metrics(
    adata: anndata.AnnData,
    *,
    key: str = "cell_type",
    layer: str | None = "counts",
    min_cells: int = MIN_CELLS,
) -> pd.DataFrame:
    """Every composition metric of one annotated sample, as a long ``metric``/``value`` table.

    Parameters
    ----------
    adata
        QC-passed cells with labels in ``obs[key]`` and raw counts in ``layers[layer]`` (or
        ``X``).
    key, layer, min_cells
        Label column, raw-count layer, minimum CD8 T cells for the exhaustion score.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric``, ``value``; metric names in the module docstring.
    """
    table = cell_type_table(adata.obs, key).set_index("cell_type")
    rows = [("n_cells", float(adata.n_obs))]
    rows += [(f"fraction_of_cells/{t}", table.at[t, "fraction_of_cells"]) for t in table.index]
    rows += [
        (f"fraction_of_immune/{t}", table.at[t, "fraction_of_immune"])
        for t in table.index
        if t in IMMUNE_CELL_TYPES
    ]
    n = table["n_cells"]
    rows.append(("treg_share_of_cd4", _ratio(n["treg"], n["treg"] + n["cd4_t"])))
    rows.append(
        (
            "m2_share_of_macrophages",
            _ratio(n["macrophage_m2"], n["macrophage_m2"] + n["macrophage_m1"]),
        )
    )
    rows.append(
        (
            "cd8_t/exhaustion/mean_log2cpm",
            exhaustion_score(adata, key=key, layer=layer, min_cells=min_cells)["score"],
        )
    )
    erbb2 = erbb2_in_tumour(adata, key=key, layer=layer)
    rows.append((f"{TUMOUR_TYPE}/{HER2_GENE}/mean_lognorm", erbb2["mean_lognorm"]))
    rows.append((f"{TUMOUR_TYPE}/{HER2_GENE}/fraction_positive", erbb2["fraction_positive"]))
    return pd.DataFrame(rows, columns=["metric", "value"])


def car_by_cell_type(
    obs: pd.DataFrame, car: pd.DataFrame, *, key: str = "cell_type", min_umis: int = 1
) -> pd.DataFrame:
    """CAR+ cells by annotated cell type.

    Parameters
    ----------
    obs
        Annotated QC-passed cells, indexed by barcode, with labels in ``key``.
    car
        Per-cell CAR table with columns ``barcode`` and ``car_umis`` (other columns ignored);
        barcodes must be written as in the count matrix.
    key
        Label column of ``obs``.
    min_umis
        CAR UMIs for a cell to count as CAR+.

    Returns
    -------
    pandas.DataFrame
        One row per type of :data:`CELL_TYPES`, ``unassigned``, ``all`` (annotated cells) and
        ``not_annotated`` (CAR+ barcodes absent from ``obs``, e.g. removed by QC): columns
        ``cell_type``, ``n_cells``, ``n_car_positive``, ``fraction_car_positive``
        (CAR+ / cells of the type), ``share_of_car_positive`` (of all CAR+ annotated cells) and
        ``car_umis`` (sum over the type's CAR+ cells).

    Raises
    ------
    ValueError
        Missing column, negative or non-numeric UMIs, or a barcode listed twice.
    """
    missing = [column for column in CAR_COLUMNS if column not in car.columns]
    if missing:
        raise ValueError(f"CAR table lacks column(s) {missing}; found {list(car.columns)}")
    barcodes = car["barcode"].astype(str)
    if barcodes.duplicated().any():
        raise ValueError(
            f"CAR table lists barcode {barcodes[barcodes.duplicated()].iloc[0]!r} twice"
        )
    umis = pd.to_numeric(car["car_umis"], errors="coerce")
    if umis.isna().any() or (umis < 0).any():
        raise ValueError("CAR table: car_umis must be non-negative numbers")
    per_cell = pd.Series(umis.to_numpy(), index=pd.Index(barcodes))
    labels = obs[key].astype(str)
    cell_umis = per_cell.reindex(labels.index).fillna(0.0)
    positive = cell_umis >= min_umis
    n_positive_all = int(positive.sum())
    rows = []
    for cell_type in (*CELL_TYPES, UNASSIGNED, "all"):
        chosen = (
            np.ones(len(labels), bool) if cell_type == "all" else labels.eq(cell_type).to_numpy()
        )
        n_cells = int(chosen.sum())
        n_pos = int((positive.to_numpy() & chosen).sum())
        rows.append(
            {
                "cell_type": cell_type,
                "n_cells": n_cells,
                "n_car_positive": n_pos,
                "fraction_car_positive": _ratio(n_pos, n_cells),
                "share_of_car_positive": _ratio(n_pos, n_positive_all),
                "car_umis": float(cell_umis[positive & chosen].sum()),
            }
        )
    outside = per_cell[~per_cell.index.isin(labels.index) & (per_cell >= min_umis)]
    rows.append(
        {
            "cell_type": NOT_ANNOTATED,
            "n_cells": np.nan,
            "n_car_positive": len(outside),
            "fraction_car_positive": np.nan,
            "share_of_car_positive": np.nan,
            "car_umis": float(outside.sum()),
        }
    )
    table = pd.DataFrame(rows)
    table["n_cells"] = table["n_cells"].astype("Int64")
    return table
