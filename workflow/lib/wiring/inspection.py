"""Paths of the input inspection rules (``workflow/rules/inputs.smk``), for them and for the
rules that read the inspection's verdicts.

Every sample gets its inventory row from its own job (:data:`SAMPLE`), except the blood
draws (``car_pcr`` and ``cytokines`` samples): a patient's draws are inspected by one job into
one file (:data:`BLOOD_DRAWS`). A trial has many draws per patient (14 in the demo), each a
small table whose only readers are cohort steps (the blood stage and the inventory), so one
job per draw was mostly process start-up (docs/performance.md).
"""

from __future__ import annotations

import pandas as pd

from carmscope.vocabulary import BLOOD_MEASURE_ASSAYS

RESULTS = "results/qc"
SAMPLE = RESULTS + "/inputs/{sample}.tsv"
"""One sample's inspection (wildcard ``sample``)."""
BLOOD_DRAWS = RESULTS + "/inputs/blood/{patient}.tsv"
"""One patient's blood draws' inspection, one row each (wildcard ``patient``)."""
INVENTORY = RESULTS + "/inputs.tsv"
"""Every sample's inspection, one row each."""


def is_blood_draw(samples: pd.DataFrame) -> pd.Series:
    """Which samples are blood draws (inspected per patient)."""
    return samples["assay"].isin(BLOOD_MEASURE_ASSAYS)


def sample_ids(samples: pd.DataFrame) -> list[str]:
    """Samples inspected one per job (every sample but the blood draws), in sheet order."""
    return [str(s) for s in samples.index[~is_blood_draw(samples)]]


def draw_patients(samples: pd.DataFrame) -> list[str]:
    """Patients with blood draws, in order of their first draw in the sheet."""
    return [str(p) for p in dict.fromkeys(samples.loc[is_blood_draw(samples), "patient_id"])]


def patient_draws(samples: pd.DataFrame, patient: str) -> pd.DataFrame:
    """A patient's blood draws, in sheet order."""
    return samples[is_blood_draw(samples) & (samples["patient_id"] == patient)]


def verdict_file(samples: pd.DataFrame, sample: str) -> str:
    """The inspection file holding one sample's verdict."""
    if samples.loc[sample, "assay"] in BLOOD_MEASURE_ASSAYS:
        return BLOOD_DRAWS.format(patient=samples.loc[sample, "patient_id"])
    return SAMPLE.format(sample=sample)


def verdict_files(samples: pd.DataFrame, chosen=None) -> list[str]:
    """The inspection files holding the chosen samples' verdicts (default: every sample),
    each once, in sheet order: the parts of the inventory."""
    chosen = samples.index if chosen is None else chosen
    return list(dict.fromkeys(verdict_file(samples, sample) for sample in chosen))
