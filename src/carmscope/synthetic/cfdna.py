"""Synthetic cfDNA data: a random reference genome, tumour variant panels and plasma BAMs.

The model follows a tumour-informed ctDNA assay such as the one used in the CT-0508 trial:
each patient's tumour has a few somatic variants (SNVs, short indels, one multi-allelic site
for patients of template 0), and every plasma sample is deep targeted sequencing of cfDNA
around the sites of the panel it is given: the whole cohort's panel, so other patients' plasma
gives per-site background, or only its own patient's variants (``plasma_panel``).

Determinism
-----------
Every random draw comes from :func:`~carmscope.synthetic.design.rng_for` keyed by what it
describes: a contig (``"reference", chrom``), a patient's sites (``"variants", patient_id``) or
alleles (``"variants", patient_id, "alleles"``), and one site of one plasma sample
(``"cfdna", sample_id, chrom, pos``). Adding patients therefore changes neither the existing
patients' variants nor the reads at existing sites, and the same inputs give byte-identical
files (the BAM header has no timestamp and no command line).

Plasma BAMs are written record by record from NumPy arrays (the BAM binary layout, BGZF
compressed through :class:`pysam.BGZFile`): building ~8 million reads one
:class:`pysam.AlignedSegment` at a time, or through SAM text, is several times slower.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, fields
from functools import cache

import numpy as np
import pandas as pd
import pysam

from carmscope.synthetic.design import CohortParams, PatientDesign, SampleDesign, rng_for

# --- reference --------------------------------------------------------------------------------

BASES = "ACGT"
BASE_FREQUENCIES = (0.295, 0.205, 0.205, 0.295)
"""A, C, G, T: 41% GC, the human genome average."""
FASTA_LINE_WIDTH = 60

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

# --- plasma reads -----------------------------------------------------------------------------

READ_LENGTH = 100
MAPQ = 60
INDEL_FLANK = 10
"""Bases an indel needs on both sides within a read to be aligned as I/D; closer to a read end
it is soft-clipped, as aligners do. A fragment is always placed so that one of its reads spans
its allele with this flank (SNVs: the base itself)."""
WINDOW = 512
"""Half-width of the reference window reads around a site are cut from."""
FRAGMENT_LENGTHS = np.arange(READ_LENGTH, 401)
"""Possible fragment lengths (no fragment shorter than a read, so every read is 100 bp)."""
HEALTHY_FRAGMENTS = {"mode": 167.0, "short_fraction": 0.15, "dinucleosome_fraction": 0.06}
TUMOUR_FRAGMENTS = {"mode": 157.0, "short_fraction": 0.35, "dinucleosome_fraction": 0.03}
"""Tumour-derived cfDNA is shorter: a lower mode and more sub-nucleosomal fragments."""
HIGH_QUALITIES = np.arange(30, 38)
HIGH_QUALITY_WEIGHTS = np.array([0.03, 0.03, 0.04, 0.05, 0.07, 0.10, 0.18, 0.50])
LOW_QUALITIES = np.arange(2, 25)
LOW_QUALITY_AT = (0.01, 0.08)
"""Probability of a low-quality base at the first and the last cycle (rising cubically)."""
QUALITY_RESOLUTION = 1024
UNIFORM_ERROR_SHARE = 0.5
"""Share of sequencing errors spread evenly over bases; the rest follow the base's Phred
error probability, so errors concentrate at low-quality bases."""
NAME_DIGITS = 7
TRUTH_COLUMNS = (
    "sample_id",
    "patient_id",
    "chrom",
    "pos",
    "ref",
    "alt",
    "truth_vaf",
    "tumour_fragments",
    "unique_fragments",
)

_CIGAR_M, _CIGAR_I, _CIGAR_D, _CIGAR_S = 0, 1, 2, 4
_FLAG_PAIRED, _FLAG_PROPER, _FLAG_REVERSE, _FLAG_MATE_REVERSE = 0x1, 0x2, 0x10, 0x20
_FLAG_READ1, _FLAG_READ2, _FLAG_DUPLICATE = 0x40, 0x80, 0x400
_BASE_CODES = np.full(256, 255, dtype=np.uint8)
_BASE_CODES[np.frombuffer(BASES.encode(), np.uint8)] = np.arange(4)
_BASE_CODES[np.frombuffer(BASES.lower().encode(), np.uint8)] = np.arange(4)
_NIBBLES = np.array([1, 2, 4, 8], dtype=np.uint8)
"""BAM 4-bit codes of A, C, G, T."""
_BAM_FIXED = np.dtype(
    [
        ("block_size", "<i4"),
        ("ref_id", "<i4"),
        ("pos", "<i4"),
        ("l_read_name", "u1"),
        ("mapq", "u1"),
        ("bin", "<u2"),
        ("n_cigar_op", "<u2"),
        ("flag", "<u2"),
        ("l_seq", "<i4"),
        ("next_ref_id", "<i4"),
        ("next_pos", "<i4"),
        ("tlen", "<i4"),
    ]
)
BAM_COMPRESSION_LEVEL = 1
"""BGZF level of plasma BAMs: a sample is written ~2.5x faster than at the default level 6,
for ~15% more bytes."""


def make_reference(params: CohortParams) -> dict[str, str]:
    """Random reference contigs ``chr1``..``chrN`` with 41% GC.

    Parameters
    ----------
    params
        Uses ``reference_contigs``, ``reference_contig_length`` and ``seed``; each contig is
        drawn from its own stream, so adding contigs leaves the others unchanged.

    Returns
    -------
    dict
        Contig name to sequence (upper case, no N).
    """
    contigs = {}
    for number in range(1, params.reference_contigs + 1):
        chrom = f"chr{number}"
        rng = rng_for(params.seed, "reference", chrom)
        codes = rng.choice(4, size=params.reference_contig_length, p=BASE_FREQUENCIES)
        contigs[chrom] = np.frombuffer(BASES.encode(), np.uint8)[codes].tobytes().decode()
    return contigs


def write_reference(path: str | os.PathLike, contigs: dict[str, str]) -> None:
    """Write contigs as FASTA (60 columns) with a samtools ``.fai`` index beside it."""
    with open(path, "w") as handle:
        for chrom, sequence in contigs.items():
            handle.write(f">{chrom}\n")
            for start in range(0, len(sequence), FASTA_LINE_WIDTH):
                handle.write(sequence[start : start + FASTA_LINE_WIDTH] + "\n")
    pysam.faidx(str(path), catch_stdout=False)


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
            table["chrom"].map(_contig_numbers(contigs)).to_numpy(),
            table["patient_id"].map(index).to_numpy(),
        )
    )
    return table.iloc[order].reset_index(drop=True)


def _contig_numbers(contigs: dict[str, str]) -> dict[str, int]:
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
        "##source=carmscope.synthetic.cfdna",
        f"##reference={reference}",
        *(f"##contig=<ID={chrom},length={len(seq)}>" for chrom, seq in contigs.items()),
        '##INFO=<ID=SOMATIC,Number=0,Type=Flag,Description="Somatic tumour variant">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join((*VCF_COLUMNS, f"{patient_ids[0]}_tumour")),
    ]
    contig_order = _contig_numbers(contigs)
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


# --- plasma BAMs ------------------------------------------------------------------------------


def _normal(x: np.ndarray, mean: float, sd: float) -> np.ndarray:
    density = np.exp(-0.5 * ((x - mean) / sd) ** 2)
    return density / density.sum()


@cache
def fragment_length_pmf(
    mode: float, short_fraction: float, dinucleosome_fraction: float
) -> np.ndarray:
    """Probability of each length in ``FRAGMENT_LENGTHS``: a cfDNA-like distribution.

    A mono-nucleosomal peak at ``mode`` (~167 bp: 147 bp core plus linker), a sub-nucleosomal
    shoulder below it with the 10.4-bp periodicity of the DNA helix, and a di-nucleosomal peak
    at twice the mode.
    """
    lengths = FRAGMENT_LENGTHS.astype(float)
    mono = _normal(lengths, mode, 10.0)
    periodic = 1 + 0.6 * np.cos(2 * np.pi * (lengths - mode) / 10.4)
    short = _normal(lengths, mode - 35, 20.0) * periodic * (lengths < mode - 5)
    short /= short.sum()
    di = _normal(lengths, 2 * mode, 25.0)
    mono_fraction = 1 - short_fraction - dinucleosome_fraction
    pmf = mono_fraction * mono + short_fraction * short + dinucleosome_fraction * di
    pmf.flags.writeable = False
    return pmf


@cache
def _length_cdf(tumour: bool) -> np.ndarray:
    return np.cumsum(fragment_length_pmf(**(TUMOUR_FRAGMENTS if tumour else HEALTHY_FRAGMENTS)))


@cache
def _quality_table() -> np.ndarray:
    """Quantiles of the base quality at each cycle: ``table[cycle, uniform index]``.

    High-quality bases are 30-37 (mostly 37); low-quality bases (2-24) become more frequent
    towards the 3' end of the read.
    """
    cycles = np.arange(READ_LENGTH) / (READ_LENGTH - 1)
    low = LOW_QUALITY_AT[0] + (LOW_QUALITY_AT[1] - LOW_QUALITY_AT[0]) * cycles**3
    pmf = np.zeros((READ_LENGTH, HIGH_QUALITIES[-1] + 1))
    pmf[:, LOW_QUALITIES] = low[:, None] / len(LOW_QUALITIES)
    high = HIGH_QUALITY_WEIGHTS / HIGH_QUALITY_WEIGHTS.sum()
    pmf[:, HIGH_QUALITIES] = (1 - low)[:, None] * high
    quantiles = (np.arange(QUALITY_RESOLUTION) + 0.5) / QUALITY_RESOLUTION
    table = np.array([np.searchsorted(np.cumsum(row), quantiles, side="right") for row in pmf])
    table = np.minimum(table, HIGH_QUALITIES[-1]).astype(np.uint8)
    table.flags.writeable = False
    return table


@cache
def _error_thresholds(error_rate: float) -> np.ndarray:
    """Per base quality, the sequencing error probability in units of 1/65536.

    Errors average ``error_rate`` per base: ``UNIFORM_ERROR_SHARE`` of it evenly, the rest in
    proportion to the Phred error probability of the base's quality.
    """
    phred = 10 ** (-np.arange(256) / 10)
    mean_phred = np.mean(10 ** (-_quality_table().astype(float) / 10))
    share = UNIFORM_ERROR_SHARE
    probability = error_rate * (share + (1 - share) * phred / mean_phred)
    return np.round(np.minimum(probability, 0.75) * 65536).astype(np.uint16)


@dataclass(frozen=True)
class _Site:
    """One panel site as seen in one plasma sample."""

    ref_id: int
    chrom: str
    start: int
    """0-based position of the record's first base (the anchor base of an indel)."""
    alleles: tuple[str, ...]
    """REF first, then the alts."""
    vafs: tuple[float, ...]
    """This sample's truth VAF of each alt (all 0 at other patients' sites)."""

    @property
    def flank(self) -> int:
        return INDEL_FLANK if any(len(allele) != 1 for allele in self.alleles) else 0


