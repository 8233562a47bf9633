"""Snakemake adapter: CAR level against time per patient, and the cytokine heat map."""

import sys

import pandas as pd

from carmscope.blood.plots import cytokine_heatmap, kinetics_plot

sys.stderr = open(snakemake.log[0], "w")

text = {"patient_id": str, "sample_id": str, "analyte": str, "unit": str}
series = pd.read_csv(
    snakemake.input.series, sep="\t", dtype=text, keep_default_na=False, na_values=[""]
)
cytokines = pd.read_csv(
    snakemake.input.cytokines, sep="\t", dtype=text, keep_default_na=False, na_values=[""]
)
series["blq"] = series["blq"].astype(str) == "True"
for frame in (series, cytokines):
    for column in ("patient_id", "analyte", "unit"):
        if column in frame:
            frame[column] = frame[column].fillna("")
kinetics_plot(series, list(snakemake.params.patients), snakemake.output.kinetics)
cytokine_heatmap(cytokines, list(snakemake.params.patients), snakemake.output.cytokines)
