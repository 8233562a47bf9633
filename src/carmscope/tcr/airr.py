"""Reader of AIRR rearrangement TSVs (Vander Heiden et al. 2018; formats in
:mod:`carmscope.tcr.io`).

``v_call``, ``j_call``, ``junction_aa``, ``productive``, ``locus``; the count is
``duplicate_count``, else ``consensus_count``; with a ``cell_id`` column each row is one chain of
one cell and a clone's count is its number of cells (as with 10x).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carmscope.tcr.clones import cell_repertoire, clone_table
from carmscope.tcr.columns import (
    RepertoireColumns,
    imgt_factor,
    is_true,
    productive_cdr3,
    stripped,
)
from carmscope.tcr.formats import FormatSpec, Repertoire, RepertoireError, column_key
from carmscope.tcr.genes import locus_of

COUNT_KEYS = ("duplicatecount", "consensuscount")
"""Count columns of a bulk AIRR file, in order of preference (matching keys)."""
UMI_KEYS = ("umicount", *COUNT_KEYS)
"""A cell's chain's UMI count, in order of preference (matching keys)."""


def read_airr(path, sep, header, spec: FormatSpec, found: dict[str, str], table) -> Repertoire:
    """One AIRR rearrangement TSV -> its productive TRB clones (cells with ``cell_id``)."""
    optional = ("jcall", "locus", "cellid", *UMI_KEYS)
    wanted = [found[column_key(c)] for c in spec.required]
    wanted += [found[k] for k in optional if k in found]
    columns = RepertoireColumns(path, sep, header, wanted)
    v_gene = imgt_factor(stripped(columns.text(found["vcall"])), table)
    # the locus column when given, but never a chain whose V gene is of another locus
    gene_locus = v_gene.per_row(locus_of)
    locus = stripped(columns.text(found.get("locus"))).per_row(str.upper)
    locus = np.where(locus != "", locus, gene_locus)
    locus = np.where((gene_locus == "") | (gene_locus == locus), locus, gene_locus)
    cdr3 = columns.text(found["junctionaa"])
    j_gene = imgt_factor(stripped(columns.text(found.get("jcall"))), table)
    productive = is_true(columns.text(found["productive"]))
    cell = stripped(columns.text(found["cellid"])) if "cellid" in found else None
    has_cell = cell.per_row(bool, dtype=bool) if cell is not None else None
    if cell is not None and has_cell.any():
        umi_col = next((found[k] for k in UMI_KEYS if k in found), None)
        read_col = found.get("consensuscount")
        zeros = np.zeros(columns.rows, dtype=np.int64)
        chains = pd.DataFrame(
            {
                "cell": cell.values(),
                "locus": locus,
                "productive": productive,
                "cdr3_aa": cdr3.values(),
                "v_gene": v_gene.values(),
                "j_gene": j_gene.values(),
                "umis": columns.counts(umi_col, allow_missing=True) if umi_col else zeros,
                "reads": columns.counts(read_col, allow_missing=True) if read_col else zeros,
            }
        )
        return cell_repertoire(path, spec.name, chains[has_cell])
    count_key = next((k for k in COUNT_KEYS if k in found), None)
    if count_key is None:
        raise RepertoireError(
            f"{path}: line 1: an AIRR rearrangement file needs a count column "
            "(duplicate_count or consensus_count) or cell_id (one row per chain of a cell)"
        )
    count = columns.counts(found[count_key])
    trb = locus == "TRB"
    productive &= productive_cdr3(cdr3)
    keep = trb & productive
    clones = clone_table(cdr3, v_gene, j_gene, np.where(keep, count, 0))  # 0: left out
    unit = "duplicate_count" if count_key == "duplicatecount" else "consensus_count"
    return Repertoire(str(path), spec.name, unit, clones, int(count[trb & ~productive].sum()))
