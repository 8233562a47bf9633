"""10x HDF5 count matrices: Cell Ranger 3+ (``/matrix``) and 1.2/2 (one group per genome)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from carmscope.io.counts import (
    GENE_EXPRESSION,
    GENOME_KEY,
    NAME_SAMPLE,
    TENX_H5,
    CountMatrixError,
    FeatureTotals,
    MatrixSummary,
    are_counts,
    finish,
    gene_name_type,
    wanted_rows,
)

if TYPE_CHECKING:
    import numpy as np

LEGACY_DATASETS = frozenset({"barcodes", "data", "indices", "indptr", "shape"})
"""What a Cell Ranger 1.2/2 genome group holds (besides ``genes`` and ``gene_names``)."""
H5_BLOCK = 4_000_000
"""Matrix entries read at a time by :func:`h5_feature_counts`."""


def _strings(dataset) -> np.ndarray:
    return dataset[()].astype(str)


def _legacy_genomes(handle) -> list[str]:
    import h5py

    return [
        name
        for name, item in handle.items()
        if isinstance(item, h5py.Group) and set(item.keys()) >= LEGACY_DATASETS
    ]


def _legacy_group(handle, genome: str | None):
    """The genome group of a Cell Ranger 1.2/2 file (ValueError when it cannot be chosen)."""
    genomes = _legacy_genomes(handle)
    if not genomes:
        raise ValueError(
            "not a 10x (Cell Ranger) HDF5 matrix: no 'matrix' group (Cell Ranger 3+) and no "
            "genome group with barcodes, data, indices, indptr and shape (Cell Ranger 1.2/2)"
        )
    if not genome:
        if len(genomes) != 1:
            raise ValueError(
                f"a legacy (Cell Ranger 1.2/2) file with genomes {genomes}: give the genome "
                f"(config key {GENOME_KEY})"
            )
        genome = genomes[0]
    elif genome not in genomes:
        raise ValueError(f"no genome {genome!r}; the file has {genomes} (config key {GENOME_KEY})")
    return handle[genome], genome


def _v3_features(matrix) -> dict[str, np.ndarray]:
    """Per-feature arrays of a Cell Ranger 3+ matrix, as ``scanpy.read_10x_h5`` names them:
    ``gene_ids`` (``probe_ids`` too for probe-barcode matrices), ``feature_types`` and the
    other per-feature datasets (e.g. ``genome``); ``name`` holds the names."""
    import h5py

    features = matrix["features"]
    var = {}
    if "gene_id" in features:  # probe-barcode matrix
        var["gene_ids"] = _strings(features["gene_id"])
        var["probe_ids"] = _strings(features["id"])
    else:
        var["gene_ids"] = _strings(features["id"])
    var["feature_types"] = _strings(features["feature_type"])
    for name, item in features.items():
        if isinstance(item, h5py.Dataset) and name not in _TENX_SPECIAL_FEATURES:
            var[name] = item[()].astype(bool if item.dtype.kind == "b" else str)
    var["name"] = _strings(features["name"])
    return var


_TENX_SPECIAL_FEATURES = frozenset({"name", "feature_type", "id", "gene_id", "_all_tag_keys"})


def _v3_genome_mask(var: dict[str, np.ndarray], genome: str | None) -> np.ndarray | None:
    """Features of ``genome`` (None: all); ValueError when the file has no such genome."""
    import numpy as np

    if not genome:
        return None
    genomes = var.get("genome", np.array([], dtype=str))
    if genome not in genomes:
        raise ValueError(
            f"no genome {genome!r}; the file has {sorted(set(genomes.tolist()))} "
            f"(config key {GENOME_KEY})"
        )
    return genomes == genome


def _h5_values(group) -> tuple[int | None, bool]:
    """Total and raw-counts verdict of a 10x group's ``data``."""
    data = group["data"][()]
    raw = are_counts(data)
    return (int(data.sum()) if raw else None), raw


def describe_h5(path: str | os.PathLike, genome: str | None) -> MatrixSummary:
    import h5py
    import numpy as np

    try:
        with h5py.File(path, "r") as handle:
            if "matrix" in handle:
                group, version = handle["matrix"], "v3"
                n_features, n_cells = (int(v) for v in group["shape"][()])
                names, genomes = np.array([], dtype=str), np.array([], dtype=str)
                if "features" in group:  # only the names and genomes: inspection runs per sample
                    features = group["features"]
                    if "genome" in features:
                        genomes = _strings(features["genome"])
                    keep = _v3_genome_mask({"genome": genomes}, genome)
                    if keep is None:
                        names = features["name"][:NAME_SAMPLE].astype(str)
                    else:
                        names = _strings(features["name"])[keep][:NAME_SAMPLE]
                        genomes, n_features = genomes[keep], int(keep.sum())
                genome_names = tuple(dict.fromkeys(genomes.tolist()))
            else:
                group, chosen = _legacy_group(handle, genome)
                version, genome_names = "legacy", (chosen,)
                n_features, n_cells = (int(v) for v in group["shape"][()])
                names = _strings(group["gene_names"]) if "gene_names" in group else []
            barcodes = _strings(group["barcodes"]).tolist()
            total, raw = _h5_values(group) if n_cells else (0, True)
    except OSError as error:
        raise CountMatrixError(path, f"cannot be read as HDF5 ({error})") from None
    except ValueError as error:  # no usable genome group, or no single genome
        raise CountMatrixError(path, str(error)) from None
    except (KeyError, TypeError, IndexError) as error:  # a layout part missing or malformed
        raise CountMatrixError(
            path, f"cannot be read as a 10x (Cell Ranger) HDF5 matrix ({error})"
        ) from None
    return MatrixSummary(
        TENX_H5,
        version,
        genome_names,
        n_cells,
        n_features,
        barcodes,
        total,
        raw,
        "data",
        gene_name_type(names),
    )


