"""What the T cell receptor rules (``workflow/rules/tcr.smk``) need: samples, inputs, outputs,
logs and settings.

Plain functions of the config's ``tcr`` section and the samples sheet, so the rule file holds
only rules and these can be tested. Which repertoires are compared is the domain's rule
(:mod:`carmscope.tcr.patients`); output paths follow ``docs/tcr.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from carmscope.tcr.patients import compared_samples, repertoire_sample_ids
from carmscope.vocabulary import SCRNA, TCR, TISSUES
from wiring import inspection

RESULTS = "results/tcr"
SAMPLE_FILES = ("clones", "summary", "cells")
"""The per-sample outputs of ``tcr_clones``: ``{name}.tsv`` (``cells.tsv.gz``)."""
CHANGES = RESULTS + "/changes/{patient}_{tissue}.tsv"
TABLE_FILES = {"samples": f"{RESULTS}/samples.tsv", "patients": f"{RESULTS}/patients.tsv"}
COHORT_FIGURE = f"{RESULTS}/cohort.png"
PATIENT_FIGURES = f"{RESULTS}/patients"
"""A folder of ``{patient}.png``."""
LOGS = {
    "tcr_clones": "logs/tcr_clones/{sample}.log",
    "tcr_changes": "logs/tcr_changes/{patient}_{tissue}.log",
    "tcr_summary": "logs/tcr_summary.log",
    "tcr_plots": "logs/tcr_plots.log",
}
SETTING_KEYS = ("min_count", "fdr", "min_fold", "detect_alpha")
"""The ``tcr`` config keys of the change tests (:class:`carmscope.tcr.compare.ChangeSettings`)."""
SAMPLE_COLUMNS = ["patient_id", "timepoint", "day", "hours", "assay", "tissue", "vdj"]
"""Columns of the samples sheet the tcr steps read (from ``params``)."""
TISSUE_PATTERN = "|".join(TISSUES)


def sample_file(sample: str, name: str) -> str:
    """One of a repertoire sample's outputs (:data:`SAMPLE_FILES`); ``sample`` may be the
    ``{sample}`` wildcard."""
    return f"{RESULTS}/{sample}/{name}." + ("tsv.gz" if name == "cells" else "tsv")


def changes_file(patient: str, tissue: str) -> str:
    """The change table of one patient and tissue."""
    return CHANGES.format(patient=patient, tissue=tissue)


def repertoire_samples(samples: pd.DataFrame) -> list[str]:
    """Samples with a repertoire: ``tcr`` samples and scRNA samples with ``vdj``."""
    return repertoire_sample_ids(samples)


def vdj_samples(samples: pd.DataFrame) -> list[str]:
    """The repertoire samples that are scRNA samples with ``vdj`` (they have annotated cells)."""
    return [s for s in repertoire_samples(samples) if samples.loc[s, "assay"] == SCRNA]


def comparisons(samples: pd.DataFrame) -> dict[tuple[str, str], list[str]]:
    """Per (patient, tissue): the samples compared, in time order."""
    return compared_samples(samples)


def compared_patients(samples: pd.DataFrame) -> list[str]:
    """Patients with at least one comparison, sorted (the ``{patient}`` wildcard's values)."""
    return sorted({patient for patient, _ in comparisons(samples)})


def change_files(samples: pd.DataFrame) -> list[str]:
    """Every change table."""
    return [changes_file(p, t) for p, t in comparisons(samples)]


def outputs(samples: pd.DataFrame) -> list[str]:
    """Every file of the stage for ``rule all`` (none without repertoires)."""
    if not repertoire_samples(samples):
        return []
    return [*TABLE_FILES.values(), COHORT_FIGURE, PATIENT_FIGURES, *change_files(samples)]


def clone_inputs(samples: pd.DataFrame, sample: str, expression_file) -> dict[str, str]:
    """A ``tcr`` sample's repertoire (``counts``); a scRNA sample's ``vdj`` and its annotated
    cells (``expression_file(assay, sample, name)`` gives the expression stage's paths)."""
    row = samples.loc[sample]
    # inspection runs first; a sample it found unusable is left out with its reason
    verdict = inspection.SAMPLE.format(sample=sample)
    if row["assay"] == TCR:
        return {"repertoire": row["counts"], "verdict": verdict}
    return {
        "verdict": verdict,
        "repertoire": row["vdj"],
        "cells": expression_file(SCRNA, sample, "cells.tsv.gz"),
        "h5ad": expression_file(SCRNA, sample, "cells.h5ad"),
    }


def sample_records(samples: pd.DataFrame, chosen: Iterable[str]) -> list[dict]:
    """Sheet rows of the chosen samples as records for a rule's ``params``."""
    return samples.loc[list(chosen), SAMPLE_COLUMNS].reset_index().to_dict("records")


def sample_days(samples: pd.DataFrame) -> list[dict]:
    """``sample_id`` and ``day`` of every repertoire sample (the plots' time axis)."""
    return [
        {"sample_id": s, "day": int(samples.loc[s, "day"])} for s in repertoire_samples(samples)
    ]


def settings(section: Mapping) -> dict:
    """The change-test keys of the ``tcr`` config section (filled by the schema's defaults)."""
    return {key: section[key] for key in SETTING_KEYS}
