"""Inspection of input files' contents, before any analysis reads them.

The sample-sheet validation (:mod:`carmscope.sheets`) checks that files exist; this module
opens them and checks what is inside: a count matrix that can be read and has unique barcodes,
a 10x BAM whose reads carry cell barcodes, a cfDNA BAM that is coordinate-sorted and indexed, a
variants VCF whose contigs the patient's plasma BAMs know. Each check raises
:class:`InputContentError` naming the file and what is wrong; otherwise it returns the figures
that the input inventory (``results/qc/inputs.tsv``) reports.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import pysam

from carmscope.bam.alignments import not_sorted_message, sort_order
from carmscope.bam.index import find_index
from carmscope.errors import LocatedInputError
from carmscope.io.tenx import (
    TENX_MTX,
    CountMatrixError,
    MatrixSummary,
    check_unique_barcodes,
    describe_matrix,
)
from carmscope.messages import quoted
from carmscope.vocabulary import BLOOD_MEASURE_ASSAYS, BULK_RNA, CFDNA, SCRNA, TCR

# h5py and pandas are imported by the checks that need them: this module runs once per
# sample, and most samples (plasma BAMs, 10x BAMs) need neither; pandas alone is most of a
# job's start-up.

HOST_LOCUS_CONTIGS = frozenset({"1", "2", "chr1", "chr2"})
"""Chromosomes of the CAR's host loci, CD247 (chromosome 1) and CD8A (chromosome 2), in Ensembl
and UCSC naming: a biopsy BAM aligned to the human genome has at least one of them."""
HOST_LOCUS_PREFIXES = ("CD8A", "CD247", "CAR")
"""Contig names of a transcriptome alignment (or a construct contig) that hold a host locus or
the construct."""
CELL_BARCODE_TAG = "CB"
READS_TO_PEEK = 20_000
"""Reads read from the start of a BAM to look for cell-barcode tags."""
BARCODE_FILES = ("barcodes.tsv.gz", "barcodes.tsv")
"""Where a 10x MTX folder's barcodes are (named in a duplicate-barcode error)."""


class InputContentError(LocatedInputError):
    """An input file whose contents the pipeline cannot use (``path[, line N][, column C]:
    message``, as every stage's reader words it)."""


VERDICT_COLUMNS = ("usable", "problem")
"""The inspection's verdict, the last columns of every inventory row: whether the analyses
use the sample, and if not, the one-line problem (file and what is wrong)."""


def inspect_sample(
    sample_id: str,
    assay: str,
    counts: str,
    reads: str,
    tumor_variants: str = "",
    strict: bool = False,
    genome: str | None = None,
) -> dict[str, object]:
    """One row of the input inventory: every figure of the sample's files, checked.

    Parameters
    ----------
    sample_id, assay
        The sample and its assay (``scrna``, ``bulk_rna`` or ``cfdna``).
    counts, reads
        Paths from the samples table ('' when absent).
    tumor_variants
        For cfDNA samples, the patient's variants VCF, checked against this sample's BAM.
    strict
        Raise :class:`InputContentError` on the first unusable file instead of recording it.
    genome
        Genome of multi-genome 10x count matrices (config key ``expression.genome``).

    Returns
    -------
    dict
        The figures, then :data:`VERDICT_COLUMNS`: ``usable`` True, or False with the
        ``problem`` (an unusable file leaves the whole sample out of the analyses; the result
        tables then say which samples were left out and why). A single-cell matrix adds, after
        the other figures, the columns of :func:`matrix_content` and, with a 10x BAM,
        ``barcode_overlap`` (:func:`barcode_overlap`).
    """
    row: dict[str, object] = {"sample_id": sample_id, "assay": assay}
    try:
        summary = None
        if counts and assay == SCRNA:
            summary = inspect_matrix(counts, genome)
            row.update(_count_figures(counts, summary))
        elif counts:
            row.update(inspect_counts(counts, assay))
        if reads:
            row.update(inspect_reads(reads, assay))
        if assay == CFDNA and tumor_variants:
            row.update(inspect_variants(tumor_variants, [reads] if reads else []))
        if summary is not None:
            row.update(matrix_content(summary))
            if reads and not _is_fastq(reads):
                row["barcode_overlap"] = barcode_overlap(reads, counts, summary.barcodes)
    except InputContentError as error:
        if strict:
            raise
        return {"sample_id": sample_id, "assay": assay, "usable": False, "problem": str(error)}
    return row | {"usable": True, "problem": ""}


