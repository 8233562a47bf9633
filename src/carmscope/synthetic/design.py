"""Design of a synthetic CAR-M trial cohort: patients, their samples, and the ground truth.

Why over 500 lines: it is one concern, the cohort's design, and about a fifth of it is the
table of CT-0508-like patient templates, kept beside the parameters and draws that use it.

The default cohort mirrors the phase 1 trial of CT-0508 (Reiss et al., Nature Medicine 2025,
NCT04660929): 14 patients with HER2-overexpressing solid tumours (8 breast, 2
gastro-oesophageal, 2 salivary, 1 cholangiocarcinoma, 1 ovarian; HER2 IHC 3+ in 9 and 2+ in 5),
fractionated or single-day dosing, CAR-M found in 13 of 14 post-infusion biopsies, CD8+ T cell
infiltration and inflammatory signalling up after infusion, and a ctDNA fall in 8 of the 13
patients with evaluable ctDNA (62%).

Patient ``i`` (0-based) follows template ``i % 14`` for its categorical traits and draws its
numbers from a generator seeded by ``(seed, i)`` alone, so a patient's design does not change
when patients are added to the cohort.

Nothing here writes files; :mod:`carmscope.synthetic.cohort` turns a design into files.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace

import numpy as np

from carmscope.celltypes import CELL_TYPES
from carmscope.synthetic import blood, tcr
from carmscope.vocabulary import (
    BIOPSY_ASSAYS,
    BULK_RNA,
    CFDNA,
    SCRNA,
    baseline_position,
    post_infusion_positions,
)

# --- CT-0508-like templates (one per patient of the default cohort) --------------------------

INDICATIONS = (
    "breast",
    "breast",
    "gastroesophageal",
    "breast",
    "salivary",
    "breast",
    "breast",
    "cholangiocarcinoma",
    "breast",
    "ovarian",
    "breast",
    "gastroesophageal",
    "salivary",
    "breast",
)
HER2_IHC = ("3+", "3+", "3+", "2+", "3+", "3+", "2+", "3+", "2+", "3+", "2+", "3+", "2+", "3+")
DOSING = (
    "fractionated",
    "fractionated",
    "single",
    "fractionated",
    "fractionated",
    "single",
    "fractionated",
    "fractionated",
    "single",
    "fractionated",
    "single",
    "fractionated",
    "single",
    "fractionated",
)
BEST_RESPONSE = ("SD", "PD", "PD", "SD", "PD", "PD", "SD", "PD", "PD", "PD", "SD", "PD", "PD", "PD")

CTDNA_TRAJECTORIES: dict[str, tuple[float, float, float]] = {
    # post-infusion mean VAF as a multiple of baseline, at days 8, 29 and 57
    "transient_fall": (0.30, 0.90, 1.10),
    "confirmed_fall": (0.20, 0.25, 2.50),
    "stable": (1.00, 1.10, 0.90),
    "rise": (1.80, 3.00, 4.00),
    "clearance": (0.0, 0.0, 0.0),
}
"""Trajectory shapes, chosen far from every flag threshold so the truth is unambiguous."""

TRAJECTORY_TEMPLATES: tuple[str | None, ...] = (
    "transient_fall",
    "confirmed_fall",
    "stable",
    "transient_fall",
    "clearance",
    "rise",
    "transient_fall",
    "stable",
    "confirmed_fall",
    "transient_fall",
    "rise",
    "stable",
    "transient_fall",
    None,  # no evaluable ctDNA: no tumour variants, no plasma samples
)

CAR_NEGATIVE_TEMPLATES = frozenset({7})
"""Templates whose post-infusion biopsy carries no CAR-M (1 of 14: 92% detection)."""

CD8_DECREASE_TEMPLATES = frozenset({11})
"""Templates whose CD8+ T cell fraction falls after infusion despite CAR-M (non-responder)."""

BULK_TEMPLATES = frozenset({1, 6, 11})
"""Templates that also give bulk RNA-seq of both biopsies."""

THREE_PLASMA_TEMPLATES = frozenset({3, 8, 12})
"""Templates with 3 plasma timepoints (days 0, 8, 29) instead of 4."""

PLASMA_DAYS = (0, 8, 29, 57)
BIOPSY_DAYS = {"screening": -21, "D8": 8}

BASELINE_COMPOSITION: dict[str, float] = {
    # fractions of good-quality cells in a baseline biopsy, CD8 T cells excluded (drawn per patient)
    "tumour_epithelium": 0.40,
    "cd4_t": 0.08,
    "treg": 0.04,
    "nk": 0.03,
    "b": 0.03,
    "plasma": 0.02,
    "macrophage_m1": 0.04,
    "macrophage_m2": 0.10,
    "monocyte": 0.04,
    "dc": 0.02,
    "fibroblast": 0.10,
    "endothelium": 0.05,
}

ERBB2_BY_HER2 = {
    # HER2 IHC score -> (log2 fold change of ERBB2 in expressing tumour cells, fraction expressing)
    "3+": (5.0, 0.95),
    "2+": (3.0, 0.70),
    "1+": (1.5, 0.40),
    "0": (0.0, 0.0),
}

# --- ctDNA flag definitions (the truth the ctDNA analysis must recover) -----------------------

MOLECULAR_RESPONSE_FALL = 0.5
"""A post-infusion mean VAF at most this fraction of baseline is a fall (>= 50% decrease)."""

PROGRESSION_RISE = 1.5
"""A latest post-infusion mean VAF at least this multiple of baseline is progression."""


def ctdna_flags(baseline: float, post: list[float]) -> dict[str, bool]:
    """Molecular-response flags of one patient's ctDNA trajectory.

    Parameters
    ----------
    baseline
        Mean VAF of the last pre-infusion plasma sample.
    post
        Mean VAF of each post-infusion plasma sample, in order of day; 0 means no ctDNA.

    Returns
    -------
    dict
        ``molecular_response``: some sample falls >= 50% from baseline and the next sample, if
        any, confirms it. ``transient_decrease``: a fall >= 50% followed by a later sample above
        half of baseline again. ``clearance``: detected at baseline and absent from every
        post-infusion sample. ``progression``: the latest sample is >= 1.5x baseline.
    """
    if baseline <= 0 or not post:
        return dict.fromkeys(
            ("molecular_response", "transient_decrease", "clearance", "progression"), False
        )
    fell = [value <= MOLECULAR_RESPONSE_FALL * baseline for value in post]
    confirmed = any(fell[i] and (i == len(post) - 1 or fell[i + 1]) for i in range(len(post)))
    rebound = any(
        fell[i] and not fell[j] for i in range(len(post)) for j in range(i + 1, len(post))
    )
    return {
        "molecular_response": confirmed,
        "transient_decrease": rebound,
        "clearance": all(value == 0 for value in post),
        "progression": post[-1] >= PROGRESSION_RISE * baseline,
    }


# --- parameters -------------------------------------------------------------------------------

PLASMA_PANELS = ("cohort", "patient")
"""Values of ``CohortParams.plasma_panel``: the sites a patient's plasma BAMs cover."""


