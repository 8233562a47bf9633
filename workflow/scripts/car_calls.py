"""Snakemake adapter: per-sample CAR calls against background (carmscope.car.calls)."""

import sys

import pandas as pd

from carmscope.car.calls import CallSettings, cohort_summary

sys.stderr = open(snakemake.log[0], "w")

tables = [
    pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""]) for path in snakemake.input
]
evidence = pd.concat(tables, ignore_index=True)
samples = pd.DataFrame.from_dict(snakemake.params.samples, orient="index")
settings = CallSettings(
    alpha=snakemake.params.alpha,
    floor_per_million=snakemake.params.floor_per_million,
    min_reads=snakemake.params.min_reads,
)
summary = cohort_summary(evidence, samples, snakemake.params.baselines, settings)
summary.to_csv(snakemake.output[0], sep="\t", index=False)
