"""Reading one tab-separated input table: its lines, header and rows, every problem located.

The first layer of :mod:`carmscope.sheets`: a table is read as stripped strings (blank lines,
CRLF line endings and a UTF-8 byte-order mark tolerated), its header checked (tab-separated,
named, unique and required columns, with a hint for a near-miss name) and its rows split. Each
problem is a :class:`Problem` located by file, 1-based line (the header is line 1) and column.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input table.

    Attributes
    ----------
    file : str
        The table, as its path was given.
    line : int or None
        1-based line in the file (the header is line 1); None for the whole file.
    column : str or None
        The column at fault; None for a whole row or file.
    message : str
        What is wrong and, where it helps, what is expected.
    record : str or None
        The row's ID for orientation, e.g. ``"sample S03"``; None when there is none.
    """

    file: str
    line: int | None
    column: str | None
    message: str
    record: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.line is not None:
            where.append(f"line {self.line}" + (f" ({self.record})" if self.record else ""))
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"


# --- reading ----------------------------------------------------------------------------------


Finding = tuple[str | None, str]
"""A problem before it is located in a file: the column (None for the row) and message."""


@dataclass(frozen=True)
class SheetRow:
    line: int
    cells: dict[str, str]


@dataclass(frozen=True)
class SheetTable:
    """A parsed table whose header has every required column exactly once."""

    file: str
    folder: str
    noun: str
    columns: list[str]
    rows: list[SheetRow]

    @property
    def id_column(self) -> str:
        return f"{self.noun}_id"

    def problem(self, row: SheetRow, column: str | None, message: str) -> Problem:
        """Locate ``message`` at ``row`` and ``column`` of this table."""
        identifier = row.cells.get(self.id_column, "")
        record = f"{self.noun} {identifier}" if identifier else None
        return Problem(self.file, row.line, column, message, record)


def _read_error(error: OSError, file: str) -> str:
    if isinstance(error, FileNotFoundError):
        return f"does not exist (looked for {os.path.abspath(file)})"
    if isinstance(error, IsADirectoryError):
        return "is a directory, not a table"
    if isinstance(error, PermissionError):
        return "is not readable (permission denied)"
    return f"cannot be read ({error.strerror or error})"


def _read_lines(file: str) -> tuple[list[tuple[int, str]], str | None]:
    """The file's non-blank lines with their 1-based numbers, or why it cannot be read."""
    try:
        with open(file, encoding="utf-8-sig") as handle:  # universal newlines: CRLF is fine
            text = handle.read()
    except UnicodeDecodeError as error:
        return [], f"is not UTF-8 text (undecodable byte at offset {error.start}; compressed?)"
    except OSError as error:
        return [], _read_error(error, file)
    lines = [(number, line) for number, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not lines:
        return [], "is empty; expected a tab-separated table with a header row"
    return lines, None


def _split(line: str) -> list[str]:
    return [cell.strip() for cell in line.split("\t")]


def _header(line: str) -> list[str]:
    """Column names of a header line, without trailing unnamed columns (trailing tabs)."""
    names = _split(line)
    while names and not names[-1]:
        names.pop()
    return names


def quoted(names: Iterable[str]) -> str:
    return ", ".join(f"'{name}'" for name in names)


def or_list(items: Sequence[str]) -> str:
    """``a, b or c``."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _unnamed_columns(names: list[str]) -> Iterator[Finding]:
    for position, name in enumerate(names, 1):
        if not name:
            yield None, f"column {position} of the header has no name"


def _duplicated_columns(names: list[str]) -> Iterator[Finding]:
    for name in dict.fromkeys(names):
        positions = [str(position) for position, other in enumerate(names, 1) if other == name]
        if name and len(positions) > 1:
            yield name, f"column name appears more than once (columns {', '.join(positions)})"


def _close_match(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most like ``name`` ignoring case, if any is close."""
    lowered = {candidate.lower(): candidate for candidate in candidates}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.7)
    return lowered[match[0]] if match else None


def _missing_columns(names: list[str], required: Sequence[str]) -> Iterator[Finding]:
    missing = [column for column in required if column not in names]
    if not missing:
        return
    unknown = [name for name in names if name not in required]
    hints = [
        f"'{match}' for '{column}'?"
        for column in missing
        if (match := _close_match(column, unknown))
    ]
    hint = f" (typo? {' '.join(hints)})" if hints else ""
    plural = "s" if len(missing) > 1 else ""
    yield None, f"missing required column{plural} {quoted(missing)}{hint}"


def _header_findings(names: list[str], required: Sequence[str]) -> Iterator[Finding]:
    if len(names) == 1 and len(required) > 1:
        hint = " (it looks comma-separated)" if "," in names[0] else ""
        yield None, f"is not tab-separated: the header is a single column '{names[0]}'{hint}"
        return
    yield from _unnamed_columns(names)
    yield from _duplicated_columns(names)
    yield from _missing_columns(names, required)


def _parse_row(line: int, text: str, columns: list[str]) -> tuple[SheetRow, str | None]:
    """A data row and, if its field count differs from the header's, what is wrong."""
    cells = _split(text)
    if len(cells) > len(columns) and not any(cells[len(columns) :]):
        cells = cells[: len(columns)]  # trailing empty fields (trailing tabs)
    shape = None
    if len(cells) != len(columns):
        shape = f"has {len(cells)} tab-separated fields but the header has {len(columns)}"
    padded = (cells + [""] * len(columns))[: len(columns)]
    return SheetRow(line, dict(zip(columns, padded, strict=True))), shape


def read_table(
    path: str | os.PathLike[str], noun: str, required: Sequence[str]
) -> tuple[SheetTable | None, list[Problem]]:
    """Parse one table; None when it is unusable (unreadable, bad header or no rows)."""
    file = os.fspath(path)
    lines, failure = _read_lines(file)
    if failure:
        return None, [Problem(file, None, None, failure)]
    (header_line, header_text), *body = lines
    columns = _header(header_text)
    header_problems = [
        Problem(file, header_line, column, message)
        for column, message in _header_findings(columns, required)
    ]
    if header_problems:
        return None, header_problems
    if not body:
        return None, [Problem(file, None, None, f"has a header but no {noun} rows")]
    parsed = [_parse_row(line, text, columns) for line, text in body]
    folder = os.path.dirname(os.path.abspath(file))
    table = SheetTable(file, folder, noun, columns, [row for row, _ in parsed])
    return table, [table.problem(row, None, shape) for row, shape in parsed if shape]
