"""Snakemake adapter: per-sample CAR calls against background (carmscope.car.calls)."""

import sys

import pandas as pd

from carmscope.car.calls import CallSettings, cohort_summary
from carmscope.io.tables import read_stage_table

sys.stderr = open(snakemake.log[0], "w")

evidence = pd.concat([read_stage_table(path) for path in snakemake.input], ignore_index=True)
samples = pd.DataFrame.from_dict(snakemake.params.samples, orient="index")
settings = CallSettings(
    alpha=snakemake.params.alpha,
    floor_per_million=snakemake.params.floor_per_million,
    min_reads=snakemake.params.min_reads,
)
summary = cohort_summary(evidence, samples, snakemake.params.baselines, settings)
summary.to_csv(snakemake.output[0], sep="\t", index=False)
