"""One sample's allele-count table, as the ctDNA counting rules write it.

:func:`read_panel` reads a panel written by ``ctdna_panel`` / ``ctdna_patient_panel``;
:func:`bam_counts` counts a plasma (or panel-of-normals) BAM at it, indexing a link to the BAM
when it is sorted but has no index; :func:`label_counts` adds the sample columns every counts
table starts with.

The counting jobs do the same without pandas (importing pandas and the pyarrow it loads was
most of a job's start-up; ``docs/ctdna.md``, "Job start-up"): :func:`read_panel_columns`,
:func:`bam_count_columns` and :func:`write_counts` work on columns of Python lists and write a
table byte-identical to ``label_counts(bam_counts(...), ...).to_csv(path, sep="\\t",
index=False)``; :func:`write_sample_counts` is one job. pandas is imported only by the
DataFrame functions and for a vendor VAF table.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence

import pysam

from carmscope.bam.alignments import sort_order
from carmscope.bam.index import find_index, indexed
from carmscope.ctdna.alleles import AlleleFilters, allele_count_columns, count_alleles
from carmscope.ctdna.variants import as_variants, variant_columns
from carmscope.io.tables import (
    boolean,
    integer,
    read_stage_columns,
    read_stage_table,
    write_stage_columns,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    import pandas as pd

PANEL_TEXT_COLUMNS = ("chrom", "ref", "alt", "kind", "reason", "patients")
SAMPLE_COLUMNS = ("sample_id", "patient_id", "timepoint", "day")


def read_panel(path: str | os.PathLike) -> pd.DataFrame:
    """A panel table as written by the panel rules (text columns kept as text;
    :func:`carmscope.io.tables.read_stage_table`)."""
    return read_stage_table(path, PANEL_TEXT_COLUMNS)


def read_panel_columns(path: str | os.PathLike) -> dict[str, list[object]]:
    """:func:`read_panel` without pandas: column name to a list of cells
    (:func:`carmscope.io.tables.read_stage_columns`), ``pos`` as int and ``evaluable`` as bool
    (a cell that is not one is an error naming file, line and column); the other columns as
    written (the text columns, with ``''`` kept, are all the panel rules write besides)."""
    columns: dict[str, list[object]] = read_stage_columns(path, PANEL_TEXT_COLUMNS)  # type: ignore[assignment]
    if "pos" in columns:
        columns["pos"] = integer(path, "pos", columns["pos"])  # type: ignore[arg-type]
    if "evaluable" in columns:
        columns["evaluable"] = boolean(path, "evaluable", columns["evaluable"])  # type: ignore[arg-type]
    return columns


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
    with _usable(bam_path) as usable:
        return count_alleles(usable, panel, AlleleFilters(**filters), reference)


def bam_count_columns(
    bam_path: str | os.PathLike,
    panel: Mapping[str, Sequence[object]],
    filters: Mapping[str, object],
    reference: str | os.PathLike | None = None,
) -> dict[str, list[object]]:
    """:func:`bam_counts` over columns of Python lists (:func:`read_panel_columns`), without
    pandas (:func:`~carmscope.ctdna.alleles.allele_count_columns`); the same indexing, the
    same variants on absent contigs marked not evaluable."""
    bam_path = str(bam_path)
    table = variant_columns(panel)
    contigs = _contigs(bam_path)
    if contigs is not None:
        _mark_absent(table, contigs, bam_path)
    with _usable(bam_path) as usable:
        return allele_count_columns(usable, table, AlleleFilters(**filters), reference)


def mark_contigs_absent(panel: pd.DataFrame, bam_path: str | os.PathLike) -> pd.DataFrame:
    """The panel with variants on contigs absent from the BAM's header marked not evaluable.

    In the ``cohort`` background mode every plasma sample is counted at every patient's
    variants: one patient's VCF on another assembly or naming (``19`` vs ``chr1``) must not
    fail the other patients' samples. Such variants get a reason naming the contig, the BAM and
    the patients whose VCF they come from (:func:`absent_contig_reason`); a patient all of whose
    variants are elsewhere is not evaluable (``no_evaluable_variants``). An unreadable BAM is
    left for count_alleles.
    """
    contigs = _contigs(bam_path)
    if contigs is None:
        return panel
    table = as_variants(panel)  # with evaluable and reason, a fresh index
    columns = {name: table[name].tolist() for name in ("chrom", "evaluable", "reason")}
    if "patients" in table.columns:
        columns["patients"] = table["patients"].tolist()
    if not _mark_absent(columns, contigs, bam_path):
        return panel
    table["evaluable"], table["reason"] = columns["evaluable"], columns["reason"]
    return table


def _mark_absent(
    table: dict[str, list[object]], contigs: set[str], bam_path: str | os.PathLike
) -> bool:
    """Mark, in columns of lists, every evaluable variant whose contig is not in ``contigs``
    not evaluable, with :func:`absent_contig_reason`; whether any was (the one rule of
    :func:`mark_contigs_absent` and :func:`bam_count_columns`)."""
    owners = table.get("patients") or [""] * len(table["chrom"])
    marked = False
    for row, chrom in enumerate(table["chrom"]):
        if table["evaluable"][row] and str(chrom) not in contigs:
            table["evaluable"][row] = False
            table["reason"][row] = absent_contig_reason(chrom, owners[row], bam_path)
            marked = True
    return marked


def absent_contig_reason(chrom: object, patients: object, bam_path: str | os.PathLike) -> str:
    """Why a variant on a contig the BAM's header lacks is not evaluable (naming the patients
    whose VCF it comes from, when known)."""
    return (
        f"contig {chrom!r} is not in the header of {bam_path}"
        + (f" (variant of {patients}" if patients else " (")
        + ": its VCF may be on another assembly or naming, 19 vs chr19)"
    )


def _contigs(bam_path: str | os.PathLike) -> set[str] | None:
    """The contigs of a BAM's header; None when it cannot be read (count_alleles says why)."""
    try:
        with pysam.AlignmentFile(str(bam_path), check_sq=False) as bam:
            return set(bam.references)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _usable(bam_path: str) -> Iterator[str]:
    """The BAM, or when it is sorted but has no index, an indexed link to it (for the
    duration of the block)."""
    if find_index(bam_path) is not None or not _sorted(bam_path):
        yield bam_path
    else:
        with indexed(bam_path) as usable:
            yield usable


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
    import pandas as pd  # imported here: the counting jobs run without pandas

    labelled = counts.copy()
    labelled.insert(0, "source", source)
    for position, column in enumerate(SAMPLE_COLUMNS):
        labelled.insert(position, column, sample[column])
    labelled["day"] = pd.array(labelled["day"], dtype="Int64")
    return labelled