@dataclass(frozen=True)
class _Reads:
    """Aligned reads as arrays, one row per read."""

    ref_id: np.ndarray
    pos: np.ndarray
    """0-based leftmost aligned reference base."""
    end: np.ndarray
    """0-based exclusive reference end."""
    flag: np.ndarray
    mate_pos: np.ndarray
    tlen: np.ndarray
    names: np.ndarray
    """Read names as a (reads, width) byte matrix; width is the same for every read."""
    n_cigar: np.ndarray
    cigar: np.ndarray
    """BAM-encoded CIGAR operations, (reads, 3); the first ``n_cigar`` are used."""
    seq: np.ndarray
    """Bases as codes 0-3 (ACGT) in reference orientation, (reads, READ_LENGTH)."""
    qual: np.ndarray

    def __len__(self) -> int:
        return len(self.pos)

    def take(self, index: np.ndarray | slice) -> _Reads:
        return _Reads(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def empty() -> _Reads:
        vector, rows = np.zeros(0, dtype=np.int64), np.zeros((0, READ_LENGTH), dtype=np.uint8)
        return _Reads(
            **dict.fromkeys(
                ("ref_id", "pos", "end", "flag", "mate_pos", "tlen", "n_cigar"), vector
            ),
            names=np.zeros((0, 1), dtype=np.uint8),
            cigar=np.zeros((0, 3), dtype=np.uint32),
            seq=rows,
            qual=rows,
        )

    @staticmethod
    def concat(parts: list[_Reads]) -> _Reads:
        if not parts:  # a panel without sites
            return _Reads.empty()
        return _Reads(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(_Reads)}
        )


