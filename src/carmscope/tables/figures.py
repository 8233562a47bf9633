"""Figures of the report: the cohort overview and one four-panel figure per patient.

Drawn from the result tables only (``patients.tsv``, ``samples.tsv``, ``cohort_summary.tsv``),
so a figure shows exactly what the tables say. Figures use matplotlib's Agg canvas without
pyplot; the format follows the path's suffix.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from carmscope.reproducible import save_figure
from carmscope.tables.samples import metric_column
from carmscope.tables.steps import as_bool
from carmscope.tables.summary import BIOPSY_ENDPOINT, PROPORTION_ENDPOINTS
from carmscope.vocabulary import BULK_RNA, CFDNA, RNA_ASSAYS, SCRNA

DPI = 120
YES, NO, MISSING = "#1b7837", "#c2a5cf", "#f0f0f0"
OVERVIEW_ENDPOINTS = (
    ("car_detected", "CAR detected"),
    ("cd8_up", "CD8 up"),
    ("inflammation_up", "inflammation up"),
    ("ctdna_any_fall", "ctDNA fall"),
    ("ctdna_molecular_response", "molecular response"),
)


def _save(figure: Figure, path: str | os.PathLike) -> None:
    FigureCanvasAgg(figure)
    save_figure(figure, path, dpi=DPI, bbox_inches="tight")


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A column, or missing values when the table lacks it (a stage the cohort did not run)."""
    return frame[name] if name in frame.columns else pd.Series(np.nan, index=frame.index)


def _flag_codes(values: pd.Series) -> np.ndarray:
    """0 missing, 1 False, 2 True."""
    return np.array([0 if pd.isna(v) else 2 if bool(v) else 1 for v in values])


# --- cohort -----------------------------------------------------------------------------------


def cohort_overview(patients: pd.DataFrame, summary: pd.DataFrame, path: str | os.PathLike) -> None:
    """Left: each patient's answers (rows) per question; right: the cohort's proportions with
    their 95% exact intervals."""
    n = len(patients)
    figure = Figure(figsize=(13, max(3.5, 0.32 * n + 2.0)))
    grid, bars = figure.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1], "wspace": 0.9})
    codes = np.column_stack([_flag_codes(patients[c]) for c, _ in OVERVIEW_ENDPOINTS])
    grid.imshow(
        codes if n else np.zeros((1, len(OVERVIEW_ENDPOINTS))),
        cmap=ListedColormap([MISSING, NO, YES]),
        vmin=0,
        vmax=2,
        aspect="auto",
    )
    grid.set_xticks(range(len(OVERVIEW_ENDPOINTS)))
    grid.set_xticklabels([label for _, label in OVERVIEW_ENDPOINTS], rotation=35, ha="right")
    labels = [
        f"{row.patient_id}  HER2 {row.her2_ihc}, {row.dosing}"
        for row in patients[["patient_id", "her2_ihc", "dosing"]].itertuples(index=False)
    ]
    grid.set_yticks(range(n))
    grid.set_yticklabels(labels, fontsize=8)
    grid.legend(
        handles=[Patch(color=c, label=t) for c, t in ((YES, "yes"), (NO, "no"), (MISSING, "n/a"))],
        loc="upper left",
        bbox_to_anchor=(0, -0.45),
        ncol=3,
        frameon=False,
        fontsize=8,
    )
    overall = summary[(summary["stratum"] == "all") & (summary["kind"] == "proportion")]
    overall = overall.set_index("endpoint").reindex([*PROPORTION_ENDPOINTS, BIOPSY_ENDPOINT])
    y = np.arange(len(overall))
    fraction = overall["fraction"].astype(float).to_numpy()
    low = fraction - overall["ci_low"].astype(float).to_numpy()
    high = overall["ci_high"].astype(float).to_numpy() - fraction
    bars.barh(y, np.nan_to_num(fraction), color=YES, xerr=[low, high], capsize=3)
    bars.set_yticks(y)
    bars.set_yticklabels(
        [
            f"{name}  {int(r.n_positive)}/{int(r.n_evaluable)}" if pd.notna(r.n_evaluable) else name
            for name, r in overall.iterrows()
        ],
        fontsize=8,
    )
    bars.invert_yaxis()
    bars.set_xlim(0, 1)
    bars.set_xlabel("fraction of evaluable patients (95% Clopper-Pearson)")
    bars.set_title("cohort", fontsize=10)
    figure.suptitle(f"{n} patients", fontsize=11)
    _save(figure, path)


