"""Snakemake adapter: allele counts of every panel-of-normals BAM at one panel, one table per
normal (carmscope.ctdna.sample_counts, without pandas): the cohort panel (cohort background)
or one patient's (normals background)."""

import sys

from carmscope.ctdna.sample_counts import bam_count_columns, read_panel_columns, write_counts

sys.stderr = open(snakemake.log[0], "w")

panel = read_panel_columns(snakemake.input.panel)
for bam, sample, output in zip(
    snakemake.input.bams, snakemake.params.samples, snakemake.output, strict=True
):
    counts = bam_count_columns(
        bam, panel, snakemake.params.filters, snakemake.input.get("reference")
    )
    write_counts(output, counts, sample, "bam")
    print(f"{sample['sample_id']}: {sum(counts['evaluable'])} sites counted", file=sys.stderr)
