"""Snakemake adapter: paired pseudobulk DE and pathway enrichment of one cell type."""

import sys
from itertools import compress

import pandas as pd

from carmscope.expression.de import DESettings
from carmscope.expression.de_step import DEOutputs, run_cell_type
from carmscope.verdict import usable_mask

sys.stderr = open(snakemake.log[0], "w")

# samples inspection found unusable are left out (the tables flag them)
usable = usable_mask(snakemake.input.verdicts)
samples = pd.DataFrame(snakemake.params.samples).set_index("sample_id")
cells = list(snakemake.input.cells) if hasattr(snakemake.input, "cells") else None
run_cell_type(
    cell_type=snakemake.wildcards.cell_type,
    samples=samples[usable],
    patients=pd.DataFrame(snakemake.params.patients).set_index("patient_id"),
    counts_paths=list(compress(snakemake.input.counts, usable)),
    cells_paths=list(compress(cells, usable)) if cells is not None else None,
    gmt_paths=list(snakemake.input.gmt),
    signature_paths=[snakemake.input.signatures],
    settings=DESettings.from_mapping(snakemake.params.settings),
    min_set_size=snakemake.params.min_set_size,
    outputs=DEOutputs(**{name: snakemake.output[name] for name in DEOutputs.__annotations__}),
    n_cpus=snakemake.threads,
)
