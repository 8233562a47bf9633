"""Snakemake adapter: background, detection calls and molecular response of the cohort."""

import sys

import pandas as pd

from carmscope.ctdna.cohort import CallSettings, cohort_calls, read_table
from carmscope.verdict import kept

sys.stderr = open(snakemake.log[0], "w")

params = snakemake.params
settings = CallSettings(
    background=params.background,
    floor=params.floor,
    max_rate=params.max_rate,
    alpha=params.alpha,
    power=params.power,
    fall_fraction=params.fall_fraction,
    progression_rise=params.progression_rise,
    change_alpha=params.change_alpha,
)
by_patient = settings.background == "normals"
print(f"ctdna.background resolved to {settings.background!r}", file=sys.stderr)


def read_all(paths):
    return pd.concat([read_table(path) for path in paths], ignore_index=True)


# background "cohort": panel-of-normals counts at the cohort panel join the plasma counts;
# "normals": each patient's own panel, normals counted per patient panel (docs/ctdna.md)
tumour = read_all(snakemake.input.tumour_variants)
if by_patient:
    tumour = tumour.rename(columns={"patients": "patient_id"})
# plasma samples left out by input inspection: no counts (the tables flag them)
plasma = kept(snakemake.input.counts)
counts = read_all(plasma + ([] if by_patient else [*snakemake.input.normals]))
normals = None
if by_patient:
    normals = pd.concat(
        [
            read_table(path).assign(panel_patient=patient)
            for path, patient in zip(snakemake.input.normals, params.normal_panels, strict=True)
        ],
        ignore_index=True,
    )
result = cohort_calls(
    tumour,
    counts,
    normals,
    sample_order=params.samples,
    sheet_patients=params.patients,
    variant_patients=params.variant_patients,
    settings=settings,
)
for name in ("variants", "samples", "timepoints", "patients", "background"):
    getattr(result, name).to_csv(snakemake.output[name], sep="\t", index=False)
detected = int(result.samples["ctdna_detected"].sum())
print(f"{len(result.samples)} plasma samples, ctDNA detected in {detected}", file=sys.stderr)
