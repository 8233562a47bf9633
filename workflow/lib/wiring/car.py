"""What the CAR rules (``workflow/rules/car.smk``) need: samples, inputs, outputs, resources.

Plain functions of the config's ``car`` section (filled by the schema's defaults) and the
sample sheets, so the rule file holds only rules and these can be tested. Paths follow
``docs/car_detection.md``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

import pandas as pd

from carmscope.bam.index import find_index
from carmscope.sheets import Sheets, baseline_sample
from carmscope.vocabulary import HOURS_PER_DAY, RNA_ASSAYS, SCRNA, is_pre_infusion

RESULTS = "results/car"
INDEX = f"{RESULTS}/index/specific_kmers.tsv.gz"
SUMMARY = f"{RESULTS}/summary.tsv"


def kernels_not_built() -> str | None:
    """Why the compiled CAR kernels cannot be loaded (a message for the user), or None.

    ``carmscope.bam._native`` is compiled from ``_native.c`` by ``pip install -e .`` (``make
    setup``); a checkout used without that step (only ``src/`` on the path) has no kernels, and
    every CAR job would fail on import. The workflow checks this at parse time, before any job.
    """
    if importlib.util.find_spec("carmscope.bam._native") is not None:
        return None
    package = importlib.util.find_spec("carmscope.bam").submodule_search_locations[0]
    return (
        "carmscope's compiled CAR kernels (carmscope.bam._native, from _native.c) are not "
        f"built in {package}: run `make setup` (or `.venv/bin/pip install "
        "-e .`) in the repository, which compiles them."
    )


def folder(assay: str, sample: str) -> str:
    """Output folder of one sample."""
    return f"{RESULTS}/{assay}/{sample}"


def scan_file(assay: str, sample: str, name: str) -> str:
    """One output of one sample's scan (``sample`` may be the wildcard ``{sample}``)."""
    return f"{folder(assay, sample)}/{name}"


def scanned_samples(samples: pd.DataFrame, assay: str) -> list[str]:
    """Samples of ``assay`` with reads to scan, in table order."""
    chosen = samples[(samples["assay"] == assay) & (samples["reads"] != "")]
    return [str(sample) for sample in chosen.index]


def all_scanned(samples: pd.DataFrame) -> list[tuple[str, str]]:
    """``(assay, sample)`` of every scanned biopsy."""
    return [(assay, sample) for assay in RNA_ASSAYS for sample in scanned_samples(samples, assay)]


def evidence_files(samples: pd.DataFrame) -> list[str]:
    """Evidence table of every scanned biopsy (the inputs of the calls)."""
    return [scan_file(assay, sample, "evidence.tsv") for assay, sample in all_scanned(samples)]


def outputs(samples: pd.DataFrame) -> list[str]:
    """Every file of the CAR stage, for ``rule all``."""
    files = [SUMMARY]
    for assay, sample in all_scanned(samples):
        names = ("coverage.tsv.gz", "regions.tsv", "coverage.png")
        files += [scan_file(assay, sample, name) for name in names]
        if assay == SCRNA:
            files.append(scan_file(assay, sample, "cells.tsv.gz"))
    return files


def baselines(sheets: Sheets) -> dict[str, str]:
    """Each scanned sample's background biopsy: the patient's pre-infusion biopsy of the same
    assay and tissue (a PBMC sample against the pre-infusion PBMC), for post-infusion samples
    whose baseline was scanned; else ''."""
    samples = sheets.samples
    scanned = {sample for _, sample in all_scanned(samples)}
    chosen = {}
    for sample in sorted(scanned):
        row = samples.loc[sample]
        baseline = baseline_sample(sheets, row["patient_id"], row["assay"], row.get("tissue"))
        post = not is_pre_infusion(row.get("hours", row["day"] * HOURS_PER_DAY))
        chosen[sample] = baseline if post and baseline in scanned else ""
    return chosen


def sample_table(samples: pd.DataFrame) -> dict[str, dict[str, object]]:
    """Patient, timepoint and day of every scanned sample (copied into the summary)."""
    return {
        sample: {
            "patient_id": str(samples.loc[sample, "patient_id"]),
            "timepoint": str(samples.loc[sample, "timepoint"]),
            "day": int(samples.loc[sample, "day"]),
        }
        for _, sample in all_scanned(samples)
    }


def reads_index(reads: str) -> str | None:
    """The index file next to a BAM or CRAM (:func:`carmscope.bam.index.find_index`), or None."""
    return find_index(reads)


def index_inputs(car: Mapping) -> dict[str, str]:
    """Inputs of the index step: constructs, segments and the host transcripts if set."""
    files = {"construct": car["construct"], "segments": car["segments"]}
    if car["host_transcripts"]:
        files["host_transcripts"] = car["host_transcripts"]
    return files


def scan_inputs(samples: pd.DataFrame, sample: str, car: Mapping) -> dict[str, str]:
    """Inputs of one sample's scan besides the index and constructs.

    Reads; the count matrix (scRNA); in targeted mode the reads' index (when there is one:
    the scan reports a missing one) and the BED; the CRAM reference if set.
    """
    row = samples.loc[sample]
    files = {"reads": row["reads"]}
    if row["assay"] == SCRNA and row["counts"]:
        files["counts"] = row["counts"]
    targeted = car["targeted"]
    if targeted["enabled"]:
        index = reads_index(row["reads"])
        if index:
            files["reads_index"] = index
        if targeted["bed"]:
            files["targeted_bed"] = targeted["bed"]
    if car["cram_reference"]:
        files["reference"] = car["cram_reference"]
    return files


def scan_runtime(size_mb: float, attempt: int) -> int:
    """Minutes for one scan: start-up plus about a gigabyte of reads a minute, per attempt."""
    return attempt * (10 + int(size_mb / 1000))


def scan_threads(configured: int, cores: int | None) -> int:
    """Threads of one scan: ``car.threads``, but in a local run at most half of its cores.

    Snakemake starts a job only when all of its threads are free. A scan that needs every core
    of a local run therefore waits while one-thread jobs keep starting, and when one finishes
    the freed core idles until the other does: on 2 cores with 2-thread scans the demo ran one
    job at a time for 7 of its 12 minutes (docs/performance.md). At most half the cores, a scan
    always fits beside a one-thread job. ``cores`` None (a cluster run, where each job gets its
    own CPUs) keeps ``car.threads``.
    """
    if not cores:
        return configured
    return max(1, min(configured, cores // 2))
