"""ctDNA detection, mean VAF, tumour fraction and detection limit per plasma sample.

Tumour-informed detection integrates the ALT reads of all of a patient's evaluable variants
(Newman et al. 2014; Abbosh et al. 2017; Wan et al. 2020): under the null hypothesis that the
sample has no tumour DNA, the total ALT count ``X`` is a sum of independent binomial error
counts, approximated by ``Poisson(lambda)`` with ``lambda = sum(depth_i * error_rate_i)``
(a Poisson law has at least the binomials' variance, so the test stays conservative). The
one-sided p-value is ``P(X >= observed)``; ctDNA is detected when it is at most ``alpha``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from carmscope.ctdna.background import DEFAULT_FLOOR
from carmscope.ctdna.variants import VARIANT_KEY

DEFAULT_ALPHA = 0.01
"""Significance level of the detection test."""

DEFAULT_POWER = 0.95
"""Detection probability that defines the detection limit."""

PASS_THROUGH = ("patient_id", "day", "timepoint")
"""Per-sample columns copied from the variant table to the sample calls when present."""

SAMPLE_CALL_COLUMNS = [
    "sample_id",
    "n_variants",
    "n_used",
    "n_covered",
    "alt_count",
    "depth",
    "expected_alt",
    "mean_vaf",
    "pooled_vaf",
    "tumour_fraction",
    "p_value",
    "ctdna_detected",
    "critical_alt",
    "detection_limit_vaf",
    "detection_method",
    "call_status",
]


def variant_calls(
    counts: pd.DataFrame, background: pd.DataFrame, floor: float = DEFAULT_FLOOR
) -> pd.DataFrame:
    """Per-variant evidence: counts with the site's error rate and a one-variant test.

    Parameters
    ----------
    counts
        Allele counts (:func:`~carmscope.ctdna.alleles.count_alleles` or
        :func:`~carmscope.ctdna.vendor.read_vendor_table` rows) of one or more samples, with
        ``sample_id``. If a ``carrier`` column is present only carrier rows (the patient's own
        variants) are kept.
    background
        :func:`~carmscope.ctdna.background.site_background` output.
    floor
        Error rate of sites missing from ``background``.

    Returns
    -------
    pandas.DataFrame
        ``counts`` plus ``error_rate``, ``noisy``, ``used`` (evaluable, not noisy, and with a
        depth or a vendor VAF), ``excluded_because`` ('' when used), ``expected_alt`` (depth x
        error rate) and ``variant_p_value`` (one-sided binomial ``P(alt >= observed)`` at the
        site's error rate; NaN without depth).
    """
    table = counts
    if "carrier" in table.columns:
        table = table[table["carrier"].astype(bool)]
    table = table.drop(columns=["error_rate", "noisy"], errors="ignore").merge(
        background[[*VARIANT_KEY, "error_rate", "noisy"]], on=VARIANT_KEY, how="left"
    )
    table["error_rate"] = table["error_rate"].fillna(floor).astype(float)
    table["noisy"] = table["noisy"].eq(True)
    depth = _numeric(table["depth"])
    alt = _numeric(table["alt_count"])
    evaluable = table["evaluable"].astype(bool)
    measured = depth.notna() | table["vaf"].notna()
    table["used"] = evaluable & ~table["noisy"] & measured
    reason = table["reason"].fillna("").astype(str)
    reason = reason.where(~evaluable | (reason == ""), "")
    reason = reason.mask(evaluable & table["noisy"], "noisy site (background ALT fraction high)")
    reason = reason.mask(evaluable & ~table["noisy"] & ~measured, "no count or VAF")
    table["excluded_because"] = reason.where(~table["used"], "")
    table["expected_alt"] = depth * table["error_rate"]
    with np.errstate(invalid="ignore"):
        p_value = stats.binom.sf(alt - 1, depth, table["error_rate"])
    table["variant_p_value"] = np.where(depth > 0, p_value, np.nan)
    return table


def variant_calls_by_patient(
    counts: pd.DataFrame, backgrounds: pd.DataFrame, floor: float = DEFAULT_FLOOR
) -> pd.DataFrame:
    """:func:`variant_calls` of each patient's samples against that patient's own background.

    Parameters
    ----------
    counts
        Allele counts with ``patient_id`` (as for :func:`variant_calls`).
    backgrounds
        :func:`~carmscope.ctdna.background.patient_backgrounds` output: ``patient_id`` and the
        site columns; a patient's rows are judged only against its own background rows.
    floor
        Error rate of sites missing from a patient's background.

    Returns
    -------
    pandas.DataFrame
        As :func:`variant_calls`, rows in the order of ``counts``.
    """
    if counts.empty:
        return variant_calls(counts, backgrounds.drop(columns="patient_id"), floor)
    parts = []
    ordered = counts.assign(_row=np.arange(len(counts)))
    for patient_id, rows in ordered.groupby("patient_id", sort=False):
        own = backgrounds[backgrounds["patient_id"] == patient_id].drop(columns="patient_id")
        parts.append(variant_calls(rows, own, floor))
    table = pd.concat(parts, ignore_index=True).sort_values("_row", kind="stable")
    return table.drop(columns="_row").reset_index(drop=True)


def _numeric(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype(float)


def sample_calls(
    variants: pd.DataFrame, alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER
) -> pd.DataFrame:
    """Detection call, mean VAF, tumour fraction and detection limit of each sample.

    Parameters
    ----------
    variants
        :func:`variant_calls` output (any number of samples, ``sample_id`` required).
    alpha
        Significance level: ctDNA is detected when the Poisson p-value is <= ``alpha``.
    power
        Detection probability that defines ``detection_limit_vaf``.

    Returns
    -------
    pandas.DataFrame
        One row per sample, columns :data:`PASS_THROUGH` (when present) and
        :data:`SAMPLE_CALL_COLUMNS`:

        - ``alt_count``, ``depth``, ``expected_alt``: sums over the used variants;
        - ``mean_vaf``: mean of the used variants' VAFs (variants with depth 0 left out);
          ``pooled_vaf``: alt_count / depth;
        - ``tumour_fraction``: ``min(1, 2 * mean_vaf)``, which assumes heterozygous, clonal
          variants in copy-neutral regions;
        - ``p_value``: ``P(Poisson(expected_alt) >= alt_count)``; ``ctdna_detected``:
          p_value <= alpha; ``critical_alt``: the fewest ALT reads that are detected;
        - ``detection_limit_vaf``: lowest VAF ``v`` (at every site) detected with probability
          ``power``, i.e. ``P(Poisson(v * depth + (1 - v) * expected_alt) >= critical_alt) =
          power``;
        - ``detection_method``: ``poisson``, or ``vendor-reported`` for samples with vendor VAFs
          and no depth (detected when any used variant has VAF > 0; no p-value or limit);
        - ``call_status``: ``detected``, ``not_detected``, ``no_coverage`` (used variants but
          depth 0), ``no_evaluable_variants``, ``vendor_reported`` or ``vendor_not_reported``.
    """
    table = variants.assign(
        _alt=_numeric(variants["alt_count"]),
        _depth=_numeric(variants["depth"]),
        _vaf=_numeric(variants["vaf"]),
        _expected=_numeric(variants["expected_alt"]),
    )
    used = table["used"].astype(bool)
    table["_used"] = used
    table["_vendor"] = used & table["_depth"].isna()
    table["_covered"] = used & (table["_depth"].fillna(0) > 0)
    table["_vaf_used"] = table["_vaf"].where(used & (table["_covered"] | table["_vendor"]))
    table["_positive"] = table["_vaf_used"] > 0
    for column in ("_alt", "_depth", "_expected"):
        table[column] = table[column].where(used & ~table["_vendor"], 0.0)
    groups = table.groupby("sample_id", sort=False)
    calls = groups.agg(
        n_variants=("_used", "size"),
        n_used=("_used", "sum"),
        n_covered=("_covered", "sum"),
        alt_count=("_alt", "sum"),
        depth=("_depth", "sum"),
        expected_alt=("_expected", "sum"),
        mean_vaf=("_vaf_used", "mean"),
        _vendor=("_vendor", "any"),
        _positive=("_positive", "any"),
    ).reset_index()
    passed = [c for c in PASS_THROUGH if c in variants.columns]
    if passed:
        calls = groups[passed].first().reset_index().merge(calls, on="sample_id")
    return _decide(calls, alpha, power)[[*passed, *SAMPLE_CALL_COLUMNS]]


def _decide(calls: pd.DataFrame, alpha: float, power: float) -> pd.DataFrame:
    """Add the test, tumour fraction, detection limit and status to per-sample sums."""
    alt = calls["alt_count"].to_numpy(float)
    depth = calls["depth"].to_numpy(float)
    expected = calls["expected_alt"].to_numpy(float)
    vendor = calls["_vendor"].to_numpy(bool)
    tested = ~vendor & (depth > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        calls["pooled_vaf"] = np.where(tested, alt / depth, np.nan)
        p_value = np.where(tested, stats.poisson.sf(alt - 1, expected), np.nan)
        critical = np.where(tested, critical_alt_count(expected, alpha), np.nan)
        mean_at_power = stats.gamma.ppf(power, critical)
        limit = np.clip((mean_at_power - expected) / (depth - expected), 0.0, 1.0)
    calls["tumour_fraction"] = np.minimum(1.0, 2.0 * calls["mean_vaf"])
    calls["p_value"] = p_value
    detected = np.where(vendor, calls["_positive"].to_numpy(bool), tested & (p_value <= alpha))
    calls["ctdna_detected"] = detected.astype(bool)
    calls["critical_alt"] = pd.array([int(c) if c == c else pd.NA for c in critical], dtype="Int64")
    calls["detection_limit_vaf"] = np.where(tested, limit, np.nan)
    calls["detection_method"] = np.where(vendor, "vendor-reported", np.where(tested, "poisson", ""))
    status = np.select(
        [
            vendor & detected,
            vendor,
            calls["n_used"].to_numpy() == 0,
            ~tested,
            detected,
        ],
        [
            "vendor_reported",
            "vendor_not_reported",
            "no_evaluable_variants",
            "no_coverage",
            "detected",
        ],
        default="not_detected",
    )
    calls["call_status"] = status
    for column in ("alt_count", "depth"):
        calls[column] = calls[column].astype("int64")
    return calls


def critical_alt_count(expected: np.ndarray | float, alpha: float = DEFAULT_ALPHA) -> np.ndarray:
    """Fewest ALT reads whose one-sided Poisson p-value is at most ``alpha``.

    Parameters
    ----------
    expected
        Expected background ALT reads (``lambda``), one or many.
    alpha
        Significance level.

    Returns
    -------
    numpy.ndarray
        Smallest ``k`` with ``P(Poisson(lambda) >= k) <= alpha``.
    """
    expected = np.asarray(expected, dtype=float)
    critical = stats.poisson.ppf(1.0 - alpha, expected) + 1.0
    # guard against rounding in ppf: step up or down by one where the bound is not tight
    critical = np.where(stats.poisson.sf(critical - 1, expected) > alpha, critical + 1, critical)
    lower = np.maximum(critical - 1, 0)
    critical = np.where(
        (critical > 0) & (stats.poisson.sf(lower - 1, expected) <= alpha), lower, critical
    )
    return critical
