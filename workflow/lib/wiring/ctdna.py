"""What the ctDNA rules (``workflow/rules/ctdna.smk``) need: panels, count files, their paths.

Plain functions of the config's ``ctdna`` section and the sample sheets, so the rule file holds
only rules and these can be tested; the mode itself is checked by ``carmscope.ctdna.settings``.
Two background modes (docs/ctdna.md, "Background modes"):

- ``cohort`` (default): one cohort panel (``results/ctdna/panel.tsv``) of every patient's
  variants is counted in every plasma sample and panel-of-normals BAM; each site's background
  comes from the plasma of the patients without the variant (INVAR-like) and the normals.
- ``normals``: each plasma sample is counted only at its own patient's variants
  (``results/ctdna/panels/{patient}.tsv``) and every panel-of-normals BAM at each patient's
  panel (``results/ctdna/normals/{patient}/{normal}.tsv``); the background comes from the
  normals alone, so a patient's jobs and results do not depend on the other patients.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import pandas as pd

RESULTS = "results/ctdna"
COHORT_PANEL = f"{RESULTS}/panel.tsv"
TUMOUR_VARIANTS = f"{RESULTS}/tumour_variants.tsv"
PATIENT_PANEL = RESULTS + "/panels/{patient}.tsv"
COHORT_NORMAL_COUNTS = RESULTS + "/normals/{normal}.tsv"
PATIENT_NORMAL_COUNTS = RESULTS + "/normals/{patient}/{normal}.tsv"
SAMPLE_COUNTS = RESULTS + "/counts/{sample}.tsv"
CALL_TABLES = ("variants", "samples", "timepoints", "patients", "background")
"""The tables of ``ctdna_calls``."""
PLOTS = ("spider", "waterfall")


def table(name: str) -> str:
    """One of the stage's cohort tables (:data:`CALL_TABLES`)."""
    return f"{RESULTS}/{name}.tsv"


def plot(name: str, ext: str) -> str:
    """One of the stage's plots (:data:`PLOTS`) as ``svg`` or ``png``."""
    return f"{RESULTS}/{name}.{ext}"


def outputs() -> list[str]:
    """The stage's tables and plots, for ``rule all``."""
    return [table(name) for name in CALL_TABLES] + [
        plot(name, ext) for name in PLOTS for ext in ("svg", "png")
    ]


def normal_names(paths: Sequence[str]) -> dict[str, str]:
    """Panel-of-normals BAMs by the name of their counts file: ``{number}_{basename}``.

    The basename loses ``.bam`` and any character other than letters, digits, ``.``, ``_``
    and ``-`` (replaced by ``_``); numbers start at 1 in config order.
    """
    return {
        f"{number}_"
        + "".join(
            c if c.isalnum() or c in "._-" else "_"
            for c in os.path.basename(path).removesuffix(".bam")
        ): path
        for number, path in enumerate(paths, start=1)
    }


def panel_patients(samples: pd.DataFrame, plasma: Sequence[str]) -> list[str]:
    """Patients with plasma samples (``plasma``: their IDs), in sample-table order."""
    return list(dict.fromkeys(str(p) for p in samples.loc[list(plasma), "patient_id"]))


def panel_of(mode: str, patient: str | None) -> str:
    """The panel a plasma sample (or, in ``normals`` mode, a normal) of ``patient`` is counted
    at (``patient`` is not used in ``cohort`` mode)."""
    return COHORT_PANEL if mode == "cohort" else PATIENT_PANEL.format(patient=patient)


def normal_counts_outputs(mode: str, normals: Sequence[str]) -> list[str]:
    """Outputs of one ``ctdna_count_normals`` job: every normal counted at one panel.

    ``cohort``: one job, at the cohort panel; ``normals``: one job per patient (wildcard
    ``patient``), at that patient's panel, so a patient's normals cost one job, not one each.
    """
    pattern = COHORT_NORMAL_COUNTS if mode == "cohort" else PATIENT_NORMAL_COUNTS
    return [pattern.format(patient="{patient}", normal=normal) for normal in normals]


def normal_counts_log(mode: str) -> str:
    """Log of a ``ctdna_count_normals`` job (wildcard ``patient`` in ``normals`` mode)."""
    return "logs/ctdna_count_normals/" + ("cohort" if mode == "cohort" else "{patient}") + ".log"


def normal_counts(mode: str, normals: Sequence[str], patients: Sequence[str]) -> list[str]:
    """Every panel-of-normals counts file ``ctdna_calls`` reads.

    ``cohort``: one per normal; ``normals``: one per patient with plasma and normal, patient
    by patient (so the files of existing patients come first, unchanged, when one is added).
    """
    if mode == "cohort":
        return [COHORT_NORMAL_COUNTS.format(normal=normal) for normal in normals]
    return [
        PATIENT_NORMAL_COUNTS.format(patient=patient, normal=normal)
        for patient in patients
        for normal in normals
    ]


def normal_panel_patients(mode: str, normals: Sequence[str], patients: Sequence[str]) -> list[str]:
    """The patient whose panel each file of :func:`normal_counts` was counted at ('' in
    ``cohort`` mode: the cohort panel)."""
    if mode == "cohort":
        return ["" for _ in normals]
    return [patient for patient in patients for _ in normals]


def tumour_variant_files(mode: str, patients: Sequence[str]) -> list[str]:
    """The tables of each patient's own variants that ``ctdna_calls`` reads."""
    if mode == "cohort":
        return [TUMOUR_VARIANTS]
    return [PATIENT_PANEL.format(patient=patient) for patient in patients]


def normal_sample(normal: str) -> dict[str, object]:
    """The sample fields written into a panel-of-normals counts table."""
    return {
        "sample_id": f"panel_of_normals/{normal}",
        "patient_id": "",
        "timepoint": "",
        "day": None,
    }


def crams(samples: pd.DataFrame, plasma: Sequence[str], normals: Sequence[str]) -> list[str]:
    """The plasma reads (of the samples ``plasma``) and panel-of-normals files that are CRAM:
    decoding them needs ``ctdna.reference``, the FASTA they were aligned to."""
    files = [str(samples.loc[sample, "reads"]) for sample in plasma] + list(normals)
    return [path for path in files if path.lower().endswith(".cram")]


def missing_reference(crams: Sequence[str]) -> str:
    """The parse-time error when CRAM plasma (or normals) come without ``ctdna.reference``."""
    shown = ", ".join(crams[:3]) + (f" and {len(crams) - 3} more" if len(crams) > 3 else "")
    return (
        f"config ctdna.reference is not set, but {len(crams)} plasma or panel-of-normals "
        f"file(s) are CRAM ({shown}), which cannot be read without the FASTA they were aligned "
        "to: set ctdna.reference to that FASTA (every tumour VCF's REF is then checked against "
        "it too)"
    )


def reference_input(section: Mapping, paths: Sequence[str]) -> dict[str, str]:
    """``{"reference": ctdna.reference}`` when any of ``paths`` (a count job's reads) is a CRAM,
    which needs it to be decoded; nothing for BAMs, whose jobs do not depend on the FASTA."""
    if section["reference"] and any(path.lower().endswith(".cram") for path in paths):
        return {"reference": section["reference"]}
    return {}