def _draw_alleles(rng: np.random.Generator, vafs: tuple[float, ...], n: int) -> np.ndarray:
    """Allele of each fragment: alt ``k`` (1-based) with probability ``vafs[k - 1]``, else 0."""
    drawn = np.searchsorted(np.cumsum(vafs), rng.random(n), side="right")
    return np.where(drawn < len(vafs), drawn + 1, 0)


def _draw_lengths(rng: np.random.Generator, tumour: np.ndarray) -> np.ndarray:
    """Fragment lengths, from the tumour distribution for tumour-derived fragments."""
    uniform = rng.random(len(tumour))
    index = np.where(
        tumour,
        np.searchsorted(_length_cdf(True), uniform, side="right"),
        np.searchsorted(_length_cdf(False), uniform, side="right"),
    )
    return FRAGMENT_LENGTHS[np.minimum(index, len(FRAGMENT_LENGTHS) - 1)]


def _draw_starts(
    rng: np.random.Generator, length: np.ndarray, first: int, stop: np.ndarray
) -> np.ndarray:
    """Fragment starts such that one read holds the whole interval ``[first, stop)``.

    Uniform over the valid starts: those where the first read (``[start, start + R)``) or the
    second (``[start + length - R, start + length)``) contains the interval; for fragments
    longer than ``2 R - width`` these are two runs separated by a gap.
    """
    width = stop - first
    per_read = READ_LENGTH - width + 1
    gap = np.maximum(0, length + width - 2 * READ_LENGTH - 1)
    count = length - width + 1 - gap
    drawn = np.floor(rng.random(len(length)) * count).astype(np.int64)
    return stop - length + drawn + gap * (drawn >= per_read)