@dataclass(frozen=True)
class CohortParams:
    """Size, seed and effect parameters of a synthetic cohort.

    The same parameters always give the same design and byte-identical files.
    """

    n_patients: int = 14
    seed: int = 508
    templates: tuple[int, ...] | None = None
    """Template index of each patient; default ``i % 14`` for patient ``i``."""
    cells_per_biopsy: int = 1500
    """Cells per scRNA biopsy, low-quality cells included."""
    low_quality_fraction: float = 0.06
    """Fraction of barcodes that are damaged cells (few genes, high mitochondrial fraction)."""
    median_umis_per_cell: int = 4000
    n_background_genes: int = 6000
    """Genes with no cell-type programme, on top of the markers and scored gene sets (enough
    that the ~700 hallmark inflammation genes are a realistic share of the library)."""
    inflammatory_response_fraction: float = 0.5
    """Fraction of the gene sets' inflammatory genes that rise after infusion."""
    car_macrophage_fraction: float = 0.25
    """Mean fraction of macrophages that carry CAR transcripts in a CAR-positive biopsy."""
    car_umis_per_car_cell: float = 4.0
    """Mean CAR UMIs per CAR+ cell (1 + Poisson(mean - 1))."""
    car_feature_in_matrix: bool = False
    """Also write the CAR as a feature of the count matrix (reference built with the construct)."""
    host_reads_per_cell: int = 30
    """Host (non-CAR) reads per cell in the 10x BAM, endogenous CD8A and CD247 among them."""
    read_length: int = 91
    """10x 3' v3 read 2 length."""
    read_error_rate: float = 0.005
    bulk_reads: int = 200_000
    """Reads per bulk RNA-seq FASTQ."""
    variants_per_patient: int = 8
    indels_per_patient: int = 1
    """Of the patient's variants, how many are short indels."""
    cfdna_depth: int = 600
    """Mean unique fragment depth at each panel site in plasma BAMs."""
    cfdna_duplicate_rate: float = 0.15
    cfdna_error_rate: float = 0.001
    reference_contigs: int = 3
    reference_contig_length: int = 60_000
    inflammation_log2fc: tuple[float, float] = (0.8, 1.5)
    """Range of the post-infusion log2 fold change of the inflammatory programme (CAR+)."""
    cd8_fraction_baseline: tuple[float, float] = (0.03, 0.10)
    cd8_fraction_increase: tuple[float, float] = (0.05, 0.12)
    ctdna_baseline_vaf: tuple[float, float] = (0.01, 0.08)
    n_plasma_normals: int = 0
    """Tumour-free plasma BAMs (a panel of normals) over the whole panel, written to
    ``cfdna_normals/PON-001.bam``...: same depth, duplicates and error model, no tumour alleles."""
    plasma_panel: str = "cohort"
    """Sites a patient's plasma BAMs cover: ``cohort``, every site of the whole cohort's panel
    (other patients' sites give per-site background, for ``ctdna.background: cohort``); or
    ``patient``, only the patient's own variant sites (a tumour-informed assay, for
    ``ctdna.background: normals``; plasma data then grow with patients, not patients x sites).
    Plasma normals cover the whole panel either way."""

    def template_of(self, index: int) -> int:
        """Template of patient ``index`` (0-based)."""
        if self.templates is not None:
            return self.templates[index]
        return index % len(INDICATIONS)

    def __post_init__(self) -> None:
        if self.n_patients < 1:
            raise ValueError("n_patients must be at least 1")
        if self.templates is not None and len(self.templates) != self.n_patients:
            raise ValueError("templates must name one template per patient")
        if self.n_plasma_normals < 0:
            raise ValueError("n_plasma_normals must not be negative")
        if self.plasma_panel not in PLASMA_PANELS:
            raise ValueError(
                f"plasma_panel must be one of {', '.join(map(repr, PLASMA_PANELS))}, "
                f"not {self.plasma_panel!r}"
            )


