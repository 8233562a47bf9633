"""Read count inputs of the expression stage: single-cell matrices and bulk count tables.

The single-cell readers are the shared ones of :mod:`carmscope.io.tenx` (10x HDF5, 10x MTX
folders, h5ad; what they return is described there), re-exported here under the names the
stage has always used; :func:`read_bulk_counts` reads a bulk count table.

Any file that cannot be read, holds an empty matrix, repeats a barcode or does not hold raw
counts raises :class:`ExpressionInputError` naming the file.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from carmscope.io.tenx import (
    GENE_EXPRESSION,
    CountMatrixError,
    read_10x_h5,
    read_10x_mtx,
    read_counts,
    read_h5ad,
)
from carmscope.messages import found_columns, quoted

__all__ = [
    "BULK_COLUMNS",
    "GENE_EXPRESSION",
    "ExpressionInputError",
    "read_10x_h5",
    "read_10x_mtx",
    "read_bulk_counts",
    "read_counts",
    "read_h5ad",
]

BULK_COLUMNS = ("gene", "count")
"""Columns a bulk count table must have (others are ignored)."""

ExpressionInputError = CountMatrixError
"""A count input that cannot be used; the message starts with the file's path."""


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
        Unreadable file, missing column, empty table, an empty gene name, a count that is not
        a non-negative number or a gene listed twice (each with its line and column). Input
        inspection (:mod:`carmscope.inputs`) reads bulk tables with this function, so both
        refuse the same files with the same words.
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
            path, f"missing column(s) {missing}; {found_columns(list(table.columns))}"
        )
    if table.empty:
        raise ExpressionInputError(path, "no genes (the table has only a header)")
    genes = table["gene"].str.strip()
    empty = genes == ""
    if empty.any():
        line = int(np.flatnonzero(empty.to_numpy())[0]) + 2
        raise ExpressionInputError(path, f"line {line}, column 'gene': no gene name")
    counts = pd.to_numeric(table["count"], errors="coerce")
    bad = counts.isna() | (counts < 0) | ~np.isfinite(counts)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise ExpressionInputError(
            path,
            f"line {row + 2}, column 'count': {quoted(table['count'].iloc[row])} is not a count "
            f"(a non-negative number) for gene {quoted(genes.iloc[row])}",
        )
    duplicated = genes.duplicated()
    if duplicated.any():
        row = int(np.flatnonzero(duplicated.to_numpy())[0])
        raise ExpressionInputError(
            path, f"line {row + 2}, column 'gene': {quoted(genes.iloc[row])} is duplicated"
        )
    if counts.sum() <= 0:
        raise ExpressionInputError(path, "every count is 0")
    return pd.Series(counts.to_numpy(dtype=np.float64), index=pd.Index(genes), name="count")
