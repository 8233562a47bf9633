"""Blood draws of a synthetic patient: CAR transgene by qPCR and serum cytokines, with truth.

Shaped like the CT-0508 trial (Reiss et al. 2025): CAR-M found in blood for about 48 hours after
infusion, cytokine release syndrome (grade 1-2) in 9 of 14 patients. Each patient with blood
draws has them before the first infusion and at :data:`DRAW_HOURS` after it; time 0 is the first
infusion, and the CAR level follows the patient's arm (:data:`INFUSION_HOURS`: fractionated on
days 1, 3 and 5, or a single infusion): every infusion adds its share of the dose, which
leaves blood mono-exponentially with the patient's half-life; qPCR values carry 10% log-normal
noise and those below :data:`CAR_LLOQ` are written as ``<LLOQ``. Cytokines rise in CRS
patients to a peak at 24 or 48 hours.

Values depend only on the seed and the patient ID (:func:`blood_values`), so the writer and the
truth agree. The truth (:func:`kinetics_truth`, :func:`cytokine_truth`) is computed from the
values as written (parsed back from their text), by a direct implementation of the rules in
docs/blood.md independent of :mod:`carmscope.blood`.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from carmscope.vocabulary import BLOOD, BULK_RNA, CAR_PCR
from carmscope.vocabulary import CYTOKINES as CYTOKINES_ASSAY  # CYTOKINES here: the analytes

DRAW_HOURS: tuple[float, ...] = (2.0, 6.0, 24.0, 48.0, 72.0, 168.0)
"""Post-infusion blood draws, hours after the first infusion (a draw on an infusion day is
taken before that day's infusion)."""
PRE_DOSE_HOURS = -1.0
INFUSION_HOURS: dict[str, tuple[float, ...]] = {
    "fractionated": (0.0, 48.0, 96.0),
    "single": (0.0,),
}
CAR_ANALYTE, CAR_UNIT, CAR_LLOQ = "CAR", "copies/ug gDNA", 50.0
CYTOKINE_UNIT = "pg/mL"
CYTOKINES: dict[str, tuple[float, float, tuple[float, float]]] = {
    # analyte: (median baseline, LLOQ, range of the peak fold in CRS)
    "IL6": (3.0, 1.5, (20.0, 150.0)),
    "IFNG": (4.0, 3.0, (5.0, 30.0)),
    "TNF": (2.0, 1.0, (1.5, 4.0)),
    "IL10": (1.5, 1.0, (3.0, 12.0)),
    "CXCL10": (150.0, 10.0, (4.0, 15.0)),
    "IL1RA": (300.0, 20.0, (2.0, 8.0)),
}
CRS_GRADES: dict[int, str] = {
    0: "1",
    1: "2",
    3: "1",
    4: "1",
    6: "2",
    8: "1",
    9: "1",
    11: "2",
    13: "1",
}
"""Template -> ASTCT CRS grade for the 9 of 14 templates with CRS (others grade 0)."""
SINGLE_DRAW_TEMPLATES = frozenset({7})
"""Templates with one blood draw only (24 h): kinetics not evaluable."""
NO_QPCR_TEMPLATES = frozenset({13})
"""Templates with cytokines but no CAR qPCR: no blood CAR samples."""
PBMC_TEMPLATES = frozenset({3, 5})
"""Templates that also give PBMC bulk RNA-seq (reads only, tissue blood) at :data:`PBMC_HOURS`
(not in the tiny preset)."""
PBMC_HOURS: tuple[float, ...] = (PRE_DOSE_HOURS, 2.0, 24.0, 72.0, 168.0)
PBMC_CAR_FRACTION_PER_COPY = 2e-7
"""CAR reads per read of PBMC RNA per CAR copy/ug gDNA measured by qPCR in the same draw."""
MIN_ADJ_R2 = 0.7
"""Smallest adjusted R^2 of a terminal fit in the truth (the config default)."""
BLQ_FRACTION = 0.5
"""Cytokine values below LLOQ count as this fraction of it in the truth (the config default)."""


def crs_grade(template: int) -> str:
    """The patient's CRS grade ('0'..'2') from its template."""
    return CRS_GRADES.get(template, "0")


def draw_hours(template: int) -> tuple[float, ...]:
    """Hours of the patient's blood draws, pre-dose first."""
    if template in SINGLE_DRAW_TEMPLATES:
        return (24.0,)
    return (PRE_DOSE_HOURS, *DRAW_HOURS)


def draw_day(hours: float) -> int:
    """The sample's ``day``: 0 before infusion, else the day after infusion it falls in."""
    return 0 if hours <= 0 else math.ceil(hours / 24)


def sample_id_of(patient_id: str, assay_label: str, hours: float) -> str:
    """``CARM-001_H24_pcr`` (``pre`` before infusion)."""
    return f"{patient_id}_{timepoint_of(hours)}_{assay_label}"


def timepoint_of(hours: float) -> str:
    return "pre" if hours <= 0 else f"H{int(hours)}"


def blood_sample_specs(patient_id: str, template: int) -> list[dict[str, object]]:
    """The blood samples of a patient: ``sample_id``, ``assay``, ``hours``, ``day``,
    ``timepoint`` and ``counts`` (relative to the cohort folder), qPCR then cytokines."""
    specs = []
    assays = ((CAR_PCR, "pcr"), (CYTOKINES_ASSAY, "cyt"))
    for assay, label in assays:
        if assay == CAR_PCR and template in NO_QPCR_TEMPLATES:
            continue
        for hours in draw_hours(template):
            sample_id = sample_id_of(patient_id, label, hours)
            specs.append(
                {
                    "sample_id": sample_id,
                    "assay": assay,
                    "hours": hours,
                    "day": draw_day(hours),
                    "timepoint": timepoint_of(hours),
                    "counts": f"blood/{patient_id}/{sample_id}.tsv",
                }
            )
    return specs


def blood_samples(patient_id: str, template: int, dosing: str = "single", seed: int = 0) -> list:
    """The patient's blood draws as :class:`~carmscope.synthetic.design.SampleDesign`: qPCR and
    cytokine tables, and PBMC bulk RNA reads for :data:`PBMC_TEMPLATES` (CAR reads present
    where the same draw's qPCR is quantifiable; ``dosing`` and ``seed`` decide that)."""
    from carmscope.synthetic.design import SampleDesign

    samples = [
        SampleDesign(
            sample_id=spec["sample_id"],
            patient_id=patient_id,
            timepoint=spec["timepoint"],
            day=spec["day"],
            assay=spec["assay"],
            counts=spec["counts"],
            hours=spec["hours"],
            tissue=BLOOD,
        )
        for spec in blood_sample_specs(patient_id, template)
    ]
    if template not in PBMC_TEMPLATES:
        return samples
    values = blood_values(patient_id, template, dosing, seed)
    for hours in PBMC_HOURS:
        sample_id = sample_id_of(patient_id, "pbmc", hours)
        samples.append(
            SampleDesign(
                sample_id=sample_id,
                patient_id=patient_id,
                timepoint=timepoint_of(hours),
                day=draw_day(hours),
                assay=BULK_RNA,
                reads=f"pbmc/{sample_id}.fastq.gz",
                car_present=pbmc_car_fraction(values, hours) > 0,
                hours=hours,
                tissue=BLOOD,
            )
        )
    return samples


def pbmc_car_fraction(values: pd.DataFrame, hours: float) -> float:
    """CAR reads per read of the PBMC RNA drawn at ``hours``: proportional to the qPCR value of
    the same draw, 0 where that is below its LLOQ (``values``: :func:`blood_values`)."""
    qpcr = values[(values["assay"] == CAR_PCR) & (values["hours"] == hours)]
    if qpcr.empty or bool(qpcr["blq"].iloc[0]):
        return 0.0
    return float(qpcr["value"].iloc[0]) * PBMC_CAR_FRACTION_PER_COPY


def pbmc_car_reads(fraction: float, total_reads: int) -> int:
    """CAR reads the bulk FASTQ writer puts in a PBMC sample (as
    :func:`carmscope.synthetic.bulk_fastq.write_bulk_fastq` counts them)."""
    from carmscope.synthetic.bulk_fastq import MIN_BULK_CAR_READS

    if fraction <= 0:
        return 0
    return min(total_reads, max(MIN_BULK_CAR_READS, round(total_reads * fraction)))


def pbmc_values(patient, seed: int, total_reads: int) -> pd.DataFrame:
    """The patient's PBMC CAR reads per million as written, in the shape of
    :func:`blood_values` (assay ``bulk_rna``; below the limit where no CAR read was written)."""
    values = patient_values(patient, seed)
    rows = []
    for sample in patient.samples:
        if sample.assay == BULK_RNA and sample.tissue == BLOOD:
            reads = pbmc_car_reads(pbmc_car_fraction(values, sample.hours), total_reads)
            rows.append(
                {
                    "sample_id": sample.sample_id,
                    "assay": BULK_RNA,
                    "hours": sample.hours,
                    "value": reads * 1e6 / total_reads,
                    "blq": reads == 0,
                }
            )
    return pd.DataFrame(rows, columns=["sample_id", "assay", "hours", "value", "blq"])


def _format(value: float, lloq: float) -> str:
    return "<LLOQ" if value < lloq else f"{value:.6g}"


def car_levels(rng: np.random.Generator, dosing: str, hours: Iterable[float]) -> list[float]:
    """qPCR CAR copies at ``hours`` for one patient (draws from ``rng``)."""
    amplitude = float(np.exp(rng.normal(math.log(8000.0), 0.4)))
    half_life = float(rng.uniform(6.0, 14.0))
    infusions = INFUSION_HOURS.get(dosing, INFUSION_HOURS["single"])
    share = amplitude / len(infusions)
    levels = []
    for h in hours:
        level = sum(
            share * math.exp(-math.log(2) * (h - t) / half_life) for t in infusions if h > t
        )
        levels.append(level * float(np.exp(rng.normal(0.0, 0.1))))
    return levels


def cytokine_levels(
    rng: np.random.Generator, has_crs: bool, hours: Iterable[float]
) -> dict[str, list[float]]:
    """Serum cytokines at ``hours`` for one patient; CRS peaks at 24 or 48 hours."""
    hours = list(hours)
    peak_at = 24.0 if rng.random() < 0.6 else 48.0
    levels = {}
    for analyte, (median, _lloq, fold_range) in CYTOKINES.items():
        baseline = median * float(np.exp(rng.normal(0.0, 0.5)))
        fold = float(rng.uniform(*fold_range)) if has_crs else float(rng.uniform(1.0, 1.5))
        values = []
        for h in hours:
            if h <= 0:
                shape = 1.0
            else:  # rise to the peak, then back towards baseline over days
                width = 24.0 if h <= peak_at else 36.0
                shape = 1.0 + (fold - 1.0) * math.exp(-(((h - peak_at) / width) ** 2))
            values.append(baseline * shape * float(np.exp(rng.normal(0.0, 0.05))))
        levels[analyte] = values
    return levels


def blood_values(patient_id: str, template: int, dosing: str, seed: int) -> pd.DataFrame:
    """Every blood value of a patient, as written: ``sample_id``, ``assay``, ``hours``,
    ``analyte``, ``text`` (the value cell), ``value`` (parsed; NaN for ``<LLOQ``), ``unit``,
    ``lloq``, ``blq``."""
    from carmscope.synthetic.design import rng_for

    rows = []
    specs = blood_sample_specs(patient_id, template)
    rng = rng_for(seed, patient_id, "blood")
    qpcr = [spec for spec in specs if spec["assay"] == CAR_PCR]
    for spec, level in zip(qpcr, car_levels(rng, dosing, [s["hours"] for s in qpcr]), strict=True):
        rows.append((spec, CAR_ANALYTE, level, CAR_UNIT, CAR_LLOQ))
    cytokine = [spec for spec in specs if spec["assay"] == CYTOKINES_ASSAY]
    levels = cytokine_levels(rng, crs_grade(template) != "0", [s["hours"] for s in cytokine])
    for position, spec in enumerate(cytokine):
        for analyte, values in levels.items():
            rows.append((spec, analyte, values[position], CYTOKINE_UNIT, CYTOKINES[analyte][1]))
    table = []
    for spec, analyte, level, unit, lloq in rows:
        text = _format(level, lloq)
        value = math.nan if text == "<LLOQ" else float(text)
        table.append(
            {
                "sample_id": spec["sample_id"],
                "assay": spec["assay"],
                "hours": spec["hours"],
                "analyte": analyte,
                "text": text,
                "value": value,
                "unit": unit,
                "lloq": lloq,
                "blq": text == "<LLOQ",
            }
        )
    return pd.DataFrame(table)


def write_blood_sample(path: str | os.PathLike, values: pd.DataFrame, sample_id: str) -> dict:
    """Write one sample's long table (``analyte``, ``value``, ``unit``, ``lloq``); returns its
    truth row (number of analytes, how many below LLOQ)."""
    own = values[values["sample_id"] == sample_id]
    table = pd.DataFrame(
        {"analyte": own["analyte"], "value": own["text"], "unit": own["unit"], "lloq": own["lloq"]}
    )
    table.to_csv(path, sep="\t", index=False)
    return {
        "analytes": len(own),
        "below_lloq": int(own["blq"].sum()),
        "hours": float(own["hours"].iloc[0]),
    }


# --- truth: the rules of docs/blood.md, applied directly to the written values -----------------


def _trapezoid(t1: float, t2: float, c1: float, c2: float) -> float:
    if 0 < c2 < c1:
        return (t2 - t1) * (c1 - c2) / (math.log(c1) - math.log(c2))
    return (t2 - t1) * (c1 + c2) / 2


def _terminal_fit(points: list[tuple[float, float]], min_adj_r2: float, min_points: int = 3):
    """(half-life, n, adjusted R^2) of the best log-linear fit over the last n points."""
    candidates = []
    for n in range(min_points, len(points) + 1):
        tail = points[-n:]
        x = np.array([p[0] for p in tail])
        y = np.log([p[1] for p in tail])
        slope, intercept = np.polyfit(x, y, 1)
        residual = float(np.sum((y - (slope * x + intercept)) ** 2))
        total = float(np.sum((y - y.mean()) ** 2))
        if slope >= 0 or total == 0:
            continue
        r2 = 1 - residual / total
        candidates.append((n, -slope, 1 - (1 - r2) * (n - 1) / (n - 2)))
    if not candidates:
        return math.nan, 0, math.nan
    best = max(c[2] for c in candidates)
    n, lam, adj = max((c for c in candidates if c[2] > best - 1e-4), key=lambda c: c[0])
    return (math.log(2) / lam if adj >= min_adj_r2 else math.nan), n, adj


def kinetics_truth(
    values: pd.DataFrame, min_adj_r2: float = MIN_ADJ_R2, assay: str = CAR_PCR
) -> dict[str, object]:
    """The NCA figures of one patient's series of ``assay`` (qPCR by default), from the
    written values."""
    qpcr = values[values["assay"] == assay].sort_values("hours")
    empty = {"cmax": math.nan, "tmax_h": math.nan, "clast": math.nan, "tlast_h": math.nan}
    empty.update(auc_0_tlast=math.nan, half_life_h=math.nan, half_life_points=0)
    empty.update(half_life_adj_r2=math.nan)
    if len(qpcr) < 2:
        return {**empty, "evaluable": False}
    pre = qpcr[qpcr["hours"] <= 0]
    start = 0.0 if pre.empty or pre["blq"].iloc[-1] else float(pre["value"].iloc[-1])
    post = [
        (h, 0.0 if b else v)
        for h, v, b in zip(qpcr["hours"], qpcr["value"], qpcr["blq"], strict=True)
        if h > 0
    ]
    quantified = [i for i, (_, v) in enumerate(post) if v > 0]
    if not quantified:
        return {**empty, "evaluable": False}
    first, last = quantified[0], quantified[-1]
    kept = [(0.0, start)] + [p for i, p in enumerate(post) if i <= last and (i < first or p[1] > 0)]
    cmax = max(v for _, v in kept)
    tmax = next(t for t, v in kept if v == cmax)
    auc = sum(_trapezoid(a[0], b[0], a[1], b[1]) for a, b in itertools.pairwise(kept))
    half_life, n, adj = _terminal_fit([(t, v) for t, v in kept if t > tmax and v > 0], min_adj_r2)
    return {
        "cmax": cmax,
        "tmax_h": tmax,
        "clast": post[last][1],
        "tlast_h": post[last][0],
        "auc_0_tlast": auc,
        "half_life_h": half_life,
        "half_life_points": n,
        "half_life_adj_r2": adj,
        "evaluable": True,
    }


def cytokine_truth(values: pd.DataFrame, blq_fraction: float = BLQ_FRACTION) -> pd.DataFrame:
    """Baseline, peak, its time and peak fold of each cytokine, from the written values."""
    rows = []
    own = values[values["assay"] == CYTOKINES_ASSAY]
    for analyte, block in own.groupby("analyte", sort=False):
        block = block.sort_values("hours")
        level = np.where(block["blq"], block["lloq"] * blq_fraction, block["value"])
        hours = block["hours"].to_numpy()
        pre, post = level[hours <= 0], level[hours > 0]
        row = {"analyte": analyte, "baseline": math.nan, "peak": math.nan, "tmax_h": math.nan}
        row["peak_fold"] = math.nan
        if len(post):
            row["peak"] = float(post.max())
            row["tmax_h"] = float(hours[hours > 0][int(np.argmax(post))])
        if len(pre):
            row["baseline"] = float(pre[-1])
            if len(post):
                row["peak_fold"] = row["peak"] / row["baseline"]
        rows.append(row)
    return pd.DataFrame(rows, columns=["analyte", "baseline", "peak", "tmax_h", "peak_fold"])


ASSAYS = (CAR_PCR, CYTOKINES_ASSAY)
"""The blood assays this module writes."""
KINETICS_TRUTH = "truth/blood_kinetics.tsv"
CYTOKINES_TRUTH = "truth/blood_cytokines.tsv"


def patient_values(patient, seed: int) -> pd.DataFrame:
    """:func:`blood_values` of a :class:`~carmscope.synthetic.design.PatientDesign`."""
    return blood_values(patient.patient_id, patient.template, patient.dosing, seed)


def write_truth(folder: str | os.PathLike, patients: list, seed: int, total_reads: int = 0) -> None:
    """Write the blood truth tables of ``patients`` into the truth ``folder``:
    ``blood_kinetics.tsv`` (NCA per patient and measure: qPCR for every patient, PBMC bulk RNA
    CAR reads per million, as written with ``total_reads`` reads, for those with PBMC) and
    ``blood_cytokines.tsv``."""
    kinetics, cytokines = [], []
    for patient in patients:
        values = patient_values(patient, seed)
        row = {"patient_id": patient.patient_id, "crs_grade": patient.crs_grade}
        row["dosing"] = patient.dosing
        kinetics.append({**row, "measure": "qpcr", **kinetics_truth(values)})
        pbmc = pbmc_values(patient, seed, total_reads) if total_reads else None
        if pbmc is not None and len(pbmc):
            truth = kinetics_truth(pbmc, assay=BULK_RNA)
            kinetics.append({**row, "measure": BULK_RNA, **truth})
        if (values["assay"] == CYTOKINES_ASSAY).any():
            cytokines.append(cytokine_truth(values).assign(patient_id=patient.patient_id))
    folder = os.fspath(folder)
    pd.DataFrame(kinetics).to_csv(os.path.join(folder, "blood_kinetics.tsv"), sep="\t", index=False)
    table = pd.concat(cytokines) if cytokines else pd.DataFrame(columns=["patient_id"])
    table.to_csv(os.path.join(folder, "blood_cytokines.tsv"), sep="\t", index=False)
