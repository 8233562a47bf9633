"""Repertoire diversity and baseline-vs-post differential abundance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from carmscope.tcr.compare import (
    ChangeSettings,
    compare_repertoires,
    fisher_tails,
    morisita_horn,
)
from carmscope.tcr.diversity import (
    clonality,
    diversity,
    rarefied_richness,
    shannon_entropy,
    simpson_clonality,
    top_share,
)


def test_clonality_extremes_and_value():
    assert clonality(np.full(50, 7)) == pytest.approx(0.0)
    assert clonality(np.array([9])) == 1.0
    assert np.isnan(clonality(np.array([], dtype=int)))
    counts = np.array([6, 3, 1])
    p = counts / 10
    assert clonality(counts) == pytest.approx(1 + (p * np.log(p)).sum() / np.log(3))
    assert shannon_entropy(counts) == pytest.approx(stats.entropy(p))


def test_simpson_and_top10():
    counts = np.array([50, 30, 20] + [1] * 20)
    p = counts / counts.sum()
    assert simpson_clonality(counts) == pytest.approx(np.sqrt((p**2).sum()))
    assert top_share(counts) == pytest.approx((100 + 7) / 120)


def test_rarefied_richness_matches_enumeration():
    counts = np.array([3, 2, 1])  # 6 items; subsamples of 2
    from itertools import combinations

    items = np.repeat(np.arange(3), counts)
    pairs = list(combinations(range(6), 2))
    expected = np.mean([len(set(items[list(pair)])) for pair in pairs])
    assert rarefied_richness(counts, 2) == pytest.approx(expected)
    assert rarefied_richness(counts, 6) == pytest.approx(3.0)
    assert np.isnan(rarefied_richness(counts, 7))


def test_diversity_row():
    row = diversity(np.array([5, 5]), depth=2)
    assert row["templates"] == 10 and row["clones"] == 2 and row["clonality"] == pytest.approx(0)
    assert row["rarefaction_depth"] == 2


def test_fisher_tails_equal_scipy_fisher_exact():
    rng = np.random.default_rng(1)
    post = rng.integers(0, 40, 60)
    base = rng.integers(0, 40, 60)
    total_post, total_base = int(post.sum()) + 500, int(base.sum()) + 700
    greater, less = fisher_tails(post, base, total_post, total_base)
    for i in range(len(post)):
        table = [[post[i], base[i]], [total_post - post[i], total_base - base[i]]]
        assert greater[i] == pytest.approx(stats.fisher_exact(table, "greater").pvalue, rel=1e-7)
        assert less[i] == pytest.approx(stats.fisher_exact(table, "less").pvalue, rel=1e-7)


def _clones(counts: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clone_id": [f"TRBV2:{k}" for k in counts],
            "cdr3_aa": list(counts),
            "v_gene": "TRBV2",
            "count": list(counts.values()),
        }
    )


def test_expanded_contracted_new_and_undetectable():
    background = {f"CASS{i}F": 20 for i in range(100)}
    base = _clones(background | {"CUP": 10, "CDOWN": 200, "CRARE": 0})
    post = _clones(background | {"CUP": 200, "CDOWN": 10, "CNEW": 150, "CRARE": 6})
    table = compare_repertoires(base, post, ChangeSettings(), post_sample="P1").set_index("cdr3_aa")
    assert table.loc["CUP", "expanded"] and not table.loc["CUP", "new"]
    assert table.loc["CDOWN", "contracted"] and not table.loc["CDOWN", "expanded"]
    assert table.loc["CNEW", "new"] and table.loc["CNEW", "expanded"]
    assert table.loc["CNEW", "fold"] == np.inf
    assert not table.loc["CASS1F", "expanded"] and not table.loc["CASS1F", "contracted"]
    assert (table["post_sample"] == "P1").all()
    # q-values are BH of the p-values over the tested clones
    assert np.allclose(table["q_value"], stats.false_discovery_control(table["p_value"]))


def test_new_needs_detectable_baseline_depth():
    # a shallow baseline (60 templates) could not have seen a clone at 0.5% post frequency
    base = _clones({f"CB{i}F": 1 for i in range(60)})
    post = _clones({f"CP{i}F": 10 for i in range(199)} | {"CX": 10})
    table = compare_repertoires(base, post, ChangeSettings(min_count=5)).set_index("cdr3_aa")
    assert table.loc["CX", "undetectable_at_baseline"]
    assert not table.loc["CX", "new"]
    assert np.exp(-60 * 10 / 2000) == pytest.approx(table.loc["CX", "detect_p"])


def test_min_count_excludes_small_clones():
    base = _clones({"CA": 2, "CB": 100})
    post = _clones({"CA": 2, "CB": 100})
    table = compare_repertoires(base, post, ChangeSettings(min_count=5))
    assert table["cdr3_aa"].tolist() == ["CB"]


def test_settings_checked():
    with pytest.raises(ValueError, match=r"tcr\.fdr"):
        ChangeSettings(fdr=1.5)


def test_morisita_horn():
    x = np.array([10, 20, 30, 0])
    assert morisita_horn(x, x * 3) == pytest.approx(1.0)
    assert morisita_horn(np.array([1, 0]), np.array([0, 1])) == 0.0
    y = np.array([5, 5, 0, 10])
    dx, dy = (x**2).sum() / x.sum() ** 2, (y**2).sum() / y.sum() ** 2
    assert morisita_horn(x, y) == pytest.approx(2 * (x * y).sum() / ((dx + dy) * 60 * 20))


def test_changes_and_overlap_agree_with_the_separate_functions():
    from carmscope.tcr.compare import changes_and_overlap, overlap

    base = _clones({"CA": 50, "CB": 20, "CC": 5})
    post = _clones({"CA": 10, "CB": 20, "CD": 40})
    table, mh = changes_and_overlap(base, post)
    assert mh == pytest.approx(overlap(base, post))
    assert table.equals(compare_repertoires(base, post))


def test_fisher_tails_at_a_million_templates_and_tiny_p_values():
    post = np.array([0, 1, 5, 40, 400, 5000, 20000, 3, 0, 900])
    base = np.array([7, 0, 5, 2, 100, 5200, 9000, 60, 30, 1000])
    total_post, total_base = 1_000_000, 800_000
    greater, less = fisher_tails(post, base, total_post, total_base)
    for i in range(len(post)):
        table = [[post[i], base[i]], [total_post - post[i], total_base - base[i]]]
        assert greater[i] == pytest.approx(stats.fisher_exact(table, "greater").pvalue, rel=1e-6)
        assert less[i] == pytest.approx(stats.fisher_exact(table, "less").pvalue, rel=1e-6)
    assert greater[6] < 1e-50 and less[7] < 1e-10
