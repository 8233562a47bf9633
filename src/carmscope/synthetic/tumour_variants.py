"""Synthetic tumour variant panels: each patient's somatic variants and their VCF.

The model follows a tumour-informed ctDNA assay such as the one used in the CT-0508 trial:
each patient's tumour has a few somatic variants (SNVs, short indels, one multi-allelic site
for patients of template 0), at sites at least :data:`MIN_SITE_SPACING` apart across the whole
cohort. Sites come from ``rng_for(seed, "variants", patient_id)`` and alleles from
``rng_for(seed, "variants", patient_id, "alleles")``, so adding patients changes no existing
patient's variants.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pysam

from carmscope.synthetic.design import CohortParams, PatientDesign, rng_for
from carmscope.synthetic.genome import BASES

# --- variant panel ----------------------------------------------------------------------------

CONTIG_MARGIN = 1000
"""No variant within this many bases of a contig end (room for the reads around it)."""
MIN_SITE_SPACING = 500
"""Minimum distance between any two sites of the panel (all patients together)."""
INDEL_LENGTHS = (1, 2, 3)
INDEL_LENGTH_WEIGHTS = (0.6, 0.25, 0.15)
TRANSITION_FRACTION = 2 / 3
"""Fraction of SNVs that are transitions (Ti/Tv = 2)."""
TRANSITIONS = {"A": "G", "G": "A", "C": "T", "T": "C"}
CLONALITY_RANGE = (0.5, 1.5)
MULTIALLELIC_SHARE = (0.35, 0.65)
"""Share of a multi-allelic record's VAF that goes to its first alt (the rest to the second)."""
MULTIALLELIC_TEMPLATES = frozenset({0})
"""Templates whose patients get one extra multi-allelic SNV record (two alts at one site)."""
MAX_SITE_ATTEMPTS = 10_000
VCF_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT")
VARIANT_COLUMNS = ("patient_id", "chrom", "pos", "ref", "alt", "kind", "clonality")


# --- variant panel ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    """A planned VCF record before it has a site: ``kind`` and, for indels, the length."""

    kind: str
    """``snv``, ``multiallelic``, ``insertion`` or ``deletion``."""
    length: int = 0


def _planned_records(
    rng: np.random.Generator, patient: PatientDesign, params: CohortParams
) -> list[_Record]:
    """The records of one patient, in the order their sites are drawn."""
    n_indels = min(params.indels_per_patient, params.variants_per_patient)
    records = []
    for _ in range(n_indels):
        kind = "insertion" if rng.random() < 0.5 else "deletion"
        length = int(rng.choice(INDEL_LENGTHS, p=INDEL_LENGTH_WEIGHTS))
        records.append(_Record(kind, length))
    records += [_Record("snv")] * (params.variants_per_patient - n_indels)
    if patient.template in MULTIALLELIC_TEMPLATES:
        records.append(_Record("multiallelic"))
    return records


class _Occupancy:
    """Sites already in the panel, per contig, for the minimum-spacing rule."""

    def __init__(self) -> None:
        self._starts: dict[str, list[int]] = {}

    def is_free(self, chrom: str, start: int) -> bool:
        return all(abs(start - other) >= MIN_SITE_SPACING for other in self._starts.get(chrom, []))

    def add(self, chrom: str, start: int) -> None:
        self._starts.setdefault(chrom, []).append(start)


def _draw_site(
    rng: np.random.Generator,
    record: _Record,
    contigs: dict[str, str],
    occupancy: _Occupancy,
) -> tuple[str, int]:
    """Draw candidate sites until one is free and, for a deletion, left-normalised.

    Candidates are uniform over the usable part of the genome (``CONTIG_MARGIN`` from each
    end). A deletion needs its last deleted base to differ from its anchor base, else it
    could shift left and would not be in normal form.

    Returns
    -------
    tuple
        Contig and 0-based start (the anchor base for an indel).
    """
    names = list(contigs)
    usable = np.array([len(contigs[name]) - 2 * CONTIG_MARGIN for name in names])
    if usable.min() <= 0:
        raise ValueError(f"reference contigs must be longer than {2 * CONTIG_MARGIN} bp")
    ends = np.cumsum(usable)
    for _ in range(MAX_SITE_ATTEMPTS):
        draw = int(rng.integers(ends[-1]))
        index = int(np.searchsorted(ends, draw, side="right"))
        chrom = names[index]
        start = CONTIG_MARGIN + draw - int(ends[index] - usable[index])
        sequence = contigs[chrom]
        if record.kind == "deletion" and sequence[start + record.length] == sequence[start]:
            continue
        if occupancy.is_free(chrom, start):
            return chrom, start
    raise ValueError(
        f"no free site {MIN_SITE_SPACING} bp from every other site after {MAX_SITE_ATTEMPTS} "
        "draws: the reference is too small for the panel (raise reference_contigs)"
    )


