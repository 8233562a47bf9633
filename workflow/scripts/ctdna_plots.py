"""Snakemake adapter: spider and waterfall plots of ctDNA change from baseline."""

import sys

from carmscope.ctdna.plots import spider_plot, waterfall_plot
from carmscope.io.tables import read_stage_table

sys.stderr = open(snakemake.log[0], "w")

timepoints = read_stage_table(snakemake.input.timepoints)
patients = read_stage_table(snakemake.input.patients)
fall_fraction = snakemake.params.fall_fraction
for path in (snakemake.output.spider_svg, snakemake.output.spider_png):
    spider_plot(timepoints, path, patients, fall_fraction)
for path in (snakemake.output.waterfall_svg, snakemake.output.waterfall_png):
    waterfall_plot(patients, path, fall_fraction)
