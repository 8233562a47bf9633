"""Figures of the differential-expression step: volcano plots, the enrichment heat map and the
number of DE genes per cell type.

Drawn from the step's tables only (``results.tsv``, ``enrichment.tsv``, ``summary.tsv``) with
matplotlib's Agg canvas (no pyplot); the format follows the path's suffix.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 120
UP, DOWN, NOT_SIGNIFICANT = "#b2182b", "#2166ac", "#bdbdbd"
LABELLED_GENES = 10


def _save(figure: Figure, path: str | os.PathLike) -> None:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")


def _message(path: str | os.PathLike, title: str, text: str) -> None:
    figure = Figure(figsize=(5.5, 4.5))
    axes = figure.add_subplot()
    axes.set_axis_off()
    axes.set_title(title)
    axes.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9)
    _save(figure, path)


def volcano(
    results: pd.DataFrame,
    path: str | os.PathLike,
    *,
    title: str,
    alpha: float = 0.05,
    reason: str = "",
) -> None:
    """Volcano plot: shrunken log2 fold change (unshrunken when absent) against -log10 p.

    Genes at ``padj < alpha`` are coloured by direction and the ten smallest p-values labelled.
    A contrast that was not tested gives a figure stating the reason.
    """
    if results.empty:
        _message(path, title, reason or "no gene tested")
        return
    lfc = results["log2FoldChange_shrunk"].astype(float)
    if lfc.isna().all():
        lfc = results["log2FoldChange"].astype(float)
    p = results["pvalue"].astype(float).clip(lower=1e-300)
    y = -np.log10(p)
    significant = results["padj"].astype(float) < alpha
    colours = np.where(~significant, NOT_SIGNIFICANT, np.where(lfc > 0, UP, DOWN))
    figure = Figure(figsize=(5.5, 4.5))
    axes = figure.add_subplot()
    axes.scatter(lfc, y, c=colours, s=6, linewidths=0)
    n_up = int((significant & (lfc > 0)).sum())
    n_down = int((significant & (lfc < 0)).sum())
    for _, row in (
        results.assign(_y=y, _x=lfc)[significant].nlargest(LABELLED_GENES, "_y").iterrows()
    ):
        axes.annotate(row["gene"], (row["_x"], row["_y"]), fontsize=6)
    axes.axvline(0, color="black", linewidth=0.5)
    axes.set_xlabel("log2 fold change, post vs baseline (shrunken)")
    axes.set_ylabel("-log10 p (Wald)")
    axes.set_title(f"{title}\n{n_up} up, {n_down} down at FDR {alpha:g}", fontsize=10)
    _save(figure, path)


def enrichment_heatmap(
    enrichment: Mapping[str, pd.DataFrame], path: str | os.PathLike, *, alpha: float = 0.05
) -> None:
    """Heat map of ulm scores, cell types x gene sets; ``*`` marks ``padj < alpha``."""
    frames = [
        table.assign(cell_type=cell_type)
        for cell_type, table in enrichment.items()
        if not table.empty and table["score"].notna().any()
    ]
    if not frames:
        _message(path, "Pathway enrichment", "no cell type was tested")
        return
    long = pd.concat(frames, ignore_index=True)
    scores = long.pivot_table(index="cell_type", columns="set", values="score", sort=False)
    padj = long.pivot_table(index="cell_type", columns="set", values="padj", sort=False)
    padj = padj.reindex_like(scores)
    limit = float(np.nanmax(np.abs(scores.to_numpy()))) or 1.0
    figure = Figure(figsize=(2 + 0.3 * scores.shape[1], 1.5 + 0.3 * scores.shape[0]))
    axes = figure.add_subplot()
    image = axes.imshow(scores.to_numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axes.set_xticks(range(scores.shape[1]), scores.columns, rotation=90, fontsize=6)
    axes.set_yticks(range(scores.shape[0]), scores.index, fontsize=7)
    for i, j in zip(*np.nonzero(padj.to_numpy() < alpha), strict=True):
        axes.text(j, i, "*", ha="center", va="center", fontsize=7)
    figure.colorbar(image, ax=axes, label="ulm score (t), post vs baseline")
    axes.set_title(f"Pathway enrichment (* FDR < {alpha:g})", fontsize=10)
    _save(figure, path)


def de_gene_counts(summary: pd.DataFrame, path: str | os.PathLike, *, alpha: float = 0.05) -> None:
    """Bar chart of genes up and down at FDR ``alpha`` per cell type (untested types named)."""
    figure = Figure(figsize=(6, 1.2 + 0.3 * max(len(summary), 1)))
    axes = figure.add_subplot()
    labels = [
        f"{row.cell_type} (n={row.n_pairs})" if row.tested else f"{row.cell_type} (not tested)"
        for row in summary.itertuples()
    ]
    positions = np.arange(len(summary))
    axes.barh(positions, summary["genes_up"].fillna(0), color=UP, label="up")
    axes.barh(positions, -summary["genes_down"].fillna(0), color=DOWN, label="down")
    axes.set_yticks(positions, labels, fontsize=7)
    axes.invert_yaxis()
    axes.axvline(0, color="black", linewidth=0.5)
    axes.set_xlabel(f"genes at FDR {alpha:g} (down left, up right)")
    axes.legend(fontsize=7, loc="lower right")
    _save(figure, path)
