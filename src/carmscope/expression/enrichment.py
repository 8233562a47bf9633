"""Pathway enrichment of a differential-expression contrast: decoupler's univariate linear model.

Statistic
    The Wald statistic of every tested gene (``stat`` of :mod:`carmscope.expression.de`):
    signed, and scaled by its standard error, so a gene measured precisely counts more than a
    noisy one with the same fold change.
Method: ``ulm`` (decoupler, Badia-i-Mompel et al. 2022)
    For each gene set, a linear model across genes ``stat_g = b0 + b1 * member_g + e``
    (``member_g`` 1 for the set's genes, 0 otherwise); the score is the t-value of ``b1`` and
    the p-value two-sided from Student's t with ``n_genes - 2`` degrees of freedom. A positive
    score means the set's genes went up after infusion relative to the other genes. It is
    deterministic (no permutations, so no permutation floor on p-values: with ~50 gene sets a
    preranked GSEA with 1,000 permutations cannot give p below 0.001, and its p-values change
    with the seed), takes every tested gene's statistic rather than ranks only, and was among
    the best methods of decoupler's benchmark.
Multiplicity
    Benjamini-Hochberg over the sets tested for one cell type (decoupler's adjustment within an
    observation); cell types are separate families.
Sets
    Every set of the GMT files (by default the MSigDB hallmark inflammation sets) and of the
    immune signature table, plus any further GMT (config ``expression.de.gmt``). A set is tested
    when at least ``min_set_size`` of its genes were tested; smaller ones are reported
    ``not tested`` with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from carmscope.expression.scoring import GeneSetCollection, check_overlap

ENRICHMENT_COLUMNS = (
    "set",
    "source",
    "n_genes",
    "n_found",
    "score",
    "pvalue",
    "padj",
    "direction",
    "leading_genes",
    "status",
)
LEADING_GENES = 10
"""Genes listed as driving a set: its members with the largest ``|stat|`` in the score's
direction."""
MIN_SET_SIZE = 2


def gene_set_network(collections: Sequence[GeneSetCollection]) -> pd.DataFrame:
    """decoupler's network table: ``source`` (set), ``target`` (gene), ``weight`` (1), and the
    collection each set comes from (``collection``)."""
    rows = [
        {"source": name, "target": gene, "weight": 1.0, "collection": collection.name}
        for collection in collections
        for name, genes in collection.sets.items()
        for gene in genes
    ]
    return pd.DataFrame(rows, columns=["source", "target", "weight", "collection"])


def check_gene_sets(collections: Sequence[GeneSetCollection], genes: Sequence[str]) -> None:
    """Raise :class:`~carmscope.expression.scoring.GeneSetError` naming the file of a collection
    none of whose genes is among ``genes`` (the genes of the data)."""
    check_overlap(collections, genes)


def ulm_enrichment(
    statistics: pd.Series,
    collections: Sequence[GeneSetCollection],
    *,
    min_set_size: int = MIN_SET_SIZE,
    leading_genes: int = LEADING_GENES,
) -> pd.DataFrame:
    """Score every gene set on one contrast's gene statistics with decoupler's ``ulm``.

    Parameters
    ----------
    statistics
        Wald statistic per gene (index: gene); NaN entries (genes not tested) are dropped.
    collections
        Gene-set collections (:func:`carmscope.expression.scoring.load_collections`).
    min_set_size
        Fewest tested genes of a set for it to be scored.
    leading_genes
        Members listed in ``leading_genes`` (largest ``|stat|`` in the score's direction).

    Returns
    -------
    pandas.DataFrame
        :data:`ENRICHMENT_COLUMNS`, one row per set, tested sets by ``pvalue``; ``direction`` is
        ``up`` or ``down`` (sign of the score); ``status`` ``ok`` or ``not tested: ...``.
    """
    import decoupler as dc

    values = statistics.astype(float).dropna()
    values = values[np.isfinite(values)]
    net = gene_set_network(collections)
    present = set(values.index)
    rows = []
    tested_sets = []
    for (source, collection), members in net.groupby(["source", "collection"], sort=False):
        found = [gene for gene in members["target"] if gene in present]
        row = {
            "set": source,
            "source": collection,
            "n_genes": len(members),
            "n_found": len(found),
            "score": np.nan,
            "pvalue": np.nan,
            "padj": np.nan,
            "direction": "",
            "leading_genes": "",
            "status": "ok",
        }
        if len(found) < min_set_size or len(found) >= len(values) - 1:
            row["status"] = f"not tested: {len(found)} of its genes tested (< {min_set_size})"
        else:
            tested_sets.append(source)
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(ENRICHMENT_COLUMNS))
    if not tested_sets:
        return table
    data = values.to_frame().T
    chosen = net[net["source"].isin(tested_sets)][["source", "target", "weight"]]
    scores, _adjusted = dc.mt.ulm(data=data, net=chosen, tmin=min_set_size, verbose=False)
    score = scores.iloc[0]
    at = table["set"].isin(score.index)
    table.loc[at, "score"] = table.loc[at, "set"].map(score).to_numpy()
    # decoupler returns only BH-adjusted p-values, and rounds those below ~1e-16 to 0; the raw
    # p-value is the same two-sided t-test as decoupler's ulm (``2 * sf(|t|, n - 2)``) and
    # SciPy's Benjamini-Hochberg adjusts it, so both are reported exactly
    pvalues = 2.0 * stats.t.sf(np.abs(table.loc[at, "score"].to_numpy(float)), len(values) - 2)
    table.loc[at, "pvalue"] = pvalues
    table.loc[at, "padj"] = stats.false_discovery_control(pvalues, method="bh")
    table.loc[at, "direction"] = np.where(table.loc[at, "score"] > 0, "up", "down")
    members = net.groupby("source")["target"].agg(list)
    table.loc[at, "leading_genes"] = [
        _leading(values, members[name], float(s), leading_genes)
        for name, s in zip(table.loc[at, "set"], table.loc[at, "score"], strict=True)
    ]
    order = table["pvalue"].fillna(np.inf).argsort(kind="stable")
    return table.iloc[order].reset_index(drop=True)


def _leading(values: pd.Series, genes: Sequence[str], score: float, n: int) -> str:
    found = values.reindex([gene for gene in genes if gene in values.index])
    signed = found * np.sign(score)
    signed = signed[signed > 0].sort_values(ascending=False)
    return ";".join(signed.index[:n])
