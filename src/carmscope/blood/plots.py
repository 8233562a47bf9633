"""Figures of the blood stage: CAR level against time per patient, and a cytokine heat map.

Drawn on matplotlib's Agg canvas without pyplot; the format follows the output path's suffix.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from carmscope.blood.measurements import is_log2
from carmscope.blood.series import MEASURES
from carmscope.vocabulary import BULK_RNA, SCRNA

DPI = 150
COLOURS = {"qpcr": "#b2182b", BULK_RNA: "#2166ac", SCRNA: "#1b7837"}


def _save(figure: Figure, path: str | os.PathLike) -> None:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, bbox_inches="tight")


def kinetics_plot(series: pd.DataFrame, patients: list[str], path: str | os.PathLike) -> None:
    """One panel per patient: each CAR measure against hours from the first infusion.

    Log y axis; values below LLOQ drawn as open markers at the LLOQ; each measure's LLOQ a
    dashed line. A patient without blood CAR values gets an empty panel saying so.
    """
    columns = min(4, max(1, len(patients)))
    rows = max(1, math.ceil(len(patients) / columns))
    figure = Figure(figsize=(3.2 * columns, 2.6 * rows))
    for position, patient in enumerate(patients, start=1):
        axes = figure.add_subplot(rows, columns, position)
        axes.set_title(patient, fontsize=9)
        own = series[series["patient_id"] == patient]
        if own.empty:
            axes.text(0.5, 0.5, "no blood samples", ha="center", va="center", fontsize=8)
            axes.set_axis_off()
            continue
        for measure in [m for m in MEASURES if (own["measure"] == m).any()]:
            values = own[own["measure"] == measure].sort_values("hours")
            colour = COLOURS[measure]
            unit = values["unit"].iloc[0]
            quantified = values[~values["blq"].astype(bool) & (values["value"] > 0)]
            axes.plot(
                quantified["hours"],
                quantified["value"],
                "o-",
                color=colour,
                ms=3,
                label=f"{measure} ({unit})",
            )
            lloq = values["lloq"].dropna()
            if len(lloq):
                axes.axhline(float(lloq.iloc[0]), color=colour, ls="--", lw=0.8)
                below = values[values["blq"].astype(bool)]
                axes.plot(
                    below["hours"],
                    [float(lloq.iloc[0])] * len(below),
                    "o",
                    mfc="none",
                    color=colour,
                    ms=4,
                )
        axes.set_yscale("log")
        axes.axvline(0, color="grey", lw=0.5)
        axes.set_xlabel("hours from first infusion", fontsize=8)
        axes.tick_params(labelsize=7)
        axes.legend(fontsize=6, frameon=False)
    figure.tight_layout()
    _save(figure, path)


def cytokine_heatmap(cytokines: pd.DataFrame, patients: list[str], path: str | os.PathLike) -> None:
    """Patients x analytes, colour the log2 peak fold (NPX differences are already log2)."""
    named = cytokines[cytokines["analyte"].astype(str) != ""]
    analytes = list(dict.fromkeys(named["analyte"]))
    grid = np.full((len(patients), max(1, len(analytes))), np.nan)
    for row in named.itertuples():
        if row.patient_id in patients and math.isfinite(row.peak_fold):
            fold = row.peak_fold if is_log2(row.unit) else math.log2(max(row.peak_fold, 1e-9))
            grid[patients.index(row.patient_id), analytes.index(row.analyte)] = fold
    figure = Figure(figsize=(1.2 + 0.6 * max(1, len(analytes)), 1.0 + 0.3 * len(patients)))
    axes = figure.add_subplot()
    limit = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    image = axes.imshow(
        np.ma.masked_invalid(grid), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto"
    )
    axes.set_xticks(range(len(analytes)), analytes, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(len(patients)), patients, fontsize=8)
    if not analytes:
        axes.set_title("no cytokine samples", fontsize=9)
    figure.colorbar(image, ax=axes, label="log2 peak fold")
    figure.tight_layout()
    _save(figure, path)
