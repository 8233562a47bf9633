"""Snakemake adapter: allele counts of one plasma sample at its panel
(carmscope.ctdna.sample_counts.write_sample_counts: from its BAM without pandas, or from a
vendor VAF table)."""

import sys

from carmscope.ctdna.sample_counts import write_sample_counts
from carmscope.verdict import leave_out

sys.stderr = open(snakemake.log[0], "w")
if leave_out(snakemake.input.verdict, snakemake.output):
    sys.exit(0)  # left out by input inspection: every output carries the reason

sample = snakemake.params.sample
sites = write_sample_counts(
    snakemake.output[0],
    snakemake.input.panel,
    sample,
    snakemake.params.filters,
    bam=snakemake.input.get("bam"),
    vendor=snakemake.input.get("vendor"),
    reference=snakemake.input.reference[0] if snakemake.input.reference else None,
)
print(f"{sample['sample_id']}: {sites} sites counted", file=sys.stderr)
