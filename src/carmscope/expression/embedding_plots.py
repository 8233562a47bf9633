"""Figures of the embeddings: a biopsy's UMAP by cell type with the CAR+ cells on top, a
patient's samples side by side on their joint UMAP, and the marker dot plot that is the
annotation's evidence.

Cell types keep one colour in every figure (:data:`CELL_TYPE_COLORS`); CAR+ cells are drawn
last, larger and outlined, so none hides under the thousands of other cells. Figures use
matplotlib's Agg canvas without pyplot; the format follows the path's suffix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import anndata
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from carmscope.celltypes import CELL_TYPES, UNASSIGNED
from carmscope.expression.embedding import UMAP_KEY, has_embedding
from carmscope.reproducible import save_figure

DPI = 110
_PALETTE = (
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#46f0f0",
    "#f032e6",
    "#bcf60c",
    "#008080",
    "#9a6324",
    "#800000",
    "#808000",
    "#000075",
)
CELL_TYPE_COLORS = dict(zip(CELL_TYPES, _PALETTE, strict=True)) | {UNASSIGNED: "#bdbdbd"}
OTHER_COLOR = "#e0e0e0"
CAR_EDGE = "black"


def _save(figure: Figure, path: str | os.PathLike) -> None:
    FigureCanvasAgg(figure)
    save_figure(figure, path, dpi=DPI, bbox_inches="tight")


def _not_available(axes, message: str) -> None:
    axes.text(0.5, 0.5, message, ha="center", va="center", wrap=True, transform=axes.transAxes)
    axes.set_axis_off()


def _point_size(n_cells: int) -> float:
    return float(np.clip(12000 / max(n_cells, 1), 2, 30))


def _car_mask(obs: pd.DataFrame) -> np.ndarray:
    if "car_positive" not in obs:
        return np.zeros(len(obs), dtype=bool)
    return obs["car_positive"].astype(bool).to_numpy()


def _draw_cells(axes, coords: np.ndarray, obs: pd.DataFrame, size: float) -> list[str]:
    """Cells coloured by type, CAR+ cells on top; returns the types drawn, in legend order."""
    types = obs["cell_type"].astype(str).to_numpy()
    present = [t for t in (*CELL_TYPES, UNASSIGNED) if (types == t).any()]
    present += sorted(set(types) - set(present))
    colors = np.array([CELL_TYPE_COLORS.get(t, "#666666") for t in types])
    car = _car_mask(obs)
    axes.scatter(*coords[~car].T, c=colors[~car], s=size, linewidths=0, rasterized=True)
    if car.any():
        axes.scatter(
            *coords[car].T,
            c=colors[car],
            s=max(size * 3, 18),
            edgecolors=CAR_EDGE,
            linewidths=0.8,
            zorder=3,
        )
    return present


def _legend_handles(types: Sequence[str], with_car: bool) -> list[Line2D]:
    handles = [
        Line2D([], [], marker="o", linestyle="", color=CELL_TYPE_COLORS.get(t, "#666666"), label=t)
        for t in types
    ]
    if with_car:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markerfacecolor="white",
                markeredgecolor=CAR_EDGE,
                label="CAR+ cell (outlined)",
            )
        )
    return handles


def _style_umap(axes, title: str) -> None:
    axes.set_title(title, fontsize=10)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_xlabel("UMAP 1")
    axes.set_ylabel("UMAP 2")


def sample_umap(adata: anndata.AnnData, path: str | os.PathLike, title: str) -> None:
    """One biopsy's UMAP coloured by cell type, CAR+ cells outlined and drawn on top.

    Parameters
    ----------
    adata
        Cells with ``obsm["X_umap"]``, ``obs["cell_type"]`` and (where measured)
        ``obs["car_positive"]``; without a UMAP the figure says why.
    path
        Output file (``.png``, ``.svg``, ``.pdf``).
    title
        Panel title (the sample).
    """
    figure = Figure(figsize=(7.5, 5))
    axes = figure.subplots()
    if not has_embedding(adata):
        reason = adata.uns.get("embedding", {}).get("reason", "no embedding")
        _not_available(axes, f"{title}: UMAP not computed ({reason})")
        _save(figure, path)
        return
    car = _car_mask(adata.obs)
    measured = "car_positive" in adata.obs
    types = _draw_cells(axes, np.asarray(adata.obsm[UMAP_KEY]), adata.obs, _point_size(adata.n_obs))
    car_text = f"{int(car.sum())} CAR+ of {adata.n_obs} cells" if measured else "CAR not measured"
    _style_umap(axes, f"{title} ({car_text})")
    axes.legend(
        handles=_legend_handles(types, measured),
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
        frameon=False,
        fontsize=8,
    )
    _save(figure, path)


def patient_umaps(
    adata: anndata.AnnData,
    samples: Sequence[str],
    labels: Sequence[str],
    path: str | os.PathLike,
    *,
    batch_key: str = "sample_id",
    title: str = "",
) -> None:
    """A patient's samples side by side on their joint UMAP (baseline first).

    Each panel shows all of the patient's cells in grey and one sample's cells by cell type,
    CAR+ cells outlined on top, so a shift between baseline and post-infusion is seen on the
    same map.

    Parameters
    ----------
    adata
        The patient's integrated cells (:func:`carmscope.expression.embedding.integrate_samples`).
    samples
        Sample IDs in panel order (time order).
    labels
        Panel titles, one per sample (e.g. ``"S1 baseline (day -7)"``).
    path
        Output file.
    batch_key
        ``obs`` column naming each cell's sample.
    title
        Figure title (the patient).
    """
    n = max(len(samples), 1)
    figure = Figure(figsize=(4.2 * n + 2.2, 4.6))
    panels = np.atleast_1d(figure.subplots(1, n, squeeze=False)[0])
    if not has_embedding(adata):
        reason = adata.uns.get("embedding", {}).get("reason", "no embedding")
        _not_available(panels[0], f"joint UMAP not computed ({reason})")
        for axes in panels[1:]:
            axes.set_axis_off()
        _save(figure, path)
        return
    coords = np.asarray(adata.obsm[UMAP_KEY])
    size = _point_size(adata.n_obs)
    sample_of = adata.obs[batch_key].astype(str).to_numpy()
    drawn: list[str] = []
    for axes, sample_id, label in zip(panels, samples, labels, strict=True):
        own = sample_of == sample_id
        axes.scatter(*coords[~own].T, c=OTHER_COLOR, s=size, linewidths=0, rasterized=True)
        drawn += _draw_cells(axes, coords[own], adata.obs[own], size)
        n_car = int(_car_mask(adata.obs[own]).sum())
        car_text = f"{n_car} CAR+" if "car_positive" in adata.obs else "CAR not measured"
        _style_umap(axes, f"{label}\n{int(own.sum())} cells, {car_text}")
    order = [t for t in (*CELL_TYPES, UNASSIGNED) if t in drawn]
    order += sorted(set(drawn) - set(order))
    panels[-1].legend(
        handles=_legend_handles(order, "car_positive" in adata.obs),
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
        frameon=False,
        fontsize=8,
    )
    if title:
        figure.suptitle(title)
    _save(figure, path)


def marker_dotplot(
    adata: anndata.AnnData,
    markers: pd.DataFrame,
    path: str | os.PathLike,
    title: str,
    *,
    max_markers: int = 4,
) -> None:
    """Dot plot of each cell type's marker genes (scanpy): the annotation's evidence.

    Parameters
    ----------
    adata
        Annotated cells, log-normalised ``X``, ``obs["cell_type"]``.
    markers
        Marker table (``cell_type``, ``gene``, ``weight``), as read by
        :func:`carmscope.expression.annotation.read_markers`.
    path
        Output file.
    title
        What the figure shows when no marker gene is in the matrix (the plot itself has no
        title: scanpy draws the cell-type brackets where a title would go).
    max_markers
        Markers shown per cell type (the highest weights among those in the matrix).
    """
    import scanpy as sc

    present = adata.obs["cell_type"].astype(str)
    groups = [t for t in (*CELL_TYPES, UNASSIGNED) if (present == t).any()]
    genes: dict[str, list[str]] = {}
    seen: set[str] = set()
    table = markers.copy()
    table["weight"] = pd.to_numeric(table.get("weight", 1.0), errors="coerce").fillna(1.0)
    for cell_type in groups:
        rows = table[(table["cell_type"] == cell_type) & table["gene"].isin(adata.var_names)]
        chosen = [g for g in rows.sort_values("weight", ascending=False, kind="stable")["gene"]]
        chosen = [g for g in chosen if g not in seen][:max_markers]
        if chosen:
            genes[cell_type] = chosen
            seen.update(chosen)
    if not genes or len(groups) < 1:
        figure = Figure(figsize=(6, 2))
        _not_available(figure.subplots(), f"{title}: no marker gene in the matrix")
        _save(figure, path)
        return
    view = anndata.AnnData(X=adata.X, obs=pd.DataFrame(index=adata.obs_names), var=adata.var[[]])
    view.obs["cell_type"] = pd.Categorical(present.to_numpy(), categories=groups)
    plot = sc.pl.dotplot(
        view,
        var_names=genes,
        groupby="cell_type",
        standard_scale="var",
        show=False,
        return_fig=True,
    )
    plot.make_figure()
    figure = plot.fig
    _save(figure, path)
