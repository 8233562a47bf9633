"""How the numbers and texts of the result tables are written, the same in the TSVs and the
workbook.

* counts and other integral values: integers (``1500``, never ``1500.0``);
* p- and q-values (dictionary unit ``probability``): scientific notation with three significant
  digits (``4.44e-02``), the precision a p-value is read at;
* every other number: six significant digits (``0.044352``, ``24201.4``); below ``1e-4`` in
  magnitude, scientific notation with six significant digits (``1.23457e-05``);
* missing values: empty cells;
* a text beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (a clinical
  free-text column, for example an ``indication`` of ``=1+2``) gets a leading ``'``, as OWASP
  advises against CSV/spreadsheet formula injection, so no spreadsheet runs it as a formula.

A value's text depends on the value only (not on its column's dtype or on other rows), so a
patient's row is written the same whatever other patients the table holds. Parsing a written
number gives the value within the printed precision (a test checks it on the tiny cohort).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from carmscope.tables.dictionary import COLUMNS

SIGNIFICANT = 6
P_VALUE_SIGNIFICANT = 3
SCIENTIFIC_BELOW = 1e-4
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters a spreadsheet may read as the start of a formula (OWASP, CSV injection)."""
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")


def is_p_value(column: str) -> bool:
    """Whether a result-table column holds p- or q-values (dictionary unit ``probability``)."""
    return any(
        entry.unit == "probability" and (entry.name == column or entry.pattern.match(column))
        for entry in COLUMNS
        if not entry.catch_all
    )


def round_significant(value: float, digits: int = SIGNIFICANT) -> float:
    """``value`` rounded to ``digits`` significant digits (what the tables print)."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits - 1}e}")


def number_text(value: object, *, p_value: bool = False) -> str:
    """A number as the tables print it (see the module docstring); empty when missing."""
    if value is None or pd.isna(value):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    number = float(value)
    if not math.isfinite(number):
        return str(number)
    if p_value:
        return f"{number:.{P_VALUE_SIGNIFICANT - 1}e}"
    if number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    if abs(number) < SCIENTIFIC_BELOW:
        return np.format_float_scientific(number, precision=SIGNIFICANT - 1, unique=True, trim="-")
    text = np.format_float_positional(
        round_significant(number), precision=SIGNIFICANT, unique=True, fractional=False, trim="-"
    )
    return text


def escape_formula(text: str) -> str:
    """A text a spreadsheet would read as a formula, prefixed with ``'`` (OWASP); numbers
    written as text (``-3.5``) and other texts unchanged."""
    if text.startswith(FORMULA_PREFIXES) and not _NUMBER.match(text):
        return "'" + text
    return text


def cell_value(value: object, *, p_value: bool = False) -> object:
    """The workbook value of a table cell: numbers rounded as printed (integers as ``int``),
    texts escaped, missing as None. The TSV's text of the same cell parses to this value."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        text = number_text(value, p_value=p_value)
        number = float(text)
        return int(number) if _is_int_text(text) else number
    return escape_formula(str(value))


def _is_int_text(text: str) -> bool:
    return text.lstrip("-").isdigit()


def format_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table as the texts the TSV holds (one string per cell, empty for missing)."""
    text = pd.DataFrame(index=table.index)
    for column in table.columns:
        values = table[column]
        p_value = is_p_value(str(column))
        if pd.api.types.is_bool_dtype(values.dtype) or isinstance(values.dtype, pd.BooleanDtype):
            text[column] = values.map(lambda v: "" if pd.isna(v) else str(bool(v)))
        elif pd.api.types.is_numeric_dtype(values.dtype):
            text[column] = values.map(lambda v, p=p_value: number_text(v, p_value=p))
        else:
            text[column] = values.map(lambda v, p=p_value: _object_text(v, p))
    return text


def _object_text(value: object, p_value: bool) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, str):
        return escape_formula(value)
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | float | np.integer | np.floating):
        return number_text(value, p_value=p_value)
    return escape_formula(str(value))
