"""What the blood rules (``workflow/rules/blood.smk``) need: samples, inputs, outputs, settings.

Plain functions of the config and the samples sheet, so the rule file holds only rules and
these can be tested. Output paths follow ``docs/blood.md``.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from carmscope.blood.records import SAMPLE_FIELDS
from carmscope.blood.series import blood_rna_samples
from carmscope.vocabulary import BLOOD_MEASURE_ASSAYS
from wiring import inspection

RESULTS = "results/blood"
TABLE_FILES = {
    "kinetics": f"{RESULTS}/kinetics.tsv",
    "cytokines": f"{RESULTS}/cytokines.tsv",
    "series": f"{RESULTS}/series.tsv",
    "patients": f"{RESULTS}/patients.tsv",
    "summary": f"{RESULTS}/summary.tsv",
    "crs": f"{RESULTS}/crs_associations.tsv",
}
FIGURE_FILES = {
    "kinetics": f"{RESULTS}/car_kinetics.png",
    "cytokines": f"{RESULTS}/cytokine_heatmap.png",
}
LOGS = {"blood_kinetics": "logs/blood_kinetics.log", "blood_plots": "logs/blood_plots.log"}
"""Columns of the samples sheet the blood step reads (from ``params``)."""


def measurement_samples(samples: pd.DataFrame) -> pd.DataFrame:
    """The ``car_pcr`` and ``cytokines`` samples."""
    return samples[samples["assay"].isin(BLOOD_MEASURE_ASSAYS)]


def scanned_blood_rna(samples: pd.DataFrame) -> list[str]:
    """PBMC RNA samples (tissue blood) whose reads the CAR stage scans."""
    chosen = blood_rna_samples(samples)
    return [str(s) for s in chosen.index[chosen["reads"] != ""]]


def has_blood(samples: pd.DataFrame) -> bool:
    """Whether the cohort has any blood measurement or scanned PBMC RNA sample."""
    return bool(len(measurement_samples(samples)) or scanned_blood_rna(samples))


def inputs(samples: pd.DataFrame, car_summary: str) -> dict[str, list[str] | str]:
    """Inputs of the blood step: every measurement table with its samples' input inspection
    rows (inspection runs first; a draw it found unusable is left out, with its reason in the
    step's log), and the CAR summary for PBMC RNA."""
    measured = measurement_samples(samples)
    files: dict[str, list[str] | str] = {
        "tables": list(dict.fromkeys(measured["counts"])),
        # a patient's draws are inspected together: one file per patient
        "verdicts": inspection.verdict_files(samples, measured.index),
    }
    if scanned_blood_rna(samples):
        files["car_summary"] = car_summary
    return files


def sample_records(samples: pd.DataFrame) -> list[dict]:
    """The blood samples as records for ``params`` (measurement and PBMC RNA samples)."""
    chosen = samples.index.isin(measurement_samples(samples).index)
    chosen |= samples.index.isin(scanned_blood_rna(samples))
    return samples.loc[chosen, list(SAMPLE_FIELDS)].reset_index().to_dict("records")


def outputs(samples: pd.DataFrame) -> list[str]:
    """Every file of the blood stage, for ``rule all`` (none without blood samples)."""
    if not has_blood(samples):
        return []
    return [*TABLE_FILES.values(), *FIGURE_FILES.values()]


def settings(section: Mapping) -> dict:
    """The ``blood`` config section (filled by the schema's defaults) as
    :class:`~carmscope.blood.cohort.BloodSettings` keywords."""
    return {
        "car_analyte": section["car_analyte"],
        "blq_fraction": section["blq_fraction"],
        "half_life_min_points": section["half_life_min_points"],
        "adj_r2_factor": section["half_life_adj_r2_factor"],
        "half_life_min_adj_r2": section["half_life_min_adj_r2"],
    }
