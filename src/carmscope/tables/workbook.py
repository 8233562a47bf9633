"""Writing the result tables: TSV (empty cells for missing values) and one Excel workbook."""

from __future__ import annotations

import os
from collections.abc import Mapping

import pandas as pd
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from carmscope.tables.dictionary import dictionary_frame

MAX_SHEET_NAME = 31  # Excel's limit


def number_text(value: object) -> str:
    """A number as text that depends on its value only, not on its column's dtype: empty when
    missing, integral values without a decimal point (a count read as float because its
    column has a gap stays ``12``, not ``12.0``), others in the shortest exact form."""
    if pd.isna(value):
        return ""
    number = float(value)
    if number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number)


def write_tsv(table: pd.DataFrame, path: str) -> None:
    """A table as TSV: missing values are empty cells, numbers in :func:`number_text` form, so
    a patient's row is written the same whatever other rows the table holds."""
    text = table.copy()
    for column in text.columns:
        if pd.api.types.is_float_dtype(text[column].dtype):
            text[column] = text[column].map(number_text)
    text.to_csv(path, sep="\t", index=False, na_rep="")


def _excel_ready(table: pd.DataFrame) -> pd.DataFrame:
    """Nullable booleans and integers as plain objects, so missing cells stay empty; control
    characters Excel cannot hold (e.g. pasted into a clinical column) removed from text."""
    ready = table.copy()
    for column in ready.columns:
        values = ready[column]
        if isinstance(values.dtype, pd.BooleanDtype | pd.Int64Dtype):
            ready[column] = values.astype(object).where(values.notna(), None)
        elif values.dtype == object:
            ready[column] = values.map(
                lambda v: ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v
            )
    return ready


def write_workbook(tables: Mapping[str, pd.DataFrame], path: str) -> None:
    """The tables as sheets (in order), then the data dictionary, with frozen header rows.

    Written to a temporary name and renamed, so a failure leaves no half-written workbook.
    """
    folder, name = os.path.split(os.fspath(path))
    partial = os.path.join(folder, f".{name}.partial.xlsx")
    sheets = {**tables, "dictionary": dictionary_frame()}
    try:
        with pd.ExcelWriter(partial, engine="openpyxl") as writer:
            for name, table in sheets.items():
                sheet = name[:MAX_SHEET_NAME]
                _excel_ready(table).to_excel(writer, sheet_name=sheet, index=False)
                worksheet = writer.sheets[sheet]
                worksheet.freeze_panes = "B2"
                worksheet.auto_filter.ref = worksheet.dimensions
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
