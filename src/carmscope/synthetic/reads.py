"""Synthetic reads: host transcripts, 10x-style scRNA BAMs and bulk RNA-seq FASTQ.

Host transcripts
    :func:`host_transcripts` makes synthetic stand-ins for endogenous human transcripts; they are
    the reference contigs of the 10x BAMs and the source of every non-CAR read. CD8A and CD247
    share *exactly* the CAR's native parts (CD8a leader and hinge/TM; CD3 zeta intracellular
    domain); everything else in them, and the other genes (ACTB, B2M, ...), is random sequence.
    What matters is the property real transcripts have: endogenous CD8A/CD247 reads overlap the
    CAR's host-derived segments but never its specific segments or its junctions. This holds by
    construction: the base next to each native part differs from the CAR's base across the
    junction, and no host 25-mer (either strand) is a specific 25-mer of the CAR.

10x BAM (:func:`write_tenx_bam`)
    Reads are Cell Ranger-like: read 2 of 3' v3 chemistry, sense strand, mapped to the host
    transcripts with MAPQ 255, tags ``NH HI AS nM RE GN xf CR CY CB UR UY UB RG``; each UMI has
    1-3 reads (PCR duplicates, each from its own fragment of the amplified cDNA; ``xf:i:25`` on
    the first, ``17`` on the others). CAR reads are placed as an aligner would place them: inside
    a host-derived segment they map to CD8A/CD247; overlapping one by at least
    :data:`MIN_ALIGNED` bases they map there with the rest soft-clipped; otherwise they are
    unmapped (flag 4, still with CB/UB, at the end of the file). Noise: reads with a raw
    barcode that is not a cell (``CR`` only, no ``CB``/``UB``), reads of background barcodes
    (ambient RNA in empty droplets) and unmappable reads (random or poly(A)-rich). Nothing in a
    record tells a CAR read from a host read except its sequence; read names are a random
    permutation. The truth comes back through the optional ``truth`` argument.

Bulk FASTQ (:func:`write_bulk_fastq`)
    Unstranded single-end reads from the host transcripts and, in a CAR-positive biopsy, a small
    fraction from the CAR.

Everything is drawn from the generator passed in, so the same seed gives byte-identical files.
Writers stream: reads are planned as small integer arrays, and sequences are made per contig
(BAM) or per chunk (FASTQ) just before they are written.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

from carmscope.celltypes import CELL_TYPES
from carmscope.construct import (
    CD8A_HINGE_TM,
    CD8A_LEADER,
    CD247_ZETA_ICD,
    Construct,
    format_fasta,
    read_construct,
    reverse_complement,
)
from carmscope.synthetic.design import BASELINE_COMPOSITION, CohortParams, rng_for

KMER = 25
"""Length of the k-mers checked for specificity (no specific CAR k-mer is in a host)."""
MIN_ALIGNED = 30
"""Fewest bases of a CAR read an aligner maps to a host transcript (the rest soft-clipped)."""
UMI_LENGTH = 10
BARCODE_LENGTH = 16
MAX_HOST_DUPLICATES = 3
MAX_CAR_DUPLICATES = 4
LOW_QUALITY_READ_FRACTION = 1 / 3
"""Host reads of a damaged cell, as a fraction of a good cell's."""
NO_BARCODE_FRACTION = 0.02
"""Reads with an uncorrectable raw barcode (no CB), as a fraction of cell host reads."""
BACKGROUND_BARCODE_FRACTION = 0.05
"""Background (empty-droplet) barcodes per cell."""
UNMAPPABLE_FRACTION = 0.01
"""Host UMIs whose reads map nowhere (junk, poly(A)-rich)."""
BARCODE_ERROR_RATE = 0.01
"""Reads whose raw barcode (CR) has one error that barcode correction fixed (CB)."""
BULK_CAR_READ_FRACTION = 50e-6
MIN_BULK_CAR_READS = 10
"""Fewest CAR reads in a CAR-positive bulk FASTQ (so the tiny cohort has some)."""
_MAX_ATTEMPTS = 100
_CHUNK = 65_536
_ACGT = np.frombuffer(b"ACGT", dtype=np.uint8)
_CODE = np.full(256, 4, dtype=np.uint8)
_CODE[np.frombuffer(b"ACGT", dtype=np.uint8)] = np.arange(4, dtype=np.uint8)
_QUALITY_CHARS = np.frombuffer(b"F:,#", dtype=np.uint8)
_QUALITY_CUMULATIVE = np.cumsum([0.90, 0.07, 0.025, 0.005])
"""NovaSeq-binned base qualities (Q37, Q25, Q11, Q2) and their frequencies."""

# --- host transcripts -------------------------------------------------------------------------

_RANDOM = "random"
_SEGMENT = "segment"
_LITERAL = "literal"
HOST_LAYOUTS: dict[str, tuple[tuple[str, str | int], ...]] = {
    # (kind, random length | construct segment | literal DNA), 5' to 3'
    "CD8A": (
        (_RANDOM, 120),  # 5'UTR
        (_SEGMENT, CD8A_LEADER),
        (_RANDOM, 345),  # Ig-like V domain and stalk stand-in
        (_SEGMENT, CD8A_HINGE_TM),
        (_RANDOM, 84),  # cytoplasmic tail
        (_LITERAL, "TAA"),
        (_RANDOM, 700),  # 3'UTR
    ),
    "CD247": (
        (_RANDOM, 300),  # 5'UTR, leader, extracellular and transmembrane stand-in
        (_SEGMENT, CD247_ZETA_ICD),
        (_LITERAL, "TAA"),  # the native stop codon the CAR omits
        (_RANDOM, 800),  # 3'UTR
    ),
}
"""Transcripts that carry a native CAR part."""
OTHER_HOST_LENGTHS: dict[str, int] = {
    "ACTB": 1850,
    "B2M": 1050,
    "PTPRC": 2900,
    "CD68": 1700,
    "EPCAM": 1500,
    "ERBB2": 2950,
    "GAPDH": 1300,
    "CD3E": 1400,
    "LYZ": 1100,
    "COL1A2": 2900,
}
"""Random stand-ins for other genes, lengths roughly those of their mRNAs (capped at 3 kb)."""
ENDOGENOUS_CAR_GENES = ("CD8A", "CD247")

