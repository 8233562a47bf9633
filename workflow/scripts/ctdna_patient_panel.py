"""Snakemake adapter: one patient's variant panel from its own tumour-variant VCF."""

import sys

from carmscope.ctdna.panels import patient_panel
from carmscope.ctdna.variants import read_tumour_variants

sys.stderr = open(snakemake.log[0], "w")

params = snakemake.params
variants = read_tumour_variants(snakemake.input.vcf, params.reference, params.pass_only)
panel = patient_panel(variants, params.patient)
panel.to_csv(snakemake.output.panel, sep="\t", index=False)
print(f"{params.patient}: {len(panel)} variants from {snakemake.input.vcf}", file=sys.stderr)
