"""The gene universe of the synthetic cohort and the expression programmes of each cell type.

The universe (see :func:`gene_table`) holds:

* the marker and programme genes of every cell type (:data:`MARKER_PROGRAMMES`), real human
  symbols;
* housekeeping genes (:data:`HOUSEKEEPING_LOG2`);
* every gene of the gene sets passed in (hallmark inflammation sets, immune signatures);
* the 13 protein-coding mitochondrial genes (:data:`MITOCHONDRIAL_GENES`);
* ``params.n_background_genes`` background genes ``SYNG00001``, ``SYNG00002``, ...

Gene IDs are **synthetic**: ``ENSG9`` and 10 digits from a SHA-256 hash of the symbol, the same
length as real Ensembl human gene IDs (``ENSG`` + 11 digits) but never a real one (real IDs
start ``ENSG00``). They depend only on the symbol, except that a hash collision moves the later
symbol (in table order) to the next free number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import pandas as pd

from carmscope.celltypes import CELL_TYPES, IMMUNE_CELL_TYPES
from carmscope.synthetic.design import CohortParams

# --- cell-type programmes ---------------------------------------------------------------------

_T_CELL_CORE = {"CD3D": 5.0, "CD3E": 5.0, "CD3G": 4.0, "CD2": 4.0, "CD247": 3.0}
_CYTOTOXIC = {"NKG7": 4.5, "GZMA": 4.0, "GZMB": 3.5, "PRF1": 4.0, "CTSW": 3.5, "IFNG": 2.0}
_MACROPHAGE_CORE = {
    "CD68": 5.0,
    "C1QA": 6.0,
    "C1QB": 6.0,
    "C1QC": 5.5,
    "APOE": 5.0,
    "CSF1R": 4.0,
    "TYROBP": 4.0,
    "HLA-DRA": 5.0,
    "CD14": 3.0,
}
_PTPRC = {"PTPRC": 4.0}
"""CD45, on every immune population (low on plasma cells)."""

_PROGRAMMES: dict[str, dict[str, float]] = {
    "tumour_epithelium": {
        "EPCAM": 5.0,
        "KRT8": 6.0,
        "KRT18": 6.0,
        "KRT19": 5.5,
        "KRT7": 4.5,
        "CDH1": 4.5,
        "CLDN4": 4.0,
        "MUC1": 4.0,
        "ERBB2": 2.0,  # normal epithelial level; HER2 amplification adds the patient's fold
    },
    "cd8_t": {
        **_T_CELL_CORE,
        **_CYTOTOXIC,
        "CD8A": 5.5,
        "CD8B": 5.0,
        "GZMK": 4.5,
        "CCL5": 4.0,
        # exhaustion
        "PDCD1": 3.0,
        "HAVCR2": 3.0,
        "LAG3": 3.0,
        "TIGIT": 3.0,
        "TOX": 3.0,
        "CXCL13": 2.5,
    },
    "cd4_t": {
        **_T_CELL_CORE,
        "CD4": 4.5,
        "IL7R": 5.0,
        "CCR7": 3.5,
        "TCF7": 3.5,
        "LTB": 4.0,
        "CD40LG": 3.5,
    },
    "treg": {
        **_T_CELL_CORE,
        "CD4": 4.0,
        "FOXP3": 5.5,
        "IL2RA": 5.0,
        "CTLA4": 5.0,
        "TNFRSF18": 4.0,
        "IKZF2": 3.5,
        "TIGIT": 3.0,
    },
    "nk": {
        **_CYTOTOXIC,
        "NKG7": 5.5,
        "GZMB": 4.5,
        "PRF1": 4.5,
        "NCAM1": 4.0,
        "KLRD1": 5.0,
        "KLRF1": 4.5,
        "GNLY": 5.5,
        "FCGR3A": 4.5,
        "CD247": 3.0,
    },
    "b": {
        "MS4A1": 6.0,
        "CD79A": 6.0,
        "CD79B": 5.0,
        "CD19": 4.5,
        "BANK1": 4.0,
        "PAX5": 4.0,
        "HLA-DRA": 4.0,
    },
    "plasma": {
        "JCHAIN": 7.0,
        "MZB1": 6.0,
        "IGHG1": 8.0,
        "IGKC": 8.0,
        "SDC1": 4.5,
        "XBP1": 4.0,
        "CD79A": 3.0,
    },
    "macrophage_m1": {
        **_MACROPHAGE_CORE,
        "CD163": 2.5,
        "MRC1": 2.0,
        "CD80": 4.0,
        "CD86": 4.0,
        "IL1B": 5.0,
        "CXCL9": 5.0,
        "CXCL10": 5.0,
        "TNF": 4.0,
        "IDO1": 4.0,
        "CD40": 3.0,
    },
    "macrophage_m2": {
        **_MACROPHAGE_CORE,
        "CD163": 6.0,
        "MRC1": 5.5,
        "MSR1": 5.0,
        "F13A1": 5.0,
        "SELENOP": 4.5,
        "FOLR2": 4.5,
        "LYVE1": 3.5,
    },
    "monocyte": {
        "CD14": 6.0,
        "LYZ": 6.5,
        "S100A8": 7.0,
        "S100A9": 7.0,
        "FCN1": 5.5,
        "VCAN": 5.0,
        "TYROBP": 4.0,
        "CSF1R": 2.5,
        "HLA-DRA": 3.0,
    },
    "dc": {
        "CLEC9A": 5.0,
        "XCR1": 4.0,
        "CD1C": 5.0,
        "FCER1A": 5.0,
        "CLEC10A": 4.0,
        "LAMP3": 5.0,
        "CCR7": 3.5,
        "HLA-DRA": 6.0,
        "HLA-DQA1": 4.5,
    },
    "fibroblast": {
        "COL1A1": 7.0,
        "COL1A2": 7.0,
        "COL3A1": 6.5,
        "DCN": 6.5,
        "LUM": 6.0,
        "PDGFRB": 4.5,
        "PDGFRA": 4.0,
        "FAP": 4.0,
    },
    "endothelium": {
        "PECAM1": 5.5,
        "VWF": 6.0,
        "CDH5": 5.5,
        "KDR": 5.0,
        "CLDN5": 5.0,
        "EMCN": 4.5,
        "PLVAP": 5.0,
    },
}


def _with_ptprc(cell_type: str, programme: dict[str, float]) -> dict[str, float]:
    """The programme plus PTPRC (CD45) on immune cells, lower on plasma cells."""
    if cell_type not in IMMUNE_CELL_TYPES:
        return dict(programme)
    level = 1.5 if cell_type == "plasma" else _PTPRC["PTPRC"]
    return {**programme, "PTPRC": level}


MARKER_PROGRAMMES: dict[str, dict[str, float]] = {
    cell_type: _with_ptprc(cell_type, _PROGRAMMES[cell_type]) for cell_type in CELL_TYPES
}
"""Cell type -> gene -> log2 fold change over the gene's background level in other cells.

