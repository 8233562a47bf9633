"""Non-compartmental analysis (NCA) of a cellular-kinetics series.

The figures of the CAR-T product labels (Cmax, Tmax, Clast, Tlast, AUC from 0 to Tlast) and the
terminal half-life, computed as PKNCA computes them by default (Denney et al., PKNCA
documentation; Gabrielsson and Weiner, *Pharmacokinetic and Pharmacodynamic Data Analysis*,
5th ed., 2016, ch. 2):

* Cmax and Tmax: the largest observed value and its first time.
* Clast and Tlast: the last value above zero (quantifiable) and its time.
* AUC 0-Tlast: linear trapezoids where the value rises or stays, log trapezoids where it falls
  ("lin up/log down").
* Terminal half-life ln 2 / lambda_z, lambda_z the negative slope of ln(value) on time over the
  last n >= ``min_points`` quantifiable points after Tmax (Tmax itself excluded), n chosen by
  adjusted R^2: of the fits with lambda_z > 0, those within ``adj_r2_factor`` of the best
  adjusted R^2, the one with the most points (the PKNCA and WinNonlin "best fit" rule).

:func:`nca` takes a cleaned series (0 = below the limit of quantification). :func:`clean_series`
applies this project's conventions for a blood series around an infusion (docs/blood.md): time
0 is the first infusion; the last pre-infusion value is placed at 0 h (0 when below LLOQ, and 0
when there is none, as no CAR cells circulate before the first infusion); a below-LLOQ value
before the first quantifiable one after infusion counts as 0; one between two quantifiable
values is left out; values after Tlast are left out. :func:`kinetics` does both and says why a
figure is not evaluable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

MIN_HALF_LIFE_POINTS = 3
"""Fewest points of the terminal log-linear fit (PKNCA ``min.hl.points``)."""
MIN_ADJ_R2 = 0.0
"""Smallest adjusted R^2 of an accepted terminal fit (0: any fit with lambda_z > 0, as PKNCA;
the ``blood`` config's ``half_life_min_adj_r2`` raises it, like NonCompart's ``R2ADJ``)."""
ADJ_R2_FACTOR = 1e-4
"""Fits within this of the best adjusted R^2 count as equally good (PKNCA
``adj.r.squared.factor``); of those the one with the most points is used."""


@dataclass(frozen=True)
class NcaResult:
    """NCA figures of one series; NaN where not evaluable, with ``reason`` saying why.

    Attributes
    ----------
    cmax, tmax_h, clast, tlast_h, auc_0_tlast
        As in the module docstring; AUC in value x hours.
    half_life_h, lambda_z
        Terminal half-life and elimination rate constant (1/h).
    half_life_points
        Points of the chosen terminal fit (0 when none).
    half_life_adj_r2
        Its adjusted R^2.
    last_sample_h
        Time of the last sample drawn after infusion (NaN when none).
    persists_to_last_sample
        Whether Tlast is the last sample drawn (the cells were still quantifiable then).
    reason
        Semicolon-separated reasons for the figures that are not evaluable; '' when all are.
    """

    cmax: float = math.nan
    tmax_h: float = math.nan
    clast: float = math.nan
    tlast_h: float = math.nan
    auc_0_tlast: float = math.nan
    half_life_h: float = math.nan
    lambda_z: float = math.nan
    half_life_points: int = 0
    half_life_adj_r2: float = math.nan
    last_sample_h: float = math.nan
    persists_to_last_sample: bool | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, object]:
        """The figures as a plain dict (one row of a table)."""
        return asdict(self)


def auc_lin_up_log_down(times: Sequence[float], values: Sequence[float]) -> float:
    """Area under the curve over the whole series, linear up / log down.

    Parameters
    ----------
    times, values
        Increasing times and values >= 0.

    Returns
    -------
    float
        Sum of one trapezoid per interval: ``(t2 - t1) * (c1 - c2) / ln(c1 / c2)`` where the
        value falls and both ends are above 0, else ``(t2 - t1) * (c1 + c2) / 2``.
    """
    t = np.asarray(times, dtype=float)
    c = np.asarray(values, dtype=float)
    if len(t) < 2:
        return 0.0
    dt, c1, c2 = np.diff(t), c[:-1], c[1:]
    falling = (c2 < c1) & (c2 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_part = dt * (c1 - c2) / np.log(c1 / c2)
    return float(np.sum(np.where(falling, log_part, dt * (c1 + c2) / 2)))


@dataclass(frozen=True)
class HalfLife:
    """The chosen terminal fit: half-life (h), lambda_z, points, adjusted R^2, or a reason."""

    half_life_h: float = math.nan
    lambda_z: float = math.nan
    points: int = 0
    adj_r2: float = math.nan
    reason: str = ""


def terminal_half_life(
    times: Sequence[float],
    values: Sequence[float],
    tmax: float,
    min_points: int = MIN_HALF_LIFE_POINTS,
    adj_r2_factor: float = ADJ_R2_FACTOR,
    min_adj_r2: float = MIN_ADJ_R2,
) -> HalfLife:
    """Terminal half-life by the adjusted-R^2 rule (see the module docstring).

    Parameters
    ----------
    times, values
        The cleaned series (values >= 0, 0 below the limit of quantification).
    tmax
        Time of Cmax; only points strictly after it are fitted.
    min_points
        Fewest points of a fit (at least 3: adjusted R^2 needs n > 2).
    adj_r2_factor
        Tolerance on the best adjusted R^2.
    min_adj_r2
        A chosen fit with a lower adjusted R^2 gives no half-life (its points and adjusted R^2
        are still reported, with the reason).
    """
    if min_points < 3:
        raise ValueError("min_points must be at least 3 (adjusted R^2 needs more than 2 points)")
    t = np.asarray(times, dtype=float)
    c = np.asarray(values, dtype=float)
    keep = (t > tmax) & (c > 0)
    t, logc = t[keep], np.log(c[keep])
    if len(t) < min_points:
        return HalfLife(
            reason=f"half-life: {len(t)} quantifiable point(s) after Tmax, {min_points} needed"
        )
    fits = []
    for n in range(min_points, len(t) + 1):
        x, y = t[-n:], logc[-n:]
        if np.ptp(y) == 0:  # a flat tail: slope 0, no decline
            slope, r2 = 0.0, math.nan
        else:
            fit = stats.linregress(x, y)
            slope, r2 = float(fit.slope), float(fit.rvalue) ** 2
        adj_r2 = 1 - (1 - r2) * (n - 1) / (n - 2)
        fits.append((n, -slope, adj_r2))
    declining = [fit for fit in fits if fit[1] > 0 and math.isfinite(fit[2])]
    if not declining:
        return HalfLife(reason="half-life: no declining terminal phase after Tmax")
    best = max(fit[2] for fit in declining)
    n, lambda_z, adj_r2 = max(
        (fit for fit in declining if fit[2] > best - adj_r2_factor), key=lambda fit: fit[0]
    )
    if adj_r2 < min_adj_r2:
        return HalfLife(
            points=n,
            adj_r2=adj_r2,
            reason=f"half-life: adjusted R^2 {adj_r2:.3f} of the best terminal fit is below "
            f"{min_adj_r2:g}",
        )
    return HalfLife(math.log(2) / lambda_z, lambda_z, n, adj_r2)


def nca(
    times: Sequence[float],
    values: Sequence[float],
    min_points: int = MIN_HALF_LIFE_POINTS,
    adj_r2_factor: float = ADJ_R2_FACTOR,
    min_adj_r2: float = MIN_ADJ_R2,
) -> NcaResult:
    """NCA of a cleaned series (PKNCA's defaults).

    Parameters
    ----------
    times, values
        Increasing times (h) and values >= 0; 0 means below the limit of quantification.
    min_points, adj_r2_factor, min_adj_r2
        Of the terminal fit (:func:`terminal_half_life`).

    Returns
    -------
    NcaResult
        AUC over the series up to Tlast; every figure NaN with a reason when no value is above 0.
    """
    t = np.asarray(times, dtype=float)
    c = np.asarray(values, dtype=float)
    if len(t) != len(c):
        raise ValueError("times and values differ in length")
    if np.any(np.diff(t) <= 0):
        raise ValueError("times must be strictly increasing")
    if np.any(~np.isfinite(c)) or np.any(c < 0):
        raise ValueError("values must be finite and >= 0 (0 below the limit of quantification)")
    quantifiable = np.flatnonzero(c > 0)
    if not len(quantifiable):
        return NcaResult(reason="no quantifiable value")
    peak = int(np.argmax(c))  # the first of equal maxima
    last = int(quantifiable[-1])
    fit = terminal_half_life(t, c, t[peak], min_points, adj_r2_factor, min_adj_r2)
    return NcaResult(
        cmax=float(c[peak]),
        tmax_h=float(t[peak]),
        clast=float(c[last]),
        tlast_h=float(t[last]),
        auc_0_tlast=auc_lin_up_log_down(t[: last + 1], c[: last + 1]),
        half_life_h=fit.half_life_h,
        lambda_z=fit.lambda_z,
        half_life_points=fit.points,
        half_life_adj_r2=fit.adj_r2,
        reason=fit.reason,
    )


def clean_series(
    hours: Sequence[float], values: Sequence[float], blq: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """A blood series around an infusion, cleaned by this project's conventions.

    Parameters
    ----------
    hours
        Time of each sample from the first infusion (<= 0 before it), in any order.
    values
        The measured values (NaN allowed where ``blq``).
    blq
        Whether each value is below the lower limit of quantification.

    Returns
    -------
    times, values : numpy.ndarray
        Starting at 0 h with the last pre-infusion value (0 when below LLOQ or absent), then
        the post-infusion samples in time order: below-LLOQ values before the first
        quantifiable one as 0, those between quantifiable values and after Tlast left out.
        Samples at the same time keep the later in the input.
    """
    h = np.asarray(hours, dtype=float)
    v = np.where(np.asarray(blq, dtype=bool), 0.0, np.asarray(values, dtype=float))
    order = np.argsort(h, kind="stable")
    h, v = h[order], v[order]
    pre = np.flatnonzero(h <= 0)
    start = float(v[pre[-1]]) if len(pre) else 0.0
    post_h, post_v = h[h > 0], v[h > 0]
    if len(post_h):  # of samples at one time the later in the input wins
        unique_last = len(post_h) - 1 - np.unique(post_h[::-1], return_index=True)[1]
        post_h, post_v = post_h[unique_last], post_v[unique_last]
    quantifiable = np.flatnonzero(post_v > 0)
    if len(quantifiable):
        first, last = quantifiable[0], quantifiable[-1]
        keep = np.arange(len(post_v)) <= last
        keep &= (np.arange(len(post_v)) < first) | (post_v > 0)
        post_h, post_v = post_h[keep], post_v[keep]
    return np.concatenate([[0.0], post_h]), np.concatenate([[start], post_v])


def kinetics(
    hours: Sequence[float],
    values: Sequence[float],
    blq: Sequence[bool],
    min_points: int = MIN_HALF_LIFE_POINTS,
    adj_r2_factor: float = ADJ_R2_FACTOR,
    min_adj_r2: float = MIN_ADJ_R2,
) -> NcaResult:
    """NCA of one patient's blood series (:func:`clean_series`, then :func:`nca`).

    Not evaluable, with the reason: no blood sample or a single one; no sample after infusion;
    no quantifiable value after infusion (Cmax and Tmax empty); the half-life where the tail
    cannot support it.
    """
    h = np.asarray(hours, dtype=float)
    blq_mask = np.asarray(blq, dtype=bool)
    post = h > 0
    last_sample = float(h[post].max()) if post.any() else math.nan
    if len(h) < 2:
        reason = "no blood sample" if not len(h) else "a single blood sample: no kinetics"
        return NcaResult(last_sample_h=last_sample, reason=reason)
    if not post.any():
        return NcaResult(reason="no blood sample after infusion")
    quantifiable = post & ~blq_mask & (np.nan_to_num(np.asarray(values, dtype=float)) > 0)
    if not quantifiable.any():
        return NcaResult(last_sample_h=last_sample, reason="no quantifiable value after infusion")
    times, cleaned = clean_series(h, values, blq_mask)
    result = nca(times, cleaned, min_points, adj_r2_factor, min_adj_r2)
    fields = result.as_dict()
    fields["last_sample_h"] = last_sample
    fields["persists_to_last_sample"] = bool(result.tlast_h >= last_sample)
    return NcaResult(**fields)