HOUSEKEEPING_WEIGHTS = {"ACTB": 6.0, "B2M": 5.0, "GAPDH": 4.0}
BASAL_WEIGHT = 0.1
"""Relative expression of every other gene, except CD8A/CD247, in every cell."""
MARKER_WEIGHTS: dict[str, dict[str, float]] = {
    "tumour_epithelium": {"EPCAM": 3.0, "ERBB2": 3.0},
    "cd8_t": {"CD8A": 2.0, "CD247": 1.5, "CD3E": 2.0, "PTPRC": 2.0},
    "cd4_t": {"CD247": 1.5, "CD3E": 2.0, "PTPRC": 2.0},
    "treg": {"CD247": 1.5, "CD3E": 2.0, "PTPRC": 2.0},
    "nk": {"CD8A": 1.0, "CD247": 2.0, "PTPRC": 2.0},
    "b": {"PTPRC": 2.0},
    "plasma": {"PTPRC": 1.0},
    "macrophage_m1": {"CD68": 2.5, "LYZ": 3.0, "PTPRC": 1.0},
    "macrophage_m2": {"CD68": 3.0, "LYZ": 2.0, "PTPRC": 1.0},
    "monocyte": {"CD68": 1.0, "LYZ": 4.0, "PTPRC": 1.5},
    "dc": {"CD68": 1.0, "LYZ": 1.0, "PTPRC": 1.5},
    "fibroblast": {"COL1A2": 4.0},
    "endothelium": {},
}
"""Extra relative expression per cell type; only T and NK cells express CD8A/CD247."""
GUARANTEED_GENES: dict[str, tuple[str, ...]] = {
    "cd8_t": ("CD247", "CD8A"),
    "nk": ("CD247", "CD8A"),
    "cd4_t": ("CD247",),
    "treg": ("CD247",),
}
"""Genes of a cell's first UMIs, so every T/NK cell has endogenous CAR-part reads."""
BULK_WEIGHTS = {**HOUSEKEEPING_WEIGHTS, "ERBB2": 2.0, "EPCAM": 1.5, "CD8A": 0.3, "CD247": 0.3}
"""Relative expression in bulk tumour RNA (other genes at :data:`BASAL_WEIGHT` x 5)."""


def _random_dna(rng: np.random.Generator, length: int) -> str:
    return _ACGT[rng.integers(0, 4, length)].tobytes().decode("ascii")


def _other_base(base: str) -> str:
    """A base different from ``base`` (the next one in ACGT order)."""
    return "ACGT"[("ACGT".index(base) + 1) % 4]


def _junction_neighbours(construct: Construct, name: str) -> tuple[str | None, str | None]:
    """The CAR's bases just before and after segment ``name`` (None at an end)."""
    segment = construct.segment(name)
    before = construct.sequence[segment.start - 2] if segment.start > 1 else None
    after = construct.sequence[segment.end] if segment.end < construct.length else None
    return before, after


def _differ_at(piece: str, position: int, base: str | None) -> str:
    """``piece`` with its base at ``position`` changed if it equals ``base``."""
    if base is None or piece[position] != base:
        return piece
    chars = list(piece)
    chars[position] = _other_base(base)
    return "".join(chars)


def _piece(kind: str, value: str | int, construct: Construct, rng: np.random.Generator) -> str:
    """Sequence of one layout piece: random, a construct segment, or literal DNA."""
    if kind == _RANDOM:
        return _random_dna(rng, int(value))
    if kind == _SEGMENT:
        return construct.segment_sequence(str(value))
    return str(value)


def _build_transcript(
    layout: tuple[tuple[str, str | int], ...], construct: Construct, rng: np.random.Generator
) -> str:
    """One host transcript: random pieces around native parts, junction bases differing."""
    pieces = [_piece(kind, value, construct, rng) for kind, value in layout]
    kinds = [kind for kind, _ in layout]
    for index, (kind, value) in enumerate(layout):
        if kind != _SEGMENT:
            continue
        before, after = _junction_neighbours(construct, str(value))
        if index > 0 and kinds[index - 1] == _RANDOM:
            pieces[index - 1] = _differ_at(pieces[index - 1], -1, before)
        if index + 1 < len(pieces) and kinds[index + 1] == _RANDOM:
            pieces[index + 1] = _differ_at(pieces[index + 1], 0, after)
    return "".join(pieces)


def _shares_kmer(sequence: str, kmers: set[str], k: int) -> bool:
    """Whether any ``k``-mer of ``sequence`` or its reverse complement is in ``kmers``."""
    return any(
        strand[i : i + k] in kmers
        for strand in (sequence, reverse_complement(sequence))
        for i in range(len(strand) - k + 1)
    )


def host_transcripts(seed: int, construct: Construct | None = None) -> dict[str, str]:
    """Synthetic stand-ins for endogenous transcripts, deterministic from ``seed``.

    Parameters
    ----------
    seed
        Cohort seed.
    construct
        The CAR whose native parts CD8A and CD247 carry (default: the shipped anti-HER2 CAR).

    Returns
    -------
    dict
        Transcript name to sequence: CD8A, CD247, then :data:`OTHER_HOST_LENGTHS`'s genes.
        No 25-mer of either strand is a specific 25-mer of the CAR (specific segment or
        junction); a transcript is redrawn until that holds.
    """
    construct = construct or read_construct()
    layouts = {
        **HOST_LAYOUTS,
        **{name: ((_RANDOM, length),) for name, length in OTHER_HOST_LENGTHS.items()},
    }
    forbidden = construct.specific_kmers(KMER)
    hosts = {}
    for name, layout in layouts.items():
        for attempt in range(_MAX_ATTEMPTS):
            sequence = _build_transcript(
                layout, construct, rng_for(seed, "host_transcript", name, attempt)
            )
            if not _shares_kmer(sequence, forbidden, KMER):
                break
        else:
            raise RuntimeError(f"no {name} stand-in free of specific {KMER}-mers")
        hosts[name] = sequence
    return hosts