# --- one patient ------------------------------------------------------------------------------


def _car_axes(axes, biopsies: pd.DataFrame) -> None:
    scanned = biopsies[_column(biopsies, "car.reads_per_million").notna()]
    axes.set_title("CAR reads per million (filled: detected)", fontsize=9)
    if not len(scanned):
        axes.text(0.5, 0.5, "no biopsy reads scanned", ha="center", va="center")
        axes.set_axis_off()
        return
    detected = scanned["car.detected"].map(as_bool)
    rpm = scanned["car.reads_per_million"].astype(float)
    colours = [YES if d else "white" for d in detected]
    x = np.arange(len(scanned))
    axes.bar(x, rpm + 1, color=colours, edgecolor="black")
    axes.set_yscale("log")
    axes.set_ylabel("CAR reads / 10^6 + 1")
    axes.set_xticks(x)
    # up to four labels fit side by side in the panel; more stand upright on one line each
    upright = len(x) > 4
    labels = _biopsy_labels(scanned)
    if upright:
        labels = [label.replace("\n", ", ") for label in labels]
    axes.set_xticklabels(labels, fontsize=7, rotation=90 if upright else 0)


def _biopsy_labels(biopsies: pd.DataFrame) -> list[str]:
    """Short x labels of a patient's biopsies: timepoint (or sample ID), day and assay.

    The sample IDs repeat the patient's ID (in the title already) and, side by side, overlapped
    as soon as a patient had three biopsies; the rotated short labels do not."""
    names = _column(biopsies, "timepoint").where(lambda v: v.notna(), biopsies["sample_id"])
    assays = _column(biopsies, "assay").map({SCRNA: "scRNA", BULK_RNA: "bulk"}).fillna("")
    return [
        f"{name}\nday {day}" + (f"\n{assay}" if assay else "")
        for name, day, assay in zip(names, biopsies["day"], assays, strict=True)
    ]


def _composition_axes(axes, biopsies: pd.DataFrame, pair: Sequence[str]) -> None:
    prefix = metric_column("fraction_of_cells/")
    columns = [c for c in biopsies.columns if c.startswith(prefix)]
    chosen = biopsies[biopsies["sample_id"].isin(pair)]
    axes.set_title("cell types, baseline vs post (fraction of cells)", fontsize=9)
    if not columns or chosen[columns].isna().all().all():
        axes.text(0.5, 0.5, "no cell fractions (scRNA pair needed)", ha="center", va="center")
        axes.set_axis_off()
        return
    types = [c.removeprefix(prefix) for c in columns]
    y = np.arange(len(types))
    width = 0.4
    for offset, sample, colour in ((-width / 2, pair[0], NO), (width / 2, pair[1], YES)):
        row = chosen[chosen["sample_id"] == sample]
        if len(row):
            values = row[columns].iloc[0].astype(float).fillna(0).to_numpy()
            axes.barh(y + offset, values, height=width, color=colour, label=sample)
    axes.set_yticks(y)
    axes.set_yticklabels(types, fontsize=7)
    axes.invert_yaxis()
    axes.legend(fontsize=7, frameon=False)


