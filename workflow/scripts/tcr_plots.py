"""Snakemake adapter: per-patient TCR figures and the cohort panel."""

import os
import sys

import pandas as pd

from carmscope.io.tables import read_stage_table
from carmscope.tcr.compare import CHANGE_TEXT_COLUMNS
from carmscope.tcr.plots import cohort_figure, patient_figure

sys.stderr = open(snakemake.log[0], "w")

patients = read_stage_table(snakemake.input.patients)
samples = read_stage_table(snakemake.input.samples)
samples = samples.merge(pd.DataFrame(snakemake.params.days), on="sample_id")
comparisons = [tuple(pair) for pair in snakemake.params.comparisons]
changes = {}
for (patient, tissue), path in zip(comparisons, snakemake.input.changes, strict=True):
    changes.setdefault(patient, {})[tissue] = read_stage_table(path, CHANGE_TEXT_COLUMNS)
os.makedirs(snakemake.output.patients, exist_ok=True)
for patient, tables in changes.items():
    patient_figure(patient, tables, samples, f"{snakemake.output.patients}/{patient}.png")
cohort_figure(patients, snakemake.output.cohort)
