"""Snakemake adapter: the per-patient, per-sample and cohort tables and the workbook."""

import sys

import pandas as pd

from carmscope.tables.patients import TableSettings, patient_table, with_blood_columns
from carmscope.tables.samples import sample_table
from carmscope.tables.steps import read_step_outputs
from carmscope.tables.summary import cohort_summary
from carmscope.tables.workbook import write_tsv, write_workbook
from carmscope.verdict import kept
from carmscope.vocabulary import RNA_ASSAYS

sys.stderr = open(snakemake.log[0], "w")

inputs = dict(snakemake.input.items())  # role -> file(s); absent stages have no role
patients = pd.DataFrame(snakemake.params.patients).astype(str).set_index("patient_id")
samples = pd.DataFrame(snakemake.params.samples).set_index("sample_id")
samples["day"] = samples["day"].astype("int64")
settings = TableSettings(**snakemake.params.settings)

outputs = read_step_outputs(
    patients,
    samples,
    input_qc=inputs["input_qc"],
    expression_metrics={
        assay: inputs[f"metrics_{assay}"] for assay in RNA_ASSAYS if f"metrics_{assay}" in inputs
    },
    expression_qc=kept(inputs["expression_qc"]),  # samples left out by inspection: none
    car=inputs.get("car"),
    car_cell_types=kept(inputs["car_cell_types"]),
    ctdna={
        name: inputs[f"ctdna_{name}"]
        for name in ("samples", "timepoints", "patients")
        if f"ctdna_{name}" in inputs
    },
    tcr_patients=inputs.get("tcr_patients"),
)
per_patient = patient_table(outputs, settings)
if "blood_patients" in inputs:  # the blood stage's car_blood_* and cytokine_* columns
    blood = pd.read_csv(inputs["blood_patients"], sep="\t", dtype={"patient_id": str})
    per_patient = with_blood_columns(per_patient, blood)
per_sample = sample_table(outputs)
summary = cohort_summary(per_patient, settings)
print(f"{len(per_patient)} patients, {len(per_sample)} samples", file=sys.stderr)

write_tsv(per_patient, snakemake.output.patients)
write_tsv(per_sample, snakemake.output.samples)
write_tsv(summary, snakemake.output.summary)
write_workbook(
    {"patients": per_patient, "samples": per_sample, "cohort_summary": summary},
    snakemake.output.workbook,
)
