"""Single-cell and bulk RNA counts of a synthetic biopsy, with the truth behind every cell.

Model
-----
* **Mean profiles.** Every nuclear gene has a background level shared by all cells and all
  samples of the cohort: log2 of it is normal (sd :data:`BACKGROUND_LOG2_SD`) for ordinary
  genes, :data:`~carmscope.synthetic.genes.PROGRAMME_BASE_LOG2` for programme genes and fixed
  high values for housekeeping genes (drawn from a hash of ``(seed, symbol)``, so a gene's level
  does not depend on the rest of the universe). A cell type adds its programme's log2 fold
  changes (:data:`~carmscope.synthetic.genes.MARKER_PROGRAMMES`); the profile is normalised to
  proportions.
* **Post-infusion inflammation.** In :data:`INFLAMED_CELL_TYPES` (macrophages, monocytes, DCs,
  CD8/CD4/regulatory T cells, NK and tumour cells) the mean of every gene of
  ``inflammatory_genes`` is multiplied by ``2 ** sample.inflammation_log2fc``; IFNG is also
  multiplied by it in CD8 T and NK cells whether or not it is among ``inflammatory_genes``.
  B, plasma, fibroblast and endothelial cells are unchanged.
* **HER2.** A fraction ``patient.erbb2_expressing_fraction`` of tumour cells (drawn per cell)
  gets ``patient.erbb2_log2fc`` more on ERBB2.
* **Library size and mitochondria.** UMIs per cell are log-normal around
  ``params.median_umis_per_cell`` (sd :data:`LIBRARY_LOG_SD` on the natural-log scale); a
  uniform 2-8% of a good cell's expected UMIs are mitochondrial, split over the 13 MT genes by
  :data:`~carmscope.synthetic.genes.MITOCHONDRIAL_GENES`.
* **Damaged cells.** ``params.low_quality_fraction`` of barcodes (rounded) have 10-20% of a
  drawn library size and 30-70% mitochondrial UMIs; they keep a cell type drawn from the
  composition, are flagged ``low_quality`` and never carry CAR.
* **Counts.** Negative binomial (gamma-Poisson) around the mean, dispersion
  :data:`SC_DISPERSION` (variance ``mu + 0.2 mu^2``).
* **Cell types.** Good cells' types are the composition times their number, rounded by largest
  remainder (the realised fractions are the design's to within one cell); order is shuffled.
* **CAR-M.** In a CAR-positive biopsy the number of CAR+ cells is
  ``Binomial(n macrophages, patient.car_macrophage_fraction)`` (each macrophage, M1 or M2,
  carries CAR with that probability). CAR-M are M1-like: CAR+ cells are taken from the
  ``macrophage_m1`` cells first and only when there are more CAR+ cells than M1 cells are M2
  macrophages taken and relabelled ``macrophage_m1``, so the realised composition stays the
  design's whenever it can. A CAR+ cell has ``1 + Poisson(params.car_umis_per_car_cell - 1)``
  CAR UMIs (recorded in ``cells.car_umis``, not in the matrix).

All randomness of a sample comes from ``rng_for(params.seed, sample.sample_id, purpose)``; the
count matrix is built in chunks of :data:`CHUNK_CELLS` cells, so memory is bounded by the
sparse result plus a few dense ``CHUNK_CELLS x genes`` arrays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse, special

from carmscope.celltypes import CELL_TYPES, MACROPHAGE_TYPES, T_CELL_TYPES
from carmscope.synthetic.design import CohortParams, PatientDesign, SampleDesign, rng_for
from carmscope.synthetic.genes import (
    HOUSEKEEPING_LOG2,
    MARKER_PROGRAMMES,
    MITOCHONDRIAL_GENES,
    PROGRAMME_BASE_LOG2,
    programme_genes,
)

SC_DISPERSION = 0.2
"""Negative-binomial dispersion of single-cell counts (variance ``mu + phi * mu**2``)."""
BULK_DISPERSION = 0.05
"""Negative-binomial dispersion of bulk RNA-seq counts."""
BACKGROUND_LOG2_SD = 1.5
"""Sd of log2 background expression across ordinary genes."""
LIBRARY_LOG_SD = 0.4
"""Sd of natural-log UMIs per cell."""
MITO_FRACTION_GOOD = (0.02, 0.08)
MITO_FRACTION_DAMAGED = (0.30, 0.70)
DAMAGED_LIBRARY_SCALE = (0.10, 0.20)
"""Damaged cells keep this fraction (uniform) of a drawn library size."""
BULK_TOTAL_READS = 20_000_000
BULK_MITO_FRACTION = 0.05
CHUNK_CELLS = 4096
"""Cells simulated at once (bounds the dense working arrays)."""

INFLAMED_CELL_TYPES: frozenset[str] = frozenset(
    {*MACROPHAGE_TYPES, *T_CELL_TYPES, "monocyte", "dc", "nk", "tumour_epithelium"}
)
"""Cell types whose inflammatory genes go up after infusion."""
IFNG_CELL_TYPES: frozenset[str] = frozenset({"cd8_t", "nk"})
"""Cell types in which IFNG goes up after infusion."""
CAR_CELL_TYPE = "macrophage_m1"
"""Label of CAR+ cells (CAR-M are M1-like)."""

_TUMOUR = "tumour_epithelium"
_HER2_PROFILE = len(CELL_TYPES)
"""Profile index of HER2-expressing tumour cells (after one profile per cell type)."""
_BARCODE_SPACE = 4**16


@dataclass(frozen=True)
class BiopsyCells:
    """Counts of one simulated scRNA biopsy and the truth of every barcode.

    Attributes
    ----------
    matrix
        Cells x genes UMI counts (``int32`` CSR), rows in barcode order.
    barcodes
        10x-style barcodes (16 nt + ``-1``), unique and sorted.
    cells
        Indexed by barcode: ``barcode``, ``cell_type``, ``low_quality`` (damaged cell) and
        ``car_umis`` (CAR UMIs; 0 unless a CAR+ cell).
    genes
        The gene table (columns of ``matrix``).
    """

    matrix: sparse.csr_matrix
    barcodes: np.ndarray
    cells: pd.DataFrame
    genes: pd.DataFrame


@dataclass(frozen=True)
class _Profiles:
    """Expected expression: nuclear proportions per profile and mitochondrial proportions."""

    nuclear: np.ndarray
    """``(n profiles, n genes)``: one row per cell type, then HER2-expressing tumour cells."""
    mito: np.ndarray
    """``(n genes,)``: zero outside the mitochondrial genes."""


# --- mean profiles ----------------------------------------------------------------------------


def _hash_uniform(text: str) -> float:
    """A number in (0, 1) from the SHA-256 hash of ``text``."""
    return (int.from_bytes(hashlib.sha256(text.encode()).digest()[:8]) + 0.5) / 2.0**64


def responding_genes(
    inflammatory_genes: Collection[str], fraction: float, seed: int
) -> frozenset[str]:
    """The inflammatory genes that respond to infusion: a fixed, hash-chosen ``fraction``.

    Real programmes never move every member gene, and raising a large share of the library
    would make every other gene look lower after normalisation.
    """
    return frozenset(
        gene
        for gene in inflammatory_genes
        if _hash_uniform(f"{seed}\x1fresponds\x1f{gene}") < fraction
    )


def _hash_normal(seed: int, symbols: list[str]) -> np.ndarray:
    """One standard normal value per symbol from a hash of ``(seed, symbol)``."""
    uniforms = [_hash_uniform(f"{seed}\x1fbackground\x1f{symbol}") for symbol in symbols]
    return special.ndtri(np.asarray(uniforms))


def baseline_log2(genes: pd.DataFrame, seed: int) -> np.ndarray:
    """Log2 background level of each gene (NaN for mitochondrial genes).

    Parameters
    ----------
    genes
        Gene table (``gene_symbol``).
    seed
        Cohort seed.

    Returns
    -------
    numpy.ndarray
        One value per gene, relative to the median ordinary gene.
    """
    symbols = genes["gene_symbol"].tolist()
    levels = _hash_normal(seed, symbols) * BACKGROUND_LOG2_SD
    programme = set(programme_genes())
    for i, symbol in enumerate(symbols):
        if symbol in HOUSEKEEPING_LOG2:
            levels[i] = HOUSEKEEPING_LOG2[symbol]
        elif symbol in programme:
            levels[i] = PROGRAMME_BASE_LOG2
        elif symbol in MITOCHONDRIAL_GENES:
            levels[i] = np.nan
    return levels


def _gene_vector(genes: pd.DataFrame, values: dict[str, float]) -> np.ndarray:
    """Per-gene values as a vector over the gene table (0 for genes not in ``values``)."""
    return genes["gene_symbol"].map(values).fillna(0.0).to_numpy(dtype=float)


def raised_genes(cell_type: str, inflammatory_genes: Collection[str]) -> frozenset[str]:
    """The genes whose mean rises after infusion in ``cell_type`` (the ground truth of DE).

    Parameters
    ----------
    cell_type
        A label of :data:`~carmscope.celltypes.CELL_TYPES`.
    inflammatory_genes
        The responding inflammatory genes (``Simulation.inflammatory_genes``, written to
        ``truth/inflammatory_genes.txt``).

    Returns
    -------
    frozenset of str
        ``inflammatory_genes`` in :data:`INFLAMED_CELL_TYPES` (plus IFNG in
        :data:`IFNG_CELL_TYPES`); empty in the unchanged cell types.
    """
    up = set(inflammatory_genes) if cell_type in INFLAMED_CELL_TYPES else set()
    if cell_type in IFNG_CELL_TYPES:
        up.add("IFNG")
    return frozenset(up)


def _inflammation_folds(
    cell_type: str, log2fc: float, inflammatory_genes: Collection[str]
) -> dict[str, float]:
    """Gene -> post-infusion log2 fold change in ``cell_type``."""
    return dict.fromkeys(raised_genes(cell_type, inflammatory_genes), log2fc) if log2fc else {}


def _proportions(log2_levels: np.ndarray) -> np.ndarray:
    """Log2 levels (NaN = not expressed) to proportions summing to 1."""
    weights = np.nan_to_num(np.exp2(log2_levels), nan=0.0)
    return weights / weights.sum()


def _profiles(
    sample: SampleDesign,
    patient: PatientDesign,
    params: CohortParams,
    genes: pd.DataFrame,
    inflammatory_genes: Collection[str],
) -> _Profiles:
    """Mean expression profiles of every cell type of one sample."""
    base = baseline_log2(genes, params.seed)
    rows = [
        base
        + _gene_vector(genes, MARKER_PROGRAMMES[cell_type])
        + _gene_vector(
            genes, _inflammation_folds(cell_type, sample.inflammation_log2fc, inflammatory_genes)
        )
        for cell_type in CELL_TYPES
    ]
    her2 = rows[CELL_TYPES.index(_TUMOUR)] + _gene_vector(genes, {"ERBB2": patient.erbb2_log2fc})
    nuclear = np.vstack([_proportions(row) for row in (*rows, her2)])
    mito = _gene_vector(genes, MITOCHONDRIAL_GENES)
    return _Profiles(nuclear=nuclear, mito=mito / mito.sum())


# --- the cells of a biopsy --------------------------------------------------------------------


def _largest_remainder(fractions: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` closest to ``fractions * total``."""
    raw = fractions / fractions.sum() * total
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _composition_vector(sample: SampleDesign) -> np.ndarray:
    """The sample's composition over :data:`CELL_TYPES`."""
    fractions = np.array([sample.composition.get(t, 0.0) for t in CELL_TYPES], dtype=float)
    if fractions.sum() <= 0:
        raise ValueError(f"sample {sample.sample_id} has no cell-type composition")
    return fractions / fractions.sum()


