"""The CAR as a feature of the count matrix, when the reference was built with the construct.

Cell Ranger run on a reference that includes the CAR sequence counts CAR UMIs per cell like
any gene. That is a second line of evidence beside the read scan, with a caveat the docs
spell out: the aligner counts every read that maps to the CAR feature, host-derived parts
included, so endogenous CD8A/CD247 reads can land there. The feature is looked up by ID or
name (``car.matrix_features``); a matrix without any of those names simply has none.

Formats: those of the shared count-matrix reader (:mod:`carmscope.io.tenx`): Cell Ranger 3+
and 1.2/2 HDF5 (``.h5``), a 10x MTX folder (``matrix.mtx``, ``barcodes.tsv``,
``features.tsv``/``genes.tsv``, optionally gzipped) and AnnData ``.h5ad`` (features in
``var_names`` or ``var['gene_ids']``). Only the barcodes and the wanted features are read
(:func:`carmscope.io.tenx.read_feature_counts`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from carmscope.io.tenx import CountMatrixError, read_feature_counts

DEFAULT_FEATURES = ("CAR_anti_HER2",)

MatrixError = CountMatrixError
"""A count matrix that cannot be read; the message starts with its path."""


@dataclass
class MatrixCells:
    """The cells of a count matrix and the counts of the CAR features found in it.

    Attributes
    ----------
    barcodes
        Cell barcodes, in matrix order.
    features
        Found feature (as named in ``car.matrix_features``) to its count in each cell.
    """

    barcodes: list[str]
    features: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def feature_umis(self) -> np.ndarray | None:
        """Summed count of the found CAR features per cell (None if none was found)."""
        if not self.features:
            return None
        return np.sum(list(self.features.values()), axis=0)


def read_matrix_cells(
    path: str | os.PathLike, feature_names: Sequence[str] = (), *, genome: str | None = None
) -> MatrixCells:
    """Barcodes of a single-cell count matrix and the counts of the named CAR features.

    Parameters
    ----------
    path
        10x HDF5 file, 10x MTX folder or ``.h5ad`` file.
    feature_names
        Feature IDs or names of the CAR in the matrix (any that are absent are ignored).
    genome
        Genome of a multi-genome Cell Ranger 1.2/2 file (config key ``expression.genome``).

    Raises
    ------
    MatrixError
        When the matrix cannot be read.
    """
    barcodes, counts = read_feature_counts(path, feature_names, genome=genome)
    return MatrixCells(barcodes, counts)
