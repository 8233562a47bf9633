"""Snakemake adapter: spider and waterfall plots of ctDNA change from baseline."""

import sys

import pandas as pd

from carmscope.ctdna.plots import spider_plot, waterfall_plot

sys.stderr = open(snakemake.log[0], "w")

text = {"patient_id": str, "sample_id": str}
timepoints = pd.read_csv(snakemake.input.timepoints, sep="\t", dtype=text)
patients = pd.read_csv(snakemake.input.patients, sep="\t", dtype=text)
fall_fraction = snakemake.params.fall_fraction
for path in (snakemake.output.spider_svg, snakemake.output.spider_png):
    spider_plot(timepoints, path, patients, fall_fraction)
for path in (snakemake.output.waterfall_svg, snakemake.output.waterfall_png):
    waterfall_plot(patients, path, fall_fraction)
