"""Report figures of the ``tcr`` stage: per patient, clone frequencies baseline vs post
(log-log, expanded and new clones coloured) and clonality over time; a cohort panel."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from carmscope.vocabulary import TISSUES

COLOURS = {"unchanged": "#9e9e9e", "contracted": "#1f77b4", "expanded": "#d62728", "new": "#ff7f0e"}


def _floor(values: pd.Series, floor: float) -> np.ndarray:
    return np.where(values > 0, values, floor)


def patient_figure(
    patient: str,
    changes: Mapping[str, pd.DataFrame],
    samples: pd.DataFrame,
    path: str,
) -> None:
    """One patient's figure: a baseline-vs-first-post scatter per tissue compared, and the
    clonality of every repertoire sample over time (days)."""
    tissues = [t for t in TISSUES if t in changes]
    fig, axes = plt.subplots(1, len(tissues) + 1, figsize=(4.2 * (len(tissues) + 1), 4))
    axes = np.atleast_1d(axes)
    for ax, tissue in zip(axes, tissues, strict=False):
        table = changes[tissue]
        if not len(table):
            ax.text(0.5, 0.5, f"{tissue}: not evaluable", ha="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        first = table[table["post_sample"] == table["post_sample"].iloc[0]]
        floor = 0.5 * min(
            first.loc[first["baseline_frequency"] > 0, "baseline_frequency"].min(),
            first.loc[first["post_frequency"] > 0, "post_frequency"].min(),
        )
        kind = np.where(
            first["new"].astype(bool),
            "new",
            np.where(
                first["expanded"].astype(bool),
                "expanded",
                np.where(first["contracted"].astype(bool), "contracted", "unchanged"),
            ),
        )
        for label in COLOURS:
            mask = kind == label
            ax.scatter(
                _floor(first.loc[mask, "baseline_frequency"], floor),
                _floor(first.loc[mask, "post_frequency"], floor),
                s=8 if label == "unchanged" else 18,
                c=COLOURS[label],
                label=f"{label} ({int(mask.sum())})",
                alpha=0.6 if label == "unchanged" else 0.9,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.plot([floor, 1], [floor, 1], color="black", lw=0.5)
        ax.set_xlabel("baseline frequency (0 drawn at the left edge)")
        ax.set_ylabel(f"{first['post_sample'].iloc[0]} frequency")
        ax.set_title(f"{tissue}")
        ax.legend(fontsize=7, loc="upper left")
    ax = axes[-1]
    mine = samples[samples["patient_id"] == patient]
    for tissue in TISSUES:
        rows = mine[mine["tissue"] == tissue].sort_values("day")
        if len(rows):
            ax.plot(rows["day"], rows["clonality"], marker="o", label=tissue)
    ax.axvline(0, color="black", lw=0.5)
    ax.set_xlabel("day from infusion")
    ax.set_ylabel("clonality (1 - Pielou)")
    ax.set_title("clonality over time")
    ax.legend(fontsize=7)
    fig.suptitle(f"{patient}: T cell receptor repertoire")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cohort_figure(patients: pd.DataFrame, path: str) -> None:
    """Cohort panel: per patient, expanded and new clones per tissue, and the clonality change."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ids = patients["patient_id"].astype(str).tolist()
    x = np.arange(len(ids))
    width = 0.2
    for offset, (tissue, what) in enumerate(
        (t, w) for t in TISSUES for w in ("expanded_clones", "new_clones")
    ):
        values = pd.to_numeric(patients[f"tcr_{tissue}_{what}"], errors="coerce").fillna(0)
        axes[0].bar(x + (offset - 1.5) * width, values, width, label=f"{tissue} {what}")
    axes[0].set_xticks(x, ids, rotation=60, ha="right", fontsize=7)
    axes[0].set_ylabel("clones (first post-infusion sample)")
    axes[0].legend(fontsize=7)
    for tissue in TISSUES:
        delta = pd.to_numeric(patients[f"tcr_{tissue}_clonality_delta"], errors="coerce")
        axes[1].scatter(x, delta, label=tissue)
    axes[1].axhline(0, color="black", lw=0.5)
    axes[1].set_xticks(x, ids, rotation=60, ha="right", fontsize=7)
    axes[1].set_ylabel("clonality change (post - baseline)")
    axes[1].legend(fontsize=7)
    fig.suptitle("T cell receptor repertoires: expanded and new clones after infusion")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
