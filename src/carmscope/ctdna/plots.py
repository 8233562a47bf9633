"""Spider and waterfall plots of ctDNA change from baseline.

Figures are drawn on matplotlib's Agg canvas without pyplot (no global state, no display);
the format follows the output path's suffix (``.png``, ``.svg``, ``.pdf``).
"""

from __future__ import annotations

import os

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from carmscope.ctdna.response import FALL_FRACTION
from carmscope.reproducible import save_figure

RESPONDER_COLOUR = "#1b7837"
OTHER_COLOUR = "#762a83"
DPI = 150


def _fall_line(fall_fraction: float) -> float:
    return 100.0 * (fall_fraction - 1.0)


def _legend(axes, marker: bool) -> None:
    """Colour key: molecular response or not."""
    handles = []
    for colour, label in ((RESPONDER_COLOUR, "molecular response"), (OTHER_COLOUR, "no response")):
        if marker:
            handles.append(Line2D([], [], color=colour, marker="o", label=label))
        else:
            handles.append(Patch(color=colour, label=label))
    axes.legend(handles=handles, fontsize=8, frameon=False)


def _save(figure: Figure, path: str | os.PathLike) -> None:
    FigureCanvasAgg(figure)
    save_figure(figure, path, dpi=DPI, bbox_inches="tight")


def spider_plot(
    timepoints: pd.DataFrame,
    path: str | os.PathLike,
    patients: pd.DataFrame | None = None,
    fall_fraction: float = FALL_FRACTION,
) -> None:
    """Percent change in mean VAF against day, one line per patient, from the baseline.

    Parameters
    ----------
    timepoints
        Timepoint table of :func:`carmscope.ctdna.response.ctdna_response`.
    path
        Output file (``.png`` or ``.svg``).
    patients
        Patient table of the same call; when given, only evaluable patients are drawn and
        patients with a molecular response are coloured.
    fall_fraction
        Where the dashed fall threshold is drawn (default 0.5: at -50%).
    """
    figure = Figure(figsize=(6.5, 4.5))
    axes = figure.add_subplot()
    responders: set[str] = set()
    drawn = timepoints[timepoints["change_pct"].notna()]
    if patients is not None:
        evaluable = patients.loc[patients["evaluable"].astype(bool), "patient_id"]
        drawn = drawn[drawn["patient_id"].isin(set(evaluable))]
        responders = set(patients.loc[patients["molecular_response"].astype(bool), "patient_id"])
    for patient_id, points in drawn.groupby("patient_id", sort=True):
        points = points[points["is_baseline"] | points["post_infusion"]].sort_values("day")
        colour = RESPONDER_COLOUR if patient_id in responders else OTHER_COLOUR
        axes.plot(points["day"], points["change_pct"], marker="o", color=colour, alpha=0.8)
        last = points.iloc[-1]
        axes.annotate(
            str(patient_id),
            (last["day"], last["change_pct"]),
            xytext=(4, 0),
            textcoords="offset points",
            fontsize=7,
            va="center",
        )
    axes.axhline(_fall_line(fall_fraction), color="grey", linestyle="--", linewidth=1)
    axes.axhline(0.0, color="black", linewidth=0.6)
    axes.set_xlabel("Day after infusion")
    axes.set_ylabel("Change in mean VAF from baseline (%)")
    axes.set_title("ctDNA trajectories")
    if patients is not None:
        _legend(axes, marker=True)
    _save(figure, path)


def waterfall_plot(
    patients: pd.DataFrame, path: str | os.PathLike, fall_fraction: float = FALL_FRACTION
) -> None:
    """Best (lowest) percent change in mean VAF per evaluable patient, bars sorted.

    Parameters
    ----------
    patients
        Patient table of :func:`carmscope.ctdna.response.ctdna_response`; patients that are
        not evaluable or have no post-infusion change are left out.
    path
        Output file (``.png`` or ``.svg``).
    fall_fraction
        Where the dashed fall threshold is drawn (default 0.5: at -50%).
    """
    shown = patients[patients["evaluable"].astype(bool) & patients["best_change_pct"].notna()]
    shown = shown.sort_values("best_change_pct", ascending=False)
    figure = Figure(figsize=(max(4.0, 0.45 * len(shown) + 1.5), 4.5))
    axes = figure.add_subplot()
    colours = [
        RESPONDER_COLOUR if flag else OTHER_COLOUR
        for flag in shown["molecular_response"].astype(bool)
    ]
    positions = range(len(shown))
    axes.bar(positions, shown["best_change_pct"].astype(float), color=colours)
    axes.set_xticks(list(positions), shown["patient_id"].astype(str), rotation=90, fontsize=8)
    axes.axhline(_fall_line(fall_fraction), color="grey", linestyle="--", linewidth=1)
    axes.axhline(0.0, color="black", linewidth=0.6)
    axes.set_ylabel("Best change in mean VAF (%)")
    axes.set_title("ctDNA best change from baseline")
    _legend(axes, marker=False)
    _save(figure, path)
