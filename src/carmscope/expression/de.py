"""Paired pseudobulk differential expression, baseline versus post-infusion, per cell type.

The analysis of one profile (a cell type or ``all``) over a cohort: the usable pairs and gene
filter (:mod:`carmscope.expression.de_pairs`), DESeq2's paired model and the optional group
interactions (:mod:`carmscope.expression.de_model`), and the not-tested reasons. This module is
the entry point; the names of the two others are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd

from carmscope.expression.de_model import (
    INTERACTION_COLUMNS,
    MODEL_ERRORS,
    RESULT_COLUMNS,
    TIME_COEFFICIENT,
    deseq2_interaction,
    deseq2_paired,
)
from carmscope.expression.de_pairs import (
    BASELINE,
    CONFIG_KEY,
    DESIGN_COLUMNS,
    POST,
    DifferentialExpressionError,
    check_cell_types,
    count_matrix,
    filter_genes,
    paired_design,
    usable_pairs,
)

__all__ = [
    "BASELINE",
    "CONFIG_KEY",
    "DESIGN_COLUMNS",
    "INTERACTION_COLUMNS",
    "MODEL_ERRORS",
    "POST",
    "RESULT_COLUMNS",
    "TIME_COEFFICIENT",
    "DEResult",
    "DESettings",
    "DifferentialExpressionError",
    "check_cell_types",
    "count_matrix",
    "count_significant",
    "de_cell_type",
    "deseq2_interaction",
    "deseq2_paired",
    "filter_genes",
    "paired_design",
    "usable_pairs",
]


@dataclass(frozen=True)
class DESettings:
    """Thresholds of the analysis (config section ``expression.de``)."""

    min_cells: int = 10
    min_pairs: int = 3
    min_count: int = 10
    alpha: float = 0.05
    shrink: bool = True
    group_columns: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> DESettings:
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        if "group_columns" in known:
            known["group_columns"] = tuple(known["group_columns"])
        return cls(**known)


@dataclass
class DEResult:
    """Everything one cell type's test writes.

    Attributes
    ----------
    cell_type
        The profile tested (a cell type or ``all``).
    counts
        Genes x samples actually modelled (after the gene filter), ``gene`` as index.
    design
        One row per sample of the pairs used (:data:`DESIGN_COLUMNS` plus group columns).
    results
        :data:`RESULT_COLUMNS`, one row per tested gene; empty when not tested.
    interaction
        :data:`INTERACTION_COLUMNS`; empty when no group column could be tested.
    tested
        Whether the test ran.
    reason
        Why not (or notes: patients left out, groups not tested).
    """

    cell_type: str
    counts: pd.DataFrame
    design: pd.DataFrame
    results: pd.DataFrame
    interaction: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(INTERACTION_COLUMNS))
    )
    tested: bool = False
    reason: str = ""
    n_genes_before_filter: int = 0


# --- one cell type ----------------------------------------------------------------------------


def de_cell_type(
    profiles: Mapping[str, pd.DataFrame],
    n_cells: Mapping[str, pd.Series],
    design: pd.DataFrame,
    cell_type: str,
    settings: DESettings = DESettings(),
    n_cpus: int = 1,
    inference: str = "vectorised",
) -> DEResult:
    """Paired test of one profile over the cohort (and its optional interactions).

    Parameters
    ----------
    profiles
        Sample ID -> genes x profiles count table (:mod:`carmscope.expression.pseudobulk`).
    n_cells
        Sample ID -> cells per profile.
    design
        :func:`paired_design` of the assay.
    cell_type
        Profile to test.
    settings
        Thresholds.
    n_cpus
        Processes pydeseq2 may use.
    inference
        pydeseq2's inference (:func:`carmscope.expression.de_model.make_inference`).

    Returns
    -------
    DEResult
        ``tested`` False with the reason when there are too few pairs or no gene passes the
        filter.
    """
    used, notes = usable_pairs(design, n_cells, cell_type, settings.min_cells)
    n_pairs = used["patient_id"].nunique()
    counts = count_matrix(profiles, used, cell_type)
    result = DEResult(
        cell_type=cell_type,
        counts=counts,
        design=used,
        results=pd.DataFrame(columns=list(RESULT_COLUMNS)),
        n_genes_before_filter=len(counts),
    )
    if n_pairs < settings.min_pairs:
        result.reason = "; ".join(
            [
                f"not tested: {n_pairs} pair(s) with >= {settings.min_cells} cells in both "
                f"samples (< {settings.min_pairs})",
                *notes,
            ]
        )
        return result
    kept = filter_genes(counts, settings.min_count, n_pairs)
    result.counts = kept
    if kept.empty:
        result.reason = (
            f"not tested: no gene has >= {settings.min_count} counts in >= {n_pairs} samples"
        )
        return result
    try:
        result.results = deseq2_paired(
            kept,
            used,
            alpha=settings.alpha,
            shrink=settings.shrink,
            n_cpus=n_cpus,
            inference=inference,
        )
    except MODEL_ERRORS as error:  # e.g. a design that is not of full rank
        result.reason = "; ".join([f"not tested: the DESeq2 fit failed ({error})", *notes])
        return result
    result.tested = True
    interactions = []
    for column in settings.group_columns:
        try:
            table, note = deseq2_interaction(
                kept,
                used,
                column,
                min_pairs=settings.min_pairs,
                alpha=settings.alpha,
                n_cpus=n_cpus,
                inference=inference,
            )
        except MODEL_ERRORS as error:
            table, note = None, f"{column}: not tested, the DESeq2 fit failed ({error})"
        if table is not None:
            interactions.append(table)
        if note:
            notes.append(note)
    if interactions:
        result.interaction = pd.concat(interactions, ignore_index=True)
    result.reason = "; ".join(notes)
    return result


def count_significant(results: pd.DataFrame, alpha: float) -> tuple[int, int]:
    """Genes up and down (unshrunken log2 fold change sign) at ``padj < alpha``."""
    significant = results["padj"].astype(float) < alpha
    lfc = results["log2FoldChange"].astype(float)
    return int((significant & (lfc > 0)).sum()), int((significant & (lfc < 0)).sum())