PRESETS: dict[str, CohortParams] = {
    "default": CohortParams(),
    "tiny": CohortParams(
        n_patients=4,
        templates=(0, 7, 1, 13),
        cells_per_biopsy=300,
        median_umis_per_cell=2500,
        n_background_genes=2000,
        host_reads_per_cell=10,
        bulk_reads=20_000,
        variants_per_patient=4,
        cfdna_depth=200,
        reference_contigs=1,
        reference_contig_length=20_000,
        n_plasma_normals=3,
    ),
}
"""Named parameter sets: ``tiny`` runs end to end in seconds (CAR+ and CAR- post-infusion
biopsies, bulk RNA, falling and stable ctDNA trajectories, a patient without ctDNA, three
tumour-free plasma normals); ``default`` mirrors CT-0508 (no plasma normals)."""


def params_from_config(section: dict) -> CohortParams:
    """Parameters from the workflow config's ``synthetic`` section (preset plus overrides)."""
    values = dict(section)
    values.pop("outdir", None)
    base = PRESETS[values.pop("preset", "default")]
    for key in (
        "templates",
        "inflammation_log2fc",
        "cd8_fraction_baseline",
        "cd8_fraction_increase",
        "ctdna_baseline_vaf",
    ):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    return replace(base, **values)


# --- the design -------------------------------------------------------------------------------


