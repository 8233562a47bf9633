"""Snakemake adapter: pseudobulk counts per cell type (and all cells) of one scRNA sample."""

import sys

import anndata

from carmscope.expression.pseudobulk import pseudobulk_by_cell_type, write_pseudobulk
from carmscope.verdict import carry_left_out

sys.stderr = open(snakemake.log[0], "w")
if carry_left_out(snakemake.input, snakemake.output):
    sys.exit(0)  # a sample left out by input inspection: its mark is passed on

counts, n_cells = pseudobulk_by_cell_type(anndata.read_h5ad(snakemake.input.h5ad))
print(n_cells.to_string(), file=sys.stderr)
write_pseudobulk(counts, n_cells, snakemake.output.counts, snakemake.output.cells)
