"""Snakemake adapter: CAR level against time per patient, and the cytokine heat map."""

import sys

from carmscope.blood.plots import cytokine_heatmap, kinetics_plot
from carmscope.io.tables import read_stage_table

sys.stderr = open(snakemake.log[0], "w")

text = ("analyte", "unit")
series = read_stage_table(snakemake.input.series, text)
cytokines = read_stage_table(snakemake.input.cytokines, text)
series["blq"] = series["blq"].astype(str) == "True"
kinetics_plot(series, list(snakemake.params.patients), snakemake.output.kinetics)
cytokine_heatmap(cytokines, list(snakemake.params.patients), snakemake.output.cytokines)
