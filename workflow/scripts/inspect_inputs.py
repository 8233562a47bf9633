"""Snakemake adapter: inspect one sample's input files (carmscope.inputs)."""

import sys

from carmscope.inputs import inspect_sample, write_inventory_row

sys.stderr = open(snakemake.log[0], "w")

row = inspect_sample(
    sample_id=snakemake.wildcards.sample,
    assay=snakemake.params.assay,
    counts=snakemake.input.get("counts", ""),
    reads=snakemake.input.get("reads", ""),
    tumor_variants=snakemake.input.get("tumor_variants", ""),
    genome=snakemake.params.genome,
    strict=snakemake.params.strict,
)
write_inventory_row(row, snakemake.output[0])