def _tenx_counts(group, keep: np.ndarray | None = None):
    """The cells x features CSR matrix of a 10x group (stored features x cells, CSC).

    Counts are converted to ``float32`` while HDF5 reads them, so no integer copy is held;
    ``keep`` (a boolean mask over features) drops the other features' columns.
    """
    import numpy as np
    from scipy import sparse

    n_features, n_cells = (int(n) for n in group["shape"][()])
    stored = group["data"]
    data = np.empty(stored.shape, dtype=np.float32)
    if data.size:
        stored.read_direct(data)
    matrix = sparse.csr_matrix(
        (data, group["indices"][()], group["indptr"][()]), shape=(n_cells, n_features)
    )
    if keep is not None and not keep.all():
        matrix = matrix[:, np.flatnonzero(keep)]
    return matrix


def _read_tenx_v3(matrix, genome: str | None):
    """Cell Ranger 3+: the Gene Expression features (of ``genome`` when given)."""
    import anndata
    import pandas as pd

    var = _v3_features(matrix)
    names = var.pop("name")
    keep = var["feature_types"] == GENE_EXPRESSION
    genome_mask = _v3_genome_mask(var, genome)
    if genome_mask is not None:
        keep &= genome_mask
    var_table = pd.DataFrame({k: v[keep] for k, v in var.items()}, index=pd.Index(names[keep]))
    obs = pd.DataFrame(index=pd.Index(_strings(matrix["barcodes"])))
    if "filtered_barcodes" in matrix:
        obs["filtered_barcodes"] = matrix["filtered_barcodes"][()].astype(bool)
    return anndata.AnnData(_tenx_counts(matrix, keep), obs=obs, var=var_table)


def _read_tenx_legacy(handle, genome: str | None):
    """Cell Ranger 1.2/2: the genome's group (``genes``, ``gene_names``, ``barcodes``, ...)."""
    import anndata
    import pandas as pd

    group, _ = _legacy_group(handle, genome)
    var = pd.DataFrame(
        {"gene_ids": _strings(group["genes"])}, index=pd.Index(_strings(group["gene_names"]))
    )
    obs = pd.DataFrame(index=pd.Index(_strings(group["barcodes"])))
    return anndata.AnnData(_tenx_counts(group), obs=obs, var=var)


def read_10x_h5(path: str | os.PathLike, *, genome: str | None = None):
    """Read a Cell Ranger ``filtered_feature_bc_matrix.h5`` (3+, or 1.2/2 with ``genome``).

    Parameters
    ----------
    path
        The HDF5 file.
    genome
        Genome to read from a multi-genome file; default all features (3+) or the only
        genome (1.2/2).

    Returns
    -------
    anndata.AnnData
        Raw counts of the ``Gene Expression`` features.

    Raises
    ------
    CountMatrixError
        Not a readable 10x HDF5 file, no single genome, an empty matrix or duplicated
        barcodes.
    """
    import h5py

    if not os.path.isfile(path):
        raise CountMatrixError(path, "no such file")
    try:
        with h5py.File(path, "r") as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # non-unique names: checked below
            if "matrix" in handle:
                adata = _read_tenx_v3(handle["matrix"], genome)
            else:
                adata = _read_tenx_legacy(handle, genome)
    except (OSError, KeyError, ValueError, TypeError, IndexError) as error:
        raise CountMatrixError(
            path, f"cannot be read as a 10x (Cell Ranger) HDF5 matrix ({error})"
        ) from None
    return finish(adata, path)


def h5_feature_counts(path: Path, wanted: Sequence[str], genome: str | None):
    import h5py
    import numpy as np

    with h5py.File(path, "r") as handle:
        if "matrix" in handle:
            group = handle["matrix"]
            features = group["features"]
            ids, names = _strings(features["id"]).tolist(), _strings(features["name"]).tolist()
        else:
            group, _ = _legacy_group(handle, genome)
            ids, names = _strings(group["genes"]).tolist(), _strings(group["gene_names"]).tolist()
        barcodes = _strings(group["barcodes"]).tolist()
        rows = wanted_rows(ids, names, wanted)
        indptr = group["indptr"][()]
        totals = FeatureTotals(rows, len(barcodes))
        for first in range(0, int(indptr[-1]), H5_BLOCK):
            last = min(first + H5_BLOCK, int(indptr[-1]))
            indices = group["indices"][first:last]
            data = group["data"][first:last]
            cells = np.searchsorted(indptr, np.arange(first, last), side="right") - 1
            totals.add(indices, cells, data)
    return barcodes, totals.counts