def rng_for(seed: int, *keys: object) -> np.random.Generator:
    """A generator seeded by ``seed`` and any keys (e.g. a sample ID and a purpose).

    Keys are hashed with SHA-256, so the stream depends only on them, never on call order.
    """
    digest = hashlib.sha256("\x1f".join(map(str, (seed, *keys))).encode()).digest()
    return np.random.default_rng(np.frombuffer(digest, dtype=np.uint32))


@dataclass(frozen=True)
class SampleDesign:
    """One sample of a synthetic patient and the truth it is simulated from."""

    sample_id: str
    patient_id: str
    timepoint: str
    day: int
    assay: str
    """``scrna``, ``bulk_rna`` or ``cfdna``."""
    counts: str = ""
    """Count file, relative to the cohort folder ('' for cfDNA)."""
    reads: str = ""
    """Reads file, relative to the cohort folder."""
    car_present: bool = False
    """CAR-M are in this biopsy (post-infusion biopsy of a CAR-positive patient)."""
    composition: dict[str, float] = field(default_factory=dict)
    """Expected fraction of good-quality cells per cell type (biopsies)."""
    inflammation_log2fc: float = 0.0
    """Log2 fold change of the inflammatory programme against the patient's baseline."""
    ctdna_fold: float | None = None
    """Mean VAF as a multiple of the patient's baseline VAF (cfDNA)."""
    hours: float | None = None
    """Hours from the first infusion (blood draws); None: ``day`` x 24."""
    tissue: str = ""
    """``blood`` for blood draws, ``tumour`` or ``blood`` for ``tcr`` samples; '' (the
    assay's default) otherwise."""
    vdj: str = ""
    """10x contig annotations of a scRNA biopsy's T cells, relative to the cohort folder."""

    @property
    def is_biopsy(self) -> bool:
        return self.assay in BIOPSY_ASSAYS


@dataclass(frozen=True)
class PatientDesign:
    """One synthetic patient: clinical traits, truth parameters and samples."""

    patient_id: str
    index: int
    template: int
    indication: str
    her2_ihc: str
    dosing: str
    best_response: str
    car_positive: bool
    car_macrophage_fraction: float
    cd8_fraction_baseline: float
    cd8_fraction_post: float
    inflammation_log2fc: float
    treg_shift: float
    m2_shift: float
    erbb2_log2fc: float
    erbb2_expressing_fraction: float
    ctdna_trajectory: str | None
    ctdna_baseline_vaf: float
    tumor_variants: str
    """Variants VCF relative to the cohort folder ('' when the patient has no ctDNA)."""
    samples: tuple[SampleDesign, ...]
    crs_grade: str = ""
    """ASTCT cytokine release syndrome grade ('0'..'5'; :mod:`carmscope.synthetic.blood`)."""

    def ctdna_truth(self) -> dict[str, bool]:
        """The patient's true ctDNA flags (see :func:`ctdna_flags`)."""
        plasma = [s for s in self.samples if s.assay == CFDNA]
        if not plasma:
            return ctdna_flags(0.0, [])
        days = [s.day for s in plasma]
        baseline = plasma[baseline_position(days)]
        post = [plasma[position] for position in post_infusion_positions(days)]
        return ctdna_flags(
            self.ctdna_baseline_vaf * baseline.ctdna_fold,
            [self.ctdna_baseline_vaf * s.ctdna_fold for s in post],
        )


def patient_id_of(index: int) -> str:
    """Stable patient ID: ``CARM-001`` for patient 0 (width fixed so IDs never change)."""
    return f"CARM-{index + 1:03d}"


def _composition(cd8_fraction: float, treg_shift: float = 0.0, m2_shift: float = 0.0) -> dict:
    """Cell-type fractions summing to 1 with CD8 T cells at exactly ``cd8_fraction``."""
    others = dict(BASELINE_COMPOSITION)
    others["treg"] = max(others["treg"] + treg_shift, 0.005)
    others["macrophage_m2"] = max(others["macrophage_m2"] + m2_shift, 0.01)
    others["macrophage_m1"] = others["macrophage_m1"] - m2_shift  # repolarisation to M1-like
    scale = (1.0 - cd8_fraction) / sum(others.values())
    fractions = {cell_type: others.get(cell_type, 0.0) * scale for cell_type in CELL_TYPES}
    fractions["cd8_t"] = cd8_fraction
    return fractions


