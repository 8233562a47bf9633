"""Snakemake adapter: the per-sample QC as MultiQC custom-content tables."""

import os
import sys

import pandas as pd

from carmscope.tables.multiqc import write_sections

sys.stderr = open(snakemake.log[0], "w")

samples = pd.read_csv(snakemake.input.samples, sep="\t", dtype={"sample_id": str})
paths = write_sections(samples, os.path.dirname(snakemake.output[0]))
print("\n".join(paths), file=sys.stderr)