def write_host_transcripts_fasta(path: str | Path, hosts: Mapping[str, str]) -> None:
    """Write host transcripts as FASTA, 60-column lines."""
    Path(path).write_text("".join(format_fasta(n, s) for n, s in hosts.items()), encoding="ascii")


def locate_host_segments(
    construct: Construct, hosts: Mapping[str, str]
) -> dict[str, tuple[str, int]]:
    """Where each host-derived segment of ``construct`` lies in the host transcripts.

    Returns
    -------
    dict
        Segment name to ``(transcript, 0-based offset)``; segments found in no transcript are
        left out (reads inside them would not map).
    """
    located = {}
    for segment in construct.host_segments:
        sequence = construct.segment_sequence(segment.name)
        for name, host in hosts.items():
            offset = host.find(sequence)
            if offset >= 0:
                located[segment.name] = (name, offset)
                break
    return located


# --- truth ------------------------------------------------------------------------------------


@dataclass
class ReadTruth:
    """Truth about individual reads, filled in by a writer when passed one (tests, benchmarks).

    Attributes
    ----------
    car_reads
        Names of the reads that come from the CAR transcript.
    no_barcode_reads
        Names of the reads written without CB/UB (raw barcode not a cell).
    background_barcodes
        Barcodes (with ``-1``) of the background droplets, not in ``cells``.
    """

    car_reads: list[str] = field(default_factory=list)
    no_barcode_reads: list[str] = field(default_factory=list)
    background_barcodes: list[str] = field(default_factory=list)


# --- planning reads ---------------------------------------------------------------------------


