"""Snakemake adapter: stack per-sample TSVs into one table (columns in first-seen order)."""

import sys

import pandas as pd

sys.stderr = open(snakemake.log[0], "w")

tables = [pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False) for path in snakemake.input]
pd.concat(tables, ignore_index=True).to_csv(snakemake.output[0], sep="\t", index=False)
