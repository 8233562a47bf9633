"""The TSV tables the stages write and read back, read with one convention.

* ID columns (``sample_id``, ``patient_id``, ``barcode``) and the text columns a caller names
  are text: a patient called ``001`` stays ``001``, an empty cell stays ``''``;
* every other column is parsed by pandas (numbers, ``True``/``False``), and only an empty cell
  is missing (NaN): strings such as ``NA``, ``None`` or ``n/a`` are values, not gaps (a gene
  called ``NA`` stays a gene).

This is how the stages write their tables (pandas ``to_csv``: missing values as empty cells),
so a table read back is the table that was written.

Jobs that must start fast (a ctDNA counting job: importing pandas and the pyarrow it loads is
most of its CPU time, ``docs/ctdna.md``) read and write with the pandas-free pair
:func:`read_stage_columns` and :func:`write_stage_columns`: the same convention, columns as
Python lists, and a written table byte-identical to pandas' ``to_csv(sep="\\t", index=False)``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Collection, Mapping, Sequence

from carmscope.errors import LocatedInputError
from carmscope.io.text import open_text

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
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
    import pandas as pd  # imported here: read_stage_columns' jobs run without pandas

    columns = pd.read_csv(path, sep="\t", nrows=0).columns
    text = set(columns) if all_text else (ID_COLUMNS | set(text_columns)) & set(columns)
    return pd.read_csv(
        path,
        sep="\t",
        dtype=dict.fromkeys(sorted(text), str),
        keep_default_na=False,
        na_values={column: [""] for column in columns if column not in text},
    )


def read_stage_columns(
    path: str | os.PathLike, text_columns: Collection[str] = ()
) -> dict[str, list[str | None]]:
    """Read a stage's TSV (plain or gzipped) into columns of Python lists, without pandas.

    The convention of :func:`read_stage_table`, with the parsing left to the caller: cells
    are the text as written (quoted fields as the ``csv`` module and pandas read them); in
    columns that are neither :data:`ID_COLUMNS` nor ``text_columns`` an empty cell is missing
    (None), in those it stays ``''``. Callers convert the columns they know (:func:`integer`,
    :func:`boolean`), naming file, line and column when a cell cannot be read.

    Parameters
    ----------
    path, text_columns
        As for :func:`read_stage_table`.

    Returns
    -------
    dict
        Column name to the list of its cells, columns in file order.

    Raises
    ------
    LocatedInputError
        The file cannot be read, has no header, or a row with another number of fields than
        the header (file and line named).
    """
    try:
        with open_text(path) as handle:
            reader = csv.reader(handle, delimiter="\t")
            header = next(reader, None)
            if header is None:
                raise LocatedInputError(path, "is empty: a header line was expected")
            columns: list[list[str | None]] = [[] for _ in header]
            text = [name in ID_COLUMNS or name in text_columns for name in header]
            for row in reader:
                if len(row) != len(header):
                    if not row:
                        continue  # a blank line (pandas skips them too)
                    raise LocatedInputError(
                        path,
                        f"{len(row)} tab-separated fields, but the header has {len(header)}",
                        line=reader.line_num,
                    )
                for cells, keep, cell in zip(columns, text, row, strict=True):
                    cells.append(cell if keep or cell else None)
    except (OSError, UnicodeError, csv.Error) as error:
        raise LocatedInputError(path, f"cannot be read as a TSV table: {error}") from error
    if len(set(header)) != len(header):
        repeated = sorted({name for name in header if header.count(name) > 1})
        raise LocatedInputError(path, f"column(s) {', '.join(repeated)} appear twice", line=1)
    return dict(zip(header, columns, strict=True))


def integer(path: str | os.PathLike, column: str, cells: Sequence[str | None]) -> list[int]:
    """A column of :func:`read_stage_columns` read as whole numbers (the first line of data is
    line 2), or an error naming the file, line and column of the first cell that is not one."""
    values = []
    for line, cell in enumerate(cells, start=2):
        try:
            values.append(int(cell))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise LocatedInputError(
                path, f"{_shown(cell)} is not a whole number", line=line, column=column
            ) from None
    return values


BOOLEANS = {"True": True, "False": False}
"""How booleans are written (pandas ``to_csv``) and read back."""


def boolean(path: str | os.PathLike, column: str, cells: Sequence[str | None]) -> list[bool]:
    """A column of :func:`read_stage_columns` read as ``True``/``False``, or an error naming
    the file, line and column of the first other cell."""
    values = []
    for line, cell in enumerate(cells, start=2):
        if cell not in BOOLEANS:
            raise LocatedInputError(
                path, f"{_shown(cell)} is not True or False", line=line, column=column
            )
        values.append(BOOLEANS[cell])
    return values


def write_stage_columns(path: str | os.PathLike, columns: Mapping[str, Sequence[object]]) -> None:
    """Write columns of Python values as pandas' ``to_csv(path, sep="\\t", index=False)``
    writes the equivalent DataFrame, byte for byte, without pandas.

    Cells are written as pandas writes its column types: None and NaN as empty cells (pandas
    NA, ``Int64`` gaps), booleans as ``True``/``False``, integers in decimal, floats as the
    shortest text that reads back to the same number (NumPy's and Python's ``repr``: ``0.5``,
    ``1e-05``), text as is; fields holding a tab, a quote or a line break quoted as pandas
    quotes them (the ``csv`` module, minimal quoting, lines ending in ``\\n``).

    Parameters
    ----------
    path
        The table to write.
    columns
        Column name to its cells, in the order to write; every column as long as the first.
    """
    lengths = {len(cells) for cells in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        cells = [[_cell(value) for value in values] for values in columns.values()]
        writer.writerows(zip(*cells, strict=True))


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(float(value))  # a NumPy float's own repr names its type
    return str(value)


def _shown(cell: str | None) -> str:
    return repr(cell) if cell else "an empty cell"
