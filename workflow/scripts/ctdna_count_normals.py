"""Snakemake adapter: allele counts of every panel-of-normals BAM at one panel, one table per
normal (carmscope.ctdna.sample_counts): the cohort panel (cohort background) or one patient's
(normals background)."""

import sys

from carmscope.ctdna.sample_counts import bam_counts, label_counts, read_panel

sys.stderr = open(snakemake.log[0], "w")

panel = read_panel(snakemake.input.panel)
for bam, sample, output in zip(
    snakemake.input.bams, snakemake.params.samples, snakemake.output, strict=True
):
    counts = bam_counts(bam, panel, snakemake.params.filters, snakemake.input.get("reference"))
    label_counts(counts, sample, "bam").to_csv(output, sep="\t", index=False)
    print(f"{sample['sample_id']}: {int(counts['evaluable'].sum())} sites counted", file=sys.stderr)
