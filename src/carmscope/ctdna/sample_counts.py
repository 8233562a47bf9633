"""One sample's allele-count table, as the ctDNA counting rules write it.

:func:`read_panel` reads a panel written by ``ctdna_panel`` / ``ctdna_patient_panel``;
:func:`bam_counts` counts a plasma (or panel-of-normals) BAM at it, indexing a link to the BAM
when it is sorted but has no index; :func:`label_counts` adds the sample columns every counts
table starts with.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping

import pandas as pd
import pysam

from carmscope.ctdna.alleles import AlleleFilters, count_alleles, ensure_index
from carmscope.io.tables import read_stage_table

PANEL_TEXT_COLUMNS = ("chrom", "ref", "alt", "kind", "reason", "patients")
SAMPLE_COLUMNS = ("sample_id", "patient_id", "timepoint", "day")


def read_panel(path: str | os.PathLike) -> pd.DataFrame:
    """A panel table as written by the panel rules (text columns kept as text;
    :func:`carmscope.io.tables.read_stage_table`)."""
    return read_stage_table(path, PANEL_TEXT_COLUMNS)


def _indexed(bam_path: str, folder: str) -> str:
    """The BAM, or a link to it indexed in ``folder`` when it is sorted but has no index.

    Inputs are never written to; unsorted or unreadable BAMs are left for count_alleles,
    whose error says how to fix them.
    """
    try:
        with pysam.AlignmentFile(bam_path, "rb") as bam:
            has_index = bam.has_index()
            order = bam.header.to_dict().get("HD", {}).get("SO")
    except (OSError, ValueError):
        return bam_path
    if has_index or order != "coordinate":
        return bam_path
    link = os.path.join(folder, os.path.basename(bam_path))
    os.symlink(os.path.abspath(bam_path), link)
    ensure_index(link)
    print(
        f"{bam_path} has no index: indexed a link to it in a temporary folder for this job; "
        f"index it once to save this step: samtools index {bam_path}",
        file=sys.stderr,
    )
    return link


def bam_counts(
    bam_path: str | os.PathLike, panel: pd.DataFrame, filters: Mapping[str, object]
) -> pd.DataFrame:
    """Allele counts of a BAM at ``panel`` (:func:`~carmscope.ctdna.alleles.count_alleles`
    with ``AlleleFilters(**filters)``); a sorted BAM without an index is indexed through a
    link in a temporary folder (the input is never written to)."""
    with tempfile.TemporaryDirectory(prefix="carmscope-ctdna-") as folder:
        bam = _indexed(str(bam_path), folder)
        return count_alleles(bam, panel, AlleleFilters(**filters))


def label_counts(counts: pd.DataFrame, sample: Mapping[str, object], source: str) -> pd.DataFrame:
    """``counts`` with the sample's ``sample_id``, ``patient_id``, ``timepoint``, ``day``
    (nullable integer) and ``source`` (``bam`` or ``vendor``) columns first."""
    labelled = counts.copy()
    labelled.insert(0, "source", source)
    for position, column in enumerate(SAMPLE_COLUMNS):
        labelled.insert(position, column, sample[column])
    labelled["day"] = pd.array(labelled["day"], dtype="Int64")
    return labelled
