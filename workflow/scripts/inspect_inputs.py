"""Snakemake adapter: inspect one sample's input files (carmscope.inputs)."""

import sys

import pandas as pd

from carmscope.inputs import inspect_sample

sys.stderr = open(snakemake.log[0], "w")

row = inspect_sample(
    sample_id=snakemake.wildcards.sample,
    assay=snakemake.params.assay,
    counts=snakemake.input.get("counts", ""),
    reads=snakemake.input.get("reads", ""),
    tumor_variants=snakemake.input.get("tumor_variants", ""),
)
pd.DataFrame([row]).to_csv(snakemake.output[0], sep="\t", index=False)