def _draw_copies(rng: np.random.Generator, n: int, duplicate_rate: float) -> np.ndarray:
    """Copies of each fragment: 1, or with probability ``duplicate_rate`` 2 or 3 (equally)."""
    uniform = rng.random(n)
    return 1 + (uniform < duplicate_rate) + (uniform < duplicate_rate / 2)


def _haplotypes(site: _Site, contig: str) -> np.ndarray:
    """Sequence codes of each allele's haplotype over the site's window, (alleles, width)."""
    window = contig[site.start - WINDOW : site.start + WINDOW]
    ref = site.alleles[0]
    sequences = [window[:WINDOW] + allele + window[WINDOW + len(ref) :] for allele in site.alleles]
    width = max(map(len, sequences))
    matrix = np.zeros((len(sequences), width), dtype=np.uint8)
    for row, sequence in enumerate(sequences):
        matrix[row, : len(sequence)] = _BASE_CODES[np.frombuffer(sequence.encode(), np.uint8)]
    return matrix


def _indel_alignment(start: int, delta: int) -> tuple[int, list[tuple[int, int]]]:
    """Alignment of a read from an indel haplotype (anchor base at window offset ``WINDOW``).

    Parameters
    ----------
    start
        Window offset of the read's first base on the haplotype.
    delta
        Alt length minus ref length: > 0 insertion, < 0 deletion.

    Returns
    -------
    tuple
        Window offset of the first aligned reference base, and the CIGAR as ``(op, length)``.
    """
    after = WINDOW + 1  # first haplotype base after the anchor
    inserted = max(delta, 0)
    if start + READ_LENGTH <= after:
        return start, [(_CIGAR_M, READ_LENGTH)]
    if start >= after + inserted:
        return start - delta, [(_CIGAR_M, READ_LENGTH)]
    left = after - start
    right = start + READ_LENGTH - after - inserted
    if min(left, right) >= INDEL_FLANK:
        operation = _CIGAR_I if delta > 0 else _CIGAR_D
        return start, [(_CIGAR_M, left), (operation, abs(delta)), (_CIGAR_M, right)]
    if left <= right:
        return after + inserted - delta, [(_CIGAR_S, READ_LENGTH - right), (_CIGAR_M, right)]
    return start, [(_CIGAR_M, left), (_CIGAR_S, READ_LENGTH - left)]


