"""One row per patient: did the CAR cells reach the tumour, did CD8+ T cells infiltrate, did
inflammatory signalling switch on, did ctDNA fall?

Biopsy pair
    Each patient's biopsy figures come from one assay: the first of
    ``TableSettings.biopsy_assays`` (scRNA before bulk RNA by default) in which the patient has
    both a baseline (last sample with day <= 0) and a post-infusion sample (first with day > 0),
    the pair of the expression stage's paired tests
    (:func:`carmscope.expression.paired.baseline_post_pairs`). Without a complete pair, the first
    assay with any biopsy names what there is.
CAR
    ``car_detected`` is True when CAR transcripts were called in at least one post-infusion
    biopsy (any assay), False when every scanned post-infusion biopsy was negative.
    ``car_reads_per_million`` and ``car_positive_cell_fraction`` are those of the pair's
    post-infusion biopsy.
CD8 and inflammation
    Baseline, post-infusion value and their difference (post - baseline) of the configured
    metrics in the pair's two samples. ``cd8_up`` uses the CD8 fraction when there is one
    (scRNA) and the CD8 score otherwise; ``inflammation_up`` the mean delta over the
    inflammation sets; both need a delta above the configured minimum (default 0).
ctDNA
    The ctDNA stage's per-patient response (``results/ctdna/patients.tsv``); its flags are empty
    when the patient is not evaluable. ``ctdna_any_fall``: a significant fall at some
    post-infusion timepoint.
Missing data
    Empty, never zero, with the reason in the block's ``*_reason`` column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import get_close_matches

import numpy as np
import pandas as pd

from carmscope import vocabulary
from carmscope.expression.paired import baseline_post_pairs
from carmscope.tables.steps import StepOutputs, as_bool, as_float, as_int, as_text
from carmscope.tables.tcr import tcr_block, with_tcr_types

FILE_COLUMNS = ("tumor_variants",)
"""Patients-sheet columns that hold input paths, not clinical data (left out of the table)."""

CTDNA_FLAGS = ("molecular_response", "transient_decrease", "clearance", "progression")

BOOLEAN_COLUMNS = (
    "car_detected",
    "cd8_up",
    "inflammation_up",
    "ctdna_any_fall",
    *(f"ctdna_{flag}" for flag in CTDNA_FLAGS),
)
INTEGER_COLUMNS = (
    "car_post_biopsies",
    "car_post_biopsies_detected",
    "ctdna_nadir_day",
    "ctdna_latest_day",
)


@dataclass(frozen=True)
class TableSettings:
    """What the result tables pick from the step outputs (config section ``tables``)."""

    biopsy_assays: Sequence[str] = vocabulary.RNA_ASSAYS
    cd8_fraction_metric: str = "fraction_of_cells/cd8_t"
    cd8_score_metric: str = "all/CD8_T_cells/mean_log2cpm"
    inflammation_sets: Sequence[str] = ()
    inflammation_statistic: str = "mean_log2cpm"
    cd8_up_min_delta: float = 0.0
    inflammation_up_min_delta: float = 0.0
    min_qc_cells: int = 200
    strata: Sequence[str] = ("her2_ihc", "dosing")

    def inflammation_metric(self, gene_set: str) -> str:
        """The metric name of one inflammation set's whole-sample score."""
        return f"all/{gene_set}/{self.inflammation_statistic}"


# --- lookups ----------------------------------------------------------------------------------


def _metric_lookup(outputs: StepOutputs) -> dict[tuple[str, str], float]:
    """(sample, metric) -> value over every expression assay."""
    lookup: dict[tuple[str, str], float] = {}
    for assay in outputs.expression_metrics:
        table = outputs.metrics(assay)
        values = pd.to_numeric(table["value"], errors="coerce").to_numpy(dtype=float)
        lookup.update(
            zip(zip(table["sample_id"], table["metric"], strict=True), values, strict=True)
        )
    return lookup


