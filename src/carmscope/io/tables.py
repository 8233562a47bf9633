"""The TSV tables the stages write and read back, read with one convention.

* ID columns (``sample_id``, ``patient_id``, ``barcode``) and the text columns a caller names
  are text: a patient called ``001`` stays ``001``, an empty cell stays ``''``;
* every other column is parsed by pandas (numbers, ``True``/``False``), and only an empty cell
  is missing (NaN): strings such as ``NA``, ``None`` or ``n/a`` are values, not gaps (a gene
  called ``NA`` stays a gene).

This is how the stages write their tables (pandas ``to_csv``: missing values as empty cells),
so a table read back is the table that was written.
"""

from __future__ import annotations

import os
from collections.abc import Collection

import pandas as pd

ID_COLUMNS = frozenset({"sample_id", "patient_id", "barcode"})
"""Columns that are always text."""


def read_stage_table(
    path: str | os.PathLike, text_columns: Collection[str] = (), *, all_text: bool = False
) -> pd.DataFrame:
    """Read a stage's TSV (plain or gzipped) with the module's convention.

    Parameters
    ----------
    path
        The table, with a header row.
    text_columns
        Further columns read as text (``''`` kept), besides :data:`ID_COLUMNS`.
    all_text
        Read every column as text (for tables only passed through, e.g. stacked).

    Returns
    -------
    pandas.DataFrame
        The table, columns in file order.
    """
    columns = pd.read_csv(path, sep="\t", nrows=0).columns
    text = set(columns) if all_text else (ID_COLUMNS | set(text_columns)) & set(columns)
    return pd.read_csv(
        path,
        sep="\t",
        dtype=dict.fromkeys(sorted(text), str),
        keep_default_na=False,
        na_values={column: [""] for column in columns if column not in text},
    )