def inspect_blood_draws(draws: Iterable[dict[str, str]], strict: bool = False) -> list[dict]:
    """Inventory rows of a patient's blood draws (``car_pcr``, ``cytokines`` samples).

    Parameters
    ----------
    draws
        One record per draw: ``sample_id``, ``assay`` and ``counts`` (its measurement table).
    strict
        As in :func:`inspect_sample`.

    Returns
    -------
    list of dict
        One row per draw, as :func:`inspect_sample` gives it. A table several draws share (a
        cohort or patient table) is inspected once; each of its draws gets its verdict.
    """
    by_table: dict[tuple[str, str], dict[str, object]] = {}
    rows = []
    for draw in draws:
        key = (draw["counts"], draw["assay"])
        if key not in by_table:
            by_table[key] = inspect_sample(
                draw["sample_id"], draw["assay"], counts=draw["counts"], reads="", strict=strict
            )
        rows.append(by_table[key] | {"sample_id": draw["sample_id"]})
    return rows


def usable_samples(inventory: str | os.PathLike) -> set[str]:
    """IDs of the samples that the input inventory (``results/qc/inputs.tsv``) found usable.

    A row whose ``usable`` is ``False`` is left out; an inventory written before the verdict
    columns existed (no ``usable`` column) counts every sample as usable.
    """
    with open(inventory, newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        return {row["sample_id"] for row in rows if row.get("usable", "True") != "False"}


def write_inventory_row(row: dict[str, object], path: str | os.PathLike) -> None:
    """One sample's row of the input inventory as a TSV (header and row; None as empty),
    as ``pandas.DataFrame([row]).to_csv(path, sep="\t", index=False)`` writes it."""
    _write_rows(list(row), [row], path)


def write_inventory_rows(rows: Sequence[dict[str, object]], path: str | os.PathLike) -> None:
    """Several samples' rows of the input inventory in one TSV (a patient's blood draws).

    The columns are those of every row in first-seen order, the verdict
    (:data:`VERDICT_COLUMNS`) last, as in every inventory row; a figure a row lacks (an
    unusable draw has none) is empty, None too.
    """
    columns = inventory_columns(list(dict.fromkeys(key for row in rows for key in row)))
    _write_rows(columns, rows, path)


def _write_rows(columns: list[str], rows: Sequence[dict], path: str | os.PathLike) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([row.get(column) for column in columns] for row in rows)


def inventory_columns(columns: Sequence[str]) -> list[str]:
    """Inventory columns in the given order, the verdict columns moved last."""
    return [c for c in columns if c not in VERDICT_COLUMNS] + [
        c for c in VERDICT_COLUMNS if c in columns
    ]


def gather_inventory(parts: Sequence[str | os.PathLike], sample_order: Sequence[str]):
    """The input inventory (``results/qc/inputs.tsv``) from its parts: one-sample rows and
    multi-sample files (:func:`write_inventory_rows`), read as text.

    Rows follow ``sample_order`` (the samples sheet's order; samples not in it last, in part
    order); columns are in first-seen order over the parts (give the parts in sheet order).
    Returns a pandas DataFrame.
    """
    import pandas as pd  # here: the inspection jobs that import this module run without it

    from carmscope.io.tables import read_stage_table

    table = pd.concat([read_stage_table(p, all_text=True) for p in parts], ignore_index=True)
    position = {sample: i for i, sample in enumerate(sample_order)}
    rank = table["sample_id"].map(position).fillna(len(position))
    return table.iloc[rank.argsort(kind="stable")].reset_index(drop=True)


def inspect_counts(path: str, assay: str, genome: str | None = None) -> dict[str, object]:
    """Shape and totals of a count input (10x HDF5, 10x MTX folder, h5ad, bulk TSV, or a
    cfDNA vendor VAF table)."""
    if assay == BULK_RNA:
        return _inspect_bulk_counts(path)
    if assay == CFDNA:
        return _inspect_vendor_table(path)
    if assay in BLOOD_MEASURE_ASSAYS:
        return _inspect_blood_table(path, assay)
    if assay == TCR:
        return _inspect_repertoire(path)
    return _count_figures(path, inspect_matrix(path, genome))


def inspect_matrix(path: str, genome: str | None = None) -> MatrixSummary:
    """A single-cell count matrix described by the shared reader (:mod:`carmscope.io.tenx`),
    checked: readable, one genome, unique barcodes, raw counts.

    Raises
    ------
    InputContentError
        Naming the file and the problem in one line.
    """
    try:
        summary = describe_matrix(path, genome=genome)
    except CountMatrixError as error:
        raise InputContentError(error.path, str(error).removeprefix(f"{error.path}: ")) from None
    where = path
    if summary.format == TENX_MTX:
        where = next(
            (str(Path(path, name)) for name in BARCODE_FILES if Path(path, name).exists()), path
        )
    try:
        check_unique_barcodes(where, summary.barcodes)
    except CountMatrixError as error:
        raise InputContentError(where, str(error).removeprefix(f"{where}: ")) from None
    if summary.raw_counts is False:
        raise InputContentError(
            path,
            f"{summary.counts_source} holds values that are not raw counts (negative or "
            "non-integer: normalised or log-transformed?); give UMI counts, in X or in a "
            "layer 'counts'",
        )
    return summary


def matrix_content(summary: MatrixSummary) -> dict[str, object]:
    """Inventory columns of what a count matrix holds (beyond its shape).

    ``counts_version`` (``v3``/``legacy`` for 10x HDF5, ``v3``/``v2`` for MTX, the encoding
    version of an h5ad), ``genome`` (';'-joined, '' when the format does not say),
    ``gene_name_type`` (:func:`carmscope.io.tenx.gene_name_type`) and ``raw_counts``
    (True, or '' when the values were not read).
    """
    return {
        "counts_version": summary.version,
        "genome": ";".join(summary.genomes),
        "gene_name_type": summary.gene_name_type,
        "raw_counts": "" if summary.raw_counts is None else summary.raw_counts,
    }


def barcode_overlap(reads: str, counts: str, cells: list[str]) -> float:
    """Fraction of the cell-barcoded reads among the first :data:`READS_TO_PEEK` whose
    barcode is a cell of the count matrix.

    Raises
    ------
    InputContentError
        When none is: the BAM and the matrix are not from the same run (per-cell CAR
        detection would find no cell).
    """
    with pysam.AlignmentFile(reads, check_sq=False) as bam:
        barcodes = [
            read.get_tag(CELL_BARCODE_TAG)
            for read in _first_reads(bam)
            if read.has_tag(CELL_BARCODE_TAG)
        ]
    if not barcodes:
        return 0.0
    known = set(cells)
    matched = sum(barcode in known for barcode in barcodes)
    if matched == 0:
        raise InputContentError(
            reads,
            f"none of the {len(barcodes)} cell barcodes in its first {READS_TO_PEEK} reads is a "
            f"cell of the count matrix {counts} (read barcode {quoted(barcodes[0])}, matrix "
            f"barcode {quoted(cells[0])}): give the BAM and the matrix of the same Cell Ranger run",
        )
    return round(matched / len(barcodes), 4)


def _first_reads(bam: pysam.AlignmentFile):
    for seen, read in enumerate(bam.fetch(until_eof=True), start=1):
        yield read
        if seen >= READS_TO_PEEK:
            break


def _inspect_bulk_counts(path: str) -> dict[str, object]:
    """A bulk count table read by the expression stage's own reader, so the two agree."""
    from carmscope.expression.io import ExpressionInputError, read_bulk_counts

    try:
        counts = read_bulk_counts(path)
    except ExpressionInputError as error:
        raise InputContentError(error.path, str(error).removeprefix(f"{error.path}: ")) from None
    return _figures(path, "bulk_tsv", 1, len(counts), int(counts.sum()))


def _inspect_vendor_table(path: str) -> dict[str, object]:
    """A vendor VAF table of a plasma sample (carmscope.ctdna.vendor.read_vendor_table)."""
    from carmscope.ctdna.variants import CtdnaInputError
    from carmscope.ctdna.vendor import read_vendor_table

    try:
        table = read_vendor_table(path)
    except CtdnaInputError as error:  # the reader's own place and words
        raise InputContentError(path, error.reason, line=error.line, column=error.column) from None
    if table.empty:
        raise InputContentError(path, "vendor VAF table has a header but no variant rows")
    return {"counts_format": "vendor_vaf", "n_features": len(table)}


def _inspect_blood_table(path: str, assay: str) -> dict[str, object]:
    """A car_pcr or cytokines long table (carmscope.blood.measurements.read_measurements)."""
    from carmscope.blood.measurements import BloodInputError, read_measurements

    try:
        table = read_measurements(path, assay)
    except BloodInputError as error:
        where_and_what = str(error).removeprefix(str(path)).lstrip(",: ")
        raise InputContentError(path, where_and_what) from None
    if table.empty:
        raise InputContentError(path, "has a header but no analyte rows")
    return {"counts_format": "analyte_table", "n_features": int(table["analyte"].nunique())}


def _inspect_repertoire(path: str) -> dict[str, object]:
    """A T cell receptor repertoire (carmscope.tcr.io.read_repertoire): its format, productive
    TRB clones and templates (or cells)."""
    from carmscope.tcr.io import RepertoireError, read_repertoire

    try:
        repertoire = read_repertoire(path)
    except RepertoireError as error:  # "<path>: line N, column C: message"
        raise InputContentError(path, str(error).removeprefix(str(path)).lstrip(",: ")) from None
    return {
        "counts_format": f"tcr_{repertoire.format}",
        "n_features": len(repertoire.clones),
        "total_counts": repertoire.total,
    }


def _count_figures(path: str | os.PathLike, summary: MatrixSummary) -> dict[str, object]:
    return _figures(path, summary.format, summary.n_cells, summary.n_features, summary.total_counts)


def _figures(
    path: str | os.PathLike, fmt: str, n_cells: int, n_features: int, total: int | None
) -> dict[str, object]:
    if n_cells == 0 or n_features == 0:
        raise InputContentError(path, f"empty count matrix ({n_cells} cells x {n_features} genes)")
    return {
        "counts_format": fmt,
        "n_cells": n_cells,
        "n_features": n_features,
        "total_counts": total if total is not None else "",
    }


def inspect_reads(path: str, assay: str) -> dict[str, object]:
    """Format, sort order and index of a reads file; cell barcodes for scRNA BAMs."""
    if _is_fastq(path):
        return _inspect_fastq(path)
    try:
        bam = pysam.AlignmentFile(path, check_sq=False)
    except (OSError, ValueError) as error:
        raise InputContentError(path, f"cannot be read as SAM/BAM/CRAM ({error})") from None
    with bam:
        # the header's SO, else the records' order (carmscope.bam.alignments.sort_order)
        order, detail = sort_order(bam)
        indexed = _has_index(path)
        figures: dict[str, object] = {
            "reads_format": bam.format.lower() if hasattr(bam, "format") else "bam",
            "reads_sort_order": order,
            "reads_indexed": indexed,
            "reads_contigs": len(bam.references),
        }
        if assay == CFDNA and order != "coordinate":
            raise InputContentError(path, not_sorted_message(path, detail))
        # an unindexed sorted BAM is indexed by the job that needs it (docs/alignment_files.md)
        if assay != CFDNA and bam.references:
            figures["reads_host_loci_contigs"] = _host_loci_contigs(path, bam.references)
        if assay == SCRNA:
            figures["reads_with_cell_barcode"] = _fraction_with_tag(bam, CELL_BARCODE_TAG)
            if figures["reads_with_cell_barcode"] == 0:
                raise InputContentError(
                    path,
                    f"none of the first {READS_TO_PEEK} reads has a {CELL_BARCODE_TAG} tag: "
                    "per-cell CAR detection needs a 10x BAM with corrected cell barcodes",
                )
    return figures


def _host_loci_contigs(path: str, references) -> int:
    """Contigs of the header that hold the CAR's host loci or a construct; a BAM with none is
    flagged (a warning in the job log, and 0 in the inventory): it was aligned to another
    reference, so the targeted scan finds nothing and host-locus coverage means nothing."""
    shared = [
        name
        for name in references
        if name in HOST_LOCUS_CONTIGS or name.upper().startswith(HOST_LOCUS_PREFIXES)
    ]
    if not shared:
        print(
            f"warning: {path}: no contig in common with the CAR construct or its host loci "
            f"(CD247 on 1/chr1, CD8A on 2/chr2; the header has {', '.join(references[:3])}"
            f"{', ...' if len(references) > 3 else ''}): aligned to another reference?",
            file=sys.stderr,
        )
    return len(shared)


def _fraction_with_tag(bam: pysam.AlignmentFile, tag: str) -> float:
    seen = tagged = 0
    for read in bam.fetch(until_eof=True):
        seen += 1
        tagged += read.has_tag(tag)
        if seen >= READS_TO_PEEK:
            break
    return round(tagged / seen, 4) if seen else 0.0


def _is_fastq(path: str) -> bool:
    return path.endswith((".fastq", ".fq", ".fastq.gz", ".fq.gz"))


def _inspect_fastq(path: str) -> dict[str, object]:
    try:
        with pysam.FastxFile(path) as handle:
            first = next(iter(handle), None)
    except (OSError, ValueError) as error:
        raise InputContentError(path, f"cannot be read as FASTQ ({error})") from None
    if first is None or first.quality is None:
        raise InputContentError(path, "no FASTQ records")
    return {"reads_format": "fastq", "reads_sort_order": "", "reads_indexed": False}


def _has_index(path: str) -> bool:
    return find_index(path) is not None


def inspect_variants(vcf_path: str, plasma_bams: Iterable[str]) -> dict[str, object]:
    """Record count of a tumour-variants VCF; its contigs must be in every plasma BAM."""
    from carmscope.ctdna.variants import CtdnaInputError, open_vcf  # pandas: only for VCFs

    contigs: set[str] = set()
    n_records = 0
    try:
        with open_vcf(vcf_path) as vcf:
            for record in vcf:
                contigs.add(record.chrom)
                n_records += 1
    except CtdnaInputError as error:  # the ctDNA stage's reader, so the two cannot disagree
        raise InputContentError(vcf_path, error.reason) from None
    except (OSError, ValueError) as error:
        raise InputContentError(vcf_path, f"cannot be read as VCF ({error})") from None
    if n_records == 0:
        raise InputContentError(vcf_path, "no variant records: nothing to track in plasma")
    for bam_path in plasma_bams:
        with pysam.AlignmentFile(bam_path, check_sq=False) as bam:
            absent = sorted(contigs - set(bam.references))
        if absent:
            raise InputContentError(
                vcf_path, f"contig(s) {absent} are not in the header of plasma BAM {bam_path}"
            )
    return {"n_variants": n_records}
