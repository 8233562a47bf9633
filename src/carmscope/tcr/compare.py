"""Baseline vs post-infusion: expanded, contracted and new clones, and repertoire overlap.

Differential abundance (DeWitt et al. 2015; Rytlewski et al. 2019)
    For every clone with a combined count (baseline + post) of at least ``min_count``, the
    2x2 table (clone, all other clones) x (post, baseline) is tested with a one-sided Fisher
    exact test: "greater" (more of the clone after infusion than the two totals predict) for
    expansion and "less" for contraction. The Fisher p-value is the hypergeometric tail
    ``P(X >= a)`` with ``X ~ Hypergeom(M = A + B, n = a + b, N = A)`` (``a``, ``b`` the clone's
    post and baseline counts, ``A``, ``B`` the totals), computed with ``scipy.stats.hypergeom``
    once per distinct ``(a, b)`` pair: the same numbers as ``scipy.stats.fisher_exact`` (tested)
    without a Python call per clone, which the speed target (docs/tcr.md, Benchmark) needs.
    Each tail gets its own Benjamini-Hochberg adjustment over the tested clones
    (``scipy.stats.false_discovery_control``). Expanded: ``q <= fdr`` and frequency fold
    ``(a / A) / (b / B) >= min_fold``; contracted: ``q <= fdr`` and fold ``<= 1 / min_fold``.
New clones
    Expanded clones absent at baseline (``b = 0``) that baseline sampling would have seen had
    they been there at their post-infusion frequency: ``P(0 | Poisson(B * a / A)) =
    exp(-B * a / A) <= detect_alpha``. A tested clone absent at baseline whose
    ``exp(-B * a / A) > detect_alpha`` is ``undetectable_at_baseline`` and never new.
Overlap
    Morisita-Horn index (Horn 1966) of the two repertoires' clone counts: 1 for identical clone
    frequencies, 0 for no shared clone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import gammaln

from carmscope.tcr.columns import first_rows

CHANGE_COLUMNS = (
    "clone_id",
    "cdr3_aa",
    "v_gene",
    "post_sample",
    "baseline_count",
    "post_count",
    "baseline_frequency",
    "post_frequency",
    "p_value",
    "q_value",
    "p_value_contracted",
    "q_value_contracted",
    "fold",
    "detect_p",
    "expanded",
    "contracted",
    "new",
    "undetectable_at_baseline",
)
CHANGE_TEXT_COLUMNS = ("clone_id", "cdr3_aa", "v_gene", "post_sample")
"""The change table's text columns (read back with ``carmscope.io.read_stage_table``)."""


@dataclass(frozen=True)
class ChangeSettings:
    """The thresholds of :func:`compare_repertoires` (config section ``tcr``)."""

    min_count: int = 5
    fdr: float = 0.05
    min_fold: float = 2.0
    detect_alpha: float = 0.05

    def __post_init__(self) -> None:
        if self.min_count < 1:
            raise ValueError(f"tcr.min_count must be >= 1, not {self.min_count}")
        if not 0 < self.fdr < 1:
            raise ValueError(f"tcr.fdr must be in (0, 1), not {self.fdr}")
        if self.min_fold < 1:
            raise ValueError(f"tcr.min_fold must be >= 1, not {self.min_fold}")
        if not 0 < self.detect_alpha < 1:
            raise ValueError(f"tcr.detect_alpha must be in (0, 1), not {self.detect_alpha}")


