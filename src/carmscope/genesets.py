"""Readers of gene-set files: MSigDB GMT files and one-gene-a-row signature tables.

Both readers return ``{set name: [gene, ...]}`` in file order, genes de-duplicated within a
set (first occurrence kept), and raise :class:`GeneSetFormatError` naming the file and line of
the first malformed line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

SIGNATURE_COLUMNS = ("signature", "gene")
"""Columns a signature table must have (others, such as ``source``, are ignored)."""


class GeneSetFormatError(ValueError):
    """A gene-set file line that cannot be parsed; the message names the file and line."""

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        super().__init__(f"{path}, line {line}: {problem}")
        self.path = str(path)
        self.line = line


def _lines(path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """``(line number, tab-separated fields)`` of every non-blank line of a text file."""
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            if text.strip():
                yield number, text.split("\t")


def read_gmt(path: str | Path) -> dict[str, list[str]]:
    """Read a GMT file: one set a line, ``name<TAB>description<TAB>gene<TAB>gene...``.

    Parameters
    ----------
    path
        GMT file. Blank lines are skipped, empty gene fields (e.g. a trailing tab) ignored.

    Returns
    -------
    dict
        Set name to its genes, in file order.

    Raises
    ------
    GeneSetFormatError
        A line without a name or without any gene, or a set name used twice.
    """
    sets: dict[str, list[str]] = {}
    for number, fields in _lines(path):
        name = fields[0].strip()
        if not name:
            raise GeneSetFormatError(path, number, "empty gene set name")
        genes = [gene.strip() for gene in fields[2:] if gene.strip()]
        if not genes:
            raise GeneSetFormatError(
                path, number, f"gene set {name!r} has no genes (expected name, description, genes)"
            )
        if name in sets:
            raise GeneSetFormatError(path, number, f"gene set {name!r} is defined twice")
        sets[name] = list(dict.fromkeys(genes))
    return sets


def read_signature_table(path: str | Path) -> dict[str, list[str]]:
    """Read a signature table: a header, then one ``signature``-``gene`` pair a row (TSV).

    Parameters
    ----------
    path
        Tab-separated file whose header names at least the columns ``signature`` and ``gene``;
        every row must have as many fields as the header. Blank lines are skipped.

    Returns
    -------
    dict
        Signature name to its genes, signatures in order of first appearance.

    Raises
    ------
    GeneSetFormatError
        No header, a missing column, a row with the wrong number of fields or an empty
        signature or gene.
    """
    lines = _lines(path)
    header_line = next(lines, None)
    if header_line is None:
        raise GeneSetFormatError(path, 1, "empty file: expected a header with 'signature', 'gene'")
    header_number, header = header_line
    header = [column.strip() for column in header]
    missing = [column for column in SIGNATURE_COLUMNS if column not in header]
    if missing:
        raise GeneSetFormatError(
            path, header_number, f"header lacks column(s) {missing}; found {header}"
        )
    signature_at, gene_at = (header.index(column) for column in SIGNATURE_COLUMNS)
    sets: dict[str, list[str]] = {}
    for number, fields in lines:
        if len(fields) != len(header):
            raise GeneSetFormatError(
                path, number, f"{len(fields)} fields, expected {len(header)} ({header})"
            )
        signature, gene = fields[signature_at].strip(), fields[gene_at].strip()
        if not signature or not gene:
            raise GeneSetFormatError(path, number, "empty signature or gene")
        genes = sets.setdefault(signature, [])
        if gene not in genes:
            genes.append(gene)
    return sets
