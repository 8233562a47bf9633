"""Read count matrices: 10x HDF5, 10x MTX folders, h5ad files and bulk count tables.

Every single-cell reader returns an :class:`~anndata.AnnData` of raw counts with

* ``X`` a ``float32`` CSR matrix (cells x genes), never densified;
* ``obs_names`` the cell barcodes (unique, else :class:`ExpressionInputError`);
* ``var_names`` gene symbols made unique (``anndata``'s ``var_names_make_unique``: a repeated
  symbol gets ``-1``, ``-2``, ... appended), the Ensembl IDs kept in ``var["gene_ids"]`` when the
  file has them;
* only features of type ``Gene Expression`` (10x files with antibody or CRISPR features).

Any file that cannot be read, holds an empty matrix, repeats a barcode or does not hold raw
counts raises :class:`ExpressionInputError` naming the file.
"""

from __future__ import annotations

import gzip
import os
import warnings
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
from scipy import io as spio
from scipy import sparse

GENE_EXPRESSION = "Gene Expression"
BULK_COLUMNS = ("gene", "count")
"""Columns a bulk count table must have (others are ignored)."""


class ExpressionInputError(ValueError):
    """A count input that cannot be used; the message starts with the file's path."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


# --- dispatch ---------------------------------------------------------------------------------


def read_counts(path: str | os.PathLike, *, genome: str | None = None) -> anndata.AnnData:
    """Read a single-cell count matrix in any supported format.

    Parameters
    ----------
    path
        A folder (10x MTX), a ``.h5ad`` file, or any other file (read as a 10x HDF5 file).
    genome
        For 10x HDF5 files with several genomes, the one to read (default: all).

    Returns
    -------
    anndata.AnnData
        Raw counts, see the module docstring.

    Raises
    ------
    ExpressionInputError
        The input cannot be read or is unusable.
    """
    path = Path(path)
    if path.is_dir():
        return read_10x_mtx(path)
    if path.name.endswith(".h5ad"):
        return read_h5ad(path)
    return read_10x_h5(path, genome=genome)


# --- 10x HDF5 ---------------------------------------------------------------------------------


def read_10x_h5(path: str | os.PathLike, *, genome: str | None = None) -> anndata.AnnData:
    """Read a Cell Ranger ``filtered_feature_bc_matrix.h5`` (v3+, or v2 with ``genome``).

    Parameters
    ----------
    path
        The HDF5 file.
    genome
        Genome to read from a multi-genome file; default all features.

    Returns
    -------
    anndata.AnnData
        Raw counts of the ``Gene Expression`` features.

    Raises
    ------
    ExpressionInputError
        Not a readable 10x HDF5 file, an empty matrix or duplicated barcodes.
    """
    if not os.path.isfile(path):
        raise ExpressionInputError(path, "no such file")
    try:
        with h5py.File(path, "r") as handle, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # non-unique names: checked below
            if "matrix" in handle:
                adata = _read_tenx_v3(handle["matrix"], genome)
            else:
                adata = _read_tenx_legacy(handle, genome)
    except (OSError, KeyError, ValueError, TypeError, IndexError) as error:
        raise ExpressionInputError(
            path, f"cannot be read as a 10x (Cell Ranger) HDF5 matrix ({error})"
        ) from None
    return _finish(adata, path)


def _tenx_counts(group: h5py.Group, keep: np.ndarray | None = None) -> sparse.csr_matrix:
    """The cells x features CSR matrix of a 10x group (stored features x cells, CSC).

    Counts are converted to ``float32`` while HDF5 reads them, so no integer copy is held;
    ``keep`` (a boolean mask over features) drops the other features' columns.
    """
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


def _strings(dataset: h5py.Dataset) -> np.ndarray:
    return dataset[()].astype(str)


def _read_tenx_v3(matrix: h5py.Group, genome: str | None) -> anndata.AnnData:
    """Cell Ranger v3+: ``/matrix`` with a ``features`` group; Gene Expression features only.

    ``var`` holds ``gene_ids`` (``probe_ids`` too for probe-barcode matrices),
    ``feature_types`` and the other per-feature datasets (e.g. ``genome``), as
    ``scanpy.read_10x_h5`` gives them.
    """
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
    keep = var["feature_types"] == GENE_EXPRESSION
    if genome:
        genomes = var.get("genome", np.array([], dtype=str))
        if genome not in genomes:
            raise ValueError(f"no genome {genome!r}; the file has {sorted(set(genomes.tolist()))}")
        keep &= genomes == genome
    names = _strings(features["name"])[keep]
    var_table = pd.DataFrame({k: v[keep] for k, v in var.items()}, index=pd.Index(names))
    obs = pd.DataFrame(index=pd.Index(_strings(matrix["barcodes"])))
    if "filtered_barcodes" in matrix:
        obs["filtered_barcodes"] = matrix["filtered_barcodes"][()].astype(bool)
    return anndata.AnnData(_tenx_counts(matrix, keep), obs=obs, var=var_table)


_TENX_SPECIAL_FEATURES = frozenset({"name", "feature_type", "id", "gene_id", "_all_tag_keys"})


def _read_tenx_legacy(handle: h5py.File, genome: str | None) -> anndata.AnnData:
    """Cell Ranger v2: one group per genome (``genes``, ``gene_names``, ``barcodes``, ...)."""
    genomes = list(handle.keys())
    if not genome:
        if len(genomes) != 1:
            raise ValueError(f"a legacy (v2) file with genomes {genomes}: give the genome")
        genome = genomes[0]
    elif genome not in genomes:
        raise ValueError(f"no genome {genome!r}; the file has {genomes}")
    group = handle[genome]
    var = pd.DataFrame(
        {"gene_ids": _strings(group["genes"])}, index=pd.Index(_strings(group["gene_names"]))
    )
    obs = pd.DataFrame(index=pd.Index(_strings(group["barcodes"])))
    return anndata.AnnData(_tenx_counts(group), obs=obs, var=var)


# --- 10x MTX ----------------------------------------------------------------------------------


def _existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / name for name in names if (folder / name).is_file()), None)


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def _read_mtx_parts(folder: Path, matrix: Path, features: Path, barcodes: Path) -> anndata.AnnData:
    """Any mix of gzipped and plain MTX parts (scanpy reads only the two standard layouts)."""
    with _open_text(matrix) as handle:
        counts = sparse.csr_matrix(spio.mmread(handle).T, dtype=np.float32)
    table = pd.read_csv(features, sep="\t", header=None, dtype=str, keep_default_na=False)
    cells = pd.read_csv(barcodes, sep="\t", header=None, dtype=str, keep_default_na=False)
    if counts.shape != (len(cells), len(table)):
        raise ExpressionInputError(
            folder,
            f"matrix.mtx is {counts.shape[1]} features x {counts.shape[0]} cells but there are "
            f"{len(table)} features and {len(cells)} barcodes",
        )
    symbols = table[1] if table.shape[1] > 1 else table[0]
    var = pd.DataFrame(
        {"gene_ids": table[0].to_numpy()}, index=pd.Index(symbols.to_numpy(), dtype=str)
    )
    if table.shape[1] > 2:
        var["feature_types"] = table[2].to_numpy()
    adata = anndata.AnnData(counts, obs=pd.DataFrame(index=cells[0].to_numpy()), var=var)
    if "feature_types" in adata.var:
        adata = adata[:, adata.var["feature_types"] == GENE_EXPRESSION].copy()
    return adata


def read_10x_mtx(path: str | os.PathLike) -> anndata.AnnData:
    """Read a 10x MTX folder (``matrix.mtx``, ``features.tsv`` or ``genes.tsv``, ``barcodes.tsv``).

    Parameters
    ----------
    path
        The folder. Cell Ranger's two layouts (v3+: all three files gzipped; v2: plain
        ``genes.tsv``) are read with :func:`scanpy.read_10x_mtx`; any other mix of gzipped and
        plain files with :func:`scipy.io.mmread`.

    Returns
    -------
    anndata.AnnData
        Raw counts of the ``Gene Expression`` features.

    Raises
    ------
    ExpressionInputError
        A missing part, an unreadable or inconsistent folder, an empty matrix or duplicated
        barcodes.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ExpressionInputError(folder, "not a folder (a 10x MTX input is a folder)")
    matrix = _existing(folder, ("matrix.mtx.gz", "matrix.mtx"))
    features = _existing(folder, ("features.tsv.gz", "features.tsv", "genes.tsv", "genes.tsv.gz"))
    barcodes = _existing(folder, ("barcodes.tsv.gz", "barcodes.tsv"))
    if matrix is None or features is None or barcodes is None:
        raise ExpressionInputError(
            folder,
            "a 10x MTX folder needs matrix.mtx(.gz), features.tsv(.gz) (or genes.tsv) and "
            "barcodes.tsv(.gz)",
        )
    names = {matrix.name, features.name, barcodes.name}
    standard = names in (
        {"matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz"},
        {"matrix.mtx", "genes.tsv", "barcodes.tsv"},
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            if standard:
                import scanpy as sc  # here: its import takes seconds, and only MTX needs it

                adata = sc.read_10x_mtx(folder, gex_only=True, make_unique=False)
            else:
                adata = _read_mtx_parts(folder, matrix, features, barcodes)
    except ExpressionInputError:
        raise
    except (OSError, ValueError, KeyError, IndexError, EOFError, pd.errors.ParserError) as error:
        raise ExpressionInputError(
            folder, f"cannot be read as a 10x MTX folder ({error})"
        ) from None
    return _finish(adata, folder)


# --- h5ad -------------------------------------------------------------------------------------


def read_h5ad(path: str | os.PathLike, *, layer: str = "counts") -> anndata.AnnData:
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
    ExpressionInputError
        Unreadable file, empty matrix, duplicated barcodes, or values that are not counts
        (negative or non-integer).
    """
    if not os.path.isfile(path):
        raise ExpressionInputError(path, "no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # non-unique names: checked below
            adata = anndata.read_h5ad(path)
    except (OSError, KeyError, ValueError, TypeError) as error:
        raise ExpressionInputError(path, f"cannot be read as h5ad ({error})") from None
    if layer in adata.layers:
        adata.X = adata.layers[layer]
    adata = anndata.AnnData(X=adata.X, obs=adata.obs.copy(), var=adata.var.copy())
    return _finish(adata, path)


# --- common checks ----------------------------------------------------------------------------


CHUNK_VALUES = 1 << 22
"""Values checked at once by :func:`_are_counts` (bounds its temporary arrays)."""


def _are_counts(values: np.ndarray, chunk_size: int = CHUNK_VALUES) -> bool:
    """Whether every value is a non-negative integer (checked a chunk at a time)."""
    for start in range(0, values.size, chunk_size):
        chunk = values[start : start + chunk_size]
        if np.any(chunk < 0) or np.any(chunk != np.floor(chunk)):
            return False
    return True


def _finish(adata: anndata.AnnData, path: str | os.PathLike) -> anndata.AnnData:
    """Checks and normalised layout shared by every single-cell reader."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise ExpressionInputError(
            path, f"empty count matrix ({adata.n_obs} cells x {adata.n_vars} genes)"
        )
    barcodes = pd.Index(adata.obs_names.astype(str))
    duplicated = barcodes[barcodes.duplicated()]
    if len(duplicated):
        raise ExpressionInputError(
            path,
            f"{len(duplicated)} cell barcode(s) occur more than once, e.g. {duplicated[0]!r}",
        )
    matrix = adata.X
    if sparse.issparse(matrix):
        matrix = sparse.csr_matrix(matrix, dtype=np.float32)
    else:  # a dense h5ad: convert, never the other way round
        matrix = sparse.csr_matrix(np.asarray(matrix), dtype=np.float32)
    if not _are_counts(matrix.data):
        raise ExpressionInputError(
            path, "values are not raw counts (negative or non-integer): give UMI counts"
        )
    adata.X = matrix
    adata.obs_names = barcodes.rename(None)
    adata.var_names = pd.Index(adata.var_names.astype(str)).rename(None)
    adata.var_names_make_unique()
    adata.uns["counts_file"] = str(path)
    return adata


