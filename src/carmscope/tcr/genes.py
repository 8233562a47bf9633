"""IMGT names for T cell receptor genes, whatever the file spelt them as.

Adaptive immunoSEQ writes ``TCRBV06-05`` (zero-padded family and member, ``TCR`` prefix) where
IMGT (Lefranc 2009) writes ``TRBV6-5``; IMGT gives no member number to the genes alone in their
family (``TRBV2``, Adaptive ``TCRBV02-01``) and writes orphons as ``TRBV20/OR9-2`` (Adaptive
``TCRBV20-or09_02``). AIRR and 10x files already use IMGT names, often with an allele
(``TRBV6-5*01``), and AIRR may list several equally good calls separated by commas.

Rules, in order (documented with the table in ``resources/tcr/README.md``):

1. empty, ``unresolved``, ``unknown``, ``None``, ``NA`` -> '' (no gene);
2. the allele (``*01``) is dropped;
3. a name in the mapping table (``resources/tcr/trb_gene_names.tsv``: every human TRB V, D and
   J gene in Adaptive and IMGT spelling) takes its IMGT name;
4. any other Adaptive name ``TCR{locus}{segment}{family}[-{member}]`` loses the ``TCR`` prefix
   and the zero padding (``TCRAV12-02`` -> ``TRAV12-2``, family-level ``TCRBV06`` -> ``TRBV6``);
   orphons ``TCRBV20-or09_02`` -> ``TRBV20/OR9-2``;
5. IMGT names are kept (upper case); a comma-separated list of calls becomes its distinct genes
   in the order given, joined by ``,`` (one gene when the calls differ only in allele).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from carmscope.io.tables import read_stage_table

GENE_TABLE = Path(__file__).resolve().parents[3] / "resources" / "tcr" / "trb_gene_names.tsv"
"""The shipped Adaptive-to-IMGT table of the human TRB genes."""

MISSING = frozenset({"", "unresolved", "unknown", "none", "na", "nan", "null", "-"})
_ADAPTIVE = re.compile(r"^TCR([ABGD])([VDJC])(\d+)(?:-(\d+))?$")
_ADAPTIVE_ORPHON = re.compile(r"^TCR([ABGD])([VDJC])(\d+|[A-Z])-OR(\d+)_(\d+)$")


@lru_cache(maxsize=4)
def read_gene_table(path: str | Path = GENE_TABLE) -> dict[str, str]:
    """The mapping table as ``{adaptive name: IMGT name}`` (columns ``adaptive``, ``imgt``)."""
    table = read_stage_table(path, all_text=True)
    missing = {"adaptive", "imgt"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: line 1: missing column(s) {', '.join(sorted(missing))}")
    return dict(zip(table["adaptive"].str.upper(), table["imgt"], strict=True))


def _one_gene(name: str, table: dict[str, str]) -> str:
    name = name.strip().split("*", 1)[0].strip().upper()
    if name.lower() in MISSING:
        return ""
    if name in table:
        return table[name]
    match = _ADAPTIVE.match(name)
    if match:
        locus, segment, family, member = match.groups()
        gene = f"TR{locus}{segment}{int(family)}"
        return f"{gene}-{int(member)}" if member else gene
    match = _ADAPTIVE_ORPHON.match(name)
    if match:
        locus, segment, family, chromosome, member = match.groups()
        family = str(int(family)) if family.isdigit() else family
        return f"TR{locus}{segment}{family}/OR{int(chromosome)}-{int(member)}"
    return name


def imgt_gene(name: object, table_path: str | Path = GENE_TABLE) -> str:
    """The IMGT name of one gene call (see the module's rules); '' for no gene."""
    if name is None or (isinstance(name, float) and name != name):
        return ""
    table = read_gene_table(table_path)
    genes = [_one_gene(part, table) for part in str(name).split(",")]
    return ",".join(dict.fromkeys(gene for gene in genes if gene))


def imgt_genes(names: Iterable[object], table_path: str | Path = GENE_TABLE) -> list[str]:
    """:func:`imgt_gene` of many calls, each distinct spelling normalised once."""
    names = list(names)
    mapping = {name: imgt_gene(name, table_path) for name in set(names)}
    return [mapping[name] for name in names]


def locus_of(gene: str) -> str:
    """The locus of an IMGT gene name (``TRBV6-5`` -> ``TRB``); '' when it is not one."""
    return gene[:3] if re.match(r"^TR[ABGD][VDJC]", gene) else ""
