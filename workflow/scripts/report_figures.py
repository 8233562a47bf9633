"""Snakemake adapter: the report's cohort overview and per-patient panels."""

import sys

from carmscope.tables.figures import cohort_overview, patient_panels
from carmscope.tables.steps import read_tsv

sys.stderr = open(snakemake.log[0], "w")

patients = read_tsv(snakemake.input.patients)
samples = read_tsv(snakemake.input.samples)
summary = read_tsv(snakemake.input.summary)
cohort_overview(patients, summary, snakemake.output.overview)
paths = patient_panels(
    patients,
    samples,
    snakemake.params.inflammation_sets,
    snakemake.params.statistic,
    snakemake.output.panels,
)
print(f"{len(paths)} patient panels", file=sys.stderr)
