"""Snakemake adapter: allele counts of one plasma sample at its panel
(carmscope.ctdna.sample_counts; a vendor VAF table instead of a BAM: carmscope.ctdna.vendor)."""

import sys

from carmscope.ctdna.sample_counts import bam_counts, label_counts, read_panel
from carmscope.ctdna.vendor import read_vendor_table
from carmscope.verdict import leave_out

sys.stderr = open(snakemake.log[0], "w")
if leave_out(snakemake.input.verdict, snakemake.output):
    sys.exit(0)  # left out by input inspection: every output carries the reason

panel = read_panel(snakemake.input.panel)
if snakemake.input.get("bam"):
    reference = snakemake.input.reference[0] if snakemake.input.reference else None
    counts = bam_counts(snakemake.input.bam, panel, snakemake.params.filters, reference)
    source = "bam"
else:
    source, counts = "vendor", read_vendor_table(snakemake.input.vendor, panel)
sample = snakemake.params.sample
label_counts(counts, sample, source).to_csv(snakemake.output[0], sep="\t", index=False)
print(f"{sample['sample_id']}: {int(counts['evaluable'].sum())} sites counted", file=sys.stderr)
