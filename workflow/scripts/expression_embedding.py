"""Snakemake adapter: embedding, CAR calls and figures of one scRNA sample."""

import sys

from carmscope.expression.embedding_steps import embed_sample
from carmscope.verdict import carry_left_out

sys.stderr = open(snakemake.log[0], "w")
if carry_left_out(snakemake.input, snakemake.output):
    sys.exit(0)  # a sample left out by input inspection: its mark is passed on

embed_sample(
    snakemake.input.h5ad,
    snakemake.input.car[0] if snakemake.input.car else None,
    snakemake.input.markers,
    h5ad=snakemake.output.h5ad,
    umap=snakemake.output.umap,
    dotplot=snakemake.output.dotplot,
    sample_id=snakemake.wildcards.sample,
    settings=snakemake.params.embedding,
    min_umis=snakemake.params.min_umis,
)
