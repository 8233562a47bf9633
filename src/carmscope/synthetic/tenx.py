"""Write count matrices as Cell Ranger v3 ``filtered_feature_bc_matrix.h5`` files.

Layout (as Cell Ranger 3+ writes it)::

    /                   attrs: filetype="matrix", version=2, chemistry_description,
                               library_ids, original_gem_groups
    /matrix/barcodes    fixed-length bytes, one per cell
    /matrix/data        int32   } features x barcodes CSC: the CSR of the cells x genes matrix
    /matrix/indices     int64   } read as CSC (column = barcode, row index = feature)
    /matrix/indptr      int64   }
    /matrix/shape       int32 [n_features, n_barcodes]
    /matrix/features/{id,name,feature_type,genome,_all_tag_keys}   fixed-length bytes

Numeric datasets are chunked (80,000 elements), shuffled and gzip-compressed as Cell Ranger
does; string datasets are gzip-compressed. Nothing time-dependent is written (datasets use
``track_times=False``), so the same input always gives a byte-identical file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from scipy import sparse

GENE_EXPRESSION = "Gene Expression"
CHEMISTRY = "Single Cell 3' v3"
CAR_FEATURE = "CAR_anti_HER2"
"""ID and name of the CAR feature when the reference includes the construct."""
CAR_GENOME = "CAR"
_CHUNK = 80_000
_NUMERIC = {"compression": "gzip", "shuffle": True, "chunks": (_CHUNK,), "maxshape": (None,)}
_WRITE_BLOCK = 50 * _CHUNK
"""Elements converted and written at once (bounds the memory of dtype conversion)."""


@dataclass(frozen=True)
class ExtraFeature:
    """A feature appended after the genes, with one count per cell.

    Attributes
    ----------
    feature_id, name
        Feature ID and name (e.g. ``CAR_anti_HER2`` for both).
    counts
        Count of every cell, in barcode order.
    feature_type
        Cell Ranger feature type.
    genome
        Genome tag of the feature.
    """

    feature_id: str
    name: str
    counts: np.ndarray
    feature_type: str = GENE_EXPRESSION
    genome: str = CAR_GENOME


def car_feature(car_umis: np.ndarray) -> ExtraFeature:
    """The CAR construct as a Gene Expression feature (genome ``CAR``) with ``car_umis``."""
    return ExtraFeature(CAR_FEATURE, CAR_FEATURE, np.asarray(car_umis))


def _bytes(values: Sequence[str]) -> np.ndarray:
    """Strings as a fixed-length ASCII bytes array (at least 1 byte wide, like Cell Ranger)."""
    encoded = [str(value).encode("ascii") for value in values]
    width = max((len(value) for value in encoded), default=1) or 1
    return np.array(encoded, dtype=f"S{width}")


def _string_dataset(group: h5py.Group, name: str, values: Sequence[str]) -> None:
    data = _bytes(values)
    options = {"compression": "gzip"} if data.size else {}
    group.create_dataset(name, data=data, track_times=False, **options)


def _numeric_dataset(group: h5py.Group, name: str, values: np.ndarray, dtype: str) -> None:
    """A Cell Ranger-style numeric dataset, converted to ``dtype`` one block at a time."""
    dataset = group.create_dataset(
        name, shape=values.shape, dtype=dtype, track_times=False, **_NUMERIC
    )
    for start in range(0, values.size, _WRITE_BLOCK):
        block = slice(start, start + _WRITE_BLOCK)
        dataset[block] = values[block].astype(dtype)


def _with_extra_features(
    matrix: sparse.spmatrix, extra: Sequence[ExtraFeature]
) -> sparse.csr_matrix:
    """Canonical ``int32`` CSR of the cells x genes matrix with the extra features appended."""
    matrix = sparse.csr_matrix(matrix, dtype=np.int32)
    if extra:
        columns = [np.asarray(feature.counts, dtype=np.int32)[:, None] for feature in extra]
        if any(column.shape[0] != matrix.shape[0] for column in columns):
            raise ValueError("every extra feature needs one count per barcode")
        matrix = sparse.hstack([matrix, *columns], format="csr", dtype=np.int32)
    if not matrix.has_canonical_format:
        matrix = matrix.copy()
        matrix.sum_duplicates()
    return matrix


def _features(
    genes: pd.DataFrame, genome: str, extra: Sequence[ExtraFeature]
) -> dict[str, list[str]]:
    """The ``features`` group's string columns."""
    n = len(genes)
    return {
        "id": [*genes["gene_id"], *(feature.feature_id for feature in extra)],
        "name": [*genes["gene_symbol"], *(feature.name for feature in extra)],
        "feature_type": [GENE_EXPRESSION] * n + [feature.feature_type for feature in extra],
        "genome": [genome] * n + [feature.genome for feature in extra],
    }


def write_tenx_h5(
    path: str | Path,
    matrix: sparse.spmatrix,
    barcodes: Sequence[str],
    genes: pd.DataFrame,
    genome: str = "GRCh38",
    extra_features: Sequence[ExtraFeature] | None = None,
    library_id: str = "sample",
    chemistry: str = CHEMISTRY,
) -> None:
    """Write a Cell Ranger v3 filtered feature-barcode matrix HDF5 file.

    Parameters
    ----------
    path
        Output ``.h5`` file (overwritten).
    matrix
        Cells x genes counts (any SciPy sparse format; stored as ``int32``).
    barcodes
        One barcode per row of ``matrix``.
    genes
        Gene table (``gene_id``, ``gene_symbol``), one row per column of ``matrix``.
    genome
        Genome tag of the genes.
    extra_features
        Features appended after the genes (e.g. :func:`car_feature`).
    library_id
        Value of the ``library_ids`` root attribute (Cell Ranger writes the sample ID).
    chemistry
        Value of the ``chemistry_description`` root attribute.

    Raises
    ------
    ValueError
        When the matrix shape does not match the barcodes and genes.
    """
    extra = list(extra_features or ())
    if matrix.shape != (len(barcodes), len(genes)):
        raise ValueError(
            f"matrix is {matrix.shape[0]} x {matrix.shape[1]} but there are "
            f"{len(barcodes)} barcodes and {len(genes)} genes"
        )
    cells_by_features = _with_extra_features(matrix, extra)
    n_cells, n_features = cells_by_features.shape
    with h5py.File(path, "w") as handle:
        handle.attrs["filetype"] = "matrix"
        handle.attrs["version"] = np.int64(2)
        handle.attrs["chemistry_description"] = np.bytes_(chemistry.encode("ascii"))
        handle.attrs["library_ids"] = _bytes([library_id])
        handle.attrs["original_gem_groups"] = np.array([1], dtype=np.int64)
        group = handle.create_group("matrix")
        _string_dataset(group, "barcodes", barcodes)
        numeric = {
            "data": (cells_by_features.data, "int32"),
            "indices": (cells_by_features.indices, "int64"),
            "indptr": (cells_by_features.indptr, "int64"),
            "shape": (np.array([n_features, n_cells]), "int32"),
        }
        for name, (values, dtype) in numeric.items():
            _numeric_dataset(group, name, values, dtype)
        features = group.create_group("features")
        _string_dataset(features, "_all_tag_keys", ["genome"])
        for name, values in _features(genes, genome, extra).items():
            _string_dataset(features, name, values)