Programme genes share a low background level (:data:`PROGRAMME_BASE_LOG2`), so a fold of 5
means the gene is ~32x higher in that cell type than in cells without the programme.
"""

PROGRAMME_BASE_LOG2 = -2.0
"""Background level of programme genes, log2 relative to the median background gene."""

HOUSEKEEPING_LOG2: dict[str, float] = {
    "ACTB": 6.0,
    "GAPDH": 5.0,
    "B2M": 6.5,
    "TMSB4X": 6.0,
    "EEF1A1": 6.0,
    "FTL": 5.5,
    "MALAT1": 6.5,
    "RPLP0": 5.0,
    "RPS27A": 5.0,
}
"""Genes expressed at a high level in every cell, log2 relative to the median background gene."""

MITOCHONDRIAL_GENES: dict[str, float] = {
    # the 13 mtDNA protein-coding genes in genome order, with their share of mitochondrial UMIs
    # (typical of 10x 3' data: cytochrome c oxidase and ATP6 transcripts dominate)
    "MT-ND1": 0.06,
    "MT-ND2": 0.05,
    "MT-CO1": 0.20,
    "MT-CO2": 0.12,
    "MT-ATP8": 0.02,
    "MT-ATP6": 0.14,
    "MT-CO3": 0.15,
    "MT-ND3": 0.05,
    "MT-ND4L": 0.02,
    "MT-ND4": 0.08,
    "MT-ND5": 0.03,
    "MT-ND6": 0.01,
    "MT-CYB": 0.07,
}
"""Mitochondrial gene -> fraction of a cell's mitochondrial UMIs (sums to 1)."""