def _alignments(
    start: np.ndarray, delta: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Window offsets of aligned start and end, CIGAR count and CIGAR of reads."""
    n = len(start)
    offset, span = start.copy(), np.full(n, READ_LENGTH)
    n_cigar = np.ones(n, dtype=np.uint16)
    cigar = np.zeros((n, 3), dtype=np.uint32)
    cigar[:, 0] = READ_LENGTH << 4 | _CIGAR_M
    for read in np.flatnonzero(delta):  # only tumour reads at an indel: few
        offset[read], operations = _indel_alignment(int(start[read]), int(delta[read]))
        n_cigar[read] = len(operations)
        cigar[read, : len(operations)] = [length << 4 | op for op, length in operations]
        span[read] = sum(length for op, length in operations if op in (_CIGAR_M, _CIGAR_D))
    return offset, offset + span, n_cigar, cigar


def _qualities_and_errors(
    rng: np.random.Generator, seq: np.ndarray, reverse: np.ndarray, error_rate: float
) -> np.ndarray:
    """Base qualities of reads; substitutes sequencing errors into ``seq`` in place.

    Qualities are drawn per sequencing cycle and reversed for reverse-strand reads (stored in
    reference orientation); an error replaces the base by one of the other three.
    """
    draws = rng.integers(0, QUALITY_RESOLUTION, size=seq.shape, dtype=np.uint16)
    qual = _quality_table()[np.arange(READ_LENGTH), draws]
    qual[reverse] = qual[reverse, ::-1]
    chance = rng.integers(0, 1 << 16, size=seq.shape, dtype=np.uint16)
    hits = np.flatnonzero(chance < _error_thresholds(error_rate)[qual])
    flat = seq.reshape(-1)
    flat[hits] = (flat[hits] + rng.integers(1, 4, size=hits.size)) % 4
    return qual


def _read_names(site: _Site, molecule: np.ndarray) -> np.ndarray:
    """Names ``c<contig>:<pos>:<molecule>``, fixed width, as a (reads, width) byte matrix."""
    prefix = np.frombuffer(f"c{site.ref_id + 1:03d}:{site.start + 1:09d}:".encode(), np.uint8)
    powers = 10 ** np.arange(NAME_DIGITS - 1, -1, -1)
    digits = (molecule[:, None] // powers % 10 + ord("0")).astype(np.uint8)
    return np.hstack([np.broadcast_to(prefix, (len(molecule), len(prefix))), digits])


def _pair_fields(
    pos: np.ndarray, end: np.ndarray, read1_left: np.ndarray, duplicate: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flags, mate positions and TLEN of left reads then right reads.

    ``pos`` and ``end`` hold the left (forward) reads, then the right (reverse) reads.
    """
    n = len(read1_left)
    pos_left, pos_right = pos[:n], pos[n:]
    base = _FLAG_PAIRED | _FLAG_PROPER | np.where(duplicate, _FLAG_DUPLICATE, 0)
    first, second = (
        np.where(read1_left, _FLAG_READ1, _FLAG_READ2),
        np.where(read1_left, _FLAG_READ2, _FLAG_READ1),
    )
    flag = np.concatenate([base | _FLAG_MATE_REVERSE | first, base | _FLAG_REVERSE | second])
    span = np.maximum(end[:n], end[n:]) - np.minimum(pos_left, pos_right)
    tlen_left = np.where(pos_left <= pos_right, span, -span)
    return (
        flag.astype(np.uint16),
        np.concatenate([pos_right, pos_left]),
        np.concatenate([tlen_left, -tlen_left]),
    )


@dataclass(frozen=True)
class _Fragments:
    """The unique fragments at one site; positions are window offsets on their haplotype."""

    allele: np.ndarray
    """0 = REF, ``k`` = ``k``-th alt."""
    length: np.ndarray
    start: np.ndarray
    read1_left: np.ndarray
    """Read 1 is the left (forward-strand) read."""
    copies: np.ndarray
    """1 + number of PCR duplicates."""


def _draw_fragments(rng: np.random.Generator, site: _Site, params: CohortParams) -> _Fragments:
    """Poisson(``cfdna_depth``) unique fragments, each with a read spanning the site."""
    n = int(rng.poisson(params.cfdna_depth))
    allele = _draw_alleles(rng, site.vafs, n)
    length = _draw_lengths(rng, allele > 0)
    allele_length = np.array([len(a) for a in site.alleles])[allele]
    start = _draw_starts(rng, length, WINDOW - site.flank, WINDOW + allele_length + site.flank)
    read1_left = rng.random(n) < 0.5
    copies = _draw_copies(rng, n, params.cfdna_duplicate_rate)
    return _Fragments(allele, length, start, read1_left, copies)


def _sequence(
    rng: np.random.Generator,
    site: _Site,
    contig: str,
    fragments: _Fragments,
    error_rate: float,
) -> _Reads:
    """Both reads of every copy of every fragment: the left reads, then the right reads."""
    fragment = np.repeat(np.arange(len(fragments.allele)), fragments.copies)
    first_copy = np.repeat(np.cumsum(fragments.copies) - fragments.copies, fragments.copies)
    duplicate = np.arange(len(fragment)) > first_copy
    start, length = fragments.start[fragment], fragments.length[fragment]
    read_start = np.concatenate([start, start + length - READ_LENGTH])
    allele = np.tile(fragments.allele[fragment], 2)
    delta = np.array([len(a) - len(site.alleles[0]) for a in site.alleles])[allele]
    offset, end, n_cigar, cigar = _alignments(read_start, delta)
    seq = _haplotypes(site, contig)[allele[:, None], read_start[:, None] + np.arange(READ_LENGTH)]
    reverse = np.arange(len(allele)) >= len(fragment)
    qual = _qualities_and_errors(rng, seq, reverse, error_rate)
    pos, end = offset + site.start - WINDOW, end + site.start - WINDOW
    flag, mate_pos, tlen = _pair_fields(pos, end, fragments.read1_left[fragment], duplicate)
    return _Reads(
        ref_id=np.full(len(allele), site.ref_id),
        pos=pos,
        end=end,
        flag=flag,
        mate_pos=mate_pos,
        tlen=tlen,
        names=_read_names(site, np.tile(np.arange(len(fragment)), 2)),
        n_cigar=n_cigar,
        cigar=cigar,
        seq=seq,
        qual=qual,
    )


def _simulate_site(
    site: _Site, contig: str, sample_id: str, params: CohortParams
) -> tuple[_Reads, np.ndarray]:
    """Reads of one plasma sample at one panel site, and the allele of each unique fragment.

    All randomness comes from ``rng_for(seed, "cfdna", sample_id, chrom, pos)``.
    """
    rng = rng_for(params.seed, "cfdna", sample_id, site.chrom, site.start + 1)
    fragments = _draw_fragments(rng, site, params)
    reads = _sequence(rng, site, contig, fragments, params.cfdna_error_rate)
    return reads, fragments.allele


def truth_vafs(
    sample: SampleDesign, patient: PatientDesign, patient_variants: pd.DataFrame
) -> np.ndarray:
    """Truth VAF of each of the patient's variants in a plasma sample.

    ``patient.ctdna_baseline_vaf * sample.ctdna_fold * clonality``, capped at 1; where the
    alts of one site would sum above 1 they are scaled down to sum to 1.
    """
    mean = patient.ctdna_baseline_vaf * (sample.ctdna_fold or 0.0)
    vaf = np.minimum(mean * patient_variants["clonality"].to_numpy(dtype=float), 1.0)
    site_total = pd.Series(vaf).groupby(
        [patient_variants["chrom"].to_numpy(), patient_variants["pos"].to_numpy()]
    )
    return vaf / np.maximum(site_total.transform("sum").to_numpy(), 1.0)


def _sites(panel: pd.DataFrame, own: pd.DataFrame, contigs: dict[str, str]) -> list[_Site]:
    """Every panel site in reference order, with the truth VAFs of ``own`` variants."""
    numbers = _contig_numbers(contigs)
    keys = zip(own["chrom"], own["pos"], own["alt"], strict=True)
    own_vaf = dict(zip(keys, own["truth_vaf"], strict=True))
    sites = []
    for (chrom, pos, ref), alts in panel.groupby(["chrom", "pos", "ref"])["alt"]:
        alts = sorted(alts)
        sites.append(
            _Site(
                ref_id=numbers[chrom],
                chrom=chrom,
                start=int(pos) - 1,
                alleles=(ref, *alts),
                vafs=tuple(float(own_vaf.get((chrom, pos, alt), 0.0)) for alt in alts),
            )
        )
    return sorted(sites, key=lambda site: (site.ref_id, site.start))


def _reg2bin(begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """BAM index bin of each 0-based half-open interval (SAM specification, 5.3)."""
    last = end - 1
    result = np.zeros(len(begin), dtype=np.uint16)
    done = np.zeros(len(begin), dtype=bool)
    for shift, first_bin in ((14, 4681), (17, 585), (20, 73), (23, 9), (26, 1)):
        same = ~done & (begin >> shift == last >> shift)
        result[same] = first_bin + (begin[same] >> shift)
        done |= same
    return result


def _encode_records(reads: _Reads, tag: bytes) -> bytes:
    """BAM records of reads that all have the same number of CIGAR operations."""
    n, name_width = reads.names.shape
    n_cigar = int(reads.n_cigar[0])
    fixed = np.zeros(n, dtype=_BAM_FIXED)
    fixed["block_size"] = (
        _BAM_FIXED.itemsize - 4 + name_width + 1 + 4 * n_cigar + READ_LENGTH // 2 + READ_LENGTH
    ) + len(tag)
    fixed["ref_id"] = fixed["next_ref_id"] = reads.ref_id
    fixed["pos"] = reads.pos
    fixed["l_read_name"] = name_width + 1
    fixed["mapq"] = MAPQ
    fixed["bin"] = _reg2bin(reads.pos, reads.end)
    fixed["n_cigar_op"] = n_cigar
    fixed["flag"] = reads.flag
    fixed["l_seq"] = READ_LENGTH
    fixed["next_pos"] = reads.mate_pos
    fixed["tlen"] = reads.tlen
    cigar = np.ascontiguousarray(reads.cigar[:, :n_cigar], dtype="<u4")
    columns = [
        fixed.view(np.uint8).reshape(n, _BAM_FIXED.itemsize),
        reads.names,
        np.zeros((n, 1), dtype=np.uint8),
        cigar.view(np.uint8).reshape(n, 4 * n_cigar),
        _NIBBLES[reads.seq[:, 0::2]] << 4 | _NIBBLES[reads.seq[:, 1::2]],
        reads.qual,
        np.broadcast_to(np.frombuffer(tag, np.uint8), (n, len(tag))),
    ]
    return np.concatenate(columns, axis=1).tobytes()


def _bam_header(sample_id: str, contigs: dict[str, str]) -> bytes:
    """Binary BAM header: coordinate-sorted, one read group, no timestamp or command line."""
    lines = [
        "@HD\tVN:1.6\tSO:coordinate",
        *(f"@SQ\tSN:{chrom}\tLN:{len(seq)}" for chrom, seq in contigs.items()),
        f"@RG\tID:{sample_id}\tSM:{sample_id}\tLB:{sample_id}\tPL:ILLUMINA",
        "@PG\tID:carmscope-synthetic\tPN:carmscope.synthetic.cfdna",
    ]
    text = ("\n".join(lines) + "\n").encode()
    parts = [b"BAM\x01", struct.pack("<i", len(text)), text, struct.pack("<i", len(contigs))]
    for chrom, sequence in contigs.items():
        name = chrom.encode() + b"\x00"
        parts += [struct.pack("<i", len(name)), name, struct.pack("<i", len(sequence))]
    return b"".join(parts)


def _write_bam(
    path: str | os.PathLike, sample_id: str, contigs: dict[str, str], reads: _Reads
) -> None:
    """Write coordinate-sorted reads as an indexed BAM (``path + ".bai"``)."""
    tag = b"RGZ" + sample_id.encode() + b"\x00"
    breaks = np.flatnonzero(np.diff(reads.n_cigar)) + 1
    with pysam.BGZFile(str(path), f"wb{BAM_COMPRESSION_LEVEL}") as handle:
        handle.write(_bam_header(sample_id, contigs))
        for low, high in zip((0, *breaks), (*breaks, len(reads)), strict=True):
            if high > low:
                handle.write(_encode_records(reads.take(slice(low, high)), tag))
    pysam.index(str(path), catch_stdout=False)


def write_plasma_bam(
    path: str | os.PathLike,
    sample: SampleDesign,
    patient: PatientDesign,
    panel: pd.DataFrame,
    contigs: dict[str, str],
    params: CohortParams,
) -> pd.DataFrame:
    """Simulate a plasma sample's targeted cfDNA sequencing as an indexed BAM.

    Every site of the panel gets Poisson(``cfdna_depth``) unique fragments, each with a read
    spanning the site; fragments carry an alt only at the patient's own variants, each
    independently with that variant's truth VAF (:func:`truth_vafs`). Reads are 2x100 bp,
    properly paired, MAPQ 60, with Illumina-like qualities and ``cfdna_error_rate``
    substitution errors; ``cfdna_duplicate_rate`` of fragments get 1-2 PCR duplicates, which
    are flagged 0x400 (the original is not).

    Parameters
    ----------
    path
        Output ``.bam``; the index is written to ``path + ".bai"``.
    sample
        A cfDNA sample of ``patient``.
    patient
        Its patient (baseline VAF).
    panel
        The variants whose sites the BAM covers: every patient's (:func:`design_variants`),
        or a part of them that holds the patient's own (e.g. only those).
    contigs
        The reference (:func:`make_reference`).
    params
        Depth, duplicate rate, error rate and seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``TRUTH_COLUMNS``, one row per variant of the patient: the truth VAF and the
        realised numbers of tumour-derived and of unique fragments at the site.
    """
    if sample.assay != "cfdna" or sample.patient_id != patient.patient_id:
        raise ValueError(f"{sample.sample_id} is not a cfDNA sample of {patient.patient_id}")
    own = panel[panel["patient_id"] == patient.patient_id].reset_index(drop=True)
    own = own.assign(sample_id=sample.sample_id, truth_vaf=truth_vafs(sample, patient, own))
    fragments = _write_panel_bam(path, sample.sample_id, panel, own, contigs, params)
    tumour, unique = [], []
    for chrom, pos, alt in own[["chrom", "pos", "alt"]].itertuples(index=False):
        site_alleles, allele = fragments[chrom, pos]
        tumour.append(int(np.sum(allele == site_alleles.index(alt))))
        unique.append(len(allele))
    own = own.assign(tumour_fragments=tumour, unique_fragments=unique)
    return own[list(TRUTH_COLUMNS)]


def _write_panel_bam(
    path: str | os.PathLike,
    sample_id: str,
    panel: pd.DataFrame,
    own: pd.DataFrame,
    contigs: dict[str, str],
    params: CohortParams,
) -> dict[tuple[str, int], tuple[tuple[str, ...], np.ndarray]]:
    """Simulate every panel site (alts at ``own``'s truth VAFs) and write the BAM.

    Returns the alleles of each site and the allele of each of its unique fragments.
    """
    parts, fragments = [], {}
    for site in _sites(panel, own, contigs):
        reads, allele = _simulate_site(site, contigs[site.chrom], sample_id, params)
        parts.append(reads)
        fragments[site.chrom, site.start + 1] = (site.alleles, allele)
    reads = _Reads.concat(parts)
    _write_bam(path, sample_id, contigs, reads.take(np.lexsort((reads.pos, reads.ref_id))))
    return fragments


def write_normal_plasma_bam(
    path: str | os.PathLike,
    normal_id: str,
    panel: pd.DataFrame,
    contigs: dict[str, str],
    params: CohortParams,
) -> int:
    """Simulate tumour-free plasma (a panel-of-normals sample) as an indexed BAM.

    Processed exactly like a patient's plasma (:func:`write_plasma_bam`): every panel site gets
    Poisson(``cfdna_depth``) unique fragments with the same fragment lengths, qualities,
    ``cfdna_error_rate`` substitutions and ``cfdna_duplicate_rate`` duplicates, but no fragment
    carries a tumour allele, so every ALT read is a sequencing error. Reads come from
    ``rng_for(seed, "cfdna", normal_id, chrom, pos)``.

    Parameters
    ----------
    path
        Output ``.bam``; the index is written to ``path + ".bai"``.
    normal_id
        The normal's ID (read group and random streams), e.g. ``PON-001``.
    panel, contigs, params
        As for :func:`write_plasma_bam`.

    Returns
    -------
    int
        Number of unique fragments written.
    """
    own = panel.iloc[0:0].assign(truth_vaf=pd.Series(dtype=float))
    fragments = _write_panel_bam(path, normal_id, panel, own, contigs, params)
    return sum(len(allele) for _, allele in fragments.values())
