"""Errors shared by the stages' input readers."""

from __future__ import annotations

import os


class LocatedInputError(ValueError):
    """An input file that cannot be used; the message names the file, line and column.

    Parameters
    ----------
    path
        The offending file.
    message
        What is wrong and, where possible, how to fix it.
    line, column
        Line (1-based) and column of a text file, when known.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        message: str,
        *,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.reason = message
        self.line = line
        self.column = column