def _molecule_reads(
    reads_per_owner: np.ndarray, max_duplicates: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split each owner's read total into UMIs of 1..``max_duplicates`` reads.

    Returns
    -------
    owner, reads
        Owner index and read count of every UMI, owners in order.
    """
    width = int(reads_per_owner.max(initial=0))
    if width == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    draws = rng.integers(1, max_duplicates + 1, size=(reads_per_owner.size, width))
    before = np.cumsum(draws, axis=1) - draws
    totals = reads_per_owner[:, None]
    keep = before < totals
    reads = np.minimum(draws, totals - before)[keep]
    owner = np.broadcast_to(np.arange(reads_per_owner.size)[:, None], draws.shape)[keep]
    return owner, reads


def _gene_weights(hosts: list[str], weights: Mapping[str, float], basal: float) -> np.ndarray:
    """Probabilities over ``hosts``: ``weights`` plus ``basal`` for non-CD8A/CD247 genes."""
    values = np.array(
        [weights.get(name, 0.0 if name in ENDOGENOUS_CAR_GENES else basal) for name in hosts]
    )
    return values / values.sum()


def _cell_type_weights(hosts: list[str], cell_type: str) -> np.ndarray:
    return _gene_weights(
        hosts, {**HOUSEKEEPING_WEIGHTS, **MARKER_WEIGHTS.get(cell_type, {})}, BASAL_WEIGHT
    )


def _draw_genes(
    owner_types: np.ndarray, owner: np.ndarray, hosts: list[str], rng: np.random.Generator
) -> np.ndarray:
    """Host index of every UMI from its owner's cell-type expression."""
    genes = np.zeros(owner.size, dtype=np.int64)
    umi_types = owner_types[owner]
    for cell_type in sorted(set(umi_types.tolist())):
        where = np.flatnonzero(umi_types == cell_type)
        genes[where] = rng.choice(
            len(hosts), size=where.size, p=_cell_type_weights(hosts, cell_type)
        )
    return genes


def _guarantee_genes(
    owner_types: np.ndarray, owner: np.ndarray, genes: np.ndarray, hosts: list[str]
) -> None:
    """Set the first UMIs of T/NK cells to :data:`GUARANTEED_GENES` (in place)."""
    starts = np.searchsorted(owner, np.arange(owner_types.size))
    ends = np.searchsorted(owner, np.arange(owner_types.size), side="right")
    for cell, (first, stop) in enumerate(zip(starts, ends, strict=True)):
        wanted = [hosts.index(g) for g in GUARANTEED_GENES.get(owner_types[cell], ()) if g in hosts]
        for offset, gene in enumerate(wanted[: stop - first]):
            genes[first + offset] = gene


def _unique_barcodes(n: int, taken: set[str], rng: np.random.Generator) -> list[str]:
    """``n`` random 16-nt barcodes, distinct from each other and from ``taken``."""
    chosen: list[str] = []
    seen = set(taken)
    while len(chosen) < n:
        for code in _ACGT[rng.integers(0, 4, size=(n, BARCODE_LENGTH))]:
            barcode = code.tobytes().decode("ascii")
            if barcode not in seen and len(chosen) < n:
                seen.add(barcode)
                chosen.append(barcode)
    return chosen


def _unique_umis(barcode: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random UMI per molecule, distinct within each barcode."""
    space = 4**UMI_LENGTH
    umi = rng.integers(0, space, size=barcode.size)
    while True:
        key = barcode.astype(np.int64) * space + umi
        _, first = np.unique(key, return_index=True)
        clash = np.setdiff1d(np.arange(key.size), first)
        if clash.size == 0:
            return umi
        umi[clash] = rng.integers(0, space, size=clash.size)


@dataclass
class _Molecules:
    """UMIs before expansion into reads: owner barcode index, source index and read count."""

    barcode: list[np.ndarray] = field(default_factory=list)
    source: list[np.ndarray] = field(default_factory=list)
    reads: list[np.ndarray] = field(default_factory=list)

    def add(self, barcode: np.ndarray, source: np.ndarray, reads: np.ndarray) -> None:
        self.barcode.append(np.asarray(barcode, dtype=np.int64))
        self.source.append(np.asarray(source, dtype=np.int64))
        self.reads.append(np.asarray(reads, dtype=np.int64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Barcode, source and read count of every UMI."""
        return (
            np.concatenate(self.barcode),
            np.concatenate(self.source),
            np.concatenate(self.reads),
        )


def _host_reads_per_cell(cells: pd.DataFrame, params: CohortParams) -> np.ndarray:
    low = cells["low_quality"].to_numpy(dtype=bool)
    damaged = max(1, round(params.host_reads_per_cell * LOW_QUALITY_READ_FRACTION))
    return np.where(low, damaged, params.host_reads_per_cell).astype(np.int64)


def _add_cell_molecules(
    molecules: _Molecules,
    cells: pd.DataFrame,
    hosts: list[str],
    params: CohortParams,
    rng: np.random.Generator,
) -> None:
    """Host and CAR UMIs of the cells (barcode ``i`` is row ``i`` of ``cells``)."""
    types = cells["cell_type"].astype(str).to_numpy()
    owner, reads = _molecule_reads(_host_reads_per_cell(cells, params), MAX_HOST_DUPLICATES, rng)
    genes = _draw_genes(types, owner, hosts, rng)
    _guarantee_genes(types, owner, genes, hosts)
    genes[rng.random(owner.size) < UNMAPPABLE_FRACTION] = len(hosts) + 1
    molecules.add(owner, genes, reads)
    car_umis = cells["car_umis"].to_numpy(dtype=np.int64)
    car_owner = np.repeat(np.arange(car_umis.size), car_umis)
    car_reads = rng.integers(1, MAX_CAR_DUPLICATES + 1, size=car_owner.size)
    molecules.add(car_owner, np.full(car_owner.size, len(hosts)), car_reads)


def _add_noise_molecules(
    molecules: _Molecules,
    first_barcode: int,
    n_cells: int,
    n_host_reads: int,
    hosts: list[str],
    rng: np.random.Generator,
) -> tuple[int, int]:
    """Ambient UMIs of background barcodes and single no-CB reads.

    Returns
    -------
    n_background, n_no_barcode
        Barcodes of each kind, numbered from ``first_barcode`` in that order.
    """
    ambient = _gene_weights(hosts, HOUSEKEEPING_WEIGHTS, BASAL_WEIGHT * 5)
    n_background = max(5, round(n_cells * BACKGROUND_BARCODE_FRACTION))
    owner, reads = _molecule_reads(rng.integers(1, 8, size=n_background), 2, rng)
    molecules.add(owner + first_barcode, rng.choice(len(hosts), owner.size, p=ambient), reads)
    n_no_barcode = max(1, round(n_host_reads * NO_BARCODE_FRACTION))
    molecules.add(
        np.arange(n_no_barcode) + first_barcode + n_background,
        rng.choice(len(hosts), n_no_barcode, p=ambient),
        np.ones(n_no_barcode),
    )
    return n_background, n_no_barcode


@dataclass
class _Plan:
    """Every read of a BAM as parallel arrays, before any sequence is made.

    ``source`` is a host index, ``n_hosts`` (the CAR) or ``n_hosts + 1`` (unmappable junk);
    ``start`` is the read's 0-based start in its source; ``name`` a permuted read number.
    """

    barcodes: list[str]
    has_cb: np.ndarray
    n_cells: int
    molecule_barcode: np.ndarray
    molecule_source: np.ndarray
    umi: np.ndarray
    molecule: np.ndarray
    start: np.ndarray
    first: np.ndarray
    name: np.ndarray

    @property
    def barcode(self) -> np.ndarray:
        return self.molecule_barcode[self.molecule]

    @property
    def source(self) -> np.ndarray:
        return self.molecule_source[self.molecule]


def _plan_reads(
    cells: pd.DataFrame,
    hosts: Mapping[str, str],
    construct: Construct,
    params: CohortParams,
    rng: np.random.Generator,
) -> _Plan:
    """Plan every read: cells' host and CAR UMIs, background and no-CB reads."""
    names = list(hosts)
    molecules = _Molecules()
    _add_cell_molecules(molecules, cells, names, params, rng)
    cell_barcodes = [str(b).removesuffix("-1") for b in cells["barcode"]]
    n_cells = len(cell_barcodes)
    n_host_reads = int(_host_reads_per_cell(cells, params).sum())
    n_background, n_no_barcode = _add_noise_molecules(
        molecules, n_cells, n_cells, n_host_reads, names, rng
    )
    extra = _unique_barcodes(n_background + n_no_barcode, set(cell_barcodes), rng)
    barcode, source, reads = molecules.arrays()
    umi = _unique_umis(barcode, rng)
    molecule = np.repeat(np.arange(barcode.size), reads)
    first = np.zeros(molecule.size, dtype=bool)
    first[np.cumsum(reads) - reads] = True
    lengths = np.array([len(s) for s in hosts.values()] + [construct.length, params.read_length])
    if lengths.min() < params.read_length:
        raise ValueError(f"a transcript is shorter than the {params.read_length} bp reads")
    span = lengths[source[molecule]] - params.read_length + 1
    start = (rng.random(molecule.size) * span).astype(np.int64)
    return _Plan(
        barcodes=cell_barcodes + extra,
        has_cb=np.arange(n_cells + len(extra)) < n_cells + n_background,
        n_cells=n_cells,
        molecule_barcode=barcode,
        molecule_source=source,
        umi=umi,
        molecule=molecule,
        start=start,
        first=first,
        name=rng.permutation(molecule.size),
    )


# --- placing reads as an aligner would --------------------------------------------------------


@dataclass
class _Placement:
    """Alignment of every read: contig index (-1 unmapped), 0-based position, soft clips."""

    contig: np.ndarray
    position: np.ndarray
    clip_left: np.ndarray
    aligned: np.ndarray


def _place_car_reads(
    start: np.ndarray, construct: Construct, hosts: Mapping[str, str], read_length: int
) -> _Placement:
    """Where an aligner puts CAR reads starting at ``start`` (0-based in the construct).

    Each read goes to the host-derived segment it overlaps most; it maps there if it overlaps
    by at least :data:`MIN_ALIGNED` bases, the rest soft-clipped, and is unmapped otherwise.
    """
    names = list(hosts)
    located = locate_host_segments(construct, hosts)
    n = start.size
    placement = _Placement(
        np.full(n, -1), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    )
    if not located:
        return placement
    segments = [construct.segment(name) for name in located]
    first = np.array([s.start - 1 for s in segments])[:, None]
    last = np.array([s.end for s in segments])[:, None]  # exclusive
    left = np.maximum(first, start[None, :])
    overlap = np.clip(np.minimum(last, start[None, :] + read_length) - left, 0, None)
    best = overlap.argmax(axis=0)
    columns = np.arange(n)
    mapped = overlap[best, columns] >= MIN_ALIGNED
    contig = np.array([names.index(located[s.name][0]) for s in segments])
    offset = np.array([located[s.name][1] for s in segments])
    placement.contig[mapped] = contig[best][mapped]
    placement.position[mapped] = (offset[best] + left[best, columns] - first[best, 0])[mapped]
    placement.clip_left[mapped] = (left[best, columns] - start)[mapped]
    placement.aligned[mapped] = overlap[best, columns][mapped]
    return placement


def _place(
    plan: _Plan, construct: Construct, hosts: Mapping[str, str], read_length: int
) -> _Placement:
    """Alignment of every planned read: host reads in place, CAR reads placed, junk unmapped."""
    source = plan.source
    n_hosts = len(hosts)
    n = source.size
    placement = _Placement(
        np.where(source < n_hosts, source, -1),
        np.where(source < n_hosts, plan.start, 0),
        np.zeros(n, np.int64),
        np.where(source < n_hosts, read_length, 0),
    )
    car = np.flatnonzero(source == n_hosts)
    car_placement = _place_car_reads(plan.start[car], construct, hosts, read_length)
    for name in ("contig", "position", "clip_left", "aligned"):
        getattr(placement, name)[car] = getattr(car_placement, name)
    return placement


def _car_specific(start: np.ndarray, construct: Construct, read_length: int) -> np.ndarray:
    """Whether each CAR read (0-based start) overlaps a specific segment or spans a junction."""
    inside = np.zeros(start.size, dtype=bool)
    for segment in construct.host_segments:
        inside |= (start + 1 >= segment.start) & (start + read_length <= segment.end)
    return ~inside


# --- making sequences -------------------------------------------------------------------------


def _rows(ascii_matrix: np.ndarray) -> list[str]:
    """Rows of a 2-D ASCII code matrix as strings."""
    if ascii_matrix.size == 0:
        return [""] * ascii_matrix.shape[0]
    text = ascii_matrix.tobytes().decode("ascii")
    width = ascii_matrix.shape[1]
    return [text[i : i + width] for i in range(0, len(text), width)]


def _qualities(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """NovaSeq-binned quality characters (ASCII codes)."""
    bins = np.searchsorted(_QUALITY_CUMULATIVE, rng.random(shape) * _QUALITY_CUMULATIVE[-1])
    return _QUALITY_CHARS[np.minimum(bins, _QUALITY_CHARS.size - 1)]


def _with_errors(codes: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Apply substitutions at ``rate`` to base codes (in place); returns the error mask."""
    errors = rng.random(codes.shape) < rate
    codes[errors] = (codes[errors] + rng.integers(1, 4, size=int(errors.sum()))) % 4
    return errors


def _junk_codes(rng: np.random.Generator, n: int, read_length: int) -> np.ndarray:
    """Unmappable reads: random sequence, half of them opening with a poly(A) run."""
    codes = rng.integers(0, 4, size=(n, read_length)).astype(np.uint8)
    run = rng.integers(20, read_length + 1, size=n)
    poly_a = (rng.random(n) < 0.5)[:, None] & (np.arange(read_length)[None, :] < run[:, None])
    codes[poly_a] = 0
    return codes


@dataclass(frozen=True)
class _Sources:
    """Base codes of every source sequence (hosts, then the CAR) laid end to end."""

    codes: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, sequences: Iterable[str]) -> _Sources:
        sequences = list(sequences)
        joined = "".join(sequences).encode("ascii")
        lengths = np.array([0, *(len(s) for s in sequences)])
        offsets = np.cumsum(lengths)
        # the junk source starts at 0: its bases are replaced by _junk_codes
        return cls(_CODE[np.frombuffer(joined, dtype=np.uint8)], np.append(offsets[:-1], 0))

    def reads(self, source: np.ndarray, start: np.ndarray, read_length: int) -> np.ndarray:
        """Base codes (n x read_length) of reads from ``source`` at ``start``."""
        index = (self.offsets[source] + start)[:, None] + np.arange(read_length)[None, :]
        return self.codes[index]


def _umi_strings(umi: np.ndarray) -> list[str]:
    shifts = 2 * np.arange(UMI_LENGTH - 1, -1, -1)
    return _rows(_ACGT[(umi[:, None] >> shifts[None, :]) & 3])


def _read_name_strings(numbers: np.ndarray, flowcell: str) -> list[str]:
    """Illumina-style read names from read numbers (unique per number)."""
    lane = numbers % 4 + 1
    rest = numbers // 4
    tile = 1101 + rest // 1_000_000
    x = 1000 + (rest % 1000) * 31
    y = 1000 + (rest // 1000 % 1000) * 31
    return [
        f"A00508:8:{flowcell}:{a}:{b}:{c}:{d}"
        for a, b, c, d in zip(lane.tolist(), tile.tolist(), x.tolist(), y.tolist(), strict=True)
    ]


def _raw_barcode(barcode: str, rng: np.random.Generator) -> str:
    """``barcode`` with one base changed, as read with an error that correction fixed."""
    position = int(rng.integers(BARCODE_LENGTH))
    return barcode[:position] + _other_base(barcode[position]) + barcode[position + 1 :]


# --- the 10x BAM ------------------------------------------------------------------------------

FLOWCELL_10X = "HCARMDSX5"


def tenx_header(hosts: Mapping[str, str], sample_id: str) -> dict:
    """SAM header of a 10x-style BAM aligned to the host transcripts."""
    return {
        "HD": {"VN": "1.4", "SO": "coordinate"},
        "SQ": [{"SN": name, "LN": len(sequence)} for name, sequence in hosts.items()],
        "RG": [
            {
                "ID": f"{sample_id}:0:1:{FLOWCELL_10X}:1",
                "SM": sample_id,
                "LB": "0.1",
                "PU": f"{sample_id}:0:1:{FLOWCELL_10X}:1",
                "PL": "ILLUMINA",
            }
        ],
        "PG": [
            {
                "ID": "carmscope-synthetic",
                "PN": "carmscope.synthetic.reads",
                "VN": "0.1.0",
                "CL": "write_tenx_bam",
            }
        ],
        "CO": [
            "user command line: carmscope-synthetic (synthetic 10x-style BAM, not Cell Ranger)",
            "10x_bam_to_fastq:R1(CR:CY,UR:UY)",
            "10x_bam_to_fastq:R2(SEQ:QUAL)",
            "library_info:chemistry=SC3Pv3,read_group=" + f"{sample_id}:0:1:{FLOWCELL_10X}:1",
        ],
    }


def _cigar(clip_left: int, aligned: int, read_length: int) -> str:
    clip_right = read_length - clip_left - aligned
    return (
        (f"{clip_left}S" if clip_left else "")
        + f"{aligned}M"
        + (f"{clip_right}S" if clip_right else "")
    )


@dataclass(frozen=True)
class _BamContext:
    """Everything the record writer needs besides the reads."""

    plan: _Plan
    placement: _Placement
    sources: _Sources
    contigs: list[str]
    read_group: str
    read_length: int
    error_rate: float
    n_hosts: int


def _chunk_sequences(
    context: _BamContext, index: np.ndarray, rng: np.random.Generator
) -> tuple[list[str], list[str], np.ndarray]:
    """Sequences, qualities and mismatches in the aligned part of the reads ``index``."""
    plan, length = context.plan, context.read_length
    source = plan.molecule_source[plan.molecule[index]]
    codes = context.sources.reads(source, plan.start[index], length)
    junk = source == context.n_hosts + 1
    codes[junk] = _junk_codes(rng, int(junk.sum()), length)
    errors = _with_errors(codes, context.error_rate, rng)
    clip = context.placement.clip_left[index][:, None]
    end = clip + context.placement.aligned[index][:, None]
    columns = np.arange(length)[None, :]
    mismatches = (errors & (columns >= clip) & (columns < end)).sum(axis=1)
    return _rows(_ACGT[codes]), _rows(_qualities(rng, codes.shape)), mismatches


def _chunk_barcode_tags(
    context: _BamContext, index: np.ndarray, rng: np.random.Generator
) -> list[str]:
    """``CR CY [CB] UR UY [UB] RG`` tags of the reads ``index`` (CB/UB only for cells)."""
    plan = context.plan
    barcode = plan.molecule_barcode[plan.molecule[index]].tolist()
    umis = _umi_strings(plan.umi[plan.molecule[index]])
    qualities = _rows(_qualities(rng, (index.size, BARCODE_LENGTH + UMI_LENGTH)))
    wrong = (rng.random(index.size) < BARCODE_ERROR_RATE).tolist()
    tags = []
    for i, code in enumerate(barcode):
        corrected = plan.barcodes[code]
        raw = _raw_barcode(corrected, rng) if wrong[i] else corrected
        barcode_quality, umi_quality = qualities[i][:BARCODE_LENGTH], qualities[i][BARCODE_LENGTH:]
        if plan.has_cb[code]:
            tags.append(
                f"CR:Z:{raw}\tCY:Z:{barcode_quality}\tCB:Z:{corrected}-1\tUR:Z:{umis[i]}"
                f"\tUY:Z:{umi_quality}\tUB:Z:{umis[i]}\tRG:Z:{context.read_group}"
            )
        else:
            tags.append(
                f"CR:Z:{raw}\tCY:Z:{barcode_quality}\tUR:Z:{umis[i]}\tUY:Z:{umi_quality}"
                f"\tRG:Z:{context.read_group}"
            )
    return tags


def _alignment_fields(
    context: _BamContext, index: np.ndarray, mismatches: np.ndarray
) -> list[tuple[str, str]]:
    """Per read: FLAG to CIGAR, and the ``NH HI AS nM RE GN xf`` tags (``xf:i:0`` if unmapped).

    Mapped reads have MAPQ 255; ``xf`` is 25 on the first read of a cell's UMI, 17 on its
    duplicates and 0 without a cell barcode.
    """
    placement, plan, length = context.placement, context.plan, context.read_length
    has_cb = plan.has_cb[plan.molecule_barcode[plan.molecule[index]]]
    counted = np.where(has_cb, np.where(plan.first[index], 25, 17), 0).tolist()
    rows = zip(
        placement.contig[index].tolist(),
        (placement.position[index] + 1).tolist(),
        placement.clip_left[index].tolist(),
        placement.aligned[index].tolist(),
        mismatches.tolist(),
        counted,
        strict=True,
    )
    fields = []
    for contig, position, clip, aligned, mismatch, xf in rows:
        if contig < 0:
            fields.append(("4\t*\t0\t0\t*", "xf:i:0"))
            continue
        name = context.contigs[contig]
        fields.append(
            (
                f"0\t{name}\t{position}\t255\t{_cigar(clip, aligned, length)}",
                f"NH:i:1\tHI:i:1\tAS:i:{aligned - 2 * mismatch}\tnM:i:{mismatch}\tRE:A:E"
                f"\tGN:Z:{name}\txf:i:{xf}",
            )
        )
    return fields


def _bam_lines(context: _BamContext, index: np.ndarray, rng: np.random.Generator) -> list[str]:
    """SAM lines of the reads ``index`` (in that order)."""
    sequences, qualities, mismatches = _chunk_sequences(context, index, rng)
    barcode_tags = _chunk_barcode_tags(context, index, rng)
    names = _read_name_strings(context.plan.name[index], FLOWCELL_10X)
    alignments = _alignment_fields(context, index, mismatches)
    return [
        f"{name}\t{alignment}\t*\t0\t0\t{sequence}\t{quality}\t{tags}\t{barcode}"
        for name, (alignment, tags), sequence, quality, barcode in zip(
            names, alignments, sequences, qualities, barcode_tags, strict=True
        )
    ]


def _write_order(plan: _Plan, placement: _Placement, n_contigs: int) -> Iterable[np.ndarray]:
    """Read indices in coordinate order: each contig by position, then unmapped reads."""
    for contig in range(n_contigs):
        reads = np.flatnonzero(placement.contig == contig)
        yield reads[np.argsort(placement.position[reads], kind="stable")]
    unmapped = np.flatnonzero(placement.contig < 0)
    yield unmapped[np.lexsort((plan.umi[plan.molecule[unmapped]], plan.barcode[unmapped]))]


def _cell_truth(
    plan: _Plan, cells: pd.DataFrame, construct: Construct, n_hosts: int, read_length: int
) -> pd.DataFrame:
    """Per cell: CAR reads and UMIs, and those that prove the CAR (specific/junction)."""
    car = np.flatnonzero(plan.source == n_hosts)
    barcode = plan.barcode[car]
    specific = _car_specific(plan.start[car], construct, read_length)
    car_molecules = np.flatnonzero(plan.molecule_source == n_hosts)
    specific_molecules = np.unique(plan.molecule[car][specific])
    n = plan.n_cells
    return pd.DataFrame(
        {
            "barcode": cells["barcode"].astype(str).to_numpy(),
            "car_reads": np.bincount(barcode, minlength=n),
            "car_umis": np.bincount(plan.molecule_barcode[car_molecules], minlength=n),
            "car_specific_reads": np.bincount(barcode[specific], minlength=n),
            "car_specific_umis": np.bincount(
                plan.molecule_barcode[specific_molecules], minlength=n
            ),
        }
    )


def _fill_bam_truth(truth: ReadTruth, plan: _Plan, n_hosts: int) -> None:
    car = np.flatnonzero(plan.source == n_hosts)
    truth.car_reads.extend(_read_name_strings(plan.name[car], FLOWCELL_10X))
    no_cb = np.flatnonzero(~plan.has_cb[plan.barcode])
    truth.no_barcode_reads.extend(_read_name_strings(plan.name[no_cb], FLOWCELL_10X))
    background = np.flatnonzero(plan.has_cb)[plan.n_cells :]
    truth.background_barcodes.extend(f"{plan.barcodes[i]}-1" for i in background.tolist())


def write_tenx_bam(
    path: str | Path,
    cells: pd.DataFrame,
    construct: Construct,
    hosts: Mapping[str, str],
    params: CohortParams,
    rng: np.random.Generator,
    *,
    sample_id: str = "sample",
    truth: ReadTruth | None = None,
) -> pd.DataFrame:
    """Write a 10x-style, coordinate-sorted and indexed BAM of one scRNA biopsy.

    Parameters
    ----------
    path
        Output BAM; the index is written to ``path + ".bai"``.
    cells
        One row per cell: ``barcode`` (16 nt + ``-1``), ``cell_type``, ``low_quality``,
        ``car_umis`` (CAR molecules in the cell).
    construct
        The CAR whose transcript CAR reads come from.
    hosts
        Host transcripts (:func:`host_transcripts`): the BAM's contigs.
    params
        ``host_reads_per_cell`` (a third of it for damaged cells), ``read_length`` and
        ``read_error_rate`` are used.
    rng
        The only source of randomness.
    sample_id
        Sample name of the read group.
    truth
        If given, filled with the names of CAR reads and no-CB reads and the background
        barcodes.

    Returns
    -------
    pandas.DataFrame
        Per cell, in ``cells`` order: ``barcode``, ``car_reads``, ``car_umis`` (equal to the
        input), ``car_specific_reads`` and ``car_specific_umis`` (CAR reads, and UMIs with at
        least one such read, that overlap a specific segment or span a junction: the ones a
        read can prove the CAR with).
    """
    length = params.read_length
    plan = _plan_reads(cells, hosts, construct, params, rng)
    placement = _place(plan, construct, hosts, length)
    header = tenx_header(hosts, sample_id)
    context = _BamContext(
        plan=plan,
        placement=placement,
        sources=_Sources.of([*hosts.values(), construct.sequence]),
        contigs=list(hosts),
        read_group=header["RG"][0]["ID"],
        read_length=length,
        error_rate=params.read_error_rate,
        n_hosts=len(hosts),
    )
    with pysam.AlignmentFile(str(path), "wb", header=header) as bam:
        bam_header = bam.header
        for order in _write_order(plan, placement, len(hosts)):
            for chunk in range(0, order.size, _CHUNK):
                for line in _bam_lines(context, order[chunk : chunk + _CHUNK], rng):
                    bam.write(pysam.AlignedSegment.fromstring(line, bam_header))
    pysam.index(str(path))
    if truth is not None:
        _fill_bam_truth(truth, plan, len(hosts))
    return _cell_truth(plan, cells, construct, len(hosts), length)


BENCHMARK_DAMAGED_FRACTION = 0.05


def benchmark_cells(
    n_cells: int, rng: np.random.Generator, car_fraction: float = 0.25
) -> pd.DataFrame:
    """Cells for a large BAM: CT-0508-like composition, CAR in a fraction of macrophages.

    CAR-carrying macrophages get ``1 + Poisson(3)`` CAR UMIs; 5% of cells are damaged.
    """
    composition = {**BASELINE_COMPOSITION, "cd8_t": 0.08}
    types = np.array([t for t in CELL_TYPES if t in composition])
    weights = np.array([composition[t] for t in types])
    cell_type = types[rng.choice(types.size, size=n_cells, p=weights / weights.sum())]
    macrophage = np.char.startswith(cell_type.astype(str), "macrophage")
    car = macrophage & (rng.random(n_cells) < car_fraction)
    car_umis = np.where(car, 1 + rng.poisson(3.0, n_cells), 0)
    barcodes = sorted(_unique_barcodes(n_cells, set(), rng))
    return pd.DataFrame(
        {
            "barcode": [f"{b}-1" for b in barcodes],
            "cell_type": cell_type,
            "low_quality": rng.random(n_cells) < BENCHMARK_DAMAGED_FRACTION,
            "car_umis": car_umis,
        }
    )


def write_benchmark_bam(
    path: str | Path,
    n_reads: int,
    construct: Construct,
    hosts: Mapping[str, str],
    seed: int,
    reads_per_cell: int = 200,
    *,
    truth: ReadTruth | None = None,
) -> pd.DataFrame:
    """A large 10x-style BAM of about ``n_reads`` reads (for benchmarks); per-cell CAR truth.

    Cells of :func:`benchmark_cells`, as many as ``n_reads`` needs at ``reads_per_cell`` host
    reads per good cell; the total is within about 1% of ``n_reads``. See
    :func:`write_tenx_bam` for the file, the return value and ``truth``.
    """
    damaged_loss = BENCHMARK_DAMAGED_FRACTION * (1 - LOW_QUALITY_READ_FRACTION)
    per_cell = reads_per_cell * (1 - damaged_loss) * (1 + NO_BARCODE_FRACTION)
    rng = rng_for(seed, "benchmark_bam", n_reads)
    cells = benchmark_cells(max(1, round(n_reads / per_cell)), rng)
    params = CohortParams(seed=seed, host_reads_per_cell=reads_per_cell)
    return write_tenx_bam(
        path, cells, construct, hosts, params, rng, sample_id="benchmark", truth=truth
    )


# --- bulk FASTQ -------------------------------------------------------------------------------

FLOWCELL_BULK = "HBULKDSX5"
_BULK_INDEX = "GATCAGAT+ACTTGAAT"


def _fastq_chunk(
    numbers: np.ndarray,
    source: np.ndarray,
    sources: _Sources,
    lengths: np.ndarray,
    params: CohortParams,
    rng: np.random.Generator,
) -> str:
    """FASTQ text of one chunk of bulk reads (unstranded: half reverse-complemented)."""
    length = params.read_length
    start = (rng.random(source.size) * (lengths[source] - length + 1)).astype(np.int64)
    codes = sources.reads(source, start, length)
    reverse = rng.random(source.size) < 0.5
    codes[reverse] = 3 - codes[reverse][:, ::-1]
    _with_errors(codes, params.read_error_rate, rng)
    sequences = _rows(_ACGT[codes])
    qualities = _rows(_qualities(rng, codes.shape))
    names = _read_name_strings(numbers, FLOWCELL_BULK)
    return "".join(
        f"@{name} 1:N:0:{_BULK_INDEX}\n{sequence}\n+\n{quality}\n"
        for name, sequence, quality in zip(names, sequences, qualities, strict=True)
    )


def write_bulk_fastq(
    path: str | Path,
    car_present: bool,
    construct: Construct,
    hosts: Mapping[str, str],
    params: CohortParams,
    rng: np.random.Generator,
    car_read_fraction: float = BULK_CAR_READ_FRACTION,
    *,
    truth: ReadTruth | None = None,
) -> int:
    """Write a bulk RNA-seq FASTQ (gzip, byte-identical for the same generator state).

    Parameters
    ----------
    path
        Output ``.fastq.gz``.
    car_present
        Whether the biopsy carries CAR-M; if so ``max(MIN_BULK_CAR_READS,
        round(bulk_reads * car_read_fraction))`` reads come from the CAR.
    construct, hosts
        Sources of the CAR and host reads (host expression: :data:`BULK_WEIGHTS`).
    params
        ``bulk_reads`` (total reads), ``read_length`` and ``read_error_rate`` are used.
    rng
        The only source of randomness.
    car_read_fraction
        CAR reads per read (default 50 per million).
    truth
        If given, ``truth.car_reads`` gets the CAR reads' names.

    Returns
    -------
    int
        Number of CAR reads.
    """
    total = params.bulk_reads
    n_car = 0
    if car_present:
        n_car = min(total, max(MIN_BULK_CAR_READS, round(total * car_read_fraction)))
    car_positions = np.sort(rng.choice(total, size=n_car, replace=False))
    names = list(hosts)
    weights = _gene_weights(names, BULK_WEIGHTS, BASAL_WEIGHT * 5)
    sources = _Sources.of([*hosts.values(), construct.sequence])
    lengths = np.array([len(s) for s in hosts.values()] + [construct.length])
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as handle,
    ):
        for chunk in range(0, total, _CHUNK):
            numbers = np.arange(chunk, min(chunk + _CHUNK, total))
            source = rng.choice(len(names), size=numbers.size, p=weights)
            in_chunk = car_positions[(car_positions >= chunk) & (car_positions < numbers[-1] + 1)]
            source[in_chunk - chunk] = len(names)
            handle.write(_fastq_chunk(numbers, source, sources, lengths, params, rng).encode())
    if truth is not None:
        truth.car_reads.extend(_read_name_strings(car_positions, FLOWCELL_BULK))
    return n_car
