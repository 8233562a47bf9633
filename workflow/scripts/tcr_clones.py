"""Snakemake adapter: one repertoire (tcr counts or a scRNA sample's vdj) -> clone table."""

import sys

import pandas as pd

from carmscope.reproducible import compression
from carmscope.tcr.stage import sample_step, write_tsv
from carmscope.verdict import leave_out

sys.stderr = open(snakemake.log[0], "w")
if leave_out(snakemake.input.verdict, snakemake.output):
    sys.exit(0)  # left out by input inspection: every output carries the reason

clones, summary, cells = sample_step(
    snakemake.input.repertoire,
    snakemake.input.get("cells") or None,
    snakemake.input.get("h5ad") or None,
)
print(f"{summary}", file=sys.stderr)
write_tsv(clones, snakemake.output.clones)
pd.DataFrame([summary]).to_csv(snakemake.output.summary, sep="\t", index=False)
output = snakemake.output
cells.to_csv(output.cells, sep="\t", index=False, compression=compression(output.cells))
