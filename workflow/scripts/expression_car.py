"""Snakemake adapter: CAR+ cells of one scRNA sample by annotated cell type."""

import sys

import pandas as pd

from carmscope.expression.composition import car_by_cell_type

sys.stderr = open(snakemake.log[0], "w")

cells = pd.read_csv(snakemake.input.cells, sep="\t", index_col="barcode", keep_default_na=False)
annotated = cells[cells["qc_pass"].astype(str) == "True"]
car = pd.read_csv(snakemake.input.car, sep="\t", dtype={"barcode": str})
table = car_by_cell_type(annotated, car, min_umis=snakemake.params.min_umis)
table.insert(0, "sample_id", snakemake.wildcards.sample)
table.to_csv(snakemake.output[0], sep="\t", index=False)
