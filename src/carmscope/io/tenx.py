"""Single-cell count matrices: one reader for every stage and for input inspection.

Formats
-------
* 10x HDF5, Cell Ranger 3+ (``/matrix`` with a ``features`` group; version ``v3``) and
  Cell Ranger 1.2/2 (one group per genome with ``genes``, ``gene_names``, ``barcodes``,
  ``data``, ``indices``, ``indptr``, ``shape``; version ``legacy``). A legacy file with several
  genomes needs the genome named (config key ``expression.genome``, :data:`GENOME_KEY`).
* 10x MTX folder: ``matrix.mtx``, ``barcodes.tsv`` and ``features.tsv`` (version ``v3``) or
  ``genes.tsv`` (version ``v2``), each plain or gzipped.
* AnnData ``.h5ad``: raw counts in the layer ``counts`` when present, else in ``X``.

Three entry points read the same layouts:

* :func:`describe_matrix` -- what input inspection reports (format and version, genomes,
  cells, features, total counts, gene-name type, barcodes), without building the matrix;
* :func:`read_counts` -- the whole matrix as an :class:`~anndata.AnnData` of raw counts with

  - ``X`` a ``float32`` CSR matrix (cells x genes), never densified;
  - ``obs_names`` the cell barcodes (unique, else :class:`CountMatrixError`);
  - ``var_names`` gene symbols (the features file's second column) made unique
    (``anndata``'s ``var_names_make_unique``: a repeated symbol gets ``-1``, ``-2``, ...
    appended), the IDs kept in ``var["gene_ids"]`` when the file has them;
  - only features of type ``Gene Expression`` (10x files with antibody or CRISPR features);

* :func:`read_feature_counts` -- the barcodes and the counts of a few named features (the CAR
  when the reference was built with it), read a block of entries at a time.

Every problem raises :class:`CountMatrixError`, whose message starts with the file's path.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from carmscope.io.counts import (
    GENE_EXPRESSION,
    GENOME_KEY,
    H5AD,
    TENX_H5,
    TENX_MTX,
    CountMatrixError,
    MatrixSummary,
    are_counts,
    check_unique_barcodes,
    gene_name_type,
)
from carmscope.io.h5ad import describe_h5ad, h5ad_feature_counts, read_h5ad
from carmscope.io.tenx_h5 import describe_h5, h5_feature_counts, read_10x_h5
from carmscope.io.tenx_mtx import describe_mtx, mtx_feature_counts, read_10x_mtx

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "GENE_EXPRESSION",
    "GENOME_KEY",
    "H5AD",
    "TENX_H5",
    "TENX_MTX",
    "CountMatrixError",
    "MatrixSummary",
    "are_counts",
    "check_unique_barcodes",
    "describe_matrix",
    "gene_name_type",
    "matrix_format",
    "read_10x_h5",
    "read_10x_mtx",
    "read_counts",
    "read_feature_counts",
    "read_h5ad",
]


def matrix_format(path: str | os.PathLike) -> str:
    """:data:`TENX_MTX` for a folder, :data:`H5AD` for ``*.h5ad``, else :data:`TENX_H5`."""
    if os.path.isdir(path):
        return TENX_MTX
    if os.fspath(path).endswith(".h5ad"):
        return H5AD
    return TENX_H5


def describe_matrix(path: str | os.PathLike, *, genome: str | None = None) -> MatrixSummary:
    """Format, shape, totals and names of a count matrix, without building the matrix.

    Parameters
    ----------
    path
        10x HDF5 file, 10x MTX folder or ``.h5ad`` file.
    genome
        Genome to describe in a multi-genome file (required for a legacy file with several).

    Raises
    ------
    CountMatrixError
        The file cannot be read as any of the formats, or names no single genome.
    """
    fmt = matrix_format(path)
    if fmt == TENX_MTX:
        return describe_mtx(Path(path))
    if not os.path.isfile(path):
        raise CountMatrixError(path, "no such file")
    if fmt == H5AD:
        return describe_h5ad(path)
    return describe_h5(path, genome)


def read_counts(path: str | os.PathLike, *, genome: str | None = None):
    """Read a single-cell count matrix in any supported format.

    Parameters
    ----------
    path
        A folder (10x MTX), a ``.h5ad`` file, or any other file (read as a 10x HDF5 file).
    genome
        For 10x HDF5 files with several genomes, the one to read (default: all of a Cell
        Ranger 3+ file; a Cell Ranger 1.2/2 file with several genomes needs it).

    Returns
    -------
    anndata.AnnData
        Raw counts, see the module docstring.

    Raises
    ------
    CountMatrixError
        The input cannot be read or is unusable.
    """
    fmt = matrix_format(path)
    if fmt == TENX_MTX:
        return read_10x_mtx(path)
    if fmt == H5AD:
        return read_h5ad(path)
    return read_10x_h5(path, genome=genome)


def read_feature_counts(
    path: str | os.PathLike, feature_names: Sequence[str] = (), *, genome: str | None = None
) -> tuple[list[str], dict[str, np.ndarray]]:
    """Barcodes of a count matrix and the counts of the named features in each cell.

    Only the barcodes, the feature names and (a block at a time) the matrix entries are read.

    Parameters
    ----------
    path
        10x HDF5 file, 10x MTX folder or ``.h5ad`` file.
    feature_names
        Feature IDs or names (matched against IDs first, then names); absent ones are left out.
    genome
        Genome of a multi-genome Cell Ranger 1.2/2 file.

    Returns
    -------
    tuple
        The barcodes in matrix order, and each found feature's ``int64`` counts per cell.

    Raises
    ------
    CountMatrixError
        The matrix cannot be read.
    """
    path = Path(path)
    try:
        fmt = matrix_format(path)
        if fmt == TENX_MTX:
            return mtx_feature_counts(path, feature_names)
        if fmt == H5AD:
            return h5ad_feature_counts(path, feature_names)
        return h5_feature_counts(path, feature_names, genome)
    except CountMatrixError:
        raise
    except (OSError, KeyError, ValueError, IndexError, EOFError) as error:
        raise CountMatrixError(path, f"cannot be read as a count matrix ({error})") from None