def biopsy_pairs(samples: pd.DataFrame, assays: Sequence[str]) -> pd.DataFrame:
    """Per patient with a biopsy: the assay, baseline and post-infusion sample used.

    Returns a table indexed by ``patient_id`` with ``biopsy_assay``, ``biopsy_baseline_sample``
    and ``biopsy_post_sample`` ('' when absent); patients without any biopsy of ``assays``
    are left out.
    """
    chosen: dict[str, dict[str, str]] = {}
    fallback: dict[str, dict[str, str]] = {}
    for assay in assays:
        pairs = baseline_post_pairs(samples, assay)
        for pair in pairs.itertuples(index=False):
            row = {
                "biopsy_assay": assay,
                "biopsy_baseline_sample": pair.baseline_sample,
                "biopsy_post_sample": pair.post_sample,
            }
            if pair.complete and pair.patient_id not in chosen:
                chosen[pair.patient_id] = row
            fallback.setdefault(pair.patient_id, row)
    rows = {patient: chosen.get(patient, row) for patient, row in fallback.items()}
    table = pd.DataFrame.from_dict(
        rows,
        orient="index",
        columns=["biopsy_assay", "biopsy_baseline_sample", "biopsy_post_sample"],
    )
    table.index.name = "patient_id"
    return table


@dataclass(frozen=True)
class BiopsyPair:
    """A patient's biopsy pair as the blocks read it: the assay, the baseline and
    post-infusion samples ('' when absent) and the samples input inspection left out."""

    assay: str
    baseline: str
    post: str
    left_out: frozenset[str] = frozenset()

    @property
    def problem(self) -> str:
        """Why the pair gives no delta ('' when it is complete)."""
        if not self.assay:
            return "no biopsy"
        if not self.baseline and not self.post:
            return f"no {self.assay} biopsy"
        if not self.baseline:
            return f"no pre-infusion {self.assay} biopsy"
        if not self.post:
            return f"no post-infusion {self.assay} biopsy"
        return ""

    def values(
        self, lookup: dict[tuple[str, str], float], metric: str
    ) -> tuple[float, float, float]:
        """Baseline, post-infusion and delta of one metric (NaN where not measured)."""
        before = lookup.get((self.baseline, metric), np.nan) if self.baseline else np.nan
        after = lookup.get((self.post, metric), np.nan) if self.post else np.nan
        return before, after, after - before

    def left_out_reasons(self) -> list[str]:
        """The reason of each sample of the pair that input inspection left out."""
        return [_left_out(s) for s in (self.baseline, self.post) if s in self.left_out]

    def unmeasured(self, values: tuple[float, ...]) -> list[str]:
        """Samples of the pair (not left out) whose value is NaN."""
        pair = zip((self.baseline, self.post), values, strict=True)
        return [s for s, v in pair if s and np.isnan(v) and s not in self.left_out]

    def missing(self, values: tuple[float, ...], what: str) -> str:
        """Why a metric's pair is incomplete: its samples left out, then those where it was
        not measured ('' when both values are there)."""
        missing = self.unmeasured(values)
        reasons = self.left_out_reasons()
        reasons += [f"{what} not measured in {', '.join(missing)}"] if missing else []
        return "; ".join(reasons)


# --- blocks -----------------------------------------------------------------------------------


def _car_block(
    outputs: StepOutputs, patient: str, post_sample: str, left_out: frozenset[str]
) -> dict[str, object]:
    car = outputs.car
    samples = outputs.samples
    mine = samples[
        (samples["patient_id"] == patient) & samples["assay"].isin(vocabulary.RNA_ASSAYS)
    ]
    if "tissue" in mine.columns:  # PBMC CAR figures belong to the blood stage
        mine = mine[mine["tissue"] != vocabulary.BLOOD]
    post_biopsies = vocabulary.post_infusion(mine)
    scanned = car[car["sample_id"].isin(post_biopsies)]
    detected = scanned["car_detected"].map(as_bool)
    block: dict[str, object] = {
        "car_detected": pd.NA,
        "car_post_biopsies": len(scanned),
        "car_post_biopsies_detected": int(detected.sum()) if len(scanned) else 0,
        "car_sample_id": "",
        "car_reads_per_million": np.nan,
        "car_positive_cell_fraction": np.nan,
        "car_macrophage_share": np.nan,
    }
    reasons = []
    if not post_biopsies:
        reasons.append("no post-infusion biopsy")
    elif not len(scanned):
        reasons.append("no post-infusion biopsy with reads to scan")
    else:
        block["car_detected"] = bool(detected.any())
    row = car[car["sample_id"] == post_sample] if post_sample else car.iloc[0:0]
    if post_sample in left_out:
        reasons.append(_left_out(post_sample))
    elif post_sample and not len(row):
        reasons.append(f"{post_sample} has no reads to scan")
    elif len(row):
        row = row.iloc[0]
        block["car_sample_id"] = post_sample
        block["car_reads_per_million"] = float(row["car_reads_per_million"])
        if row["assay"] == vocabulary.SCRNA:
            block["car_positive_cell_fraction"] = as_float(row.get("car_positive_fraction"))
            block["car_macrophage_share"] = _macrophage_share(outputs, post_sample)
            if np.isnan(block["car_macrophage_share"]):
                reasons.append(f"no annotated CAR+ cells in {post_sample}")
        else:
            reasons.append("bulk RNA: no per-cell CAR figures")
    return block | {"car_reason": "; ".join(reasons)}


