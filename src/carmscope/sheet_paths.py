"""What a path cell of an input table may point to, and where it resolves.

Relative paths in a table resolve against the folder of that table, not the working directory
(:class:`Places`); each path column has a :class:`PathRule` (file extensions, or a 10x MTX
directory), and :func:`path_findings` reports a missing, unreadable or wrongly named path. A
missing path under a generated folder is not an error (a workflow rule makes it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

from carmscope.sheet_reading import Finding, or_list
from carmscope.vocabulary import BULK_RNA, CAR_PCR, CFDNA, CYTOKINES, SCRNA, TCR

MTX_PARTS: tuple[tuple[str, ...], ...] = (
    ("matrix.mtx", "matrix.mtx.gz"),
    ("barcodes.tsv", "barcodes.tsv.gz"),
    ("features.tsv", "features.tsv.gz", "genes.tsv", "genes.tsv.gz"),
)
"""Files a 10x MTX directory must hold: one of each group of alternatives."""

ALIGNMENT_SUFFIXES: tuple[str, ...] = (".bam", ".cram")
READ_FILE_SUFFIXES: tuple[str, ...] = (
    ".bam",
    ".cram",
    ".sam",
    ".fastq",
    ".fq",
    ".fastq.gz",
    ".fq.gz",
)
VARIANTS_SUFFIXES: tuple[str, ...] = (".vcf", ".vcf.gz", ".bcf")
TABLE_SUFFIXES: tuple[str, ...] = (".tsv", ".tsv.gz", ".txt", ".csv", ".csv.gz")


# --- paths ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathRule:
    """What a path cell may point to."""

    suffixes: tuple[str, ...]
    mtx_directory: bool = False

    def accepts_name(self, path: str) -> bool:
        return path.endswith(self.suffixes)

    def expected(self) -> str:
        files = f"a {or_list(self.suffixes)} file"
        return f"{files} or a 10x MTX directory" if self.mtx_directory else files


VARIANTS_RULE = PathRule(VARIANTS_SUFFIXES)
VDJ_RULE = PathRule(TABLE_SUFFIXES)
"""What ``vdj`` may point to: a 10x contig annotation CSV or an AIRR TSV."""
COUNTS_RULES: dict[str, PathRule] = {
    SCRNA: PathRule((".h5", ".h5ad"), mtx_directory=True),
    BULK_RNA: PathRule((".tsv", ".tsv.gz", ".txt")),
    CFDNA: PathRule((".tsv", ".txt")),
    TCR: PathRule(TABLE_SUFFIXES),
    CAR_PCR: PathRule((".tsv", ".tsv.gz", ".txt")),
    CYTOKINES: PathRule((".tsv", ".tsv.gz", ".txt")),
}
"""What ``counts`` may point to, per assay (cfdna: a vendor VAF table, instead of reads; tcr:
one repertoire file; car_pcr and cytokines: a long table of analyte values)."""
READS_RULES: dict[str, PathRule] = {
    SCRNA: PathRule(ALIGNMENT_SUFFIXES),
    BULK_RNA: PathRule(READ_FILE_SUFFIXES),
    CFDNA: PathRule(ALIGNMENT_SUFFIXES),
}
"""What ``reads`` may point to, per assay (the others take none)."""


def _is_under(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


@dataclass(frozen=True)
class Places:
    """Where one table's relative paths resolve from, and how resolved paths are stored."""

    folder: str
    cwd: str
    generated_dirs: tuple[str, ...]

    def absolute(self, raw: str) -> str:
        return os.path.normpath(os.path.join(self.folder, raw))

    def stored(self, raw: str) -> str:
        """``raw`` resolved: relative to the cwd when under it, else absolute; '' stays ''."""
        if not raw:
            return ""
        path = self.absolute(raw)
        return os.path.relpath(path, self.cwd) if _is_under(path, self.cwd) else path

    def is_generated(self, path: str) -> bool:
        return any(_is_under(path, folder) for folder in self.generated_dirs)

    def shown(self, raw: str) -> str:
        """``raw`` for messages, with where it resolved to when that differs."""
        stored = self.stored(raw)
        return f"'{raw}'" if stored == raw else f"'{raw}' (resolved to '{stored}')"


def _wrong_extension(rule: PathRule, purpose: str) -> str:
    return f"has the wrong extension for {purpose}; expected {rule.expected()}"


def _mtx_findings(path: str) -> Iterator[str]:
    for alternatives in MTX_PARTS:
        if not any(os.path.isfile(os.path.join(path, name)) for name in alternatives):
            yield f"lacks {or_list(alternatives)}"


def _directory_findings(path: str, rule: PathRule, purpose: str) -> Iterator[str]:
    if not rule.mtx_directory:
        yield f"is a directory; {purpose} must be {rule.expected()}"
    elif not os.access(path, os.R_OK | os.X_OK):
        yield "is a directory that is not readable (permission denied)"
    else:
        yield from (f"is not a complete 10x MTX directory: {gap}" for gap in _mtx_findings(path))


def _file_findings(path: str, rule: PathRule, purpose: str) -> Iterator[str]:
    if not os.path.isfile(path):
        yield "is neither a regular file nor a directory"
        return
    if not rule.accepts_name(path):
        yield _wrong_extension(rule, purpose)
    if not os.access(path, os.R_OK):
        yield "is not readable (permission denied)"


def path_findings(
    cells: dict[str, str], column: str, rule: PathRule, purpose: str, places: Places
) -> Iterator[Finding]:
    """Check the path in ``cells[column]``: existence, readability, kind and extension.

    A missing path under a generated folder is not an error (a workflow rule makes it),
    but a wrong extension still is, unless the path may be an MTX directory.
    """
    raw = cells[column]
    if not raw:
        return
    path = places.absolute(raw)
    if os.path.exists(path):
        check = _directory_findings if os.path.isdir(path) else _file_findings
        messages = list(check(path, rule, purpose))
    elif places.is_generated(path):
        may_be_anything = rule.mtx_directory or rule.accepts_name(path)
        messages = [] if may_be_anything else [_wrong_extension(rule, purpose)]
    else:
        messages = ["does not exist"]
    for message in messages:
        yield column, f"{places.shown(raw)} {message}"
