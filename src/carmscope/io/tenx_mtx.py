"""10x MTX folders: ``matrix.mtx``, ``barcodes.tsv``, ``features.tsv`` or ``genes.tsv``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

from carmscope.io.counts import (
    GENE_EXPRESSION,
    TENX_MTX,
    CountMatrixError,
    FeatureTotals,
    MatrixSummary,
    finish,
    gene_name_type,
    wanted_rows,
)
from carmscope.io.text import open_text

MTX_MATRIX = ("matrix.mtx.gz", "matrix.mtx")
MTX_BARCODES = ("barcodes.tsv.gz", "barcodes.tsv")
MTX_FEATURES = ("features.tsv.gz", "features.tsv", "genes.tsv", "genes.tsv.gz")


def _existing(folder: Path, names: Sequence[str]) -> Path | None:
    return next((folder / name for name in names if (folder / name).is_file()), None)


def _mtx_parts(folder: Path) -> tuple[Path | None, Path | None, Path | None]:
    """``matrix.mtx``, ``barcodes.tsv`` and ``features.tsv``/``genes.tsv`` (None if absent)."""
    return (
        _existing(folder, MTX_MATRIX),
        _existing(folder, MTX_BARCODES),
        _existing(folder, MTX_FEATURES),
    )


def _read_barcodes(path: Path) -> list[str]:
    """First column of a ``barcodes.tsv`` (blank lines skipped)."""
    with open_text(path) as handle:
        return [line.split("\t")[0].strip() for line in handle if line.strip()]


def _read_features(path: Path):
    """A ``features.tsv``/``genes.tsv`` as text columns 0 (ID), 1 (name), 2 (type)."""
    import pandas as pd

    return pd.read_csv(path, sep="\t", header=None, dtype=str, keep_default_na=False)


def _mtx_header(matrix: Path) -> tuple[str, int, int, int]:
    """Field (``integer``, ``real``...), rows, columns and header lines of a Matrix Market
    file."""
    with open_text(matrix) as handle:
        banner, lines = "", 0
        for line in handle:
            lines += 1
            if line.startswith("%%MatrixMarket"):
                banner = line
            if not line.startswith("%"):
                break
        else:
            line = ""
    words = banner.split()
    field_type = words[3].lower() if len(words) > 3 else ""
    try:
        n_rows, n_columns, _ = (int(v) for v in line.split())
    except ValueError:
        raise CountMatrixError(matrix, "no 'rows columns entries' line in the header") from None
    return field_type, n_rows, n_columns, lines


def describe_mtx(folder: Path) -> MatrixSummary:
    if not folder.is_dir():
        raise CountMatrixError(folder, "not a folder (a 10x MTX input is a folder)")
    matrix, barcodes_file, features_file = _mtx_parts(folder)
    if matrix is None or barcodes_file is None:
        raise CountMatrixError(folder, "10x MTX folder needs matrix.mtx(.gz) and barcodes.tsv(.gz)")
    field_type, n_features, n_cells, _ = _mtx_header(matrix)
    barcodes = _read_barcodes(barcodes_file)
    if len(barcodes) != n_cells:
        raise CountMatrixError(
            barcodes_file, f"{len(barcodes)} barcodes but the matrix has {n_cells} columns"
        )
    version, names = "", []
    if features_file is not None:
        version = "v2" if features_file.name.startswith("genes") else "v3"
        table = _read_features(features_file)
        names = (table[1] if table.shape[1] > 1 else table[0]).tolist()
    raw = True if field_type in ("integer", "pattern") else None
    return MatrixSummary(
        TENX_MTX, version, (), n_cells, n_features, barcodes, None, raw, "", gene_name_type(names)
    )


def _read_mtx_parts(folder: Path, matrix: Path, features: Path, barcodes: Path):
    """Any mix of gzipped and plain MTX parts (scanpy reads only the two standard layouts)."""
    import anndata
    import numpy as np
    import pandas as pd
    from scipy import io as spio
    from scipy import sparse

    with open_text(matrix) as handle:
        counts = sparse.csr_matrix(spio.mmread(handle).T, dtype=np.float32)
    table = _read_features(features)
    cells = pd.read_csv(barcodes, sep="\t", header=None, dtype=str, keep_default_na=False)
    if counts.shape != (len(cells), len(table)):
        raise CountMatrixError(
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


def read_10x_mtx(path: str | os.PathLike):
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
    CountMatrixError
        A missing part, an unreadable or inconsistent folder, an empty matrix or duplicated
        barcodes.
    """
    import pandas as pd

    folder = Path(path)
    if not folder.is_dir():
        raise CountMatrixError(folder, "not a folder (a 10x MTX input is a folder)")
    matrix, barcodes, features = _mtx_parts(folder)
    if matrix is None or features is None or barcodes is None:
        raise CountMatrixError(
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
    except CountMatrixError:
        raise
    except (OSError, ValueError, KeyError, IndexError, EOFError, pd.errors.ParserError) as error:
        raise CountMatrixError(folder, f"cannot be read as a 10x MTX folder ({error})") from None
    return finish(adata, folder)


def mtx_feature_counts(folder: Path, wanted: Sequence[str]):
    import pandas as pd

    matrix, barcodes_file, features_file = _mtx_parts(folder)
    for part, names in ((matrix, MTX_MATRIX), (barcodes_file, MTX_BARCODES)):
        if part is None:
            raise CountMatrixError(folder, f"10x MTX folder without {' or '.join(names)}")
    if features_file is None:
        raise CountMatrixError(folder, f"10x MTX folder without {' or '.join(MTX_FEATURES)}")
    barcodes = _read_barcodes(barcodes_file)
    features = _read_features(features_file)
    names = features[1] if features.shape[1] > 1 else features[0]
    rows = wanted_rows(list(features[0]), list(names), wanted)
    totals = FeatureTotals(rows, len(barcodes))
    if rows:
        entries = pd.read_csv(
            matrix,
            sep=r"\s+",
            header=None,
            skiprows=_mtx_header(matrix)[3],
            chunksize=1 << 20,
        )
        for chunk in entries:  # MTX rows and columns are 1-based
            totals.add(chunk[0].to_numpy() - 1, chunk[1].to_numpy() - 1, chunk[2].to_numpy())
    return barcodes, totals.counts