def design_patient(index: int, params: CohortParams) -> PatientDesign:
    """The design of patient ``index`` (0-based); depends only on ``index`` and ``params``."""
    template = params.template_of(index)
    rng = rng_for(params.seed, "patient", index)
    patient_id = patient_id_of(index)
    car_positive = template not in CAR_NEGATIVE_TEMPLATES
    cd8_baseline = float(rng.uniform(*params.cd8_fraction_baseline))
    if not car_positive:
        cd8_post = cd8_baseline
    elif template in CD8_DECREASE_TEMPLATES:
        cd8_baseline = max(cd8_baseline, 0.07)  # room for a fall well above sampling noise
        cd8_post = cd8_baseline - float(rng.uniform(0.025, 0.035))
    else:
        cd8_post = cd8_baseline + float(rng.uniform(*params.cd8_fraction_increase))
    inflammation = float(rng.uniform(*params.inflammation_log2fc)) if car_positive else 0.0
    treg_shift = -float(rng.uniform(0.0, 0.02)) if car_positive else 0.0
    m2_shift = -float(rng.uniform(0.01, 0.04)) if car_positive else 0.0
    car_macrophage_fraction = (
        float(np.clip(params.car_macrophage_fraction * rng.uniform(0.6, 1.4), 0.02, 0.9))
        if car_positive
        else 0.0
    )
    her2 = HER2_IHC[template]
    erbb2_log2fc, erbb2_fraction = ERBB2_BY_HER2[her2]
    trajectory = TRAJECTORY_TEMPLATES[template]
    low, high = params.ctdna_baseline_vaf
    baseline_vaf = float(np.exp(rng.uniform(np.log(low), np.log(high)))) if trajectory else 0.0

    samples: list[SampleDesign] = []
    for timepoint, day in BIOPSY_DAYS.items():
        post = day > 0
        composition = (
            _composition(cd8_post, treg_shift, m2_shift) if post else _composition(cd8_baseline)
        )
        common = {
            "patient_id": patient_id,
            "timepoint": timepoint,
            "day": day,
            "car_present": post and car_positive,
            "composition": composition,
            "inflammation_log2fc": inflammation if post else 0.0,
        }
        scrna_id = f"{patient_id}_{timepoint}_sc"
        samples.append(
            SampleDesign(
                sample_id=scrna_id,
                assay=SCRNA,
                counts=f"scrna/{scrna_id}.h5",
                reads=f"scrna/{scrna_id}.bam",
                vdj=tcr.vdj_path(template, scrna_id),
                **common,
            )
        )
        if template in BULK_TEMPLATES:
            bulk_id = f"{patient_id}_{timepoint}_bulk"
            samples.append(
                SampleDesign(
                    sample_id=bulk_id,
                    assay=BULK_RNA,
                    counts=f"bulk/{bulk_id}.counts.tsv",
                    reads=f"bulk/{bulk_id}.fastq.gz",
                    **common,
                )
            )
    samples += [SampleDesign(**plan) for plan in tcr.tcr_sample_plan(patient_id, template)]
    if trajectory:
        days = PLASMA_DAYS[:3] if template in THREE_PLASMA_TEMPLATES else PLASMA_DAYS
        folds = (1.0, *CTDNA_TRAJECTORIES[trajectory])
        for day, fold in zip(days, folds, strict=False):
            timepoint = "C1D0" if day == 0 else f"D{day}"
            plasma_id = f"{patient_id}_{timepoint}_cf"
            samples.append(
                SampleDesign(
                    sample_id=plasma_id,
                    patient_id=patient_id,
                    timepoint=timepoint,
                    day=day,
                    assay=CFDNA,
                    reads=f"cfdna/{plasma_id}.bam",
                    ctdna_fold=fold,
                )
            )
    samples += blood.blood_samples(patient_id, template, DOSING[template], params.seed)
    return PatientDesign(
        patient_id=patient_id,
        index=index,
        template=template,
        indication=INDICATIONS[template],
        her2_ihc=her2,
        dosing=DOSING[template],
        best_response=BEST_RESPONSE[template],
        car_positive=car_positive,
        car_macrophage_fraction=car_macrophage_fraction,
        cd8_fraction_baseline=cd8_baseline,
        cd8_fraction_post=cd8_post,
        inflammation_log2fc=inflammation,
        treg_shift=treg_shift,
        m2_shift=m2_shift,
        erbb2_log2fc=erbb2_log2fc,
        erbb2_expressing_fraction=erbb2_fraction,
        ctdna_trajectory=trajectory,
        ctdna_baseline_vaf=baseline_vaf,
        tumor_variants=f"variants/{patient_id}.vcf.gz" if trajectory else "",
        samples=tuple(samples),
        crs_grade=blood.crs_grade(template),
    )


