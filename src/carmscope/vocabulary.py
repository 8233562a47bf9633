"""The trial's vocabulary, defined once: assays, tissues, and which samples are a patient's
baseline and post-infusion samples.

Every stage, the result tables and the synthetic cohort's generator import these names instead
of spelling assay or tissue names as string literals, so that a new assay or a change to the
baseline rule is made in one place.

Time
    A sample's time is its ``hours`` from the first infusion: the samples sheet's ``hours``
    where given, else ``day x 24``. Time 0 is the first infusion for every dosing arm (one
    interval for fractionated dosing, not one per dose).
Pre- and post-infusion
    A sample is pre-infusion when its time is <= 0 and post-infusion when it is > 0.
Baseline
    Of a patient's samples of one assay (and tissue), the *last* pre-infusion sample in time
    order. Ties (two samples at the same time) are broken by file order: the one later in the
    samples sheet wins, as the most recently drawn is the usual convention for a sheet written in
    collection order.
Post-infusion samples
    The samples with time > 0, in time order, ties in file order. The *first* post-infusion
    sample is the patient-level comparison point of every stage.

Nothing here knows about Snakemake.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

SCRNA = "scrna"
"""Single-cell RNA-seq (10x): a count matrix and, optionally, the BAM."""
BULK_RNA = "bulk_rna"
"""Bulk RNA-seq: a gene count table and, optionally, the reads."""
CFDNA = "cfdna"
"""Plasma cell-free DNA: a BAM, or a vendor VAF table, for ctDNA tracking."""
TCR = "tcr"
"""A T cell receptor repertoire (immunoSEQ, AIRR or 10x V(D)J)."""
CAR_PCR = "car_pcr"
"""CAR transgene copies in blood by qPCR or ddPCR: a long table of analyte values."""
CYTOKINES = "cytokines"
"""Serum or plasma cytokines (pg/mL or Olink NPX): a long table of analyte values."""

ASSAYS: tuple[str, ...] = (SCRNA, BULK_RNA, CFDNA, TCR, CAR_PCR, CYTOKINES)
"""Every assay the samples sheet accepts, in the order stages and tables list them."""

RNA_ASSAYS: tuple[str, ...] = (SCRNA, BULK_RNA)
"""RNA assays (tumour biopsies, or PBMC when the tissue is blood), in reporting order."""
BIOPSY_ASSAYS: frozenset[str] = frozenset(RNA_ASSAYS)
"""Assays whose samples go through expression analysis and the CAR scan."""
BLOOD_MEASURE_ASSAYS: frozenset[str] = frozenset({CAR_PCR, CYTOKINES})
"""Assays whose ``counts`` is a long table of analyte values."""

TUMOUR = "tumour"
BLOOD = "blood"
TISSUES: tuple[str, ...] = (TUMOUR, BLOOD)
"""Allowed values of the samples sheet's ``tissue`` column."""

DEFAULT_TISSUE: dict[str, str] = {
    SCRNA: TUMOUR,
    BULK_RNA: TUMOUR,
    CFDNA: BLOOD,
    CAR_PCR: BLOOD,
    CYTOKINES: BLOOD,
}
"""The tissue of a sample whose ``tissue`` cell is empty; ``tcr`` has none (it is required)."""

HOURS_PER_DAY = 24
MAX_HOURS_DAY_DISAGREEMENT = 24.0
"""``hours`` and ``day`` of one sample may differ by at most one day."""


def sample_hours(samples: pd.DataFrame) -> pd.Series:
    """Each sample's time from the first infusion in hours (float).

    The ``hours`` column where it holds a number, else ``day x 24``; a table without an
    ``hours`` column uses ``day`` throughout.
    """
    from_day = pd.to_numeric(samples["day"], errors="coerce").astype(float) * HOURS_PER_DAY
    if "hours" not in samples.columns:
        return from_day.rename("hours")
    given = pd.to_numeric(samples["hours"], errors="coerce").astype(float)  # '' -> NaN
    return given.fillna(from_day).rename("hours")


def is_pre_infusion(hours: float) -> bool:
    """Whether a sample taken at ``hours`` from the first infusion is pre-infusion (<= 0)."""
    return bool(hours <= 0)


def time_order(times: Sequence[float]) -> list[int]:
    """Positions of ``times`` in time order, ties in their given (file) order."""
    return sorted(range(len(times)), key=lambda position: times[position])


def baseline_position(times: Sequence[float]) -> int | None:
    """Position of the baseline among samples taken at ``times`` (given in file order).

    The last pre-infusion sample in time order, the later in file order on a tie; None when
    no time is <= 0.
    """
    before = [position for position in time_order(times) if is_pre_infusion(times[position])]
    return before[-1] if before else None


def post_infusion_positions(times: Sequence[float]) -> list[int]:
    """Positions of the post-infusion samples among ``times``, in time order."""
    return [position for position in time_order(times) if not is_pre_infusion(times[position])]


def ordered(samples: pd.DataFrame) -> pd.DataFrame:
    """``samples`` sorted by time (:func:`sample_hours`), ties in file order."""
    return samples.iloc[time_order(list(sample_hours(samples)))]


def baseline(samples: pd.DataFrame) -> str | None:
    """The baseline sample's ID among ``samples`` (indexed by ID, in file order), or None.

    ``samples`` should hold one patient's samples of one assay (and tissue).
    """
    position = baseline_position(list(sample_hours(samples)))
    return None if position is None else str(samples.index[position])


def post_infusion(samples: pd.DataFrame) -> list[str]:
    """IDs of the post-infusion samples among ``samples``, in time order."""
    positions = post_infusion_positions(list(sample_hours(samples)))
    return [str(samples.index[position]) for position in positions]


def first_post_infusion(samples: pd.DataFrame) -> str | None:
    """The earliest post-infusion sample's ID among ``samples``, or None."""
    after = post_infusion(samples)
    return after[0] if after else None
