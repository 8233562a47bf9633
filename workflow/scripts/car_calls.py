"""Snakemake adapter: per-sample CAR calls against background (carmscope.car.calls)."""

import sys

import pandas as pd

from carmscope.car.calls import CallSettings, cohort_summary, read_evidence
from carmscope.verdict import kept

sys.stderr = open(snakemake.log[0], "w")

evidence = read_evidence(kept(snakemake.input))  # samples left out by inspection: none
samples = pd.DataFrame.from_dict(snakemake.params.samples, orient="index")
settings = CallSettings(
    alpha=snakemake.params.alpha,
    floor_per_million=snakemake.params.floor_per_million,
    min_reads=snakemake.params.min_reads,
)
summary = cohort_summary(evidence, samples, snakemake.params.baselines, settings)
summary.to_csv(snakemake.output[0], sep="\t", index=False)