def _draw_cell_types(sample: SampleDesign, params: CohortParams) -> tuple[np.ndarray, np.ndarray]:
    """Cell-type index and low-quality flag of every barcode, in random order."""
    rng = rng_for(params.seed, sample.sample_id, "cell_types")
    fractions = _composition_vector(sample)
    n_low = round(params.cells_per_biopsy * params.low_quality_fraction)
    good = np.repeat(
        np.arange(len(CELL_TYPES)),
        _largest_remainder(fractions, params.cells_per_biopsy - n_low),
    )
    damaged = rng.choice(len(CELL_TYPES), size=n_low, p=fractions)
    order = rng.permutation(params.cells_per_biopsy)
    types = np.concatenate([good, damaged])[order]
    low_quality = np.concatenate([np.zeros(good.size, bool), np.ones(n_low, bool)])[order]
    return types, low_quality


def _barcodes(seed: int, sample_id: str, n: int) -> np.ndarray:
    """``n`` unique, sorted 10x-style barcodes (16 random nt + ``-1``)."""
    rng = rng_for(seed, sample_id, "barcodes")
    codes = np.unique(rng.integers(0, _BARCODE_SPACE, size=n, dtype=np.uint64))
    while codes.size < n:
        extra = rng.integers(0, _BARCODE_SPACE, size=n - codes.size, dtype=np.uint64)
        codes = np.unique(np.concatenate([codes, extra]))
    shifts = np.arange(30, -1, -2, dtype=np.uint64)
    digits = ((codes[:, None] >> shifts) & np.uint64(3)).astype(np.uint8)
    letters = np.frombuffer(b"ACGT", dtype=np.uint8)[digits]
    sequences = np.ascontiguousarray(letters).view("S16").ravel().astype(str)
    return np.char.add(sequences, "-1")


