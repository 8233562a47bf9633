"""One sample's allele-count table, as the ctDNA counting rules write it.

:func:`read_panel` reads a panel written by ``ctdna_panel`` / ``ctdna_patient_panel``;
:func:`bam_counts` counts a plasma (or panel-of-normals) BAM at it, indexing a link to the BAM
when it is sorted but has no index; :func:`label_counts` adds the sample columns every counts
table starts with.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pandas as pd
import pysam

from carmscope.bam.alignments import sort_order
from carmscope.bam.index import find_index, indexed
from carmscope.ctdna.alleles import AlleleFilters, count_alleles

PANEL_TEXT_COLUMNS = ("chrom", "ref", "alt", "kind", "reason", "patients")
SAMPLE_COLUMNS = ("sample_id", "patient_id", "timepoint", "day")


def read_panel(path: str | os.PathLike) -> pd.DataFrame:
    """A panel table as written by the panel rules (text columns kept as text)."""
    return pd.read_csv(
        path, sep="\t", dtype=dict.fromkeys(PANEL_TEXT_COLUMNS, str), keep_default_na=False
    )


def bam_counts(
    bam_path: str | os.PathLike, panel: pd.DataFrame, filters: Mapping[str, object]
) -> pd.DataFrame:
    """Allele counts of a BAM at ``panel`` (:func:`~carmscope.ctdna.alleles.count_alleles`
    with ``AlleleFilters(**filters)``).

    A BAM without an index is indexed through a link in a temporary folder (the input is never
    written to; :func:`carmscope.bam.index.indexed`, the policy of ``docs/alignment_files.md``);
    one that is not coordinate-sorted is left for count_alleles, whose error says how to fix it.
    """
    bam_path = str(bam_path)
    if find_index(bam_path) is not None or not _sorted(bam_path):
        return count_alleles(bam_path, panel, AlleleFilters(**filters))
    with indexed(bam_path) as usable:
        return count_alleles(usable, panel, AlleleFilters(**filters))


def _sorted(bam_path: str) -> bool:
    """Whether a BAM is coordinate-sorted (False also when it cannot be read)."""
    try:
        with pysam.AlignmentFile(bam_path, "rb") as bam:
            return sort_order(bam)[0] == "coordinate"
    except (OSError, ValueError):
        return False


def label_counts(counts: pd.DataFrame, sample: Mapping[str, object], source: str) -> pd.DataFrame:
    """``counts`` with the sample's ``sample_id``, ``patient_id``, ``timepoint``, ``day``
    (nullable integer) and ``source`` (``bam`` or ``vendor``) columns first."""
    labelled = counts.copy()
    labelled.insert(0, "source", source)
    for position, column in enumerate(SAMPLE_COLUMNS):
        labelled.insert(position, column, sample[column])
    labelled["day"] = pd.array(labelled["day"], dtype="Int64")
    return labelled
