"""Snakemake adapter: per-sample diversity and per-patient TCR figures of the cohort."""

import sys

import pandas as pd

from carmscope.tcr.stage import summary_step, write_tsv
from carmscope.verdict import kept_by_key

sys.stderr = open(snakemake.log[0], "w")

samples = pd.DataFrame(snakemake.params.samples).set_index("sample_id")
repertoires = snakemake.params.repertoires
comparisons = [tuple(pair) for pair in snakemake.params.comparisons]
sample_table, patient_table = summary_step(
    samples,
    # samples left out by input inspection are not summarised (the tables flag them)
    kept_by_key(dict(zip(repertoires, snakemake.input.clones, strict=True))),
    kept_by_key(dict(zip(repertoires, snakemake.input.summaries, strict=True))),
    dict(zip(comparisons, snakemake.input.changes, strict=True)),
    kept_by_key(dict(zip(snakemake.params.vdj_samples, snakemake.input.cells, strict=True))),
    snakemake.params.rarefaction_depth,
    snakemake.params.patients,
)
write_tsv(sample_table, snakemake.output.samples)
write_tsv(patient_table, snakemake.output.patients)
