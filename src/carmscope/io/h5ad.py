"""AnnData ``.h5ad`` files of raw counts (the layer ``counts`` when present, else ``X``)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from carmscope.io.counts import (
    COUNTS_LAYER,
    H5AD,
    CountMatrixError,
    MatrixSummary,
    are_counts,
    finish,
    gene_name_type,
    wanted_rows,
)


def _h5ad_counts_source(adata) -> tuple[object, str]:
    if COUNTS_LAYER in adata.layers:
        return adata.layers[COUNTS_LAYER], f"layers['{COUNTS_LAYER}']"
    return adata.X, "X"


def describe_h5ad(path: str | os.PathLike) -> MatrixSummary:
    import anndata
    import h5py
    import numpy as np
    from scipy import sparse

    try:
        adata = anndata.read_h5ad(path, backed="r")
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise CountMatrixError(path, f"cannot be read as h5ad ({error})") from None
    try:
        with h5py.File(path, "r") as handle:
            version = str(handle.attrs.get("encoding-version", ""))
        source, where = _h5ad_counts_source(adata)
        values = source[:] if adata.n_obs else np.zeros(0)
        values = values.data if sparse.issparse(values) else np.asarray(values).ravel()
        raw = are_counts(values)
        genomes = adata.var["genome"].astype(str).unique() if "genome" in adata.var else []
        return MatrixSummary(
            H5AD,
            version,
            tuple(genomes),
            adata.n_obs,
            adata.n_vars,
            [str(b) for b in adata.obs_names],
            int(values.sum()) if raw else None,
            raw,
            where,
            gene_name_type(adata.var_names),
        )
    finally:
        adata.file.close()


def read_h5ad(path: str | os.PathLike, *, layer: str = COUNTS_LAYER):
    """Read an h5ad file of raw counts.

    Parameters
    ----------
    path
        The ``.h5ad`` file.
    layer
        If the file has this layer, its values are the counts (``X`` is then taken to be
        normalised); otherwise ``X`` must hold raw counts.

    Returns
    -------
    anndata.AnnData
        Raw counts in ``X``; ``obs`` and ``var`` columns of the file kept.

    Raises
    ------
    CountMatrixError
        Unreadable file, empty matrix, duplicated barcodes, or values that are not counts
        (negative or non-integer).
    """
    import anndata

    if not os.path.isfile(path):
        raise CountMatrixError(path, "no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # non-unique names: checked below
            adata = anndata.read_h5ad(path)
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise CountMatrixError(path, f"cannot be read as h5ad ({error})") from None
    if layer in adata.layers:
        adata.X = adata.layers[layer]
    adata = anndata.AnnData(X=adata.X, obs=adata.obs.copy(), var=adata.var.copy())
    return finish(adata, path)


def h5ad_feature_counts(path: Path, wanted: Sequence[str]):
    import anndata
    import numpy as np

    adata = anndata.read_h5ad(path, backed="r")
    try:
        ids = list(adata.var["gene_ids"]) if "gene_ids" in adata.var else []
        rows = wanted_rows(ids, list(adata.var_names), wanted)
        source = adata.layers.get(COUNTS_LAYER, adata.X)
        counts = {}
        for name, row in rows.items():
            column = source[:, row]
            column = column.toarray() if hasattr(column, "toarray") else np.asarray(column)
            counts[name] = np.rint(column.ravel()).astype(np.int64)
        return [str(b) for b in adata.obs_names], counts
    finally:
        adata.file.close()
