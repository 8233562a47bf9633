"""Reader of 10x Genomics Cell Ranger ``filtered_contig_annotations.csv`` (formats in
:mod:`carmscope.tcr.io`).

``barcode``, ``chain``, ``v_gene``, ``j_gene``, ``cdr3``, ``productive``, ``umis``, ``reads``
(``is_cell`` and ``high_confidence``, when present, must be true); a clone's count is its
number of cells.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carmscope.tcr.clones import cell_repertoire
from carmscope.tcr.columns import RepertoireColumns, imgt_factor, is_true, stripped
from carmscope.tcr.formats import FormatSpec, Repertoire, column_key
from carmscope.tcr.genes import locus_of

LOCI = ("TRA", "TRB", "TRG", "TRD")
"""``chain`` values taken as the locus (others, e.g. ``Multi``, take the V gene's)."""


def read_10x_vdj(path, sep, header, spec: FormatSpec, found: dict[str, str], table) -> Repertoire:
    """One ``filtered_contig_annotations.csv`` -> clones counted in cells, and the cells."""
    optional = [found.get(k) for k in ("jgene", "iscell", "highconfidence", "reads")]
    wanted = [found[column_key(c)] for c in spec.required] + [c for c in optional if c]
    columns = RepertoireColumns(path, sep, header, wanted)
    keep = np.ones(columns.rows, dtype=bool)
    for flag in ("iscell", "highconfidence"):
        if flag in found:
            keep &= is_true(columns.text(found[flag]))
    umis = columns.counts(found["umis"])
    reads = (
        columns.counts(found["reads"])
        if "reads" in found
        else np.zeros(columns.rows, dtype=np.int64)
    )
    v_gene = imgt_factor(stripped(columns.text(found["vgene"])), table)
    chain = stripped(columns.text(found["chain"])).per_row(str.upper)
    cdr3 = stripped(columns.text(found["cdr3"])).values()
    chains = pd.DataFrame(
        {
            "cell": stripped(columns.text(found["barcode"])).values(),
            "locus": np.where(np.isin(chain, LOCI), chain, v_gene.per_row(locus_of)),
            "productive": is_true(columns.text(found["productive"])),
            "cdr3_aa": np.where(cdr3 == "None", "", cdr3),
            "v_gene": v_gene.values(),
            "j_gene": imgt_factor(stripped(columns.text(found.get("jgene"))), table).values(),
            "umis": umis,
            "reads": reads,
        }
    )
    return cell_repertoire(path, spec.name, chains[keep])
