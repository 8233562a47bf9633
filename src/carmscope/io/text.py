"""Plain or gzipped text files, opened the same way everywhere."""

from __future__ import annotations

import gzip
import os
from typing import TextIO


def open_text(path: str | os.PathLike) -> TextIO:
    """Open a text file for reading, gunzipping it when its name ends in ``.gz``.

    Parameters
    ----------
    path
        The file (UTF-8 text, optionally gzip-compressed).

    Returns
    -------
    typing.TextIO
        A text handle; use it as a context manager.
    """
    if os.fspath(path).endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")