def _macrophage_share(outputs: StepOutputs, sample: str) -> float:
    """Share of a sample's QC-passed CAR+ cells annotated as macrophages (M1 or M2); NaN with
    no CAR+ cell. Uses the ``all`` row of the CAR-by-cell-type table as the total."""
    table = outputs.car_cell_types
    table = table[table["sample_id"] == sample]
    positive = pd.to_numeric(table["n_car_positive"], errors="coerce").fillna(0)
    cell_type = table["cell_type"].astype(str)
    total = positive[cell_type == "all"].sum()
    if total == 0:
        return np.nan
    return float(positive[cell_type.str.startswith("macrophage")].sum() / total)


def _left_out(sample: str) -> str:
    """The reason of a figure that a sample left out by input inspection would decide."""
    return f"{sample} left out: unusable input (input_problem in samples.tsv)"


def _cd8_block(lookup, settings: TableSettings, pair: BiopsyPair) -> dict[str, object]:
    reasons = []
    problem = pair.problem
    if problem:
        reasons.append(problem)
    frac = pair.values(lookup, settings.cd8_fraction_metric)
    score = pair.values(lookup, settings.cd8_score_metric)
    if pair.assay == vocabulary.BULK_RNA:
        frac = (np.nan, np.nan, np.nan)
        reasons.append("bulk RNA: no cell fractions")
    elif not problem:
        reasons.append(pair.missing(frac[:2], "CD8 fraction"))
    if not problem:
        reasons.append(pair.missing(score[:2], "CD8 score"))
    basis, delta = ("fraction", frac[2]) if not np.isnan(frac[2]) else ("score", score[2])
    up = pd.NA if np.isnan(delta) else bool(delta > settings.cd8_up_min_delta)
    return {
        "cd8_fraction_baseline": frac[0],
        "cd8_fraction_post": frac[1],
        "cd8_fraction_delta": frac[2],
        "cd8_score_baseline": score[0],
        "cd8_score_post": score[1],
        "cd8_score_delta": score[2],
        "cd8_up": up,
        "cd8_up_basis": basis if up is not pd.NA else "",
        "cd8_reason": "; ".join(dict.fromkeys(r for r in reasons if r)),
    }


def _inflammation_block(lookup, settings: TableSettings, pair: BiopsyPair) -> dict[str, object]:
    block: dict[str, object] = {}
    deltas = []
    missing = []
    for gene_set in settings.inflammation_sets:
        values = pair.values(lookup, settings.inflammation_metric(gene_set))
        block[f"{gene_set}_baseline"], block[f"{gene_set}_post"] = values[0], values[1]
        block[f"{gene_set}_delta"] = values[2]
        deltas.append(values[2])
        if pair.unmeasured(values[:2]):  # left-out samples have their own reason below
            missing.append(gene_set)
    measured = [d for d in deltas if not np.isnan(d)]
    mean = float(np.mean(measured)) if measured and len(measured) == len(deltas) else np.nan
    problem = pair.problem
    reasons = [problem] if problem else []
    reasons += pair.left_out_reasons()
    if missing and not problem and len(reasons) == 0:
        reasons.append(f"not measured: {', '.join(missing)}")
    block["inflammation_delta_mean"] = mean
    block["inflammation_up"] = (
        pd.NA if np.isnan(mean) else bool(mean > settings.inflammation_up_min_delta)
    )
    block["inflammation_reason"] = "; ".join(reasons)
    return block


NO_TUMOR_VARIANTS = (
    "no tumor_variants VCF in the patients sheet (tumour not sequenced): the plasma samples "
    "cannot be tracked"
)
"""ctDNA reason of a patient with plasma samples but no tumour variants to track."""


