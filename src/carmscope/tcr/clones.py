"""From a repertoire file's rows to clones: what every format's reader shares.

A clone is a productive TRB chain's CDR3 amino-acid sequence and its TRBV gene; its ID is
``{v_gene}:{cdr3_aa}``, the same in every file. Bulk formats (immunoSEQ, AIRR with counts) sum
the counts of a clone's rows (:func:`clone_table`); cell formats (10x, AIRR with ``cell_id``)
first pick each cell's chain (:func:`cell_repertoire`) and count cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carmscope.tcr.columns import Factor, first_rows, productive_cdr3
from carmscope.tcr.formats import CLONE_COLUMNS, Repertoire


def clone_table(cdr3: Factor, v_gene: Factor, j_gene: Factor, count) -> pd.DataFrame:
    """Rows -> one row per (v_gene, cdr3_aa) (rows with count 0 left out), largest first.

    Rows are grouped by integer codes of the two columns (no text hashing per row, no sort of
    text); ties keep the order of their first row in the file, and ``j_gene`` is that row's.
    """
    count = np.asarray(count, dtype=np.int64)
    rows = np.flatnonzero(count > 0)
    v_codes, cdr3_codes = v_gene.codes[rows], cdr3.codes[rows]
    if any(":" in gene for gene in v_gene.uniques):
        # an unknown gene spelling with ':' could give two (gene, CDR3) pairs one ID: group
        # by the ID text, as the ID is what joins clones across files
        codes, _ = pd.factorize(v_gene.uniques[v_codes] + ":" + cdr3.uniques[cdr3_codes])
    else:
        codes, _ = pd.factorize(v_codes.astype(np.int64) * len(cdr3.uniques) + cdr3_codes)
    summed = np.bincount(codes, weights=count[rows], minlength=int(codes.max(initial=-1)) + 1)
    summed = np.rint(summed).astype(np.int64)
    # largest first; ties in order of first appearance in the file (a string sort of 300,000
    # clone IDs would cost more than reading the file)
    order = np.argsort(-summed, kind="stable")
    first = rows[first_rows(codes)][order]
    v_names = v_gene.uniques[v_gene.codes[first]]  # the ID below: one concatenation per clone
    cdr3_aa = cdr3.uniques[cdr3.codes[first]]
    summed = summed[order]
    total = summed.sum()
    columns = {
        "clone_id": (v_gene.uniques + ":")[v_gene.codes[first]] + cdr3_aa,
        "cdr3_aa": cdr3_aa,
        "v_gene": v_names,
        "j_gene": j_gene.uniques[j_gene.codes[first]],
        "count": summed,
        "frequency": summed / total if total else np.full(len(summed), np.nan),
    }
    # copy=False: one block per column, no copy of 300,000-row text columns into one block
    return pd.DataFrame({name: columns[name] for name in CLONE_COLUMNS}, copy=False)


def clone_ids(v_gene, cdr3_aa) -> np.ndarray:
    """``{v_gene}:{cdr3_aa}`` of aligned arrays (object array)."""
    v_gene = np.asarray(v_gene, dtype=object)
    return v_gene + ":" + np.asarray(cdr3_aa, dtype=object) if len(v_gene) else v_gene.copy()


def _best_chain(rows: pd.DataFrame) -> pd.DataFrame:
    """Per cell, the chain with most UMIs (then reads, then first in the file)."""
    ordered = rows.assign(_order=np.arange(len(rows))).sort_values(
        ["cell", "umis", "reads", "_order"], ascending=[True, False, False, True], kind="stable"
    )
    return ordered.drop_duplicates("cell", keep="first")


def cell_repertoire(path, format_name: str, chains: pd.DataFrame) -> Repertoire:
    """Per-cell chains (``cell``, ``locus``, ``productive``, ``cdr3_aa``, ``v_gene``,
    ``j_gene``, ``umis``, ``reads``) -> clones counted in cells.

    A cell's clone is its productive TRB chain (two: the one with more UMIs, then reads, then
    the first in the file); its productive TRA chain with most UMIs is kept as an annotation.
    Cells with TRB chains but none productive are counted in ``nonproductive``.
    """
    productive = chains["productive"].to_numpy() & productive_cdr3(Factor.of(chains["cdr3_aa"]))
    trb = chains["locus"].to_numpy() == "TRB"
    beta = _best_chain(chains[trb & productive])
    alpha = _best_chain(chains[(chains["locus"].to_numpy() == "TRA") & productive])
    alpha = alpha.set_index("cell")
    no_productive_beta = set(chains.loc[trb, "cell"]) - set(beta["cell"])
    clones = clone_table(
        Factor.of(beta["cdr3_aa"]),
        Factor.of(beta["v_gene"]),
        Factor.of(beta["j_gene"]),
        np.ones(len(beta), dtype=np.int64),
    )
    cells = pd.DataFrame(
        {
            "barcode": beta["cell"].to_numpy(),
            "clone_id": clone_ids(beta["v_gene"], beta["cdr3_aa"]),
            "cdr3_aa": beta["cdr3_aa"].to_numpy(),
            "v_gene": beta["v_gene"].to_numpy(),
            "umis": beta["umis"].to_numpy(),
        }
    )
    cells["tra_cdr3_aa"] = cells["barcode"].map(alpha["cdr3_aa"]).fillna("")
    cells["tra_v_gene"] = cells["barcode"].map(alpha["v_gene"]).fillna("")
    return Repertoire(str(path), format_name, "cells", clones, len(no_productive_beta), cells)
