"""The independent check of allele counting: the same SNVs counted by ``bcftools mpileup``.

A test helper (not used by the pipeline): the unit and integration tests compare
:func:`carmscope.ctdna.alleles.count_alleles` with htslib's pileup through pysam's bundled
bcftools, and ``benchmarks/ctdna_counting.py`` times the same options.
"""

from __future__ import annotations

import os
import tempfile

import pandas as pd
import pysam
import pysam.bcftools

from carmscope.ctdna.alleles import _finish
from carmscope.ctdna.filters import COUNT_COLUMNS, AlleleFilters
from carmscope.ctdna.reads import check_contigs, open_bam
from carmscope.ctdna.variants import CtdnaInputError, as_variants


def count_alleles_bcftools(
    bam_path: str | os.PathLike,
    variants: pd.DataFrame,
    reference_fasta: str | os.PathLike,
    filters: AlleleFilters | None = None,
) -> pd.DataFrame:
    """Count SNV alleles with ``bcftools mpileup -a AD,ADF,ADR`` (htslib pileup) instead.

    The filters map onto mpileup options: ``-q`` (mapping quality), ``-Q`` (base quality),
    ``--ff`` (UNMAP plus the excluded flags), ``-A`` when improper pairs are kept, ``-x`` when
    overlapping mates are counted twice; BAQ is off (``-B``; :func:`count_alleles` does not
    recompute base qualities), the per-file depth cap is lifted (``-d``), neighbour-based
    quality capping is off (``--delta-BQ``) and indels are skipped (``-I``); sites come from a
    regions file (``-R``).

    Residual differences from :func:`count_alleles` (see ``docs/ctdna.md``), all about
    overlapping mates: htslib keeps the higher-quality of two disagreeing mates at 80% of its
    quality (so a kept base of quality < 25 falls below ``-Q 20``) and one of two equal ones;
    it picks the mate of two agreeing ones by its own read-name hash (so allele counts agree,
    the strand split of such fragments may not); it only pairs up mates flagged as a proper
    pair (relevant only when improper pairs are kept).

    Parameters
    ----------
    bam_path
        Coordinate-sorted, indexed BAM.
    variants
        As for :func:`count_alleles`; only evaluable SNVs are counted, other rows are marked
        not evaluable ("bcftools path counts SNVs only").
    reference_fasta
        The FASTA the BAM was aligned to (indexed); SNV REF bases must match it.
    filters
        As for :func:`count_alleles`.

    Returns
    -------
    pandas.DataFrame
        The same columns as :func:`count_alleles`.
    """
    filters = filters or AlleleFilters()
    table = as_variants(variants)
    not_snv = table["evaluable"] & (table["kind"] != "snv")
    table.loc[not_snv, "evaluable"] = False
    table.loc[not_snv, "reason"] = "bcftools path counts SNVs only"
    with open_bam(bam_path) as bam:
        check_contigs(bam, bam_path, table)
        contig_order = {name: i for i, name in enumerate(bam.references)}
    snvs = table[table["evaluable"]]
    counts: dict[int, dict[str, int]] = {}
    if snvs.empty:
        return _finish(table, counts)
    sites = snvs[["chrom", "pos"]].drop_duplicates()
    sites = sites.assign(order=sites["chrom"].map(contig_order)).sort_values(["order", "pos"])
    with tempfile.TemporaryDirectory(prefix="carmscope-mpileup-") as folder:
        regions = os.path.join(folder, "sites.tsv")
        output = os.path.join(folder, "pileup.vcf")
        sites[["chrom", "pos", "pos"]].to_csv(regions, sep="\t", header=False, index=False)
        try:
            pysam.bcftools.mpileup(
                *_mpileup_options(filters, reference_fasta, regions, output),
                str(bam_path),
                catch_stdout=False,
            )
        except pysam.SamtoolsError as error:
            raise CtdnaInputError(bam_path, f"bcftools mpileup failed: {error}") from error
        with pysam.VariantFile(output) as pileup:
            records = {(r.chrom, r.pos): _allele_depths(r) for r in pileup}
    for index, row in snvs.iterrows():
        found = records.get((row["chrom"], int(row["pos"])))
        if found is not None and found[0] != row["ref"]:
            raise CtdnaInputError(
                reference_fasta,
                f"has {found[0]} at {row['chrom']}:{row['pos']}, the variant's REF is {row['ref']}",
            )
        counts[index] = _parse_depths(found, row["alt"])
    return _finish(table, counts)


def _mpileup_options(
    filters: AlleleFilters, reference: str | os.PathLike, regions: str, output: str
) -> list[str]:
    skip = ["UNMAP"]
    for wanted, flag in (
        (filters.exclude_secondary, "SECONDARY"),
        (filters.exclude_qc_fail, "QCFAIL"),
        (filters.exclude_duplicates, "DUP"),
        (filters.exclude_supplementary, "SUPPLEMENTARY"),
    ):
        if wanted:
            skip.append(flag)
    options = [
        "--fasta-ref", str(reference),
        "--annotate", "AD,ADF,ADR",
        "--min-MQ", str(filters.min_mapping_quality),
        "--min-BQ", str(filters.min_base_quality),
        "--ff", ",".join(skip),
        "--no-BAQ",
        "--max-depth", "100000000",
        "--delta-BQ", "255",
        "--max-BQ", "255",
        "--skip-indels",
        "--regions-file", regions,
        "--no-version",
        "--output-type", "v",
        "--output", output,
    ]  # fmt: skip
    if not filters.exclude_improper_pairs:
        options.append("--count-orphans")
    if not filters.count_overlapping_mates_once:
        options.append("--ignore-overlaps")
    return options


def _allele_depths(record: pysam.VariantRecord) -> tuple[str, dict[str, tuple[int, int, int]]]:
    """REF base and ``{allele: (AD, ADF, ADR)}`` of a one-sample mpileup record."""
    sample = next(iter(record.samples.values()))
    depths = {
        allele: (sample["AD"][i], sample["ADF"][i], sample["ADR"][i])
        for i, allele in enumerate(record.alleles)
        if allele != "<*>"
    }
    return record.ref.upper(), depths


def _parse_depths(
    found: tuple[str, dict[str, tuple[int, int, int]]] | None, alt: str
) -> dict[str, int]:
    tally = dict.fromkeys(COUNT_COLUMNS, 0)
    if found is None:
        return tally
    ref, depths = found
    for allele, (total, forward, reverse) in depths.items():
        total = total or 0
        if allele == ref:
            tally.update(ref_count=total, ref_fwd=forward or 0, ref_rev=reverse or 0)
        elif allele == alt:
            tally.update(alt_count=total, alt_fwd=forward or 0, alt_rev=reverse or 0)
        else:
            tally["other_count"] += total
    tally["depth"] = tally["ref_count"] + tally["alt_count"] + tally["other_count"]
    return tally