def plasma_normal_id(index: int) -> str:
    """Stable ID of tumour-free plasma normal ``index`` (0-based): ``PON-001`` for 0."""
    return f"PON-{index + 1:03d}"


def plasma_normals(params: CohortParams) -> list[str]:
    """BAMs of the cohort's tumour-free plasma normals, relative to the cohort folder.

    ``params.n_plasma_normals`` of them (``cfdna_normals/PON-001.bam``, ...); each one's reads
    come from streams keyed by its ID, so adding normals (or patients) never changes the reads
    of an existing normal at an existing site.
    """
    return [plasma_normal_path(plasma_normal_id(i)) for i in range(params.n_plasma_normals)]


def plasma_normal_path(normal_id: str) -> str:
    """BAM of a plasma normal, relative to the cohort folder: ``cfdna_normals/{normal_id}.bam``."""
    return f"cfdna_normals/{normal_id}.bam"


def design_cohort(params: CohortParams) -> list[PatientDesign]:
    """Every patient of the cohort, in patient order."""
    return [design_patient(index, params) for index in range(params.n_patients)]


# --- job sizes --------------------------------------------------------------------------------

BYTES_PER_PLASMA_READ = 1000
"""Memory per plasma read while a BAM is built (arrays of every read, then sorted copies)."""
SECONDS_PER_PLASMA_READ = 6e-6
"""Time to simulate and write one plasma read (measured: ~6 us on one core)."""


def plasma_reads(
    params: CohortParams, patients: list[PatientDesign], *, whole_panel: bool = False
) -> int:
    """Expected reads (both mates, duplicates included) of one plasma BAM.

    A patient's plasma covers every site of the panel (``plasma_panel`` ``cohort``: about
    ``variants_per_patient`` sites per patient with ctDNA) or only the patient's own
    (``patient``); a plasma normal (``whole_panel``) every site. Each site has ``cfdna_depth``
    unique fragments and their duplicates.
    """
    with_ctdna = sum(1 for patient in patients if patient.tumor_variants)
    sites_per_patient = params.variants_per_patient + 1  # + a multi-allelic record at most
    covered = with_ctdna if whole_panel or params.plasma_panel == "cohort" else 1
    copies = 1 + 1.5 * params.cfdna_duplicate_rate
    return math.ceil(2 * sites_per_patient * covered * params.cfdna_depth * copies)


def synthetic_job_resources(reads_per_bam: int, n_bams: int) -> dict[str, int]:
    """Memory (``mem_mb``) and time (``runtime``, minutes) of a job writing ``n_bams`` plasma
    BAMs of ``reads_per_bam`` reads (:func:`plasma_reads`) besides a patient's other files.

    Plasma dominates as cohorts grow: with ``plasma_panel`` ``cohort`` every plasma BAM covers
    the whole cohort's panel, so a patient's job grows with the cohort. Generous: a workflow
    multiplies both by the attempt on a retry.
    """
    seconds = n_bams * reads_per_bam * SECONDS_PER_PLASMA_READ
    return {
        "mem_mb": math.ceil(1000 + reads_per_bam * BYTES_PER_PLASMA_READ / 1e6),
        "runtime": math.ceil(5 + 2 * seconds / 60),
    }