def _pathway_axes(axes, figure, biopsies: pd.DataFrame, sets: Sequence[str], statistic: str):
    axes.set_title(f"gene-set scores ({statistic}), change from first biopsy", fontsize=9)
    columns = [metric_column(f"all/{s}/{statistic}") for s in sets]
    columns = [c for c in columns if c in biopsies.columns]
    measured = biopsies.dropna(subset=columns, how="all") if columns else biopsies.iloc[0:0]
    if not len(measured):
        axes.text(0.5, 0.5, "no biopsy scores", ha="center", va="center")
        axes.set_axis_off()
        return
    values = measured[columns].astype(float).to_numpy().T
    values = values - values[:, :1]
    limit = max(float(np.nanmax(np.abs(values))), 1e-9)
    image = axes.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    axes.set_yticks(range(len(columns)))
    axes.set_yticklabels([c.split(".")[2].removeprefix("HALLMARK_") for c in columns], fontsize=7)
    axes.set_xticks(range(len(measured)))
    axes.set_xticklabels(
        [f"{a}\nday {d}" for a, d in zip(measured["assay"], measured["day"], strict=True)],
        fontsize=7,
    )
    figure.colorbar(image, ax=axes, shrink=0.8, label="delta")


def _ctdna_axes(axes, plasma: pd.DataFrame) -> None:
    axes.set_title("ctDNA mean VAF (open: not detected)", fontsize=9)
    measured = plasma[_column(plasma, "ctdna.mean_vaf").notna()]
    if not len(measured):
        axes.text(0.5, 0.5, "no plasma measurements", ha="center", va="center")
        axes.set_axis_off()
        return
    days = measured["day"].astype(int).to_numpy()
    vaf = measured["ctdna.mean_vaf"].astype(float).to_numpy()
    detected = measured["ctdna.detected"].map(as_bool).to_numpy(dtype=bool)
    axes.plot(days, vaf, color="black", linewidth=1)
    axes.scatter(days[detected], vaf[detected], color=YES, zorder=3)
    axes.scatter(days[~detected], vaf[~detected], facecolor="white", edgecolor=YES, zorder=3)
    axes.axvline(0, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("day")
    axes.set_ylabel("mean VAF")


def patient_panel(
    patient: pd.Series,
    samples: pd.DataFrame,
    inflammation_sets: Sequence[str],
    statistic: str,
    path: str | os.PathLike,
) -> None:
    """Four panels for one patient: CAR evidence per biopsy, cell-type shift of the biopsy
    pair, gene-set heatmap over the biopsies, ctDNA trajectory."""
    mine = samples[samples["patient_id"] == patient["patient_id"]].sort_values("day", kind="stable")
    biopsies = mine[mine["assay"].isin(RNA_ASSAYS)]
    pair = [patient["biopsy_baseline_sample"], patient["biopsy_post_sample"]]
    figure = Figure(figsize=(12, 8.5))
    (car, composition), (pathways, ctdna) = figure.subplots(2, 2)
    _car_axes(car, biopsies)
    _composition_axes(composition, biopsies, [str(s) if pd.notna(s) else "" for s in pair])
    _pathway_axes(pathways, figure, biopsies, inflammation_sets, statistic)
    _ctdna_axes(ctdna, mine[mine["assay"] == CFDNA])
    answers = ", ".join(
        f"{label}: {'n/a' if pd.isna(patient[c]) else 'yes' if patient[c] else 'no'}"
        for c, label in OVERVIEW_ENDPOINTS
    )
    figure.suptitle(
        f"{patient['patient_id']} ({patient['indication']}, HER2 {patient['her2_ihc']}, "
        f"{patient['dosing']})\n{answers}",
        fontsize=10,
    )
    figure.tight_layout()
    _save(figure, path)


def patient_panels(
    patients: pd.DataFrame,
    samples: pd.DataFrame,
    inflammation_sets: Sequence[str],
    statistic: str,
    folder: str | os.PathLike,
) -> list[str]:
    """One ``<patient>.png`` per patient in ``folder`` (created); returns the paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for _, patient in patients.iterrows():
        path = os.path.join(folder, f"{patient['patient_id']}.png")
        patient_panel(patient, samples, inflammation_sets, statistic, path)
        paths.append(path)
    return paths
