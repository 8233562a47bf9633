"""Snakemake adapter: the input inventory from every inspection file (carmscope.inputs)."""

import sys

from carmscope.inputs import gather_inventory

sys.stderr = open(snakemake.log[0], "w")

inventory = gather_inventory(snakemake.input, snakemake.params.samples)
inventory.to_csv(snakemake.output[0], sep="\t", index=False)
