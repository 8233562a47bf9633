"""Snakemake adapter: background, detection calls and molecular response of the cohort."""

import sys

import pandas as pd

from carmscope.ctdna.alleles import VARIANT_KEY
from carmscope.ctdna.background import mark_carriers, patient_backgrounds, site_background
from carmscope.ctdna.calls import sample_calls, variant_calls, variant_calls_by_patient
from carmscope.ctdna.response import FLAGS, PATIENT_COLUMNS, ctdna_response

sys.stderr = open(snakemake.log[0], "w")

TEXT = {"sample_id", "patient_id", "timepoint", "source", "chrom", "ref", "alt", "kind", "reason"}
TEXT |= {"patients"}
params = snakemake.params


def read_table(path: str) -> pd.DataFrame:
    """A TSV of this workflow: text columns stay text ('' stays ''), empty numbers are NA."""
    columns = pd.read_csv(path, sep="\t", nrows=0).columns
    return pd.read_csv(
        path,
        sep="\t",
        dtype={c: str for c in columns if c in TEXT},
        keep_default_na=False,
        na_values={c: [""] for c in columns if c not in TEXT},
    )


# background "cohort": one cohort table of every patient's variants, panel-of-normals counts at
# the cohort panel pooled with the other patients' plasma; "normals": each patient's own panel,
# the background from panel-of-normals counts at that panel only (docs/ctdna.md)
by_patient = params.background == "normals"
tumour = pd.concat(
    [read_table(path) for path in snakemake.input.tumour_variants], ignore_index=True
)
if by_patient:
    tumour = tumour.rename(columns={"patients": "patient_id"})
counted = [*snakemake.input.counts] + ([] if by_patient else [*snakemake.input.normals])
counts = pd.concat([read_table(path) for path in counted], ignore_index=True)
counts["day"] = counts["day"].astype("Int64")

# carriers: the sample's patient has the variant; for its own variants the patient's VCF also
# decides whether the variant is used (FILTER, duplicates), whatever other patients' VCFs say
marked = mark_carriers(counts, tumour)
own = tumour[["patient_id", *VARIANT_KEY, "evaluable", "reason"]].rename(
    columns={"evaluable": "_own_evaluable", "reason": "_own_reason"}
)
marked = marked.merge(own, on=["patient_id", *VARIANT_KEY], how="left")
refused = marked["carrier"] & marked["evaluable"] & marked["_own_evaluable"].eq(False)
marked.loc[refused, "evaluable"] = False
marked.loc[refused, "reason"] = marked.loc[refused, "_own_reason"]
marked = marked.drop(columns=["_own_evaluable", "_own_reason"])

if by_patient:
    normals = pd.concat(
        [
            read_table(path).assign(panel_patient=patient)
            for path, patient in zip(snakemake.input.normals, params.normal_panels, strict=True)
        ],
        ignore_index=True,
    )
    background = patient_backgrounds(normals, params.floor, params.max_rate)
    variants = variant_calls_by_patient(marked, background, params.floor)
else:
    background = site_background(marked, params.floor, params.max_rate)
    variants = variant_calls(marked, background, params.floor)
calls = sample_calls(variants, params.alpha, params.power)
calls["source"] = calls["sample_id"].map(variants.groupby("sample_id")["source"].first())
first = ["sample_id", "patient_id", "timepoint", "day", "source"]
calls = calls[first + [c for c in calls.columns if c not in first]]
order = {sample_id: i for i, sample_id in enumerate(params.samples)}
calls = calls.sort_values("sample_id", key=lambda s: s.map(order), kind="stable")
timepoints, patients = ctdna_response(
    calls, params.fall_fraction, params.progression_rise, params.change_alpha
)

# every patient of the table gets a row: those without plasma say why they have no flags
patients = patients.set_index("patient_id").reindex(params.patients)
absent = patients["evaluable"].isna()
patients.loc[absent, "reason"] = [
    "no plasma samples" if p in params.variant_patients else "no plasma samples, no tumour variants"
    for p in patients.index[absent]
]
patients.loc[absent, ["n_post", "evaluable", *FLAGS]] = [0, False, *[False] * len(FLAGS)]
patients = patients.reset_index()[PATIENT_COLUMNS]
for column in ("baseline_day", "nadir_day", "latest_day", "n_post"):
    patients[column] = patients[column].astype("Int64")
for column in ("evaluable", *FLAGS):
    patients[column] = patients[column].astype(bool)

variants.to_csv(snakemake.output.variants, sep="\t", index=False)
calls.to_csv(snakemake.output.samples, sep="\t", index=False)
timepoints.to_csv(snakemake.output.timepoints, sep="\t", index=False)
patients.to_csv(snakemake.output.patients, sep="\t", index=False)
background.to_csv(snakemake.output.background, sep="\t", index=False)
detected = int(calls["ctdna_detected"].sum())
print(f"{len(calls)} plasma samples, ctDNA detected in {detected}", file=sys.stderr)
