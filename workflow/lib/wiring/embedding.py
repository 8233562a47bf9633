"""What the embedding rules (``workflow/rules/embedding.smk``) need from the samples sheet:
plain functions of the sheet, so the rule file holds only rules and these can be tested."""

from __future__ import annotations

import pandas as pd

from carmscope.vocabulary import SCRNA, is_pre_infusion, ordered, sample_hours
from wiring import car, expression

CELLS = expression.sample_file(SCRNA, "{sample}", "cells.h5ad")
"""A sample's final cells (embedding and CAR calls); the input is the scRNA job's
``annotated.h5ad``, a temporary file."""
PATIENT_OBJECT = expression.sample_file(SCRNA, "patients", "{patient}.h5ad")
"""A patient's samples integrated (``results/expression/scrna/patients/{patient}.h5ad``)."""
FIGURES = "results/report"
SAMPLE_FIGURES = {
    "umap": FIGURES + "/biopsies/{sample}_umap.png",
    "dotplot": FIGURES + "/biopsies/{sample}_markers.png",
}
PATIENT_FIGURE = FIGURES + "/patients_umap/{patient}.png"
LOGS = {
    "expression_embedding": "logs/expression_embedding/{sample}.log",
    "expression_patient_embedding": "logs/expression_patient_embedding/{patient}.log",
}


def _scrna(samples: pd.DataFrame) -> pd.DataFrame:
    """scRNA samples with a count matrix (a biopsy with reads only has no cells to embed)."""
    chosen = samples["assay"] == SCRNA
    if "counts" in samples.columns:
        chosen &= samples["counts"].fillna("").astype(str) != ""
    return samples[chosen]


def patient_samples(samples: pd.DataFrame, patient: str) -> list[str]:
    """A patient's scRNA samples in time order (then sheet order)."""
    rows = _scrna(samples)
    return [str(s) for s in ordered(rows[rows["patient_id"] == patient]).index]


def patients(samples: pd.DataFrame) -> list[str]:
    """Patients with at least one scRNA sample, in sheet order."""
    return [str(p) for p in dict.fromkeys(_scrna(samples)["patient_id"])]


def panel_labels(samples: pd.DataFrame, patient: str) -> list[str]:
    """Panel titles of a patient's samples: timepoint, day, pre- or post-infusion."""
    labels = []
    mine = samples.loc[patient_samples(samples, patient)]
    for sample, hours in sample_hours(mine).items():
        row = samples.loc[sample]
        phase = "pre-infusion" if is_pre_infusion(hours) else "post-infusion"
        labels.append(f"{row['timepoint']} (day {row['day']}, {phase})")
    return labels


def car_table(samples: pd.DataFrame, sample: str) -> list[str]:
    """The sample's per-cell CAR table (from CAR detection), or none without reads."""
    return [car.scan_file(SCRNA, sample, "cells.tsv.gz")] if samples.loc[sample, "reads"] else []


def outputs(samples: pd.DataFrame) -> list[str]:
    """Every final file of the embedding rules, for ``rule all``."""
    files = [CELLS.format(sample=s) for s in _scrna(samples).index]
    return files + [PATIENT_OBJECT.format(patient=p) for p in patients(samples)]
