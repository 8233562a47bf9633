"""Per-site background error rates from plasma samples that do not carry the variant.

Tumour-informed tracking counts a patient's own variants in its plasma; the same sites in the
plasma of the other patients (and in optional panel-of-normals BAMs) show how often the ALT
base appears by sequencing or PCR error there (the INVAR idea of locus-specific noise, Wan et
al. 2020). In the ``cohort`` mode the workflow therefore counts every cohort variant in every
plasma BAM; the pooled counts from non-carriers give each site's error rate
(:func:`site_background`). In the ``normals`` mode only tumour-free panel-of-normals BAMs give
the background (as in iDES, Newman et al. 2016), per patient panel
(:func:`patient_backgrounds`), so one patient's background never depends on the others.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carmscope.ctdna.variants import VARIANT_KEY

DEFAULT_FLOOR = 1e-4
"""Lowest error rate any site is given, however clean its background."""

PSEUDO_ALT = 0.5
PSEUDO_DEPTH = 1.0
"""Pseudo-counts added to the pooled ALT reads and depth: the posterior mean of the error rate
under a Jeffreys Beta(1/2, 1/2) prior, so a site with no background ALT read is not given a
rate of zero."""

DEFAULT_MAX_RATE = 0.01
"""Pooled background ALT fraction above which a site is noisy (germline polymorphism, mapping
artefact, recurrent error) and left out of detection."""

NOISY_MIN_ALT = 2
"""Background ALT reads a site needs before it can be called noisy (one stray read in a few
dozen is not enough)."""

BACKGROUND_COLUMNS = [
    *VARIANT_KEY,
    "background_alt",
    "background_depth",
    "background_samples",
    "error_rate",
    "floored",
    "noisy",
]


def mark_carriers(counts: pd.DataFrame, tumour_variants: pd.DataFrame) -> pd.DataFrame:
    """Add ``carrier``: whether the sample's patient has the row's variant among its own.

    Parameters
    ----------
    counts
        Allele counts of many samples, with ``patient_id`` and :data:`VARIANT_KEY` columns
        (panel-of-normals rows may have any ``patient_id`` that names no patient, e.g. '').
    tumour_variants
        Every patient's tumour variants: ``patient_id`` and :data:`VARIANT_KEY`.

    Returns
    -------
    pandas.DataFrame
        A copy of ``counts`` with a boolean ``carrier`` column.
    """
    owned = tumour_variants[["patient_id", *VARIANT_KEY]].drop_duplicates().assign(carrier=True)
    marked = counts.drop(columns="carrier", errors="ignore").merge(
        owned, on=["patient_id", *VARIANT_KEY], how="left"
    )
    marked["carrier"] = marked["carrier"].eq(True)
    return marked


def site_background(
    counts: pd.DataFrame,
    floor: float = DEFAULT_FLOOR,
    max_rate: float = DEFAULT_MAX_RATE,
) -> pd.DataFrame:
    """Background ALT error rate of each site, pooled over the samples that do not carry it.

    ``error_rate = max(floor, (alt + 0.5) / (depth + 1))`` with ``alt`` and ``depth`` summed over
    the non-carrier samples' counts at the site (:data:`PSEUDO_ALT`, :data:`PSEUDO_DEPTH`); a
    site without background depth gets ``floor``. A site is ``noisy`` when at least
    :data:`NOISY_MIN_ALT` background reads carry the ALT and they exceed ``max_rate`` of its
    background depth.

    Parameters
    ----------
    counts
        Allele counts of every plasma (and panel-of-normals) sample at every cohort site, with
        :data:`VARIANT_KEY`, ``alt_count``, ``depth``, ``carrier`` (see :func:`mark_carriers`)
        and optionally ``sample_id`` and ``evaluable``. Carrier rows, rows not evaluable and
        rows with unknown depth (vendor VAF-only) are left out of the pooled counts.
    floor
        Lowest error rate (default 1e-4).
    max_rate
        Background ALT fraction above which a site is noisy (default 0.01).

    Returns
    -------
    pandas.DataFrame
        One row per site of ``counts``: :data:`BACKGROUND_COLUMNS`.
    """
    if "carrier" not in counts.columns:
        raise ValueError("counts need a 'carrier' column (see mark_carriers)")
    alt = pd.to_numeric(counts["alt_count"], errors="coerce").astype(float)
    depth = pd.to_numeric(counts["depth"], errors="coerce").astype(float)
    usable = ~counts["carrier"].astype(bool) & depth.notna() & alt.notna()
    if "evaluable" in counts.columns:
        usable &= counts["evaluable"].astype(bool)
    pooled = counts[VARIANT_KEY].assign(
        background_alt=alt.where(usable, 0.0),
        background_depth=depth.where(usable, 0.0),
        background_samples=(usable & (depth > 0)).astype(int),
    )
    sites = pooled.groupby(VARIANT_KEY, sort=False, as_index=False).sum()
    if "sample_id" in counts.columns:
        # a sample counted twice at a site (e.g. two tables) is still one sample
        covered = counts.loc[usable & (depth > 0), [*VARIANT_KEY, "sample_id"]].drop_duplicates()
        samples = covered.groupby(VARIANT_KEY, sort=False).size().rename("background_samples")
        sites = sites.drop(columns="background_samples").merge(
            samples.reset_index(), on=VARIANT_KEY, how="left"
        )
        sites["background_samples"] = sites["background_samples"].fillna(0).astype(int)
    background_alt = sites["background_alt"].to_numpy()
    background_depth = sites["background_depth"].to_numpy()
    estimate = (background_alt + PSEUDO_ALT) / (background_depth + PSEUDO_DEPTH)
    estimate = np.where(background_depth > 0, estimate, floor)
    sites["error_rate"] = np.maximum(estimate, floor)
    sites["floored"] = estimate <= floor
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = np.where(background_depth > 0, background_alt / background_depth, 0.0)
    sites["noisy"] = (background_alt >= NOISY_MIN_ALT) & (raw > max_rate)
    sites["background_alt"] = sites["background_alt"].astype("int64")
    sites["background_depth"] = sites["background_depth"].astype("int64")
    return sites[BACKGROUND_COLUMNS]


def patient_backgrounds(
    normal_counts: pd.DataFrame,
    floor: float = DEFAULT_FLOOR,
    max_rate: float = DEFAULT_MAX_RATE,
    panel_column: str = "panel_patient",
) -> pd.DataFrame:
    """Background of each patient's own sites from panel-of-normals counts alone.

    Every row is a non-carrier (the normals are tumour-free); each patient's sites are pooled
    by :func:`site_background` over the normals counted at that patient's panel only, so a
    patient's background does not depend on any other patient.

    Parameters
    ----------
    normal_counts
        Allele counts of panel-of-normals BAMs at the patients' panels: :data:`VARIANT_KEY`,
        ``alt_count``, ``depth``, ``sample_id`` (one per normal), optionally ``evaluable``, and
        ``panel_column`` naming the patient whose panel each row was counted at.
    floor, max_rate
        As for :func:`site_background`.
    panel_column
        Column naming the patient of each row's panel.

    Returns
    -------
    pandas.DataFrame
        ``patient_id`` and :data:`BACKGROUND_COLUMNS`, one row per site of each patient's
        panel, patients in order of first appearance.
    """
    parts = []
    for patient_id, rows in normal_counts.groupby(panel_column, sort=False):
        sites = site_background(rows.assign(carrier=False), floor, max_rate)
        sites.insert(0, "patient_id", patient_id)
        parts.append(sites)
    if not parts:
        return pd.DataFrame(columns=["patient_id", *BACKGROUND_COLUMNS])
    return pd.concat(parts, ignore_index=True)