def _other_base(rng: np.random.Generator, base: str) -> str:
    """A random base other than ``base``."""
    return str(rng.choice([b for b in BASES if b != base]))


def _snv_alt(rng: np.random.Generator, ref: str) -> str:
    if rng.random() < TRANSITION_FRACTION:
        return TRANSITIONS[ref]
    return str(rng.choice([b for b in BASES if b not in (ref, TRANSITIONS[ref])]))


def _alleles(
    rng: np.random.Generator, record: _Record, sequence: str, start: int
) -> tuple[str, list[str]]:
    """REF and ALT alleles of a record at ``start`` (VCF-normalised, anchor base first)."""
    anchor = sequence[start]
    if record.kind == "snv":
        return anchor, [_snv_alt(rng, anchor)]
    if record.kind == "multiallelic":
        alts = rng.permutation([b for b in BASES if b != anchor])[:2]
        return anchor, [str(alt) for alt in alts]
    if record.kind == "deletion":
        return sequence[start : start + record.length + 1], [anchor]
    inserted = "".join(rng.choice(list(BASES), size=record.length))
    if inserted[-1] == anchor:  # else the insertion could shift left
        inserted = inserted[:-1] + _other_base(rng, anchor)
    return anchor, [anchor + inserted]


def _clonalities(rng: np.random.Generator, records: list[_Record]) -> list[list[float]]:
    """Clonality of each alt of each record, rescaled to mean 1 over the patient's alts.

    A record's clonality is uniform in ``CLONALITY_RANGE``; a multi-allelic record's is split
    between its two alts (the first gets a share uniform in ``MULTIALLELIC_SHARE``).
    """
    values = []
    for record in records:
        clonality = float(rng.uniform(*CLONALITY_RANGE))
        if record.kind == "multiallelic":
            share = float(rng.uniform(*MULTIALLELIC_SHARE))
            values.append([clonality * share, clonality * (1 - share)])
        else:
            values.append([clonality])
    mean = np.mean([value for per_record in values for value in per_record])
    return [[value / mean for value in per_record] for per_record in values]


def _patient_variants(
    patient: PatientDesign,
    contigs: dict[str, str],
    params: CohortParams,
    occupancy: _Occupancy,
) -> list[dict]:
    """Rows of one patient's variants; marks its sites in ``occupancy``."""
    allele_rng = rng_for(params.seed, "variants", patient.patient_id, "alleles")
    records = _planned_records(allele_rng, patient, params)
    site_rng = rng_for(params.seed, "variants", patient.patient_id)
    sites = []
    for record in records:
        chrom, start = _draw_site(site_rng, record, contigs, occupancy)
        occupancy.add(chrom, start)
        sites.append((chrom, start))
    clonalities = _clonalities(allele_rng, records)
    rows = []
    for record, (chrom, start), clonality in zip(records, sites, clonalities, strict=True):
        ref, alts = _alleles(allele_rng, record, contigs[chrom], start)
        kind = "snv" if record.kind == "multiallelic" else record.kind
        for alt, value in zip(alts, clonality, strict=True):
            rows.append(
                {
                    "patient_id": patient.patient_id,
                    "chrom": chrom,
                    "pos": start + 1,
                    "ref": ref,
                    "alt": alt,
                    "kind": kind,
                    "clonality": value,
                }
            )
    return rows


