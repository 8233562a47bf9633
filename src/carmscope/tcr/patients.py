"""Per patient and tissue: which repertoires are compared, and the patient-level figures.

Repertoires compared
    Per patient and tissue (``tumour``, ``blood``), its ``tcr`` samples; a tissue without
    ``tcr`` samples takes the scRNA samples of that tissue that carry ``vdj`` (counted in cells).
    The baseline is the last pre-infusion sample (hours <= 0); every post-infusion sample is
    compared with it (its own rows in the change table); the patient-level figures use the
    first post-infusion sample (:mod:`carmscope.vocabulary`).
Patient level
    ``tcr_{tissue}_clonality_baseline``/``_post``/``_delta``, ``tcr_{tissue}_expanded_clones``,
    ``tcr_{tissue}_new_clones``, ``tcr_{tissue}_overlap`` (Morisita-Horn), each empty with the
    reason in ``tcr_{tissue}_reason`` when the tissue is not evaluable. ``tcr_expansion``: the
    tumour comparison has an expanded clone; when the tumour is not evaluable, the blood
    comparison decides; empty with ``tcr_expansion_reason`` when neither is evaluable.
    ``tcr_tumour_expanded_in_blood``: clones expanded in the tumour (any post sample) found in
    any blood repertoire of the patient, and the earliest blood sample holding one.
    ``tcr_expanded_cd8_fraction``: among the post-infusion ``vdj`` cells whose clone is expanded
    in the tumour, the fraction annotated CD8 T; ``tcr_expanded_cd8_exhaustion`` and
    ``tcr_other_cd8_exhaustion``: mean exhaustion (:mod:`carmscope.tcr.cells`) of those CD8 T
    cells and of the other post-infusion vdj CD8 T cells.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from carmscope.tcr.cells import cd8_fraction, exhaustion_of
from carmscope.tcr.compare import CHANGE_COLUMNS, ChangeSettings, compare_repertoires, overlap
from carmscope.tcr.diversity import clonality
from carmscope.vocabulary import (
    BLOOD,
    SCRNA,
    TCR,
    TISSUES,
    TUMOUR,
    baseline,
    ordered,
    post_infusion,
    sample_hours,
)


def repertoire_sample_ids(samples: pd.DataFrame) -> list[str]:
    """Samples with a repertoire: every ``tcr`` sample and every scRNA sample with ``vdj``."""
    vdj = samples["vdj"] if "vdj" in samples.columns else pd.Series("", index=samples.index)
    mask = (samples["assay"] == TCR) | ((samples["assay"] == SCRNA) & (vdj.fillna("") != ""))
    return [str(s) for s in samples.index[mask]]


def compared_samples(samples: pd.DataFrame) -> dict[tuple[str, str], list[str]]:
    """Per (patient, tissue) with any repertoire: the samples compared, in time order."""
    ids = repertoire_sample_ids(samples)
    chosen: dict[tuple[str, str], list[str]] = {}
    if not ids:
        return chosen
    mine = samples.loc[ids]
    for patient in dict.fromkeys(mine["patient_id"].astype(str)):
        for tissue in TISSUES:
            rows = mine[(mine["patient_id"] == patient) & (mine["tissue"] == tissue)]
            tcr = rows[rows["assay"] == TCR]
            picked = tcr if len(tcr) else rows
            if len(picked):
                chosen[(patient, tissue)] = [str(s) for s in ordered(picked).index]
    return chosen


def _with_hours(samples: pd.DataFrame) -> pd.DataFrame:
    return samples.assign(hours=sample_hours(samples))


def tissue_changes(
    samples: pd.DataFrame,
    clones: Mapping[str, pd.DataFrame],
    settings: ChangeSettings | None = None,
) -> pd.DataFrame:
    """Every post-infusion sample of one patient and tissue against the baseline.

    ``samples`` are the compared samples (rows of the sheet); ``clones`` their clone tables by
    sample. Empty (with :data:`CHANGE_COLUMNS`) without a baseline or a post sample.
    """
    settings = settings or ChangeSettings()
    timed = _with_hours(samples)
    first = baseline(timed)
    tables = [
        compare_repertoires(clones[first], clones[post], settings, post_sample=post)
        for post in (post_infusion(timed) if first else [])
    ]
    if not tables:
        return pd.DataFrame(columns=list(CHANGE_COLUMNS))
    return pd.concat(tables, ignore_index=True)


def _empty_tissue(tissue: str) -> dict[str, object]:
    prefix = f"tcr_{tissue}"
    return {
        f"{prefix}_baseline_sample": "",
        f"{prefix}_post_sample": "",
        f"{prefix}_clonality_baseline": np.nan,
        f"{prefix}_clonality_post": np.nan,
        f"{prefix}_clonality_delta": np.nan,
        f"{prefix}_expanded_clones": pd.NA,
        f"{prefix}_new_clones": pd.NA,
        f"{prefix}_overlap": np.nan,
        f"{prefix}_reason": "",
    }


def tissue_block(
    tissue: str,
    samples: pd.DataFrame,
    clones: Mapping[str, pd.DataFrame],
    changes: pd.DataFrame,
) -> dict[str, object]:
    """The patient-level figures of one tissue (first post-infusion sample vs baseline)."""
    prefix = f"tcr_{tissue}"
    block = _empty_tissue(tissue)
    if not len(samples):
        return block | {f"{prefix}_reason": f"no {tissue} repertoire"}
    timed = _with_hours(samples)
    first, posts = baseline(timed), post_infusion(timed)
    block[f"{prefix}_baseline_sample"] = first or ""
    block[f"{prefix}_post_sample"] = posts[0] if posts else ""
    if first:
        block[f"{prefix}_clonality_baseline"] = clonality(clones[first]["count"].to_numpy())
    if posts:
        block[f"{prefix}_clonality_post"] = clonality(clones[posts[0]]["count"].to_numpy())
    reasons = []
    if not first:
        reasons.append(f"no pre-infusion {tissue} repertoire")
    if not posts:
        reasons.append(f"no post-infusion {tissue} repertoire")
    empty = [s for s in (first, posts[0] if posts else None) if s and not clones[s]["count"].sum()]
    if empty:
        reasons.append(f"no productive TRB clones in {', '.join(empty)}")
    if reasons:
        return block | {f"{prefix}_reason": "; ".join(reasons)}
    first_post = changes[changes["post_sample"] == posts[0]]
    block[f"{prefix}_clonality_delta"] = (
        block[f"{prefix}_clonality_post"] - block[f"{prefix}_clonality_baseline"]
    )
    block[f"{prefix}_expanded_clones"] = int(first_post["expanded"].astype(bool).sum())
    block[f"{prefix}_new_clones"] = int(first_post["new"].astype(bool).sum())
    block[f"{prefix}_overlap"] = overlap(clones[first], clones[posts[0]])
    return block


def _sharing(
    changes: pd.DataFrame, blood: pd.DataFrame, clones: Mapping[str, pd.DataFrame]
) -> dict[str, object]:
    expanded = (
        set(changes.loc[changes["expanded"].astype(bool), "clone_id"]) if len(changes) else set()
    )
    block = {"tcr_tumour_expanded_in_blood": pd.NA, "tcr_tumour_expanded_in_blood_first_sample": ""}
    if not len(blood) or not len(changes):
        return block
    shared: set[str] = set()
    for sample in ordered(_with_hours(blood)).index:
        found = expanded & set(clones[str(sample)]["clone_id"])
        if found - shared and not block["tcr_tumour_expanded_in_blood_first_sample"]:
            block["tcr_tumour_expanded_in_blood_first_sample"] = str(sample)
        shared |= found
    return block | {"tcr_tumour_expanded_in_blood": len(shared)}


def patient_row(
    patient: str,
    samples: pd.DataFrame,
    compared: Mapping[str, list[str]],
    clones: Mapping[str, pd.DataFrame],
    changes: Mapping[str, pd.DataFrame],
    vdj_cells: Mapping[str, pd.DataFrame],
) -> dict[str, object]:
    """One patient's TCR figures (module docstring).

    Parameters
    ----------
    patient
        The patient ID.
    samples
        The samples sheet (indexed by ``sample_id``; ``patient_id``, ``assay``, ``tissue``,
        ``hours`` or ``day``).
    compared
        Per tissue, the patient's compared samples (:func:`compared_samples`).
    clones
        Clone tables by sample (at least those compared).
    changes
        Per tissue, the change table (:func:`tissue_changes`).
    vdj_cells
        Per scRNA sample with ``vdj`` of the patient, its annotated cells (``clone_id``,
        ``cell_type``).
    """
    row: dict[str, object] = {"patient_id": patient}
    for tissue in TISSUES:
        rows = samples.loc[compared.get(tissue, [])]
        row |= tissue_block(tissue, rows, clones, changes.get(tissue, _no_changes()))
    tumour_ok = not row[f"tcr_{TUMOUR}_reason"]
    blood_ok = not row[f"tcr_{BLOOD}_reason"]
    if tumour_ok or blood_ok:
        decider = TUMOUR if tumour_ok else BLOOD
        row["tcr_expansion"] = bool(row[f"tcr_{decider}_expanded_clones"] > 0)
        row["tcr_expansion_tissue"] = decider
        row["tcr_expansion_reason"] = ""
    else:
        row["tcr_expansion"] = pd.NA
        row["tcr_expansion_tissue"] = ""
        row["tcr_expansion_reason"] = (
            f"tumour: {row[f'tcr_{TUMOUR}_reason']}; blood: {row[f'tcr_{BLOOD}_reason']}"
        )
    tumour_changes = changes.get(TUMOUR, _no_changes())
    row |= _sharing(tumour_changes, samples.loc[compared.get(BLOOD, [])], clones)
    row |= _cd8_block(samples, tumour_changes, vdj_cells, tumour_ok)
    return row


def _cd8_block(samples, tumour_changes, vdj_cells, tumour_ok: bool) -> dict[str, object]:
    block = {
        "tcr_expanded_cd8_fraction": np.nan,
        "tcr_expanded_cells": 0,
        "tcr_expanded_cd8_exhaustion": np.nan,
        "tcr_other_cd8_exhaustion": np.nan,
    }
    if not tumour_ok:
        return block | {"tcr_expanded_cd8_fraction_reason": "tumour not evaluable"}
    if not vdj_cells:
        return block | {"tcr_expanded_cd8_fraction_reason": "no vdj"}
    timed = _with_hours(samples.loc[list(vdj_cells)])
    post = [s for s in timed.index if timed.loc[s, "hours"] > 0]
    if not post:
        return block | {"tcr_expanded_cd8_fraction_reason": "no post-infusion vdj"}
    expanded = set(tumour_changes.loc[tumour_changes["expanded"].astype(bool), "clone_id"])
    cells = pd.concat([vdj_cells[s] for s in post], ignore_index=True)
    fraction, n = cd8_fraction(cells, expanded)
    reason = "" if n else "no annotated post-infusion vdj cell of an expanded clone"
    if "exhaustion" in cells.columns:
        exhausted = exhaustion_of(
            cells.assign(exhaustion=pd.to_numeric(cells["exhaustion"], errors="coerce")), expanded
        )
    else:
        exhausted = (np.nan, np.nan)
    return {
        "tcr_expanded_cd8_fraction": fraction,
        "tcr_expanded_cells": n,
        "tcr_expanded_cd8_exhaustion": exhausted[0],
        "tcr_other_cd8_exhaustion": exhausted[1],
        "tcr_expanded_cd8_fraction_reason": reason,
    }


def _no_changes() -> pd.DataFrame:
    return pd.DataFrame(columns=list(CHANGE_COLUMNS))


PATIENT_BOOLEAN_COLUMNS = ("tcr_expansion",)
PATIENT_INTEGER_COLUMNS = (
    *(f"tcr_{t}_{what}" for t in TISSUES for what in ("expanded_clones", "new_clones")),
    "tcr_tumour_expanded_in_blood",
    "tcr_expanded_cells",
)
