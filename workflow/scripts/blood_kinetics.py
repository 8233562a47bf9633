"""Snakemake adapter: CAR kinetics (NCA), cytokine figures and cohort tables of the blood stage."""

import sys

import pandas as pd

from carmscope.blood.cohort import BloodSettings
from carmscope.blood.records import records_frame
from carmscope.blood.stage import blood_tables, write_blood_tables
from carmscope.verdict import left_out_message, read_verdicts

sys.stderr = open(snakemake.log[0], "w")
# draws whose files inspection found unusable are left out (the tables flag them)
unusable = set()
for verdicts in snakemake.input.verdicts:
    for sample_id, usable, problem in read_verdicts(verdicts):
        if not usable:
            unusable.add(sample_id)
            print(left_out_message(sample_id, problem), file=sys.stderr)

params = snakemake.params
patients = pd.DataFrame(params.patients).astype(str).set_index("patient_id")
tables = blood_tables(
    records_frame([record for record in params.samples if record["sample_id"] not in unusable]),
    patients,
    BloodSettings(**params.settings),
    strata=params.strata,
    car_summary=snakemake.input.get("car_summary"),
    sample_assays=params.assays,
)
write_blood_tables(tables, dict(snakemake.output.items()))
evaluable = int((tables.kinetics["reason"] == "").sum())
print(f"{len(tables.kinetics)} kinetic series, {evaluable} fully evaluable", file=sys.stderr)
