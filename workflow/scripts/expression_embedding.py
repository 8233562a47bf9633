"""Snakemake adapter: embedding, CAR calls and figures of one scRNA sample."""

import sys

from carmscope.expression.embedding_steps import embed_sample

sys.stderr = open(snakemake.log[0], "w")

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
