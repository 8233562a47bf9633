"""Snakemake adapter: one patient's baseline vs post-infusion repertoires of one tissue."""

import sys

import pandas as pd

from carmscope.tcr.compare import ChangeSettings
from carmscope.tcr.stage import changes_step, write_tsv
from carmscope.verdict import kept_by_key

sys.stderr = open(snakemake.log[0], "w")

samples = pd.DataFrame(snakemake.params.samples).set_index("sample_id")
# a sample left out by input inspection is not compared (the tables flag it)
clone_files = kept_by_key(dict(zip(samples.index, snakemake.input.clones, strict=True)))
samples = samples.loc[list(clone_files)]
table = changes_step(samples, clone_files, ChangeSettings(**snakemake.params.settings))
print(f"{int(table['expanded'].sum())} expanded clone-sample rows", file=sys.stderr)
write_tsv(table, snakemake.output[0])
