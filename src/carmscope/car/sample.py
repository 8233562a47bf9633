"""Everything the CAR analysis makes of one biopsy sample, and the files it writes.

:func:`analyse_sample` scans the sample's reads, reads its count matrix (scRNA) and builds the
evidence row(s), the per-cell table and the coverage tables; :func:`write_sample_outputs`
writes them and the coverage plot. The file formats are described in ``docs/car_detection.md``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from carmscope.bam.index import find_index, indexed
from carmscope.car.calls import sample_evidence
from carmscope.car.cells import cell_table
from carmscope.car.coverage import coverage_table, plot_coverage, region_table
from carmscope.car.formats import detect_format
from carmscope.car.kmers import KMER_TABLE_COLUMNS, SpecificKmerIndex, build_index
from carmscope.car.matrix_feature import read_matrix_cells
from carmscope.car.scan import ScanSettings, scan_reads
from carmscope.car.tally import ScanResult
from carmscope.construct import Construct, read_constructs
from carmscope.io.tables import read_stage_table
from carmscope.reproducible import write_tsv
from carmscope.vocabulary import RNA_ASSAYS, SCRNA


@dataclass
class SampleAnalysis:
    """The CAR tables of one sample (``cells`` is None for bulk samples)."""

    evidence: pd.DataFrame
    coverage: pd.DataFrame
    regions: pd.DataFrame
    cells: pd.DataFrame | None = None


def load_index(
    construct_fasta: str | os.PathLike,
    segments_tsv: str | os.PathLike,
    kmer_table: str | os.PathLike | None = None,
    k: int | None = None,
    host_fasta: str | os.PathLike | None = None,
) -> SpecificKmerIndex:
    """The k-mer index: read from ``kmer_table`` (written by the index step) or built anew."""
    constructs: list[Construct] = read_constructs(construct_fasta, segments_tsv)
    if kmer_table is None:
        return build_index(constructs, k, host_fasta) if k else build_index(constructs)
    table = read_stage_table(kmer_table, ("kmer",))
    lengths = table["kmer"].str.len().unique() if len(table) else []
    if len(lengths) != 1 or list(table.columns[: len(KMER_TABLE_COLUMNS)]) != list(
        KMER_TABLE_COLUMNS
    ):
        raise ValueError(f"{kmer_table}: not a k-mer table of one k (rebuild the index)")
    return SpecificKmerIndex.from_table(table, constructs, int(lengths[0]))


def analyse_sample(
    sample_id: str,
    assay: str,
    reads: str | os.PathLike,
    index: SpecificKmerIndex,
    settings: ScanSettings,
    *,
    counts: str | os.PathLike | None = None,
    matrix_features: Sequence[str] = (),
    min_umis: int = 1,
    genome: str | None = None,
) -> SampleAnalysis:
    """Scan one sample and build its CAR tables.

    Parameters
    ----------
    sample_id, assay
        The sample and its assay (``scrna`` or ``bulk_rna``).
    reads
        Its reads file.
    index
        Specific k-mers.
    settings
        Scan settings; ``per_cell`` is set for scRNA samples.
    counts
        Its count matrix (scRNA; optional): cells to join and a CAR feature to read.
    matrix_features
        IDs or names of the CAR feature in the count matrix.
    min_umis
        CAR UMIs for a cell to be CAR+.
    genome
        Genome of a multi-genome Cell Ranger 1.2/2 count matrix.
    """
    if assay not in RNA_ASSAYS:
        raise ValueError(f"CAR detection runs on {' and '.join(RNA_ASSAYS)} samples, not {assay!r}")
    single_cell = assay == SCRNA
    settings = settings._replace(per_cell=single_cell)
    result = _scan(reads, index, settings)
    matrix = (
        read_matrix_cells(counts, matrix_features, genome=genome)
        if single_cell and counts
        else None
    )
    accumulators = {
        name: tally.coverage
        for name, tally in zip(result.construct_names, result.tally.constructs, strict=True)
    }
    cells = None
    if single_cell:
        cells = cell_table(
            sample_id, result.construct_names, result.tally.constructs, matrix, min_umis
        )
    return SampleAnalysis(
        evidence=sample_evidence(sample_id, assay, result, matrix, min_umis),
        coverage=coverage_table(sample_id, accumulators),
        regions=region_table(sample_id, accumulators),
        cells=cells,
    )


def write_sample_outputs(
    analysis: SampleAnalysis,
    evidence: str | os.PathLike,
    coverage: str | os.PathLike,
    regions: str | os.PathLike,
    plot: str | os.PathLike,
    cells: str | os.PathLike | None = None,
) -> None:
    """Write a sample's tables (TSV; gzipped when the name ends in ``.gz``) and plot."""
    analysis.evidence.to_csv(evidence, sep="\t", index=False)
    write_tsv(analysis.coverage, coverage, index=False)
    analysis.regions.to_csv(regions, sep="\t", index=False)
    if cells is not None:
        if analysis.cells is None:
            raise ValueError("no per-cell table: the sample is not single-cell")
        write_tsv(analysis.cells, cells, index=False)
    sample_id = str(analysis.evidence["sample_id"].iloc[0]) if len(analysis.evidence) else ""
    plot_coverage(analysis.coverage, analysis.regions, Path(plot), title=sample_id)


def _scan(reads: str | os.PathLike, index: SpecificKmerIndex, settings: ScanSettings) -> ScanResult:
    """:func:`~carmscope.car.scan.scan_reads`; a targeted scan of a BAM or CRAM without an index
    reads a link to it indexed for this job (the policy of ``docs/alignment_files.md``)."""
    needs_index = settings.targeted and detect_format(reads) in ("bam", "cram")
    if not needs_index or find_index(reads) is not None:
        return scan_reads(reads, index, settings)
    with indexed(reads) as usable:
        result = scan_reads(usable, index, settings)
    result.path = str(reads)  # the file as named, not the indexed link
    return result
