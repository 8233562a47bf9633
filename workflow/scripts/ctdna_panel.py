"""Snakemake adapter: the cohort's variant panel from every patient's tumour-variant VCF."""

import sys

import pandas as pd

from carmscope.ctdna.variants import VARIANT_COLUMNS, VARIANT_KEY, read_tumour_variants

sys.stderr = open(snakemake.log[0], "w")

tables = []
for patient_id, vcf in zip(snakemake.params.patients, snakemake.input.vcfs, strict=True):
    variants = read_tumour_variants(vcf, snakemake.params.reference, snakemake.params.pass_only)
    variants.insert(0, "patient_id", patient_id)
    print(f"{patient_id}: {len(variants)} variants from {vcf}", file=sys.stderr)
    tables.append(variants)
columns = ["patient_id", *VARIANT_COLUMNS]
tumour = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
# one row per patient and variant; a variant listed twice keeps its evaluable copy
tumour = tumour.sort_values("evaluable", ascending=False, kind="stable")
tumour = tumour.drop_duplicates(["patient_id", *VARIANT_KEY]).sort_index()
tumour.to_csv(snakemake.output.tumour_variants, sep="\t", index=False)

# the panel: every variant once, counted when any patient can use it
sites = tumour.sort_values("evaluable", ascending=False, kind="stable")
panel = sites.drop_duplicates(VARIANT_KEY).sort_index()[VARIANT_COLUMNS]
owners = tumour.groupby(VARIANT_KEY, sort=False)["patient_id"].agg(",".join).rename("patients")
panel = panel.merge(owners.reset_index(), on=VARIANT_KEY, how="left")
panel.to_csv(snakemake.output.panel, sep="\t", index=False)
