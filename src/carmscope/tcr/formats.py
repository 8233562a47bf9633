"""Repertoire formats: how each is recognised from its header, and what a reader returns.

The formats and their columns are described in :mod:`carmscope.tcr.io`; one reader per format
family: :mod:`carmscope.tcr.immunoseq`, :mod:`carmscope.tcr.airr`, :mod:`carmscope.tcr.tenx_vdj`.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

CLONE_COLUMNS = ("clone_id", "cdr3_aa", "v_gene", "j_gene", "count", "frequency")
CELL_COLUMNS = ("barcode", "clone_id", "cdr3_aa", "v_gene", "umis", "tra_cdr3_aa", "tra_v_gene")


@dataclass(frozen=True)
class FormatSpec:
    """How one format is recognised: the columns it must have and its count columns."""

    name: str
    label: str
    required: tuple[str, ...]
    counts: tuple[str, ...] = ()

    def describe(self) -> str:
        counts = f" and one of {' / '.join(self.counts)}" if self.counts else ""
        return f"{self.label} ({', '.join(self.required)}{counts})"


FORMATS = (
    FormatSpec(
        "10x_vdj",
        "10x filtered_contig_annotations.csv",
        ("barcode", "chain", "v_gene", "cdr3", "productive", "umis"),
    ),
    FormatSpec(
        "immunoseq_v3",
        "Adaptive immunoSEQ v3+",
        ("rearrangement", "amino_acid", "frame_type", "v_resolved"),
        ("templates", "seq_reads"),
    ),
    FormatSpec(
        "immunoseq_v2",
        "Adaptive immunoSEQ v2",
        ("nucleotide", "aminoAcid", "vGeneName", "sequenceStatus"),
        ("count (templates/reads)", "count (templates)", "count (reads)", "count"),
    ),
    FormatSpec(
        "airr",
        "AIRR rearrangement TSV",
        ("v_call", "junction_aa", "productive"),
        ("duplicate_count", "consensus_count", "cell_id"),
    ),
)
FORMAT_NAMES = tuple(spec.name for spec in FORMATS)
CELL_FORMATS = frozenset({"10x_vdj"})
"""Formats whose count is always cells (AIRR is one too when it has ``cell_id``)."""


class RepertoireError(ValueError):
    """A repertoire file that cannot be read; the message names file, line and column."""


@dataclass
class Repertoire:
    """One sample's productive TRB clones.

    Attributes
    ----------
    path
        The file read.
    format
        One of :data:`FORMAT_NAMES`.
    unit
        What ``count`` counts: ``templates``, ``reads``, ``duplicate_count``,
        ``consensus_count`` or ``cells``.
    clones
        One row per clone (:data:`CLONE_COLUMNS`), largest first; ``clone_id`` is
        ``{v_gene}:{cdr3_aa}``, the same in every file.
    nonproductive
        Count (same unit) of TRB rearrangements left out as not productive.
    cells
        Per cell with a productive TRB chain (:data:`CELL_COLUMNS`); None for bulk formats.
    """

    path: str
    format: str
    unit: str
    clones: pd.DataFrame
    nonproductive: int = 0
    cells: pd.DataFrame | None = field(default=None)

    @property
    def total(self) -> int:
        """Productive templates (or cells, reads)."""
        return int(self.clones["count"].sum())


def column_key(name: str) -> str:
    """A column name as matched: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _open_text(path: str | Path):
    """Plain or gzip-compressed text, told apart by the gzip magic bytes (not the name)."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_header(path: str | Path) -> tuple[list[str], str]:
    """The header's column names and the separator (tab unless the line has none)."""
    with _open_text(path) as handle:
        line = handle.readline().rstrip("\r\n").lstrip("\ufeff")
    if not line:
        raise RepertoireError(f"{path}: line 1: the file is empty (no header row)")
    sep = "\t" if "\t" in line else ","
    return [name.strip().strip('"') for name in line.split(sep)], sep


def detect_format(columns: list[str], path: str | Path = "<file>") -> FormatSpec:
    """The format whose required columns the header has.

    Raises
    ------
    RepertoireError
        No format fits: names the columns found and the formats expected.
    """
    keys = {column_key(c) for c in columns}
    for spec in FORMATS:
        if all(column_key(c) in keys for c in spec.required) and (
            not spec.counts or any(column_key(c) in keys for c in spec.counts)
        ):
            return spec
    expected = "; ".join(spec.describe() for spec in FORMATS)
    raise RepertoireError(
        f"{path}: line 1: not a known repertoire format. Columns found: {', '.join(columns)}. "
        f"Expected one of: {expected}"
    )


def header_keys(columns: list[str]) -> dict[str, str]:
    """Matching key -> the column as spelt in the file (the first of duplicates)."""
    found: dict[str, str] = {}
    for name in columns:
        found.setdefault(column_key(name), name)
    return found
