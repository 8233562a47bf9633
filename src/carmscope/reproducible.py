"""Writing outputs so the same inputs and settings give byte-identical files.

* gzip members carry a modification time in their header: written with ``mtime=0``;
* matplotlib writes a date into SVG and PDF metadata and draws SVG element IDs from a random
  salt: figures are saved without date or software version and with a fixed
  ``svg.hashsalt``; PNG carries only the (dropped) software version.

The workbook's own timestamps are fixed in :mod:`carmscope.tables.workbook`.
"""

from __future__ import annotations

import os

import pandas as pd

GZIP = {"method": "gzip", "mtime": 0}
SVG_HASH_SALT = "carmscope"


def compression(path: str | os.PathLike) -> dict | str:
    """pandas ``compression`` for ``path``: gzip with a zero mtime for ``.gz``, else inferred."""
    return dict(GZIP) if os.fspath(path).endswith(".gz") else "infer"


def write_tsv(table: pd.DataFrame, path: str | os.PathLike, **kwargs) -> None:
    """``table.to_csv(path, sep="\\t", ...)``, gzipped reproducibly when ``path`` ends in .gz."""
    table.to_csv(path, sep="\t", compression=compression(path), **kwargs)


def figure_metadata(path: str | os.PathLike) -> dict:
    """savefig ``metadata`` without date or software version, for the path's format."""
    suffix = os.fspath(path).rsplit(".", 1)[-1].lower()
    if suffix == "svg":
        return {"Date": None, "Creator": None}
    if suffix == "pdf":
        return {"CreationDate": None, "ModDate": None, "Creator": None, "Producer": None}
    if suffix == "png":
        return {"Software": None}
    return {}


def save_figure(figure, path: str | os.PathLike, **kwargs) -> None:
    """``figure.savefig(path, ...)`` with fixed metadata and SVG ID salt."""
    from matplotlib import rc_context

    with rc_context({"svg.hashsalt": SVG_HASH_SALT}):
        figure.savefig(path, metadata=figure_metadata(path), **kwargs)
