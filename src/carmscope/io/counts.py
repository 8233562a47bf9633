"""What every count-matrix reader shares: the error, the summary, the checks of the values.

The format readers are :mod:`carmscope.io.tenx_h5`, :mod:`carmscope.io.tenx_mtx` and
:mod:`carmscope.io.h5ad`; :mod:`carmscope.io.tenx` chooses among them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from carmscope.messages import quoted

if TYPE_CHECKING:
    import numpy as np

# numpy, anndata, h5py, pandas and scipy are imported by the functions that need them: every
# input inspection imports these modules, and a plasma sample's needs none of them (numpy
# alone is 0.2 s of a job's start-up).

GENE_EXPRESSION = "Gene Expression"
TENX_H5, TENX_MTX, H5AD = "10x_h5", "10x_mtx", "h5ad"
"""Format names, as input inspection reports them (``counts_format``)."""
GENOME_KEY = "expression.genome"
"""The config key that chooses the genome of a multi-genome 10x file."""
COUNTS_LAYER = "counts"
"""The h5ad layer read as raw counts when present."""
CHUNK_VALUES = 1 << 22
"""Values checked at once by :func:`are_counts` (bounds its temporary arrays)."""
NAME_SAMPLE = 2000
"""Feature names looked at to tell the gene-name type."""
ENSEMBL_ID = re.compile(r"^ENS[A-Z]*G\d{11}(\.\d+)?$")


class CountMatrixError(ValueError):
    """A count input that cannot be used; the message starts with the file's path."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


def gene_name_type(names: Sequence[str]) -> str:
    """What the feature names are: ``ensembl_id``, ``probe_id``, ``symbol`` (upper case, as
    human gene symbols), ``mixed_case_symbol`` (as mouse gene symbols), or '' for none.

    Decided by the majority of the first :data:`NAME_SAMPLE` names.
    """
    sample = [str(name) for name in list(names)[:NAME_SAMPLE]]
    if not sample:
        return ""
    half = len(sample) / 2
    if sum(bool(ENSEMBL_ID.match(name)) for name in sample) > half:
        return "ensembl_id"
    if sum("|" in name for name in sample) > half:
        return "probe_id"
    if sum(name != name.upper() for name in sample) > half:
        return "mixed_case_symbol"
    return "symbol"


def are_counts(values: np.ndarray, chunk_size: int = CHUNK_VALUES) -> bool:
    """Whether every value is a non-negative integer (checked a chunk at a time)."""
    import numpy as np

    if values.dtype.kind in "ub":
        return True
    integer = values.dtype.kind == "i"  # whole numbers already: only the sign to check
    for start in range(0, values.size, chunk_size):
        chunk = values[start : start + chunk_size]
        if np.any(chunk < 0) or (not integer and np.any(chunk != np.floor(chunk))):
            return False
    return True


@dataclass
class MatrixSummary:
    """What input inspection reports of a count matrix (see :func:`describe_matrix`).

    Attributes
    ----------
    format, version
        :data:`TENX_H5` (``v3`` or ``legacy``), :data:`TENX_MTX` (``v3`` with
        ``features.tsv``, ``v2`` with ``genes.tsv``, '' without a features file) or
        :data:`H5AD` (the AnnData encoding version).
    genomes
        Genome(s) of the features read ('' in a format that does not say).
    n_cells, n_features
        The matrix's shape (all features of the genome read).
    barcodes
        Cell barcodes in matrix order.
    total_counts
        Sum of the counts (None for MTX folders, whose entries are not read).
    raw_counts
        Whether every value is a non-negative integer (None when not read).
    counts_source
        Where the counts are: ``data`` (10x), ``X`` or ``layers['counts']`` (h5ad).
    gene_name_type
        :func:`gene_name_type` of the feature names ('' without names).
    """

    format: str
    version: str
    genomes: tuple[str, ...]
    n_cells: int
    n_features: int
    barcodes: list[str] = field(repr=False)
    total_counts: int | None
    raw_counts: bool | None
    counts_source: str
    gene_name_type: str


def check_unique_barcodes(path: str | os.PathLike, barcodes: Sequence[str]) -> None:
    """Raise :class:`CountMatrixError` naming the first barcode that occurs twice."""
    first_cell: dict[str, int] = {}
    repeated: list[tuple[str, int, int]] = []
    for cell, barcode in enumerate(barcodes):
        if barcode in first_cell:
            repeated.append((barcode, first_cell[barcode], cell))
        else:
            first_cell[barcode] = cell
    if repeated:
        barcode, first, second = repeated[0]
        raise CountMatrixError(
            path,
            f"{len({b for b, _, _ in repeated})} cell barcode(s) occur more than once; "
            f"{quoted(barcode)} occurs more than once, at cells {first + 1} and {second + 1}",
        )


def wanted_rows(ids: Sequence[str], names: Sequence[str], wanted: Sequence[str]) -> dict:
    """Feature (as wanted) to its row, matching IDs first, then names."""
    rows = {}
    for feature in wanted:
        for labels in (ids, names):
            if feature in labels:
                rows[feature] = list(labels).index(feature)
                break
    return rows


class FeatureTotals:
    """Per-cell totals of a few wanted features, summed over a matrix read block by block.

    Parameters
    ----------
    rows
        Each wanted feature's 0-based row (:func:`wanted_rows`).
    n_cells
        Cells (barcodes) of the matrix.
    """

    def __init__(self, rows: dict[str, int], n_cells: int) -> None:
        import numpy as np

        self.rows = rows
        self.counts = {name: np.zeros(n_cells, dtype=np.int64) for name in rows}

    def add(self, feature: np.ndarray, cell: np.ndarray, value: np.ndarray) -> None:
        """Add a block of entries: parallel 0-based feature rows, 0-based cells and counts."""
        import numpy as np

        for name, row in self.rows.items():
            hit = feature == row
            np.add.at(self.counts[name], cell[hit], value[hit])


def finish(adata, path: str | os.PathLike):
    """Checks and normalised layout shared by every whole-matrix reader."""
    import numpy as np
    import pandas as pd
    from scipy import sparse

    if adata.n_obs == 0 or adata.n_vars == 0:
        raise CountMatrixError(
            path, f"empty count matrix ({adata.n_obs} cells x {adata.n_vars} genes)"
        )
    barcodes = pd.Index(adata.obs_names.astype(str))
    check_unique_barcodes(path, barcodes)
    matrix = adata.X
    if sparse.issparse(matrix):
        matrix = sparse.csr_matrix(matrix, dtype=np.float32)
    else:  # a dense h5ad: convert, never the other way round
        matrix = sparse.csr_matrix(np.asarray(matrix), dtype=np.float32)
    if not are_counts(matrix.data):
        raise CountMatrixError(
            path, "values are not raw counts (negative or non-integer): give UMI counts"
        )
    adata.X = matrix
    adata.obs_names = barcodes.rename(None)
    adata.var_names = pd.Index(adata.var_names.astype(str)).rename(None)
    adata.var_names_make_unique()
    adata.uns["counts_file"] = str(path)
    return adata
