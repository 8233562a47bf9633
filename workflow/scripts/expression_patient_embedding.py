"""Snakemake adapter: the joint embedding of one patient's scRNA samples and its figure."""

import sys

from carmscope.expression.embedding_steps import embed_patient

sys.stderr = open(snakemake.log[0], "w")

embed_patient(
    dict(zip(snakemake.params.samples, snakemake.input.h5ad, strict=True)),
    snakemake.params.labels,
    h5ad=snakemake.output.h5ad,
    figure=snakemake.output.umaps,
    patient_id=snakemake.wildcards.patient,
    settings=snakemake.params.embedding,
)