# --- bulk -------------------------------------------------------------------------------------


def read_bulk_counts(path: str | os.PathLike) -> pd.Series:
    """Read a bulk RNA-seq count table: TSV with a header naming ``gene`` and ``count``.

    Parameters
    ----------
    path
        The table (plain or gzipped). Other columns are ignored. Counts may be integers or,
        e.g. for RSEM/Salmon expected counts, non-negative decimals.

    Returns
    -------
    pandas.Series
        ``float64`` counts indexed by gene symbol (name ``count``), in file order.

    Raises
    ------
    ExpressionInputError
        Unreadable file, missing column, empty table, a count that is not a non-negative
        number (with its line) or a gene listed twice (with its line).
    """
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, EOFError) as error:
        raise ExpressionInputError(path, f"cannot be read as a TSV ({error})") from None
    except pd.errors.EmptyDataError:
        raise ExpressionInputError(path, "empty file: expected a header 'gene<TAB>count'") from None
    missing = [column for column in BULK_COLUMNS if column not in table.columns]
    if missing:
        raise ExpressionInputError(
            path, f"missing column(s) {missing}; found {list(table.columns)}"
        )
    if table.empty:
        raise ExpressionInputError(path, "no genes (the table has only a header)")
    genes = table["gene"].str.strip()
    counts = pd.to_numeric(table["count"], errors="coerce")
    bad = counts.isna() | (counts < 0) | ~np.isfinite(counts) | (genes == "")
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ExpressionInputError(
            path,
            f"line {row + 2}: gene {table['gene'].iloc[row]!r} with count "
            f"{table['count'].iloc[row]!r} (need a gene and a non-negative number)",
        )
    duplicated = genes.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise ExpressionInputError(path, f"line {row + 2}: gene {genes.iloc[row]!r} is repeated")
    if counts.sum() <= 0:
        raise ExpressionInputError(path, "every count is 0")
    return pd.Series(counts.to_numpy(dtype=np.float64), index=pd.Index(genes), name="count")