def design_variants(
    patients: list[PatientDesign], contigs: dict[str, str], params: CohortParams
) -> pd.DataFrame:
    """The tumour variants of every patient with ctDNA (those with ``tumor_variants``).

    Each such patient gets ``params.variants_per_patient`` records, ``indels_per_patient`` of
    them 1-3 bp insertions or deletions (VCF-normalised: left-aligned, anchor base first), and
    patients of a template in ``MULTIALLELIC_TEMPLATES`` one extra SNV record with two alts
    (two rows). Sites are at least ``MIN_SITE_SPACING`` apart over the whole panel and
    ``CONTIG_MARGIN`` from contig ends.

    Collisions are resolved in order of patient index: a patient draws candidate sites from
    ``rng_for(seed, "variants", patient_id)`` and skips those too close to a site of a
    lower-index patient (or its own earlier sites). A patient's sites therefore depend only on
    itself and on lower-index patients, and adding patients never moves existing sites.

    Parameters
    ----------
    patients
        Patients of the cohort (any order; processed by ``index``).
    contigs
        The reference (:func:`make_reference`).
    params
        Cohort parameters.

    Returns
    -------
    pandas.DataFrame
        One row per alt allele, columns ``VARIANT_COLUMNS``; ``pos`` is 1-based, ``kind`` is
        ``snv``, ``insertion`` or ``deletion``, ``clonality`` is the alt's VAF as a multiple of
        the patient's mean VAF (mean 1 per patient). Sorted by patient index, contig, position.
    """
    occupancy = _Occupancy()
    rows = []
    for patient in sorted(patients, key=lambda p: p.index):
        if patient.tumor_variants:
            rows.extend(_patient_variants(patient, contigs, params, occupancy))
    table = pd.DataFrame(rows, columns=list(VARIANT_COLUMNS))
    index = {patient.patient_id: patient.index for patient in patients}
    order = np.lexsort(
        (
            table["alt"].to_numpy(),
            table["pos"].to_numpy(),
            table["chrom"].map(contig_numbers(contigs)).to_numpy(),
            table["patient_id"].map(index).to_numpy(),
        )
    )
    return table.iloc[order].reset_index(drop=True)


def contig_numbers(contigs: dict[str, str]) -> dict[str, int]:
    return {chrom: number for number, chrom in enumerate(contigs)}


def write_variants_vcf(
    path: str | os.PathLike,
    patient_variants: pd.DataFrame,
    contigs: dict[str, str],
    reference: str = "genome.fa",
) -> None:
    """Write one patient's variants as a bgzipped, tabix-indexed VCF 4.2.

    Parameters
    ----------
    path
        Output ``.vcf.gz``; the index is written to ``path + ".tbi"``.
    patient_variants
        Rows of :func:`design_variants` for one patient; alts at the same site become one
        multi-allelic record (genotype ``1/2``).
    contigs
        The reference, for the ``##contig`` lines.
    reference
        Value of the ``##reference`` header line.
    """
    patient_ids = patient_variants["patient_id"].unique()
    if len(patient_ids) != 1:
        raise ValueError("write_variants_vcf takes the variants of exactly one patient")
    lines = [
        "##fileformat=VCFv4.2",
        "##source=carmscope.synthetic.cfdna",  # the writer before the split: files unchanged
        f"##reference={reference}",
        *(f"##contig=<ID={chrom},length={len(seq)}>" for chrom, seq in contigs.items()),
        '##INFO=<ID=SOMATIC,Number=0,Type=Flag,Description="Somatic tumour variant">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join((*VCF_COLUMNS, f"{patient_ids[0]}_tumour")),
    ]
    contig_order = contig_numbers(contigs)
    records = patient_variants.groupby(["chrom", "pos", "ref"], sort=False)["alt"].agg(list)
    for (chrom, pos, ref), alts in sorted(
        records.items(), key=lambda item: (contig_order[item[0][0]], item[0][1])
    ):
        genotype = "1/2" if len(alts) > 1 else "0/1"
        lines.append(
            f"{chrom}\t{pos}\t.\t{ref}\t{','.join(alts)}\t.\tPASS\tSOMATIC\tGT\t{genotype}"
        )
    with pysam.BGZFile(str(path), "wb") as handle:
        handle.write(("\n".join(lines) + "\n").encode())
    pysam.tabix_index(str(path), preset="vcf", force=True)
