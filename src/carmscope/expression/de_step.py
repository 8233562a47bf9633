"""The differential-expression step end to end: read the profiles, test one cell type, enrich,
write its tables and volcano plot; gather the cell types of an assay into the summary.

Each function takes the files it reads and writes; the workflow decides where they are.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from carmscope.expression import de_plots
from carmscope.expression.de import (
    DESettings,
    count_significant,
    de_cell_type,
    paired_design,
)
from carmscope.expression.enrichment import ENRICHMENT_COLUMNS, check_gene_sets, ulm_enrichment
from carmscope.expression.pseudobulk import bulk_profile, read_pseudobulk
from carmscope.expression.scoring import load_collections

SUMMARY_COLUMNS = (
    "cell_type",
    "tested",
    "n_pairs",
    "n_samples",
    "genes_tested",
    "genes_up",
    "genes_down",
    "sets_up",
    "sets_down",
    "top_sets",
    "interaction_genes",
    "reason",
)
TOP_SETS = 3


@dataclass(frozen=True)
class DEOutputs:
    """Files one cell type's test writes."""

    counts: str | os.PathLike
    design: str | os.PathLike
    results: str | os.PathLike
    interaction: str | os.PathLike
    enrichment: str | os.PathLike
    volcano: str | os.PathLike
    status: str | os.PathLike


def load_profiles(
    sample_ids: Sequence[str],
    counts_paths: Sequence[str | os.PathLike],
    cells_paths: Sequence[str | os.PathLike] | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.Series]]:
    """Profiles of every sample: scRNA pseudobulk files (``cells_paths`` given) or bulk counts."""
    profiles, n_cells = {}, {}
    for i, sample_id in enumerate(sample_ids):
        if cells_paths is None:
            profiles[sample_id], n_cells[sample_id] = bulk_profile(counts_paths[i])
        else:
            profiles[sample_id], n_cells[sample_id] = read_pseudobulk(
                counts_paths[i], cells_paths[i]
            )
    return profiles, n_cells


def run_cell_type(
    *,
    cell_type: str,
    samples: pd.DataFrame,
    patients: pd.DataFrame,
    counts_paths: Sequence[str | os.PathLike],
    cells_paths: Sequence[str | os.PathLike] | None,
    gmt_paths: Sequence[str | os.PathLike],
    signature_paths: Sequence[str | os.PathLike],
    settings: DESettings,
    min_set_size: int,
    outputs: DEOutputs,
    n_cpus: int = 1,
) -> None:
    """Test one cell type of one assay and write its tables and volcano plot.

    Parameters
    ----------
    cell_type
        Profile name (``all`` for bulk RNA).
    samples
        The assay's samples, indexed by sample ID in file order (``patient_id``, ``day`` and/or
        ``hours``), in the order of ``counts_paths``.
    patients
        Indexed by patient ID with the settings' group columns.
    counts_paths, cells_paths
        Per sample: pseudobulk counts and cells tables (scRNA), or bulk counts (``cells_paths``
        None).
    gmt_paths, signature_paths
        Gene-set files of the enrichment.
    settings, min_set_size
        Thresholds.
    outputs
        Files to write.
    n_cpus
        Processes pydeseq2 may use.

    Raises
    ------
    carmscope.expression.scoring.GeneSetError
        A gene-set file none of whose genes is in the data (file named).
    """
    collections = load_collections(list(gmt_paths), list(signature_paths))
    profiles, n_cells = load_profiles(list(samples.index), counts_paths, cells_paths)
    genes = sorted({gene for table in profiles.values() for gene in table.index})
    check_gene_sets(collections, genes)
    design = paired_design(samples, patients, settings.group_columns)
    result = de_cell_type(profiles, n_cells, design, cell_type, settings, n_cpus=n_cpus)
    result.counts.reset_index().to_csv(outputs.counts, sep="\t", index=False)
    result.design.to_csv(outputs.design, sep="\t", index=False)
    result.results.to_csv(outputs.results, sep="\t", index=False)
    result.interaction.to_csv(outputs.interaction, sep="\t", index=False)
    if result.tested:
        enrichment = ulm_enrichment(
            result.results.set_index("gene")["stat"], collections, min_set_size=min_set_size
        )
    else:
        enrichment = pd.DataFrame(columns=list(ENRICHMENT_COLUMNS))
    enrichment.to_csv(outputs.enrichment, sep="\t", index=False)
    pd.DataFrame(
        [
            {
                "cell_type": cell_type,
                "tested": result.tested,
                "n_pairs": result.design["patient_id"].nunique(),
                "genes_before_filter": result.n_genes_before_filter,
                "genes_tested": len(result.results),
                "reason": result.reason,
            }
        ]
    ).to_csv(outputs.status, sep="\t", index=False)
    de_plots.volcano(
        result.results,
        outputs.volcano,
        title=f"{cell_type}: post vs baseline ({result.design['patient_id'].nunique()} pairs)",
        alpha=settings.alpha,
        reason=result.reason,
    )


