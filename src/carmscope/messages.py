"""How error messages quote what they found in a user's file (the README's policy).

A message names the file, line and column. It quotes file content only where that content is
a header that parsed as the expected format (its column names, each shortened) or a single
cell at the named place; a header that is not a tab-separated list of names is described, never
quoted, so a path that points at an unrelated file (a symbolic link to a system file, say)
does not have that file's first line echoed into logs.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_QUOTED = 40
"""Longest piece of file content a message quotes; longer ones are cut with '...'."""
MAX_COLUMNS = 20
"""Most column names a message lists."""


def quoted(text: str) -> str:
    """``text`` in quotes, cut to :data:`MAX_QUOTED` characters."""
    text = str(text)
    return repr(text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "...")


def found_columns(columns: Sequence[str]) -> str:
    """What a message says about the header it found.

    The column names (quoted, shortened, at most :data:`MAX_COLUMNS`) when the header has
    several tab-separated fields; otherwise only that it is not a tab-separated header.
    """
    names = [str(name) for name in columns]
    if len(names) < 2:
        return "the first line is not a tab-separated header (one field)"
    listed = ", ".join(quoted(name) for name in names[:MAX_COLUMNS])
    more = f" and {len(names) - MAX_COLUMNS} more" if len(names) > MAX_COLUMNS else ""
    return f"found columns {listed}{more}"
