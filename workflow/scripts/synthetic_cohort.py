"""Snakemake adapter: write the synthetic cohort (carmscope.synthetic.cohort)."""

import sys

from carmscope.synthetic.cohort import generate_cohort
from carmscope.synthetic.design import params_from_config

sys.stderr = open(snakemake.log[0], "w")

generate_cohort(
    params_from_config(snakemake.params.cohort),
    snakemake.params.data_dir,
    construct_fasta=snakemake.input.construct,
    segments_tsv=snakemake.input.segments,
    gmt_paths=list(snakemake.input.gmt),
    signatures_tsv=snakemake.input.signatures,
    threads=snakemake.threads,
)
