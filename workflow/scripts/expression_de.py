"""Snakemake adapter: paired pseudobulk DE and pathway enrichment of one cell type."""

import sys

import pandas as pd

from carmscope.expression.de import DESettings
from carmscope.expression.de_step import DEOutputs, run_cell_type

sys.stderr = open(snakemake.log[0], "w")

run_cell_type(
    cell_type=snakemake.wildcards.cell_type,
    samples=pd.DataFrame(snakemake.params.samples).set_index("sample_id"),
    patients=pd.DataFrame(snakemake.params.patients).set_index("patient_id"),
    counts_paths=list(snakemake.input.counts),
    cells_paths=list(snakemake.input.cells) if hasattr(snakemake.input, "cells") else None,
    gmt_paths=list(snakemake.input.gmt),
    signature_paths=[snakemake.input.signatures],
    settings=DESettings.from_mapping(snakemake.params.settings),
    min_set_size=snakemake.params.min_set_size,
    outputs=DEOutputs(**{name: snakemake.output[name] for name in DEOutputs.__annotations__}),
    n_cpus=snakemake.threads,
)