def _ctdna_block(outputs: StepOutputs, patient: str) -> dict[str, object]:
    table = outputs.ctdna_patients
    rows = table[table["patient_id"] == patient]
    flags = ("ctdna_any_fall", *(f"ctdna_{flag}" for flag in CTDNA_FLAGS))
    block: dict[str, object] = {
        "ctdna_baseline_mean_vaf": np.nan,
        "ctdna_nadir_mean_vaf": np.nan,
        "ctdna_nadir_day": pd.NA,
        "ctdna_nadir_change_pct": np.nan,
        "ctdna_latest_day": pd.NA,
        "ctdna_latest_change_pct": np.nan,
    } | dict.fromkeys(flags, pd.NA)
    has_plasma = (
        (outputs.samples["patient_id"] == patient) & (outputs.samples["assay"] == vocabulary.CFDNA)
    ).any()
    variants = outputs.patients.get("tumor_variants")
    if has_plasma and variants is not None and not as_text(variants.get(patient, "")):
        return block | {"ctdna_reason": NO_TUMOR_VARIANTS}
    if not len(rows):
        return block | {"ctdna_reason": "not tracked" if has_plasma else "no plasma samples"}
    row = rows.iloc[0]
    block |= {
        "ctdna_baseline_mean_vaf": as_float(row["baseline_vaf"]),
        "ctdna_nadir_mean_vaf": as_float(row["nadir_vaf"]),
        "ctdna_nadir_day": as_int(row["nadir_day"]),
        "ctdna_nadir_change_pct": as_float(row["best_change_pct"]),
        "ctdna_latest_day": as_int(row["latest_day"]),
        "ctdna_latest_change_pct": as_float(row["latest_change_pct"]),
    }
    if not as_bool(row["evaluable"]):
        return block | {"ctdna_reason": as_text(row["reason"]) or "not evaluable"}
    timepoints = outputs.ctdna_timepoints
    falls = timepoints.loc[timepoints["patient_id"] == patient, "fall"].map(as_bool)
    block["ctdna_any_fall"] = bool(falls.any())
    for flag in CTDNA_FLAGS:
        block[f"ctdna_{flag}"] = as_bool(row[flag])
    return block | {"ctdna_reason": as_text(row["reason"])}


def _qc_flags(
    outputs: StepOutputs,
    settings: TableSettings,
    patient: str,
    pair_samples: Sequence[str],
    qc: pd.DataFrame,
    car: pd.DataFrame,
    left_out: frozenset[str] = frozenset(),
) -> str:
    """Semicolon-separated QC warnings about the samples behind a patient's row.

    ``few_cells:<sample>`` fewer QC-passed cells than ``min_qc_cells`` in a paired scRNA
    biopsy; ``half_cells_failed_qc:<sample>`` QC removed more than half of its cells;
    ``car_call_without_baseline:<sample>`` the post-infusion CAR call had no pre-infusion
    biopsy to estimate background from (floor only); ``ctdna_<status>:<sample>`` a plasma
    sample without coverage or evaluable variants; ``unusable_input:<sample>`` input inspection
    found a file of the sample unusable, so it was left out (``left_out``: those samples of the
    cohort). ``qc`` and ``car`` are the step tables indexed by sample.
    """
    flags = []
    for sample in (s for s in pair_samples if s in qc.index):
        cells, before = int(qc.loc[sample, "cells_after"]), int(qc.loc[sample, "cells_before"])
        if cells < settings.min_qc_cells:
            flags.append(f"few_cells:{sample}")
        if before and cells / before < 0.5:
            flags.append(f"half_cells_failed_qc:{sample}")
    post = pair_samples[1] if len(pair_samples) > 1 else ""
    has_background = "background_sample" in car.columns
    if post in car.index and has_background and not as_text(car.loc[post, "background_sample"]):
        flags.append(f"car_call_without_baseline:{post}")
    ctdna = outputs.ctdna_samples
    for row in ctdna[ctdna["patient_id"] == patient].itertuples(index=False):
        if row.call_status in ("no_coverage", "no_evaluable_variants"):
            flags.append(f"ctdna_{row.call_status}:{row.sample_id}")
    mine = outputs.samples.index[outputs.samples["patient_id"] == patient]
    flags += [f"unusable_input:{sample}" for sample in mine if sample in left_out]
    return ";".join(flags)