def fisher_tails(
    post: np.ndarray, baseline: np.ndarray, post_total: int, baseline_total: int
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Fisher exact p-values of each clone: (greater, less).

    ``greater``: the clone's share is larger after infusion; ``less``: smaller. Equal to
    ``scipy.stats.fisher_exact([[a, b], [A - a, B - b]], alternative=...)`` per clone.

    Each distinct ``(a, b)`` pair is evaluated once. For a pair above its expected post count
    the upper tail is summed (:func:`_hypergeom_tail`) and the lower tail, then >= 0.5, is its
    complement plus the point mass; below it the other way round: each tail that can be small
    is a sum of positive terms (no cancellation).
    """
    post = np.asarray(post, dtype=np.int64)
    baseline = np.asarray(baseline, dtype=np.int64)
    if not len(post):
        return np.array([]), np.array([])
    # distinct pairs through one integer key: a 1-D sort, not np.unique(axis=0)'s row sort
    width = int(baseline.max()) + 1
    keys, inverse = np.unique(post * width + baseline, return_inverse=True)
    a, b = keys // width, keys % width
    clone_total = a + b
    total = post_total + baseline_total
    upper = a * total >= clone_total * post_total  # a at or above its expectation
    greater = np.empty(len(keys))
    less = np.empty(len(keys))
    point = _hypergeom_pmf(a, total, clone_total, post_total)
    greater[upper] = _hypergeom_tail(a[upper], total, clone_total[upper], post_total, True)
    less[upper] = 1.0 - greater[upper] + point[upper]
    less[~upper] = _hypergeom_tail(a[~upper], total, clone_total[~upper], post_total, False)
    greater[~upper] = 1.0 - less[~upper] + point[~upper]
    inverse = inverse.reshape(-1)
    return np.clip(greater, 0.0, 1.0)[inverse], np.clip(less, 0.0, 1.0)[inverse]


def _hypergeom_pmf(k, total, draws_of_kind, draws) -> np.ndarray:
    """Hypergeometric point mass from log-gamma (``scipy.special.gammaln``).

    Used only for the complement tail (>= 0.5, where an absolute error of ~1e-9 is harmless);
    measured reason beside the code: ``scipy.stats.hypergeom.pmf`` took 2.0 s of the
    benchmark pair's 4 s comparison (docs/tcr.md, Benchmark), this takes milliseconds.
    """

    def log_choose(n, r):
        return gammaln(n + 1) - gammaln(r + 1) - gammaln(n - r + 1)

    k = np.asarray(k, dtype=float)
    n = np.asarray(draws_of_kind, dtype=float)
    log_p = log_choose(n, k) + log_choose(total - n, draws - k) - log_choose(total, draws)
    return np.exp(log_p)


def _hypergeom_tail(k, total, draws_of_kind, draws, upper: bool) -> np.ndarray:
    """``P(X >= k)`` (``upper``) or ``P(X <= k)`` of ``X ~ Hypergeom(total, draws_of_kind,
    draws)``, by summing the point masses of the tail (all positive: no cancellation).

    Measured reason for not calling ``scipy.stats.hypergeom.sf``/``cdf`` here: at a million
    templates they take ~0.35 ms per distinct count pair (0.6 s of the benchmark pair's
    comparison, docs/tcr.md); summing all pairs' tails at once in NumPy takes milliseconds.
    The point masses come from log-gamma (relative error ~1e-9 at these totals); the unit
    tests compare every p-value with ``scipy.stats.fisher_exact``.
    """
    k = np.asarray(k, dtype=np.int64)
    n = np.asarray(draws_of_kind, dtype=np.int64)
    if not len(k):
        return np.array([])
    low = np.maximum(0, n + draws - total)
    high = np.minimum(n, draws)
    start, stop = (k, high) if upper else (low, k)
    lengths = np.maximum(stop - start + 1, 0)
    segment = np.repeat(np.arange(len(k)), lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    terms = _hypergeom_pmf(start[segment] + offsets, total, n[segment], draws)
    return np.bincount(segment, weights=terms, minlength=len(k))


def _bh(p_values: np.ndarray) -> np.ndarray:
    if not len(p_values):
        return np.array([])
    return stats.false_discovery_control(p_values, method="bh")


def aligned_counts(baseline: pd.DataFrame, post: pd.DataFrame) -> pd.DataFrame:
    """The union of two clone tables: ``clone_id``, ``cdr3_aa``, ``v_gene``,
    ``baseline_count``, ``post_count`` (0 where absent), in order of first appearance."""
    return pd.DataFrame(_aligned(baseline, post))


def _aligned(baseline: pd.DataFrame, post: pd.DataFrame) -> dict[str, np.ndarray]:
    """:func:`aligned_counts` as columns.

    Clone IDs are hashed, not sorted: a merge of two 300,000-clone tables on text keys sorts
    them and costs more than reading the files. One ``pandas.factorize`` of both tables' IDs
    (measured on the benchmark pair with freshly made IDs, as the readers give them: 0.12 s
    CPU, against 0.19 s for ``pandas.Index.get_indexer`` after a uniqueness check and 0.19 s
    for ``pyarrow.compute.index_in`` with one).
    """
    base_ids = baseline["clone_id"].to_numpy(dtype=object)
    n_base = len(base_ids)
    codes, uniques = pd.factorize(
        np.concatenate([base_ids, post["clone_id"].to_numpy(dtype=object)])
    )
    first = first_rows(codes)  # ascending: the baseline's rows, then the post table's
    in_post = first >= n_base
    columns = {"clone_id": np.asarray(uniques, dtype=object)}
    for name in ("cdr3_aa", "v_gene"):
        columns[name] = np.concatenate(
            [
                baseline[name].to_numpy(dtype=object)[first[~in_post]],
                post[name].to_numpy(dtype=object)[first[in_post] - n_base],
            ]
        )
    for name, part, table in (
        ("baseline_count", codes[:n_base], baseline),
        ("post_count", codes[n_base:], post),
    ):
        summed = np.zeros(len(uniques), dtype=np.int64)
        np.add.at(summed, part, table["count"].to_numpy(dtype=np.int64))
        columns[name] = summed
    return columns


def compare_repertoires(
    baseline: pd.DataFrame,
    post: pd.DataFrame,
    settings: ChangeSettings = ChangeSettings(),
    post_sample: str = "",
) -> pd.DataFrame:
    """Expanded, contracted, new and undetectable-at-baseline clones of one post sample.

    Parameters
    ----------
    baseline, post
        Clone tables (``clone_id``, ``cdr3_aa``, ``v_gene``, ``count``).
    settings
        Thresholds.
    post_sample
        Written into the ``post_sample`` column.

    Returns
    -------
    pandas.DataFrame
        One row per tested clone (combined count >= ``min_count``), :data:`CHANGE_COLUMNS`,
        largest post-infusion count first.
    """
    return changes_and_overlap(baseline, post, settings, post_sample)[0]


def changes_and_overlap(
    baseline: pd.DataFrame,
    post: pd.DataFrame,
    settings: ChangeSettings = ChangeSettings(),
    post_sample: str = "",
) -> tuple[pd.DataFrame, float]:
    """:func:`compare_repertoires` and the Morisita-Horn :func:`overlap` of the same pair,
    aligning the two clone tables once."""
    merged = _aligned(baseline, post)
    mh = morisita_horn(merged["baseline_count"], merged["post_count"])
    baseline_total = int(merged["baseline_count"].sum())
    post_total = int(merged["post_count"].sum())
    tested = np.flatnonzero(merged["baseline_count"] + merged["post_count"] >= settings.min_count)
    # largest post count first, ties in order of first appearance (no text sort)
    tested = tested[np.argsort(-merged["post_count"][tested], kind="stable")]
    a = merged["post_count"][tested]
    b = merged["baseline_count"][tested]
    greater, less = fisher_tails(a, b, post_total, baseline_total)
    q_greater, q_less = _bh(greater), _bh(less)
    post_freq = a / post_total if post_total else np.full(len(a), np.nan)
    base_freq = b / baseline_total if baseline_total else np.full(len(b), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        fold = post_freq / base_freq
    detect_p = np.exp(-baseline_total * post_freq)
    expanded = (q_greater <= settings.fdr) & (fold >= settings.min_fold)
    contracted = (q_less <= settings.fdr) & (fold <= 1.0 / settings.min_fold)
    absent = b == 0
    detectable = detect_p <= settings.detect_alpha
    columns = {
        **{name: merged[name][tested] for name in ("clone_id", "cdr3_aa", "v_gene")},
        "post_sample": np.full(len(tested), post_sample, dtype=object),
        "baseline_count": b,
        "post_count": a,
        "baseline_frequency": base_freq,
        "post_frequency": post_freq,
        "p_value": greater,
        "q_value": q_greater,
        "p_value_contracted": less,
        "q_value_contracted": q_less,
        "fold": fold,
        "detect_p": detect_p,
        "expanded": expanded,
        "contracted": contracted,
        "new": expanded & absent & detectable,
        "undetectable_at_baseline": absent & ~detectable,
    }
    return pd.DataFrame({name: columns[name] for name in CHANGE_COLUMNS}, copy=False), mh


def morisita_horn(x: np.ndarray, y: np.ndarray) -> float:
    """Morisita-Horn overlap of two aligned count vectors (Horn 1966); NaN if either is empty.

    ``2 sum x_i y_i / ((D_x + D_y) X Y)`` with ``D_x = sum x_i^2 / X^2``.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    total_x, total_y = x.sum(), y.sum()
    if total_x == 0 or total_y == 0:
        return np.nan
    d_x = (x**2).sum() / total_x**2
    d_y = (y**2).sum() / total_y**2
    return float(2 * (x * y).sum() / ((d_x + d_y) * total_x * total_y))


def overlap(baseline: pd.DataFrame, post: pd.DataFrame) -> float:
    """Morisita-Horn overlap of two clone tables."""
    merged = _aligned(baseline, post)
    return morisita_horn(merged["baseline_count"], merged["post_count"])
