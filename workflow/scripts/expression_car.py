"""Snakemake adapter: CAR+ cells of one scRNA sample by annotated cell type."""

import sys

from carmscope.expression.composition import car_by_cell_type
from carmscope.io.tables import read_stage_table
from carmscope.verdict import carry_left_out

sys.stderr = open(snakemake.log[0], "w")
if carry_left_out(snakemake.input, snakemake.output):
    sys.exit(0)  # a sample left out by input inspection: its mark is passed on

cells = read_stage_table(snakemake.input.cells, ("cell_type",)).set_index("barcode")
annotated = cells[cells["qc_pass"].astype(str) == "True"]
car = read_stage_table(snakemake.input.car)
table = car_by_cell_type(annotated, car, min_umis=snakemake.params.min_umis)
table.insert(0, "sample_id", snakemake.wildcards.sample)
table.to_csv(snakemake.output[0], sep="\t", index=False)