BACKGROUND_PREFIX = "SYNG"
SYNTHETIC_ID_PREFIX = "ENSG9"
_ID_DIGITS = 10


def programme_genes() -> list[str]:
    """Every gene of some cell-type programme, in first-seen order."""
    return list(dict.fromkeys(g for programme in MARKER_PROGRAMMES.values() for g in programme))


def specific_markers(cell_type: str, margin: float = 1.0) -> list[str]:
    """Genes whose programme fold in ``cell_type`` beats every other cell type by ``margin``.

    Parameters
    ----------
    cell_type
        One of :data:`carmscope.celltypes.CELL_TYPES`.
    margin
        Minimum log2 difference to the same gene's fold in any other cell type (0 if absent).

    Returns
    -------
    list of str
        Markers, highest fold first.
    """
    own = MARKER_PROGRAMMES[cell_type]
    others = [MARKER_PROGRAMMES[other] for other in CELL_TYPES if other != cell_type]
    specific = [
        gene
        for gene, fold in own.items()
        if all(fold - programme.get(gene, 0.0) >= margin for programme in others)
    ]
    return sorted(specific, key=lambda gene: -own[gene])


def background_symbols(n: int) -> list[str]:
    """Names of ``n`` background genes: ``SYNG00001``, ``SYNG00002``, ..."""
    return [f"{BACKGROUND_PREFIX}{i:05d}" for i in range(1, n + 1)]


def synthetic_gene_ids(symbols: Iterable[str]) -> list[str]:
    """Synthetic Ensembl-style IDs (``ENSG9`` + 10 digits) from a hash of each symbol.

    A collision takes the next free number, so IDs are unique within ``symbols``.
    """
    modulus = 10**_ID_DIGITS
    taken: set[int] = set()
    ids = []
    for symbol in symbols:
        number = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big") % modulus
        while number in taken:
            number = (number + 1) % modulus
        taken.add(number)
        ids.append(f"{SYNTHETIC_ID_PREFIX}{number:0{_ID_DIGITS}d}")
    return ids


def gene_table(params: CohortParams, gene_sets: Mapping[str, Iterable[str]]) -> pd.DataFrame:
    """The gene universe of the cohort, in the order genes appear in count matrices.

    Parameters
    ----------
    params
        Cohort parameters (``n_background_genes``).
    gene_sets
        Set name -> genes (e.g. from :func:`carmscope.genesets.read_gmt` and
        :func:`carmscope.genesets.read_signature_table`); every gene is included.

    Returns
    -------
    pandas.DataFrame
        Columns ``gene_id`` and ``gene_symbol`` (unique), with a 0-based ``RangeIndex``: the
        named nuclear genes (programmes, housekeeping, gene sets) sorted by symbol, then the
        mitochondrial genes in genome order, then the background genes.
    """
    named = set(programme_genes()) | set(HOUSEKEEPING_LOG2)
    named.update(gene for genes in gene_sets.values() for gene in genes)
    named.difference_update(MITOCHONDRIAL_GENES)
    background = [g for g in background_symbols(params.n_background_genes) if g not in named]
    symbols = [*sorted(named), *MITOCHONDRIAL_GENES, *background]
    return pd.DataFrame({"gene_id": synthetic_gene_ids(symbols), "gene_symbol": symbols})
