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
import gzip
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import pysam

from carmscope.bam.alignments import not_sorted_message, sort_order
from carmscope.bam.index import find_index
from carmscope.errors import LocatedInputError
from carmscope.messages import found_columns, quoted
from carmscope.vocabulary import BLOOD_MEASURE_ASSAYS

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

    Returns
    -------
    dict
        The figures, then :data:`VERDICT_COLUMNS`: ``usable`` True, or False with the
        ``problem`` (an unusable file leaves the whole sample out of the analyses; the result
        tables then say which samples were left out and why).
    """
    row: dict[str, object] = {"sample_id": sample_id, "assay": assay}
    try:
        if counts:
            row.update(inspect_counts(counts, assay))
        if reads:
            row.update(inspect_reads(reads, assay))
        if assay == "cfdna" and tumor_variants:
            row.update(inspect_variants(tumor_variants, [reads] if reads else []))
    except InputContentError as error:
        if strict:
            raise
        return {"sample_id": sample_id, "assay": assay, "usable": False, "problem": str(error)}
    return row | {"usable": True, "problem": ""}


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
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(row)
        writer.writerow(row.values())


def inspect_counts(path: str, assay: str) -> dict[str, object]:
    """Shape and totals of a count input (10x HDF5, 10x MTX folder, h5ad, bulk TSV, or a
    cfDNA vendor VAF table)."""
    if assay == "bulk_rna":
        return _inspect_bulk_counts(path)
    if assay == "cfdna":
        return _inspect_vendor_table(path)
    if assay in BLOOD_MEASURE_ASSAYS:
        return _inspect_blood_table(path, assay)
    if os.path.isdir(path):
        return _inspect_mtx(path)
    if path.endswith(".h5ad"):
        return _inspect_h5ad(path)
    return _inspect_tenx_h5(path)


def _inspect_tenx_h5(path: str) -> dict[str, object]:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            if "matrix" not in handle:
                raise InputContentError(
                    path,
                    "not a Cell Ranger v3 matrix: no 'matrix' group (v2 files are not read)",
                )
            matrix = handle["matrix"]
            n_features, n_cells = (int(v) for v in matrix["shape"][()])
            barcodes = [b.decode() for b in matrix["barcodes"][()]]
            total = int(matrix["data"][()].sum()) if n_cells else 0
    except OSError as error:
        raise InputContentError(path, f"cannot be read as HDF5 ({error})") from None
    _check_barcodes(path, barcodes)
    return _count_figures(path, "10x_h5", n_cells, n_features, total)


def _inspect_h5ad(path: str) -> dict[str, object]:
    import anndata

    try:
        adata = anndata.read_h5ad(path, backed="r")
    except (OSError, KeyError) as error:
        raise InputContentError(path, f"cannot be read as h5ad ({error})") from None
    try:
        _check_barcodes(path, list(adata.obs_names))
        total = int(adata.X[:].sum()) if adata.n_obs else 0
        return _count_figures(path, "h5ad", adata.n_obs, adata.n_vars, total)
    finally:
        adata.file.close()


def _inspect_mtx(path: str) -> dict[str, object]:
    folder = Path(path)
    matrix = _first_existing(folder, ("matrix.mtx.gz", "matrix.mtx"))
    barcodes_file = _first_existing(folder, ("barcodes.tsv.gz", "barcodes.tsv"))
    if matrix is None or barcodes_file is None:
        raise InputContentError(path, "10x MTX folder needs matrix.mtx(.gz) and barcodes.tsv(.gz)")
    with _open_text(matrix) as handle:
        header = next((line for line in handle if not line.startswith("%")), "")
    try:
        n_features, n_cells, _ = (int(v) for v in header.split())
    except ValueError:
        raise InputContentError(matrix, "no 'rows columns entries' line in the header") from None
    with _open_text(barcodes_file) as handle:
        barcodes = [line.split("\t")[0].strip() for line in handle if line.strip()]
    if len(barcodes) != n_cells:
        raise InputContentError(
            barcodes_file, f"{len(barcodes)} barcodes but the matrix has {n_cells} columns"
        )
    _check_barcodes(barcodes_file, barcodes)
    return _count_figures(path, "10x_mtx", n_cells, n_features, None)


def _inspect_bulk_counts(path: str) -> dict[str, object]:
    import pandas as pd

    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise InputContentError(path, f"cannot be read as a TSV ({error})") from None
    missing = {"gene", "count"} - set(table.columns)
    if missing:
        raise InputContentError(
            path, f"missing column(s) {sorted(missing)}; {found_columns(list(table.columns))}"
        )
    counts = pd.to_numeric(table["count"], errors="coerce")
    bad = counts.isna() | (counts < 0)
    if bad.any():
        line = int(bad.idxmax()) + 2
        value = quoted(table["count"].iloc[line - 2])
        raise InputContentError(path, f"line {line}, column 'count': {value} is not a count")
    duplicated = table["gene"].duplicated()
    if duplicated.any():
        line = int(duplicated.idxmax()) + 2
        value = quoted(table["gene"].iloc[line - 2])
        raise InputContentError(path, f"line {line}, column 'gene': {value} is duplicated")
    return _count_figures(path, "bulk_tsv", 1, len(table), int(counts.sum()))


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


def _count_figures(
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


def _check_barcodes(path: str | os.PathLike, barcodes: list[str]) -> None:
    seen: set[str] = set()
    for barcode in barcodes:
        if barcode in seen:
            raise InputContentError(path, f"cell barcode {barcode!r} occurs more than once")
        seen.add(barcode)


def inspect_reads(path: str, assay: str) -> dict[str, object]:
    """Format, sort order and index of a reads file; cell barcodes for scRNA BAMs."""
    if path.endswith((".fastq", ".fq", ".fastq.gz", ".fq.gz")):
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
        if assay == "cfdna" and order != "coordinate":
            raise InputContentError(path, not_sorted_message(path, detail))
        # an unindexed sorted BAM is indexed by the job that needs it (docs/alignment_files.md)
        if assay != "cfdna" and bam.references:
            figures["reads_host_loci_contigs"] = _host_loci_contigs(path, bam.references)
        if assay == "scrna":
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


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / name for name in names if (folder / name).exists()), None)


def _open_text(path: Path):
    return gzip.open(path, "rt") if path.suffix == ".gz" else open(path)