def write_counts(
    path: str | os.PathLike,
    counts: Mapping[str, Sequence[object]],
    sample: Mapping[str, object],
    source: str,
) -> None:
    """Write :func:`bam_count_columns` output with the sample columns first, as
    ``label_counts(counts, sample, source).to_csv(path, sep="\\t", index=False)`` writes the
    DataFrame equivalent, byte for byte, without pandas
    (:func:`carmscope.io.tables.write_stage_columns`; ``day`` a whole number or empty)."""
    rows = len(next(iter(counts.values()), ()))
    labels = {column: [sample[column]] * rows for column in SAMPLE_COLUMNS}
    labels["day"] = [_whole(sample["day"])] * rows
    labels["source"] = [source] * rows
    clash = [column for column in labels if column in counts]
    if clash:
        raise ValueError(f"cannot insert {clash[0]}, already exists")  # as DataFrame.insert
    write_stage_columns(path, {**labels, **counts})


def _whole(day: object) -> int | None:
    """A day as pandas' nullable integer holds it: None for a missing day, an integral
    float as int; anything else is refused."""
    if day is None or (isinstance(day, float) and math.isnan(day)):
        return None
    if isinstance(day, int) and not isinstance(day, bool):
        return day
    if isinstance(day, float) and day.is_integer():
        return int(day)
    raise ValueError(f"day must be a whole number or missing, not {day!r}")


def write_sample_counts(
    output: str | os.PathLike,
    panel_path: str | os.PathLike,
    sample: Mapping[str, object],
    filters: Mapping[str, object],
    *,
    bam: str | os.PathLike | None = None,
    vendor: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
) -> int:
    """One plasma sample's counts table at its panel (the ``ctdna_count_alleles`` job): from
    its ``bam`` without pandas (:func:`bam_count_columns`, :func:`write_counts`), or from a
    ``vendor`` VAF table (:func:`carmscope.ctdna.vendor.read_vendor_table`, with pandas).

    Returns
    -------
    int
        The number of evaluable sites (counted).
    """
    if bam is not None:
        counts = bam_count_columns(bam, read_panel_columns(panel_path), filters, reference)
        write_counts(output, counts, sample, "bam")
        return sum(map(bool, counts["evaluable"]))
    if vendor is None:
        raise ValueError("a sample's counts need its bam or a vendor table")
    from carmscope.ctdna.vendor import read_vendor_table  # pandas: only for a vendor table

    table = read_vendor_table(vendor, read_panel(panel_path))
    label_counts(table, sample, "vendor").to_csv(output, sep="\t", index=False)
    return int(table["evaluable"].sum())
