"""Read a T cell receptor repertoire of any supported format, detected from the header.

One reader per format family, each in its own module: :mod:`carmscope.tcr.immunoseq`
(immunoSEQ v2 and v3+), :mod:`carmscope.tcr.airr`, :mod:`carmscope.tcr.tenx_vdj`; what they
share: :mod:`carmscope.tcr.formats` (detection from the header, :class:`Repertoire`),
:mod:`carmscope.tcr.columns` (reading the columns, per-distinct-value work),
:mod:`carmscope.tcr.clones` (rows to clones, cells to clones) and :mod:`carmscope.tcr.genes`
(IMGT gene names). This module dispatches and reads back the stage's own clone tables.

Formats (column names matched case-insensitively, ignoring spaces and punctuation, so
``aminoAcid``, ``amino_acid`` and ``Amino Acid`` are one column):

``immunoseq_v2``
    Adaptive immunoSEQ sample export v2: ``nucleotide``, ``aminoAcid``, ``vGeneName`` (else
    ``vFamilyName``), ``jGeneName``, ``sequenceStatus`` (``In``/``Out``/``Stop``) and the count
    in ``count (templates/reads)``, ``count (templates)``, ``count (reads)`` or ``count``.
``immunoseq_v3``
    Adaptive immunoSEQ v3+: ``rearrangement``, ``amino_acid``, ``frame_type``, ``v_resolved``,
    ``j_resolved``; the count is ``templates``, or ``seq_reads`` when templates are absent or
    all zero.
``airr``
    AIRR rearrangement TSV (Vander Heiden et al. 2018): ``v_call``, ``j_call``,
    ``junction_aa``, ``productive``, ``locus``; the count is ``duplicate_count``, else
    ``consensus_count``; with a ``cell_id`` column each row is one chain of one cell and a
    clone's count is its number of cells (as with 10x).
``10x_vdj``
    10x Genomics Cell Ranger ``filtered_contig_annotations.csv``: ``barcode``, ``chain``,
    ``v_gene``, ``j_gene``, ``cdr3``, ``productive``, ``umis`` (``is_cell`` and
    ``high_confidence``, when present, must be true); a clone's count is its number of cells.

A clone is a productive TRB chain's CDR3 amino-acid sequence (the junction, conserved C to F/W,
as all four formats write it) and its TRBV gene in IMGT spelling without allele
(:mod:`carmscope.tcr.genes`). Rearrangements that are not productive (out of frame, stop codon,
no CDR3) are counted in ``nonproductive`` and left out. With cells (10x, AIRR with
``cell_id``), a cell's clone is its productive TRB chain; with two, the one with more UMIs
(then more reads, then the first in the file); the cell's productive TRA chain with most UMIs
is kept as an annotation.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from carmscope.io.tables import read_stage_table
from carmscope.tcr.airr import read_airr
from carmscope.tcr.formats import (
    FORMAT_NAMES,
    Repertoire,
    RepertoireError,
    detect_format,
    header_keys,
    read_header,
)
from carmscope.tcr.genes import GENE_TABLE
from carmscope.tcr.immunoseq import read_immunoseq
from carmscope.tcr.tenx_vdj import read_10x_vdj

__all__ = [
    "FORMAT_NAMES",
    "Repertoire",
    "RepertoireError",
    "detect_format",
    "read_clones",
    "read_repertoire",
]

_READERS = {
    "immunoseq_v2": read_immunoseq,
    "immunoseq_v3": read_immunoseq,
    "10x_vdj": read_10x_vdj,
    "airr": read_airr,
}


def read_repertoire(path: str | Path, gene_table: str | Path = GENE_TABLE) -> Repertoire:
    """Read one repertoire file of any supported format (detected from its header).

    Parameters
    ----------
    path
        The repertoire (plain or gzip-compressed text).
    gene_table
        The Adaptive-to-IMGT gene name table (:data:`carmscope.tcr.genes.GENE_TABLE`).

    Returns
    -------
    Repertoire
        Productive TRB clones, the non-productive count and, for cell formats, the cells.

    Raises
    ------
    RepertoireError
        Unknown format (the columns found and the formats expected), a count that is not a
        whole number (file, line, column), or a file pandas cannot parse.
    """
    columns, sep = read_header(path)
    spec = detect_format(columns, path)
    found = header_keys(columns)
    try:
        return _READERS[spec.name](path, sep, columns, spec, found, str(gene_table))
    except pd.errors.ParserError as error:
        raise RepertoireError(f"{path}: {spec.label}: {error}") from None


def read_clones(path: str | Path) -> pd.DataFrame:
    """A clone table written by the ``tcr`` stage (``clones.tsv``), IDs and sequences as text."""
    return read_stage_table(path, ("clone_id", "cdr3_aa", "v_gene", "j_gene"))
