"""The CAR as a feature of the count matrix, when the reference was built with the construct.

Cell Ranger run on a reference that includes the CAR sequence counts CAR UMIs per cell like
any gene. That is a second line of evidence beside the read scan, with a caveat the docs
spell out: the aligner counts every read that maps to the CAR feature, host-derived parts
included, so endogenous CD8A/CD247 reads can land there. The feature is looked up by ID or
name (``car.matrix_features``); a matrix without any of those names simply has none.

Formats: Cell Ranger v3 HDF5 (``.h5``), a 10x MTX folder (``matrix.mtx``, ``barcodes.tsv``,
``features.tsv``/``genes.tsv``, optionally gzipped) and AnnData ``.h5ad`` (features in
``var_names`` or ``var['gene_ids']``). Only the barcodes and the wanted features are read.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

DEFAULT_FEATURES = ("CAR_anti_HER2",)
_H5_BLOCK = 4_000_000
"""Matrix entries read from an HDF5 file at a time."""


class MatrixError(ValueError):
    """A count matrix that cannot be read; the message starts with its path."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


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


def read_matrix_cells(path: str | os.PathLike, feature_names: Sequence[str] = ()) -> MatrixCells:
    """Barcodes of a single-cell count matrix and the counts of the named CAR features.

    Parameters
    ----------
    path
        10x HDF5 file, 10x MTX folder or ``.h5ad`` file.
    feature_names
        Feature IDs or names of the CAR in the matrix (any that are absent are ignored).

    Raises
    ------
    MatrixError
        When the matrix cannot be read.
    """
    path = Path(path)
    try:
        if path.is_dir():
            return _read_mtx(path, feature_names)
        if path.name.endswith(".h5ad"):
            return _read_h5ad(path, feature_names)
        return _read_h5(path, feature_names)
    except MatrixError:
        raise
    except (OSError, KeyError, ValueError, IndexError, EOFError) as error:
        raise MatrixError(path, f"cannot be read as a count matrix ({error})") from None


def _wanted_rows(ids: Sequence[str], names: Sequence[str], wanted: Sequence[str]) -> dict:
    """Feature (as wanted) to its row, matching IDs first, then names."""
    rows = {}
    for feature in wanted:
        for labels in (ids, names):
            if feature in labels:
                rows[feature] = list(labels).index(feature)
                break
    return rows


def _decode(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _read_h5(path: Path, wanted: Sequence[str]) -> MatrixCells:
    import h5py

    with h5py.File(path, "r") as handle:
        if "matrix" not in handle:
            raise MatrixError(path, "not a Cell Ranger v3 HDF5 matrix (no 'matrix' group)")
        matrix = handle["matrix"]
        barcodes = _decode(matrix["barcodes"][()])
        features = matrix["features"]
        rows = _wanted_rows(_decode(features["id"][()]), _decode(features["name"][()]), wanted)
        indptr = matrix["indptr"][()]
        counts = {name: np.zeros(len(barcodes), dtype=np.int64) for name in rows}
        for first in range(0, int(indptr[-1]), _H5_BLOCK):
            last = min(first + _H5_BLOCK, int(indptr[-1]))
            indices = matrix["indices"][first:last]
            data = matrix["data"][first:last]
            cells = np.searchsorted(indptr, np.arange(first, last), side="right") - 1
            for name, row in rows.items():
                hit = indices == row
                np.add.at(counts[name], cells[hit], data[hit])
    return MatrixCells(barcodes, counts)


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.name.endswith(".gz") else open(path)


def _first_file(folder: Path, names: Sequence[str]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise MatrixError(folder, f"10x MTX folder without {' or '.join(names)}")


def _mtx_header_lines(matrix: Path) -> int:
    """Comment lines and the size line at the top of a Matrix Market file."""
    with _open_text(matrix) as handle:
        comments = 0
        for line in handle:
            if not line.startswith("%"):
                break
            comments += 1
    return comments + 1


def _read_mtx(folder: Path, wanted: Sequence[str]) -> MatrixCells:
    import pandas as pd

    matrix = _first_file(folder, ("matrix.mtx.gz", "matrix.mtx"))
    barcodes_file = _first_file(folder, ("barcodes.tsv.gz", "barcodes.tsv"))
    features_file = _first_file(
        folder, ("features.tsv.gz", "features.tsv", "genes.tsv.gz", "genes.tsv")
    )
    with _open_text(barcodes_file) as handle:
        barcodes = [line.split("\t")[0].strip() for line in handle if line.strip()]
    features = pd.read_csv(features_file, sep="\t", header=None, dtype=str)
    names = features[1] if features.shape[1] > 1 else features[0]
    rows = _wanted_rows(list(features[0]), list(names), wanted)
    counts = {name: np.zeros(len(barcodes), dtype=np.int64) for name in rows}
    if rows:
        entries = pd.read_csv(
            matrix, sep=r"\s+", header=None, skiprows=_mtx_header_lines(matrix), chunksize=1 << 20
        )
        for chunk in entries:
            for name, row in rows.items():
                hit = chunk[chunk[0] == row + 1]
                np.add.at(counts[name], hit[1].to_numpy() - 1, hit[2].to_numpy())
    return MatrixCells(barcodes, counts)


def _read_h5ad(path: Path, wanted: Sequence[str]) -> MatrixCells:
    import anndata

    adata = anndata.read_h5ad(path, backed="r")
    try:
        ids = list(adata.var["gene_ids"]) if "gene_ids" in adata.var else []
        rows = _wanted_rows(ids, list(adata.var_names), wanted)
        source = adata.layers.get("counts", adata.X)
        counts = {}
        for name, row in rows.items():
            column = source[:, row]
            column = column.toarray() if hasattr(column, "toarray") else np.asarray(column)
            counts[name] = np.rint(column.ravel()).astype(np.int64)
        return MatrixCells([str(b) for b in adata.obs_names], counts)
    finally:
        adata.file.close()