def summary_row(
    cell_type: str,
    design: pd.DataFrame,
    results: pd.DataFrame,
    enrichment: pd.DataFrame,
    interaction: pd.DataFrame,
    reason: str,
    alpha: float,
) -> dict[str, object]:
    """One line of ``summary.tsv`` from one cell type's tables."""
    tested = not results.empty
    enrichment = enrichment.astype({"score": float, "pvalue": float, "padj": float})
    up, down = count_significant(results, alpha) if tested else (np.nan, np.nan)
    significant = enrichment[enrichment["padj"].astype(float) < alpha]
    top = significant.nsmallest(TOP_SETS, "pvalue")
    return {
        "cell_type": cell_type,
        "tested": tested,
        "n_pairs": design["patient_id"].nunique(),
        "n_samples": len(design),
        "genes_tested": len(results) if tested else np.nan,
        "genes_up": up,
        "genes_down": down,
        "sets_up": int((significant["direction"] == "up").sum()),
        "sets_down": int((significant["direction"] == "down").sum()),
        "top_sets": ";".join(f"{r.set} ({r.direction})" for r in top.itertuples()),
        "interaction_genes": int((interaction["padj"].astype(float) < alpha).sum())
        if not interaction.empty
        else np.nan,
        "reason": reason,
    }


def run_summary(
    *,
    cell_types: Sequence[str],
    designs: Sequence[str | os.PathLike],
    results: Sequence[str | os.PathLike],
    enrichments: Sequence[str | os.PathLike],
    interactions: Sequence[str | os.PathLike],
    statuses: Sequence[str | os.PathLike],
    alpha: float,
    summary_path: str | os.PathLike,
    heatmap_path: str | os.PathLike,
    counts_plot_path: str | os.PathLike,
) -> pd.DataFrame:
    """Gather every cell type's tables of an assay into ``summary.tsv`` and the two figures.

    ``statuses`` are the ``status.tsv`` files of :func:`run_cell_type` (whether tested, why not).
    """
    rows, enrichment_tables = [], {}
    for i, cell_type in enumerate(cell_types):
        design = pd.read_csv(designs[i], sep="\t", dtype=str)
        result = pd.read_csv(results[i], sep="\t")
        enrichment = pd.read_csv(enrichments[i], sep="\t", keep_default_na=False, na_values=[""])
        interaction = pd.read_csv(interactions[i], sep="\t")
        enrichment_tables[cell_type] = enrichment
        status = pd.read_csv(statuses[i], sep="\t", keep_default_na=False).iloc[0]
        row = summary_row(
            cell_type, design, result, enrichment, interaction, status["reason"], alpha
        )
        rows.append(row)
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    for column in ("genes_tested", "genes_up", "genes_down", "interaction_genes"):
        summary[column] = summary[column].astype("Int64")
    summary.to_csv(summary_path, sep="\t", index=False)
    de_plots.enrichment_heatmap(enrichment_tables, heatmap_path, alpha=alpha)
    de_plots.de_gene_counts(summary, counts_plot_path, alpha=alpha)
    return summary
