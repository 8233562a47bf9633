"""Snakemake adapter: summary table and figures of one assay's differential expression."""

import sys

from carmscope.expression.de_step import run_summary

sys.stderr = open(snakemake.log[0], "w")

run_summary(
    cell_types=snakemake.params.cell_types,
    designs=snakemake.input.design,
    results=snakemake.input.results,
    enrichments=snakemake.input.enrichment,
    interactions=snakemake.input.interaction,
    statuses=snakemake.input.status,
    alpha=snakemake.params.alpha,
    summary_path=snakemake.output.summary,
    heatmap_path=snakemake.output.heatmap,
    counts_plot_path=snakemake.output.de_genes,
)
