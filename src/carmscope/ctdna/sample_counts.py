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
from carmscope.ctdna.variants import as_variants
from carmscope.io.tables import read_stage_table

PANEL_TEXT_COLUMNS = ("chrom", "ref", "alt", "kind", "reason", "patients")
SAMPLE_COLUMNS = ("sample_id", "patient_id", "timepoint", "day")


def read_panel(path: str | os.PathLike) -> pd.DataFrame:
    """A panel table as written by the panel rules (text columns kept as text;
    :func:`carmscope.io.tables.read_stage_table`)."""
    return read_stage_table(path, PANEL_TEXT_COLUMNS)


def bam_counts(
    bam_path: str | os.PathLike,
    panel: pd.DataFrame,
    filters: Mapping[str, object],
    reference: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Allele counts of a BAM at ``panel`` (:func:`~carmscope.ctdna.alleles.count_alleles`
    with ``AlleleFilters(**filters)``).

    A BAM without an index is indexed through a link in a temporary folder (the input is never
    written to; :func:`carmscope.bam.index.indexed`, the policy of ``docs/alignment_files.md``);
    one that is not coordinate-sorted is left for count_alleles, whose error says how to fix it.
    ``reference`` (``ctdna.reference``) decodes a CRAM.
    """
    bam_path = str(bam_path)
    panel = mark_contigs_absent(panel, bam_path)
    if find_index(bam_path) is not None or not _sorted(bam_path):
        return count_alleles(bam_path, panel, AlleleFilters(**filters), reference)
    with indexed(bam_path) as usable:
        return count_alleles(usable, panel, AlleleFilters(**filters), reference)


def mark_contigs_absent(panel: pd.DataFrame, bam_path: str | os.PathLike) -> pd.DataFrame:
    """The panel with variants on contigs absent from the BAM's header marked not evaluable.

    In the ``cohort`` background mode every plasma sample is counted at every patient's
    variants: one patient's VCF on another assembly or naming (``19`` vs ``chr1``) must not
    fail the other patients' samples. Such variants get a reason naming the contig, the BAM and
    the patients whose VCF they come from; a patient all of whose variants are elsewhere is not
    evaluable (``no_evaluable_variants``). An unreadable BAM is left for count_alleles.
    """
    try:
        with pysam.AlignmentFile(str(bam_path), check_sq=False) as bam:
            contigs = set(bam.references)
    except (OSError, ValueError):
        return panel
    table = as_variants(panel)  # with evaluable and reason, a fresh index
    absent = table["evaluable"].astype(bool) & ~table["chrom"].astype(str).isin(contigs)
    if not absent.any():
        return panel
    owners = table["patients"] if "patients" in table.columns else pd.Series("", table.index)
    table.loc[absent, "evaluable"] = False
    table.loc[absent, "reason"] = [
        f"contig {chrom!r} is not in the header of {bam_path}"
        + (f" (variant of {patients}" if patients else " (")
        + ": its VCF may be on another assembly or naming, 19 vs chr19)"
        for chrom, patients in zip(table.loc[absent, "chrom"], owners[absent], strict=True)
    ]
    return table


def _sorted(bam_path: str) -> bool:
    """Whether a BAM is coordinate-sorted (False also when it cannot be read)."""
    try:
        with pysam.AlignmentFile(bam_path, check_sq=False) as bam:
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
