"""Synthetic cfDNA: the fragments and reads of a plasma sample at the sites of its panel.

The model follows a tumour-informed ctDNA assay such as the one used in the CT-0508 trial:
every plasma sample is deep targeted sequencing of cfDNA around the sites of the panel it is
given (the tumour variants of :mod:`carmscope.synthetic.tumour_variants`): the whole cohort's
panel, so other patients' plasma gives per-site background, or only its own patient's variants
(``plasma_panel``). The BAM file is written by :mod:`carmscope.synthetic.plasma_bam`.

Determinism
-----------
Every random draw comes from :func:`~carmscope.synthetic.design.rng_for` keyed by what it
describes: a contig (``"reference", chrom``), a patient's sites (``"variants", patient_id``) or
alleles (``"variants", patient_id, "alleles"``), and one site of one plasma sample
(``"cfdna", sample_id, chrom, pos``). Adding patients therefore changes neither the existing
patients' variants nor the reads at existing sites, and the same inputs give byte-identical
files (the BAM header has no timestamp and no command line).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache

import numpy as np
import pandas as pd

from carmscope.synthetic.design import CohortParams, PatientDesign, SampleDesign, rng_for
from carmscope.synthetic.genome import BASES
from carmscope.synthetic.tumour_variants import contig_numbers

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


_CIGAR_M, _CIGAR_I, _CIGAR_D, _CIGAR_S = 0, 1, 2, 4
_FLAG_PAIRED, _FLAG_PROPER, _FLAG_REVERSE, _FLAG_MATE_REVERSE = 0x1, 0x2, 0x10, 0x20
_FLAG_READ1, _FLAG_READ2, _FLAG_DUPLICATE = 0x40, 0x80, 0x400
_BASE_CODES = np.full(256, 255, dtype=np.uint8)
_BASE_CODES[np.frombuffer(BASES.encode(), np.uint8)] = np.arange(4)
_BASE_CODES[np.frombuffer(BASES.lower().encode(), np.uint8)] = np.arange(4)


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
class PanelSite:
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
class PlasmaReads:
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

    def take(self, index: np.ndarray | slice) -> PlasmaReads:
        return PlasmaReads(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def empty() -> PlasmaReads:
        vector, rows = np.zeros(0, dtype=np.int64), np.zeros((0, READ_LENGTH), dtype=np.uint8)
        return PlasmaReads(
            **dict.fromkeys(
                ("ref_id", "pos", "end", "flag", "mate_pos", "tlen", "n_cigar"), vector
            ),
            names=np.zeros((0, 1), dtype=np.uint8),
            cigar=np.zeros((0, 3), dtype=np.uint32),
            seq=rows,
            qual=rows,
        )

    @staticmethod
    def concat(parts: list[PlasmaReads]) -> PlasmaReads:
        if not parts:  # a panel without sites
            return PlasmaReads.empty()
        return PlasmaReads(
            **{
                f.name: np.concatenate([getattr(p, f.name) for p in parts])
                for f in fields(PlasmaReads)
            }
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


def _haplotypes(site: PanelSite, contig: str) -> np.ndarray:
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


def _read_names(site: PanelSite, molecule: np.ndarray) -> np.ndarray:
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


def _draw_fragments(rng: np.random.Generator, site: PanelSite, params: CohortParams) -> _Fragments:
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
    site: PanelSite,
    contig: str,
    fragments: _Fragments,
    error_rate: float,
) -> PlasmaReads:
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
    return PlasmaReads(
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


def simulate_site(
    site: PanelSite, contig: str, sample_id: str, params: CohortParams
) -> tuple[PlasmaReads, np.ndarray]:
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


def panel_sites(panel: pd.DataFrame, own: pd.DataFrame, contigs: dict[str, str]) -> list[PanelSite]:
    """Every panel site in reference order, with the truth VAFs of ``own`` variants."""
    numbers = contig_numbers(contigs)
    keys = zip(own["chrom"], own["pos"], own["alt"], strict=True)
    own_vaf = dict(zip(keys, own["truth_vaf"], strict=True))
    sites = []
    for (chrom, pos, ref), alts in panel.groupby(["chrom", "pos", "ref"])["alt"]:
        alts = sorted(alts)
        sites.append(
            PanelSite(
                ref_id=numbers[chrom],
                chrom=chrom,
                start=int(pos) - 1,
                alleles=(ref, *alts),
                vafs=tuple(float(own_vaf.get((chrom, pos, alt), 0.0)) for alt in alts),
            )
        )
    return sorted(sites, key=lambda site: (site.ref_id, site.start))
