"""Snakemake adapter: per-patient TCR figures and the cohort panel."""

import os
import sys

import pandas as pd

from carmscope.tcr.plots import cohort_figure, patient_figure

sys.stderr = open(snakemake.log[0], "w")

text = {"patient_id": str, "sample_id": str, "post_sample": str, "clone_id": str}
patients = pd.read_csv(snakemake.input.patients, sep="\t", dtype=text)
samples = pd.read_csv(snakemake.input.samples, sep="\t", dtype=text)
samples = samples.merge(pd.DataFrame(snakemake.params.days), on="sample_id")
comparisons = [tuple(pair) for pair in snakemake.params.comparisons]
changes = {}
for (patient, tissue), path in zip(comparisons, snakemake.input.changes, strict=True):
    changes.setdefault(patient, {})[tissue] = pd.read_csv(path, sep="\t", dtype=text)
os.makedirs(snakemake.output.patients, exist_ok=True)
for patient, tables in changes.items():
    patient_figure(patient, tables, samples, f"{snakemake.output.patients}/{patient}.png")
cohort_figure(patients, snakemake.output.cohort)
