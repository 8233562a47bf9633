"""The ctDNA stage over the whole cohort: from allele counts to the five result tables.

:func:`cohort_calls` is what the ``ctdna_calls`` rule runs: carriers, background (per site
over the cohort, or per patient from the panel of normals), per-variant and per-sample calls,
and the response of every patient of the sheet (docs/ctdna.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from carmscope.ctdna.background import mark_carriers, patient_backgrounds, site_background
from carmscope.ctdna.calls import sample_calls, variant_calls, variant_calls_by_patient
from carmscope.ctdna.response import FLAGS, PATIENT_COLUMNS, ctdna_response
from carmscope.ctdna.variants import VARIANT_KEY
from carmscope.io.tables import read_stage_table

TEXT_COLUMNS = frozenset(
    {"sample_id", "patient_id", "timepoint", "source", "chrom", "ref", "alt", "kind", "reason"}
    | {"patients"}
)
"""Columns of the stage's tables read as text."""


def read_table(path: str) -> pd.DataFrame:
    """A TSV of this stage: text columns stay text ('' stays ''), empty numbers are NA
    (:func:`carmscope.io.tables.read_stage_table`)."""
    return read_stage_table(path, TEXT_COLUMNS)


@dataclass(frozen=True)
class CallSettings:
    """The ``ctdna`` config values the calls use; ``background`` is the resolved mode
    (``cohort`` or ``normals``: :func:`carmscope.ctdna.settings.background_mode`)."""

    background: str = "cohort"
    floor: float = 1e-4
    max_rate: float = 0.01
    alpha: float = 0.01
    power: float = 0.95
    fall_fraction: float = 0.5
    progression_rise: float = 1.5
    change_alpha: float = 0.01


@dataclass(frozen=True)
class CohortCalls:
    """The stage's five tables (``results/ctdna/<name>.tsv``)."""

    variants: pd.DataFrame
    samples: pd.DataFrame
    timepoints: pd.DataFrame
    patients: pd.DataFrame
    background: pd.DataFrame


def _own_variant_use(marked: pd.DataFrame, tumour: pd.DataFrame) -> pd.DataFrame:
    """For a patient's own variants its VCF decides whether the variant is used (FILTER,
    duplicates), whatever other patients' VCFs say."""
    own = tumour[["patient_id", *VARIANT_KEY, "evaluable", "reason"]].rename(
        columns={"evaluable": "_own_evaluable", "reason": "_own_reason"}
    )
    marked = marked.merge(own, on=["patient_id", *VARIANT_KEY], how="left")
    refused = marked["carrier"] & marked["evaluable"] & marked["_own_evaluable"].eq(False)
    marked.loc[refused, "evaluable"] = False
    marked.loc[refused, "reason"] = marked.loc[refused, "_own_reason"]
    return marked.drop(columns=["_own_evaluable", "_own_reason"])


def _every_patient(
    patients: pd.DataFrame, sheet_patients: Sequence[str], variant_patients: Sequence[str]
) -> pd.DataFrame:
    """One row per patient of the sheet: those without plasma say why they have no flags."""
    patients = patients.set_index("patient_id").reindex(list(sheet_patients))
    absent = patients["evaluable"].isna()
    patients.loc[absent, "reason"] = [
        "no plasma samples" if p in variant_patients else "no plasma samples, no tumour variants"
        for p in patients.index[absent]
    ]
    patients.loc[absent, ["n_post", "evaluable", *FLAGS]] = [0, False, *[False] * len(FLAGS)]
    patients = patients.reset_index()[PATIENT_COLUMNS]
    for column in ("baseline_day", "nadir_day", "latest_day", "n_post"):
        patients[column] = patients[column].astype("Int64")
    for column in ("evaluable", *FLAGS):
        patients[column] = patients[column].astype(bool)
    return patients


def cohort_calls(
    tumour: pd.DataFrame,
    counts: pd.DataFrame,
    normals: pd.DataFrame | None,
    *,
    sample_order: Sequence[str],
    sheet_patients: Sequence[str],
    variant_patients: Sequence[str],
    settings: CallSettings,
) -> CohortCalls:
    """Calls and response of every plasma sample and patient.

    Parameters
    ----------
    tumour
        Every patient's tumour variants (the cohort panel, or the per-patient panels
        concatenated, with ``patient_id``).
    counts
        Allele counts of the plasma samples; with background ``cohort`` also those of the
        panel-of-normals BAMs at the cohort panel.
    normals
        Background ``normals``: panel-of-normals counts with ``panel_patient`` (whose panel
        they were counted at); else None.
    sample_order, sheet_patients, variant_patients
        Plasma samples in sheet order; every patient of the sheet; patients with variants.
    """
    counts = counts.assign(day=counts["day"].astype("Int64"))
    marked = _own_variant_use(mark_carriers(counts, tumour), tumour)
    if settings.background == "normals":
        background = patient_backgrounds(normals, settings.floor, settings.max_rate)
        variants = variant_calls_by_patient(marked, background, settings.floor)
    else:
        background = site_background(marked, settings.floor, settings.max_rate)
        variants = variant_calls(marked, background, settings.floor)
    calls = sample_calls(variants, settings.alpha, settings.power)
    calls["source"] = calls["sample_id"].map(variants.groupby("sample_id")["source"].first())
    first = ["sample_id", "patient_id", "timepoint", "day", "source"]
    calls = calls[first + [c for c in calls.columns if c not in first]]
    order = {sample_id: i for i, sample_id in enumerate(sample_order)}
    calls = calls.sort_values("sample_id", key=lambda s: s.map(order), kind="stable")
    timepoints, patients = ctdna_response(
        calls, settings.fall_fraction, settings.progression_rise, settings.change_alpha
    )
    return CohortCalls(
        variants=variants,
        samples=calls,
        timepoints=timepoints,
        patients=_every_patient(patients, sheet_patients, variant_patients),
        background=background,
    )
