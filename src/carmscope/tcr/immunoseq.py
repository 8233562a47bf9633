"""Reader of Adaptive immunoSEQ sample exports, v2 and v3+ (formats in :mod:`carmscope.tcr.io`).

v2: ``aminoAcid``, ``vGeneName`` (else ``vFamilyName``), ``jGeneName``, ``sequenceStatus``
(``In``/``Out``/``Stop``) and the count in ``count (templates/reads)``, ``count (templates)``,
``count (reads)`` or ``count``. v3+: ``amino_acid``, ``v_resolved``, ``j_resolved``,
``frame_type``; the count is ``templates``, or ``seq_reads`` when templates are absent or all
zero.
"""

from __future__ import annotations

import numpy as np

from carmscope.tcr.clones import clone_table
from carmscope.tcr.columns import (
    Factor,
    RepertoireColumns,
    imgt_factor,
    productive_cdr3,
    stripped,
)
from carmscope.tcr.formats import FormatSpec, Repertoire, column_key
from carmscope.tcr.genes import locus_of

UNRESOLVED = ("", "unresolved", "unknown")
"""v2 ``vGeneName`` values that fall back to ``vFamilyName``."""


def read_immunoseq(path, sep, header, spec: FormatSpec, found: dict[str, str], table) -> Repertoire:
    """One immunoSEQ export (``spec``: v2 or v3+) -> its productive TRB clones."""
    v2 = spec.name == "immunoseq_v2"
    aa = found["aminoacid"]
    status = found["sequencestatus" if v2 else "frametype"]
    v_col = found["vgenename" if v2 else "vresolved"]
    v_family = found.get("vfamilyname") if v2 else None
    j_col = found.get("jgenename" if v2 else "jresolved")
    count_cols = [found[column_key(c)] for c in spec.counts if column_key(c) in found]
    wanted = [c for c in (aa, status, v_col, v_family, j_col) if c] + count_cols
    columns = RepertoireColumns(path, sep, header, wanted)
    unit, count = _counts(columns, v2, count_cols)
    v_names = stripped(columns.text(v_col))
    if v_family:
        unresolved = v_names.per_row(lambda v: v.lower() in UNRESOLVED, dtype=bool)
        family = stripped(columns.text(v_family)).values()
        v_names = Factor.of(np.where(unresolved, family, v_names.values()))
    v_gene = imgt_factor(v_names, table)
    j_gene = imgt_factor(stripped(columns.text(j_col)), table)
    cdr3 = columns.text(aa)
    trb = v_gene.per_row(lambda v: v == "" or locus_of(v) == "TRB", dtype=bool)
    in_frame = stripped(columns.text(status)).per_row(lambda v: v.lower() == "in", dtype=bool)
    productive = in_frame & productive_cdr3(cdr3)
    keep = trb & productive
    clones = clone_table(cdr3, v_gene, j_gene, np.where(keep, count, 0))  # 0: left out
    return Repertoire(str(path), spec.name, unit, clones, int(count[trb & ~productive].sum()))


def _counts(columns: RepertoireColumns, v2: bool, count_cols: list[str]) -> tuple[str, np.ndarray]:
    if v2:
        column = count_cols[0]
        name = column.lower()
        unit = "reads" if "reads" in name and "templates" not in name else "templates"
        return unit, columns.counts(column)
    by_key = {column_key(c): c for c in count_cols}
    if "templates" in by_key:
        templates = columns.counts(by_key["templates"], allow_missing=True)
        if templates.any() or "seqreads" not in by_key:
            return "templates", templates
    return "reads", columns.counts(by_key["seqreads"], allow_missing=True)
