"""Snakemake adapter: stack per-sample TSVs into one table (columns in first-seen order)."""

import sys

import pandas as pd

from carmscope.io.tables import read_stage_table

sys.stderr = open(snakemake.log[0], "w")

tables = [read_stage_table(path, all_text=True) for path in snakemake.input]
pd.concat(tables, ignore_index=True).to_csv(snakemake.output[0], sep="\t", index=False)