def _assign_car(
    sample: SampleDesign,
    patient: PatientDesign,
    params: CohortParams,
    types: np.ndarray,
    low_quality: np.ndarray,
) -> np.ndarray:
    """CAR UMIs per cell; relabels CAR+ M2 macrophages as M1 in ``types`` (in place)."""
    car_umis = np.zeros(types.size, dtype=np.int64)
    if not sample.car_present:
        return car_umis
    rng = rng_for(params.seed, sample.sample_id, "car")
    m1, m2 = (
        rng.permutation(np.flatnonzero((types == CELL_TYPES.index(t)) & ~low_quality))
        for t in ("macrophage_m1", "macrophage_m2")
    )
    candidates = np.concatenate([m1, m2])
    n_car = rng.binomial(candidates.size, patient.car_macrophage_fraction)
    carriers = candidates[:n_car]
    types[carriers] = CELL_TYPES.index(CAR_CELL_TYPE)
    car_umis[carriers] = 1 + rng.poisson(max(params.car_umis_per_car_cell - 1.0, 0.0), n_car)
    return car_umis


def _profile_index(
    sample: SampleDesign, patient: PatientDesign, params: CohortParams, types: np.ndarray
) -> np.ndarray:
    """Profile of every cell: its cell type, or the HER2 profile for expressing tumour cells."""
    rng = rng_for(params.seed, sample.sample_id, "erbb2")
    expressing = rng.random(types.size) < patient.erbb2_expressing_fraction
    tumour = types == CELL_TYPES.index(_TUMOUR)
    return np.where(tumour & expressing, _HER2_PROFILE, types)


