"""Snakemake adapter: the joint embedding of one patient's scRNA samples and its figure."""

import sys

from carmscope.expression.embedding_steps import embed_patient
from carmscope.verdict import carry_left_out, left_out_reason

sys.stderr = open(snakemake.log[0], "w")

# samples left out by input inspection are not integrated; with none left, the mark is passed on
samples = zip(snakemake.params.samples, snakemake.input.h5ad, snakemake.params.labels, strict=True)
kept = [(sample, path, label) for sample, path, label in samples if not left_out_reason(path)]
if not kept and carry_left_out(snakemake.input.h5ad, snakemake.output):
    sys.exit(0)
embed_patient(
    {sample: path for sample, path, _ in kept},
    [label for _, _, label in kept],
    h5ad=snakemake.output.h5ad,
    figure=snakemake.output.umaps,
    patient_id=snakemake.wildcards.patient,
    settings=snakemake.params.embedding,
)
