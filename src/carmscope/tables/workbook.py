"""Writing the result tables: TSV (empty cells for missing values) and one Excel workbook.

Numbers and texts are written as :mod:`carmscope.tables.formatting` says, the same in both:
the workbook's cells hold the values the TSV prints. The workbook has a frozen header row and
ID column, column widths fitted to their content, the data dictionary's description of each
column as a comment on its header, and fixed document properties and archive timestamps, so
the same tables give a byte-identical file.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Mapping

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.comments import Comment
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from carmscope.tables.dictionary import describe, dictionary_frame
from carmscope.tables.formatting import cell_value, format_table, is_p_value, number_text

__all__ = ["number_text", "write_tsv", "write_workbook"]

MAX_SHEET_NAME = 31  # Excel's limit
MAX_WIDTH = 60
"""Widest column (characters); longer texts wrap in Excel's cell view."""
FIXED_TIME = "2000-01-01T00:00:00Z"
"""Creation and modification time written into the workbook's properties (reproducible)."""
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
P_VALUE_FORMAT = "0.00E+00"
_CORE_TIMES = re.compile(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)")


def write_tsv(table: pd.DataFrame, path: str) -> None:
    """A table as TSV: missing values are empty cells, numbers and texts as
    :func:`carmscope.tables.formatting.format_table` writes them, so a patient's row is
    written the same whatever other rows the table holds."""
    format_table(table).to_csv(path, sep="\t", index=False)


def _clean(value: object) -> object:
    """Control characters Excel cannot hold (e.g. pasted into a clinical column) removed."""
    return ILLEGAL_CHARACTERS_RE.sub("", value) if isinstance(value, str) else value


def _header_comment(table: str, column: str) -> Comment | None:
    entry = describe(table, column)
    if entry is None:
        return None
    text = f"{entry.description} [{entry.unit}]"
    if entry.method:
        text += f" Method: {entry.method}"
    comment = Comment(text, "carmscope")
    comment.width, comment.height = 320, 110
    return comment


def _fill_sheet(worksheet, name: str, table: pd.DataFrame) -> None:
    columns = [str(c) for c in table.columns]
    texts = format_table(table)
    bold = Font(bold=True)
    for j, column in enumerate(columns, start=1):
        header = worksheet.cell(row=1, column=j, value=_clean(column))
        header.font = bold
        header.data_type = "s"
        comment = _header_comment(name, column)
        if comment is not None:
            header.comment = comment
        p_value = is_p_value(column)
        for i, value in enumerate(table.iloc[:, j - 1].tolist(), start=2):
            written = _clean(cell_value(value, p_value=p_value))
            cell = worksheet.cell(row=i, column=j, value=written)
            if isinstance(written, str):
                cell.data_type = "s"  # text stays text, never a formula
            elif p_value and written is not None:
                cell.number_format = P_VALUE_FORMAT
        longest = max([len(column), *(len(t) for t in texts.iloc[:, j - 1])], default=8)
        worksheet.column_dimensions[get_column_letter(j)].width = min(longest + 2, MAX_WIDTH)
    worksheet.freeze_panes = "B2"
    if columns:
        worksheet.auto_filter.ref = worksheet.dimensions


def _reproducible(archive: bytes) -> bytes:
    """The xlsx archive with fixed entry times and fixed document times."""
    source = zipfile.ZipFile(io.BytesIO(archive))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = _CORE_TIMES.sub(rb"\g<1>" + FIXED_TIME.encode() + rb"\g<3>", data)
            entry = zipfile.ZipInfo(info.filename, date_time=ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o600 << 16
            target.writestr(entry, data)
    return out.getvalue()


def write_workbook(tables: Mapping[str, pd.DataFrame], path: str) -> None:
    """The tables as sheets (in order), then the data dictionary, with frozen header rows.

    Written to a temporary name and renamed, so a failure leaves no half-written workbook.
    """
    folder, name = os.path.split(os.fspath(path))
    partial = os.path.join(folder, f".{name}.partial.xlsx")
    sheets = {**tables, "dictionary": dictionary_frame()}
    workbook = Workbook()
    workbook.remove(workbook.active)
    for sheet_name, table in sheets.items():
        _fill_sheet(workbook.create_sheet(sheet_name[:MAX_SHEET_NAME]), sheet_name, table)
    workbook.properties.creator = "carmscope"
    try:
        buffer = io.BytesIO()
        workbook.save(buffer)
        with open(partial, "wb") as handle:
            handle.write(_reproducible(buffer.getvalue()))
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