def _library_sizes(
    sample: SampleDesign, params: CohortParams, low_quality: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Expected nuclear and mitochondrial UMIs of every cell."""
    rng = rng_for(params.seed, sample.sample_id, "library")
    n = low_quality.size
    total = params.median_umis_per_cell * np.exp(rng.normal(0.0, LIBRARY_LOG_SD, n))
    total *= np.where(low_quality, rng.uniform(*DAMAGED_LIBRARY_SCALE, n), 1.0)
    mito = np.where(
        low_quality, rng.uniform(*MITO_FRACTION_DAMAGED, n), rng.uniform(*MITO_FRACTION_GOOD, n)
    )
    return total * (1.0 - mito), total * mito


def negative_binomial(rng: np.random.Generator, mean: np.ndarray, dispersion: float) -> np.ndarray:
    """Gamma-Poisson counts with the given means and dispersion (variance ``mu + d mu^2``)."""
    shape = 1.0 / dispersion
    return rng.poisson(rng.gamma(shape, mean * dispersion))


def _sparse_block(counts: np.ndarray) -> sparse.csr_matrix:
    """``int32`` CSR of a dense count block (faster than ``csr_matrix(counts)``)."""
    nonzero = counts != 0
    columns = np.broadcast_to(np.arange(counts.shape[1], dtype=np.int32), counts.shape)
    indptr = np.concatenate([[0], np.cumsum(nonzero.sum(axis=1))])
    return sparse.csr_matrix(
        (counts[nonzero].astype(np.int32), columns[nonzero], indptr), shape=counts.shape
    )


def _count_matrix(
    rng: np.random.Generator,
    profiles: _Profiles,
    profile_index: np.ndarray,
    nuclear_umis: np.ndarray,
    mito_umis: np.ndarray,
) -> sparse.csr_matrix:
    """Cells x genes NB counts, simulated :data:`CHUNK_CELLS` cells at a time.

    Peak memory is about twice the sparse result (blocks, then the stacked matrix) plus a few
    dense ``CHUNK_CELLS x genes`` working arrays; no dense cells x genes array is ever made.
    """
    n_genes = profiles.mito.size
    blocks = [sparse.csr_matrix((0, n_genes), dtype=np.int32)]
    for start in range(0, profile_index.size, CHUNK_CELLS):
        chunk = slice(start, start + CHUNK_CELLS)
        mean = nuclear_umis[chunk, None] * profiles.nuclear[profile_index[chunk]]
        mean += mito_umis[chunk, None] * profiles.mito
        blocks.append(_sparse_block(negative_binomial(rng, mean, SC_DISPERSION)))
        del mean
    return sparse.vstack(blocks, format="csr", dtype=np.int32)


def simulate_biopsy(
    sample: SampleDesign,
    patient: PatientDesign,
    params: CohortParams,
    genes: pd.DataFrame,
    inflammatory_genes: Collection[str],
) -> BiopsyCells:
    """Simulate the scRNA-seq counts of one biopsy (see the module docstring for the model).

    Parameters
    ----------
    sample
        The biopsy (``composition``, ``inflammation_log2fc``, ``car_present``).
    patient
        Its patient (``erbb2_log2fc``, ``erbb2_expressing_fraction``,
        ``car_macrophage_fraction``).
    params
        Cohort parameters (``cells_per_biopsy``, ``low_quality_fraction``,
        ``median_umis_per_cell``, ``car_umis_per_car_cell``, ``seed``).
    genes
        Gene table from :func:`carmscope.synthetic.genes.gene_table`.
    inflammatory_genes
        Genes up after infusion (symbols not in ``genes`` are ignored).

    Returns
    -------
    BiopsyCells
        Counts, barcodes and the truth of every cell.
    """
    types, low_quality = _draw_cell_types(sample, params)
    car_umis = _assign_car(sample, patient, params, types, low_quality)
    profile_index = _profile_index(sample, patient, params, types)
    nuclear_umis, mito_umis = _library_sizes(sample, params, low_quality)
    profiles = _profiles(sample, patient, params, genes, inflammatory_genes)
    matrix = _count_matrix(
        rng_for(params.seed, sample.sample_id, "counts"),
        profiles,
        profile_index,
        nuclear_umis,
        mito_umis,
    )
    barcodes = _barcodes(params.seed, sample.sample_id, types.size)
    cells = pd.DataFrame(
        {
            "barcode": barcodes,
            "cell_type": np.asarray(CELL_TYPES, dtype=object)[types],
            "low_quality": low_quality,
            "car_umis": car_umis,
        },
        index=pd.Index(barcodes),
    )
    return BiopsyCells(matrix=matrix, barcodes=barcodes, cells=cells, genes=genes)


# --- bulk RNA-seq -----------------------------------------------------------------------------


def bulk_mean_proportions(
    sample: SampleDesign,
    patient: PatientDesign,
    params: CohortParams,
    genes: pd.DataFrame,
    inflammatory_genes: Collection[str],
) -> np.ndarray:
    """Expected share of bulk reads of every gene: cell-type profiles weighted by composition.

    Tumour cells mix the HER2-expressing and non-expressing profiles by
    ``patient.erbb2_expressing_fraction``; :data:`BULK_MITO_FRACTION` of reads are
    mitochondrial.
    """
    profiles = _profiles(sample, patient, params, genes, inflammatory_genes)
    weights = np.append(_composition_vector(sample), 0.0)
    tumour = CELL_TYPES.index(_TUMOUR)
    expressing = patient.erbb2_expressing_fraction
    weights[_HER2_PROFILE] = weights[tumour] * expressing
    weights[tumour] *= 1.0 - expressing
    nuclear = weights @ profiles.nuclear
    return (1.0 - BULK_MITO_FRACTION) * nuclear + BULK_MITO_FRACTION * profiles.mito


def simulate_bulk_counts(
    sample: SampleDesign,
    patient: PatientDesign,
    params: CohortParams,
    genes: pd.DataFrame,
    inflammatory_genes: Collection[str],
    total_reads: int = BULK_TOTAL_READS,
) -> pd.DataFrame:
    """Bulk RNA-seq gene counts of a biopsy.

    Parameters
    ----------
    sample, patient, params, genes, inflammatory_genes
        As for :func:`simulate_biopsy`.
    total_reads
        Expected total count (default 20 million).

    Returns
    -------
    pandas.DataFrame
        Columns ``gene`` (symbol) and ``count`` (int64), in gene-table order; NB noise with
        dispersion :data:`BULK_DISPERSION`.
    """
    mean = total_reads * bulk_mean_proportions(sample, patient, params, genes, inflammatory_genes)
    rng = rng_for(params.seed, sample.sample_id, "bulk_counts")
    counts = negative_binomial(rng, mean, BULK_DISPERSION).astype(np.int64)
    return pd.DataFrame({"gene": genes["gene_symbol"].to_numpy(), "count": counts})


def write_bulk_counts(path: str | Path, table: pd.DataFrame) -> None:
    """Write bulk counts as a TSV with header ``gene<TAB>count``."""
    table[["gene", "count"]].to_csv(path, sep="\t", index=False, lineterminator="\n")