def _unusable_samples(outputs: StepOutputs) -> set[str]:
    """The samples whose input files inspection found unusable (left out of the analyses;
    the samples table has the problem in ``input_problem``)."""
    inventory = outputs.input_qc
    if "usable" not in inventory.columns:
        return set()
    unusable = inventory[inventory["usable"].map(as_text) == "False"]
    return {str(s) for s in unusable["sample_id"]}


SINGLE_CELL_METRIC_PREFIX = "fraction_of_cells/"
"""Expression metrics that only single-cell samples have (cell-type fractions)."""


def check_metrics(outputs: StepOutputs, settings: TableSettings) -> None:
    """Every configured metric name is one the expression stage wrote, when it wrote any.

    A misspelt ``tables.cd8_score_metric`` would otherwise give a column empty for every
    patient. Raises ValueError naming the config key and the closest name written.
    """
    written = set()
    for assay in outputs.expression_metrics:
        written |= set(outputs.metrics(assay)["metric"])
    if not written:
        return
    # per-cell metrics come from single-cell samples only: a bulk-only cohort has none, and
    # its CD8 fraction is then not evaluable (not a misspelt key)
    single_cell = vocabulary.SCRNA in outputs.expression_metrics
    wanted = {
        "tables.cd8_fraction_metric": settings.cd8_fraction_metric,
        "tables.cd8_score_metric": settings.cd8_score_metric,
    } | {
        f"tables.inflammation_sets ({name})": settings.inflammation_metric(name)
        for name in settings.inflammation_sets
    }
    problems = []
    for key, metric in wanted.items():
        if metric.startswith(SINGLE_CELL_METRIC_PREFIX) and not single_cell:
            continue
        if metric not in written:
            close = get_close_matches(metric, sorted(written), 1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"config {key}: no sample has the expression metric {metric!r}{hint}")
    if problems:
        raise ValueError("\n".join(problems))


# --- the table --------------------------------------------------------------------------------


def patient_table(outputs: StepOutputs, settings: TableSettings) -> pd.DataFrame:
    """The per-patient result table, one row per patient in sheet order."""
    pairs = biopsy_pairs(outputs.samples, settings.biopsy_assays)
    lookup = _metric_lookup(outputs)
    clinical = outputs.patients.drop(
        columns=[c for c in FILE_COLUMNS if c in outputs.patients.columns]
    )
    check_metrics(outputs, settings)
    qc = outputs.expression_qc.set_index("sample_id")
    car = outputs.car.set_index("sample_id")
    left_out = frozenset(_unusable_samples(outputs))
    rows = []
    for patient in outputs.patients.index:
        patient = str(patient)
        if patient in pairs.index:
            assay, baseline, post = pairs.loc[patient]
        else:
            assay = baseline = post = ""
        row: dict[str, object] = {"patient_id": patient}
        row |= {column: clinical.loc[patient, column] for column in clinical.columns}
        row |= {
            "biopsy_assay": assay,
            "biopsy_baseline_sample": baseline,
            "biopsy_post_sample": post,
        }
        row |= _car_block(outputs, patient, post, left_out)
        pair = BiopsyPair(assay, baseline, post, left_out)
        row |= _cd8_block(lookup, settings, pair)
        row |= _inflammation_block(lookup, settings, pair)
        row |= _ctdna_block(outputs, patient)
        row |= tcr_block(outputs, patient)
        row["qc_flags"] = _qc_flags(outputs, settings, patient, [baseline, post], qc, car, left_out)
        rows.append(row)
    table = pd.DataFrame(rows)
    table[list(BOOLEAN_COLUMNS)] = table[list(BOOLEAN_COLUMNS)].astype("boolean")
    table[list(INTEGER_COLUMNS)] = table[list(INTEGER_COLUMNS)].astype("Int64")
    return with_tcr_types(table)


def with_blood_columns(table: pd.DataFrame, blood: pd.DataFrame | None) -> pd.DataFrame:
    """The patient table with the blood stage's columns appended (``car_blood_*``,
    ``cytokine_{analyte}_*``; :func:`carmscope.blood.cohort.patient_columns`).

    ``blood``: ``results/blood/patients.tsv`` read as a frame, or None when the cohort has no
    blood samples (the table is returned unchanged). ``crs_grade`` comes from the sheet.
    """
    if blood is None:
        return table
    extra = blood.drop(
        columns=[c for c in blood.columns if c in table.columns and c != "patient_id"]
    )
    return table.merge(extra, on="patient_id", how="left")
