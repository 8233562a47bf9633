"""Per-sample repertoire diversity.

With ``n_i`` the count of clone ``i`` (templates, reads or cells), ``N = sum n_i``,
``p_i = n_i / N`` and ``S`` the number of clones:

- Shannon entropy ``H = -sum p_i ln p_i`` (natural log);
- clonality ``1 - H / ln S`` (1 - Pielou's evenness; the "productive clonality" of Adaptive's
  immunoSEQ Analyzer; 0 for a perfectly even repertoire, 1 for a single clone; 1 when S = 1);
- Simpson clonality ``sqrt(sum p_i^2)`` (Chao et al. 2014 / Adaptive's later default), robust to
  sequencing depth;
- top-10 share: the 10 largest clones' share of ``N``;
- rarefied richness: the expected number of clones in a random subsample of ``depth`` counts
  drawn without replacement, ``sum_i 1 - C(N - n_i, depth) / C(N, depth)`` (Hurlbert 1971), so
  repertoires of different depth compare; NaN when ``N < depth``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

DIVERSITY_COLUMNS = (
    "templates",
    "clones",
    "shannon",
    "clonality",
    "simpson_clonality",
    "top10_share",
    "rarefied_richness",
    "rarefaction_depth",
)


def shannon_entropy(counts: np.ndarray) -> float:
    """Shannon entropy (natural log) of the clone counts; NaN for an empty repertoire."""
    counts = np.asarray(counts, dtype=float)
    counts = counts[counts > 0]
    total = counts.sum()
    if total == 0:
        return np.nan
    p = counts / total
    return float(-(p * np.log(p)).sum())


def clonality(counts: np.ndarray) -> float:
    """1 - Pielou's evenness (``1 - H / ln S``); 1 for one clone, NaN for none."""
    counts = np.asarray(counts, dtype=float)
    clones = int((counts > 0).sum())
    if clones == 0:
        return np.nan
    if clones == 1:
        return 1.0
    return float(1.0 - shannon_entropy(counts) / np.log(clones))


def simpson_clonality(counts: np.ndarray) -> float:
    """``sqrt(sum p_i^2)``; NaN for an empty repertoire."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total == 0:
        return np.nan
    return float(np.sqrt(((counts / total) ** 2).sum()))


def top_share(counts: np.ndarray, top: int = 10) -> float:
    """Share of the ``top`` largest clones in the total count; NaN for an empty repertoire."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    if total == 0:
        return np.nan
    k = min(top, len(counts))
    return float(np.partition(counts, len(counts) - k)[len(counts) - k :].sum() / total)


def rarefied_richness(counts: np.ndarray, depth: int) -> float:
    """Expected clones in a subsample of ``depth`` counts without replacement (Hurlbert 1971).

    NaN when the repertoire has fewer than ``depth`` counts or ``depth`` < 1.
    """
    counts = np.asarray(counts, dtype=float)
    counts = counts[counts > 0]
    total = counts.sum()
    if depth < 1 or total < depth:
        return np.nan
    # log C(N - n_i, depth) - log C(N, depth); the binomial is 0 when N - n_i < depth
    rest = total - counts
    possible = rest >= depth
    log_ratio = np.full(len(counts), -np.inf)
    r = rest[possible]
    log_ratio[possible] = (
        gammaln(r + 1) - gammaln(r - depth + 1) - gammaln(total + 1) + gammaln(total - depth + 1)
    )
    return float((1.0 - np.exp(log_ratio)).sum())


def diversity(counts: np.ndarray, depth: int | None) -> dict[str, float]:
    """Every figure of :data:`DIVERSITY_COLUMNS` for one repertoire's clone counts.

    ``depth`` is the rarefaction depth (None: no rarefied richness).
    """
    counts = np.asarray(counts, dtype=np.int64)
    return {
        "templates": int(counts.sum()),
        "clones": int((counts > 0).sum()),
        "shannon": shannon_entropy(counts),
        "clonality": clonality(counts),
        "simpson_clonality": simpson_clonality(counts),
        "top10_share": top_share(counts, 10),
        "rarefied_richness": rarefied_richness(counts, depth) if depth else np.nan,
        "rarefaction_depth": int(depth) if depth else np.nan,
    }
