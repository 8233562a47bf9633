"""Snakemake adapter: baseline-vs-post values and paired tests of one assay's metrics."""

import sys

import pandas as pd

from carmscope.expression.paired import paired_tests, paired_values
from carmscope.io.tables import read_stage_table
from carmscope.verdict import kept

sys.stderr = open(snakemake.log[0], "w")

assay = snakemake.wildcards.assay
metrics = pd.concat(
    [read_stage_table(path) for path in kept(snakemake.input.metrics)],
    ignore_index=True,
)
samples = pd.DataFrame(snakemake.params.samples).set_index("sample_id")
patients = pd.DataFrame(snakemake.params.patients).set_index("patient_id")

paired = paired_values(metrics, samples, assay)
tests = paired_tests(paired, patients, group_column=snakemake.params.group_column)
metrics.to_csv(snakemake.output.metrics, sep="\t", index=False)
paired.to_csv(snakemake.output.paired, sep="\t", index=False)
tests.insert(0, "assay", assay)
tests.to_csv(snakemake.output.tests, sep="\t", index=False)
