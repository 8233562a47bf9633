"""Snakemake adapter: pseudobulk counts per cell type (and all cells) of one scRNA sample."""

import sys

import anndata

from carmscope.expression.pseudobulk import pseudobulk_by_cell_type, write_pseudobulk

sys.stderr = open(snakemake.log[0], "w")

counts, n_cells = pseudobulk_by_cell_type(anndata.read_h5ad(snakemake.input.h5ad))
print(n_cells.to_string(), file=sys.stderr)
write_pseudobulk(counts, n_cells, snakemake.output.counts, snakemake.output.cells)
