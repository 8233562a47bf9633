"""A synthetic 10x library: the UMIs of each barcode and where an aligner puts their reads.

Planning (:func:`plan_reads`)
    Every read of a 10x-style BAM as parallel integer arrays, before any sequence is made:
    each cell's host UMIs (genes drawn from its cell type's expression; every T/NK cell has
    endogenous CD8A/CD247 UMIs) and CAR UMIs, 1-3 reads per host UMI (PCR duplicates) and 1-4
    per CAR UMI; noise: reads with a raw barcode that is not a cell, reads of background barcodes
    (ambient RNA in empty droplets) and unmappable reads. Read names are a random permutation.

Placement (:func:`place_reads`)
    Host reads map where they come from. CAR reads are placed as an aligner would place them:
    inside a host-derived segment they map to CD8A/CD247; overlapping one by at least
    :data:`MIN_ALIGNED` bases they map there with the rest soft-clipped; otherwise they are
    unmapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from carmscope.construct import (
    Construct,
)
from carmscope.synthetic.design import CohortParams
from carmscope.synthetic.host_transcripts import (
    BASAL_WEIGHT,
    HOUSEKEEPING_WEIGHTS,
    gene_weights,
    locate_host_segments,
)
from carmscope.synthetic.reads import ACGT_ASCII

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


def _cell_type_weights(hosts: list[str], cell_type: str) -> np.ndarray:
    return gene_weights(
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


def unique_barcodes(n: int, taken: set[str], rng: np.random.Generator) -> list[str]:
    """``n`` random 16-nt barcodes, distinct from each other and from ``taken``."""
    chosen: list[str] = []
    seen = set(taken)
    while len(chosen) < n:
        for code in ACGT_ASCII[rng.integers(0, 4, size=(n, BARCODE_LENGTH))]:
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
    ambient = gene_weights(hosts, HOUSEKEEPING_WEIGHTS, BASAL_WEIGHT * 5)
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
class ReadPlan:
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


def plan_reads(
    cells: pd.DataFrame,
    hosts: Mapping[str, str],
    construct: Construct,
    params: CohortParams,
    rng: np.random.Generator,
) -> ReadPlan:
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
    extra = unique_barcodes(n_background + n_no_barcode, set(cell_barcodes), rng)
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
    return ReadPlan(
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
class Placement:
    """Alignment of every read: contig index (-1 unmapped), 0-based position, soft clips."""

    contig: np.ndarray
    position: np.ndarray
    clip_left: np.ndarray
    aligned: np.ndarray


def _place_car_reads(
    start: np.ndarray, construct: Construct, hosts: Mapping[str, str], read_length: int
) -> Placement:
    """Where an aligner puts CAR reads starting at ``start`` (0-based in the construct).

    Each read goes to the host-derived segment it overlaps most; it maps there if it overlaps
    by at least :data:`MIN_ALIGNED` bases, the rest soft-clipped, and is unmapped otherwise.
    """
    names = list(hosts)
    located = locate_host_segments(construct, hosts)
    n = start.size
    placement = Placement(
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


def place_reads(
    plan: ReadPlan, construct: Construct, hosts: Mapping[str, str], read_length: int
) -> Placement:
    """Alignment of every planned read: host reads in place, CAR reads placed, junk unmapped."""
    source = plan.source
    n_hosts = len(hosts)
    n = source.size
    placement = Placement(
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


def car_specific(start: np.ndarray, construct: Construct, read_length: int) -> np.ndarray:
    """Whether each CAR read (0-based start) overlaps a specific segment or spans a junction."""
    inside = np.zeros(start.size, dtype=bool)
    for segment in construct.host_segments:
        inside |= (start + 1 >= segment.start) & (start + read_length <= segment.end)
    return ~inside


# --- making sequences -------------------------------------------------------------------------
