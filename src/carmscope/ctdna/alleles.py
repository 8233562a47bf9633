"""Allele counts of tumour variants in cfDNA BAMs: :func:`count_alleles`.

:func:`count_alleles` counts, in a coordinate-sorted and indexed plasma BAM (or CRAM), the DNA
fragments that show each variant's REF allele, its ALT allele or something else at the site,
one read at a time (reads are streamed from the index, never loaded as a whole). Sites are
grouped into clusters read with one pass each, by one of two engines with the same rules and
counts, chosen by the ``engine`` parameter: the record scan in C (:mod:`carmscope.ctdna.bamscan`,
the default wherever it can read the file) and pysam (:mod:`carmscope.ctdna.pileup`).

The rest of the counting lives beside it: the variants table and VCF reading in
:mod:`carmscope.ctdna.variants`, the read filters in :mod:`carmscope.ctdna.filters`, opening
and checking the BAM in :mod:`carmscope.ctdna.reads`. An independent check with ``bcftools
mpileup`` is a test helper (``tests/bcftools_oracle.py``).

The counting itself (:func:`count_variant_columns`) runs without pandas, over columns of Python
lists, so a counting job that reads and writes its tables without pandas
(:func:`carmscope.ctdna.sample_counts.write_sample_counts`) starts without importing it (most of
its start-up, ``docs/ctdna.md``); :func:`count_alleles` is the DataFrame interface over it and
:func:`allele_count_columns` the columns one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import pysam

from carmscope.ctdna import bamscan, pileup
from carmscope.ctdna.filters import COUNT_COLUMNS, AlleleFilters, excluded_flags
from carmscope.ctdna.reads import check_sites, open_bam
from carmscope.ctdna.variants import VARIANT_COLUMNS, as_variants, variant_columns

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    import pandas as pd

ALLELE_COUNT_COLUMNS = [*VARIANT_COLUMNS, *COUNT_COLUMNS, "vaf"]
"""Columns of :func:`count_alleles` and the vendor reader."""

SITE_COLUMNS = ("chrom", "pos", "ref", "alt", "kind", "evaluable")
"""What :func:`count_variant_columns` reads of each variant."""

ENGINES = ("records", "pysam")
"""Counting engines of :func:`count_alleles`."""

__all__ = [
    "ALLELE_COUNT_COLUMNS",
    "COUNT_COLUMNS",
    "ENGINES",
    "AlleleFilters",
    "allele_count_columns",
    "count_alleles",
    "count_variant_columns",
]


def _finish(table: pd.DataFrame, counts: dict[int, dict[str, int]]) -> pd.DataFrame:
    """Attach counts (by row) and VAF; rows without counts get missing values."""
    import pandas as pd  # imported here: the counting runs without pandas

    for column in COUNT_COLUMNS:
        values = [counts[i][column] if i in counts else pd.NA for i in range(len(table))]
        table[column] = pd.array(values, dtype="Int64")
    depth = table["depth"].astype("Float64")
    table["vaf"] = (table["alt_count"].astype("Float64") / depth.where(depth > 0)).astype(float)
    extra = [c for c in table.columns if c not in ALLELE_COUNT_COLUMNS]
    return table[[*ALLELE_COUNT_COLUMNS, *extra]]


def count_alleles(
    bam_path: str | os.PathLike,
    variants: pd.DataFrame,
    filters: AlleleFilters | None = None,
    reference: str | os.PathLike | None = None,
    *,
    engine: str = "records",
) -> pd.DataFrame:
    """Count REF, ALT and other fragments at each variant in a cfDNA BAM.

    SNVs are read from the base aligned to the site. Indels are read from each read's CIGAR:
    a read carries the ALT if it has exactly this insertion (same inserted bases) or deletion
    (same length) right after the anchor base; it carries the REF if it is aligned without a
    gap from the anchor base to the first base after the indel (an insertion: the anchor and
    the next base; a deletion: the anchor, the deleted bases and the next base); a read with a
    different indel there is ``other``; reads that do not reach both sides, or have fewer than
    ``filters.min_indel_flank`` aligned bases on either side, are not counted. A read with a
    deletion over an SNV site is not counted (as in bcftools allele depths).

    Reads are streamed once per cluster of nearby sites (sites sorted by contig and position;
    sites less than :data:`CLUSTER_GAP` apart share one pass), and each read is handed to
    every site it covers, so neighbouring sites do not decode the same reads again. A BAM with
    a ``.bai`` index is read record by record in compiled code (engine ``records``,
    :mod:`carmscope.ctdna.bamscan`); CRAM, a ``.csi`` index and records that scan cannot read go
    through pysam (``fetch``, :mod:`carmscope.ctdna.pileup`), with the same rules and counts.

    Parameters
    ----------
    bam_path
        Coordinate-sorted (header ``SO:coordinate``), indexed, duplicate-marked BAM (or CRAM,
        with ``reference``).
    variants
        Variants with columns chrom, pos, ref, alt (minimal alleles, e.g. from
        :func:`read_tumour_variants`); kind/evaluable/reason are derived when absent.
        Extra columns are kept.
    filters
        Read and base filters; default :class:`AlleleFilters`.
    reference
        FASTA the reads were aligned to; needed only to decode a ``.cram`` file (ignored for
        BAM).
    engine
        ``records`` (default): the record scan where it can read the file, pysam elsewhere;
        ``pysam``: pysam for every cluster (the reference the record scan is tested against).

    Returns
    -------
    pandas.DataFrame
        The variants with :data:`COUNT_COLUMNS` (``depth`` = ref + alt + other fragments;
        strand columns split the REF and ALT counts by the strand of the counted read) and
        ``vaf`` = alt / depth (NaN at depth 0). Rows that are not evaluable have missing counts.

    Raises
    ------
    CtdnaInputError
        The BAM is unreadable, not coordinate-sorted, unindexed, or lacks a variant's contig; a
        CRAM whose reference cannot be found.
    """
    table = as_variants(variants)
    columns = {name: table[name].tolist() for name in SITE_COLUMNS}
    return _finish(
        table, count_variant_columns(bam_path, columns, filters, reference, engine=engine)
    )


def allele_count_columns(
    bam_path: str | os.PathLike,
    variants: Mapping[str, Sequence[object]],
    filters: AlleleFilters | None = None,
    reference: str | os.PathLike | None = None,
    *,
    engine: str = "records",
) -> dict[str, list[object]]:
    """:func:`count_alleles` over columns of Python lists, without pandas.

    Parameters
    ----------
    bam_path, filters, reference, engine
        As for :func:`count_alleles`.
    variants
        Column name to cells (e.g. a panel from
        :func:`carmscope.ctdna.sample_counts.read_panel_columns`): at least chrom, pos, ref,
        alt; kind/evaluable/reason are derived when absent
        (:func:`~carmscope.ctdna.variants.variant_columns`). Extra columns are kept.

    Returns
    -------
    dict
        The columns of :func:`count_alleles`, in its order: the variant columns, the counts
        (int, None where not counted), ``vaf`` (float, None at depth 0 or without counts), then
        the extra columns.
    """
    table = variant_columns(variants)
    counts = count_variant_columns(bam_path, table, filters, reference, engine=engine)
    for column in COUNT_COLUMNS:
        table[column] = [
            counts[i][column] if i in counts else None for i in range(len(table["pos"]))
        ]
    table["vaf"] = [
        alt / depth if depth else None
        for alt, depth in zip(table["alt_count"], table["depth"], strict=True)
    ]
    extra = [column for column in table if column not in ALLELE_COUNT_COLUMNS]
    return {column: table[column] for column in [*ALLELE_COUNT_COLUMNS, *extra]}


def count_variant_columns(
    bam_path: str | os.PathLike,
    variants: Mapping[str, Sequence[object]],
    filters: AlleleFilters | None = None,
    reference: str | os.PathLike | None = None,
    *,
    engine: str = "records",
) -> dict[int, dict[str, int]]:
    """The counts of :func:`count_alleles` by row, without pandas.

    Parameters
    ----------
    variants
        Columns chrom, pos (1-based), ref, alt (minimal alleles), kind and evaluable, as lists.
    bam_path, filters, reference, engine
        As for :func:`count_alleles`.

    Returns
    -------
    dict
        Row number (0-based) to its :data:`COUNT_COLUMNS` for every evaluable row.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    filters = filters or AlleleFilters()
    rows = [
        (index, {"chrom": chrom, "pos": pos, "ref": ref, "alt": alt, "kind": kind})
        for index, (chrom, pos, ref, alt, kind, evaluable) in enumerate(
            zip(*(variants[name] for name in SITE_COLUMNS), strict=True)
        )
        if evaluable
    ]
    counts: dict[int, dict[str, int]] = {}
    with open_bam(bam_path, reference) as bam:
        check_sites(bam, bam_path, ((row["chrom"], row["pos"]) for _, row in rows))
        contig_order = {name: i for i, name in enumerate(bam.references)}
        sites = sorted(
            (_site(index, row, filters) for index, row in rows),
            key=lambda site: (contig_order[site.chrom], site.anchor, site.index),
        )
        scanner = _record_scanner(bam, bam_path) if sites and engine == "records" else None
        try:
            for contig, start, stop, cluster in _clusters(sites):
                found = None
                if scanner is not None:
                    found = _scan_cluster(
                        scanner, contig_order[contig], start, stop, cluster, filters
                    )
                if found is None:
                    found = pileup.count_cluster(bam, contig, start, stop, cluster, filters)
                counts.update(found)
        finally:
            if scanner is not None:
                scanner.close()
    return counts


def _record_scanner(bam: pysam.AlignmentFile, bam_path: str | os.PathLike):
    """A :class:`~carmscope.ctdna.bamscan.RecordScanner` for a BAM with a ``.bai`` index, else
    None (CRAM, ``.csi`` index)."""
    if not bam.is_bam:
        return None
    index = bamscan.bai_path(bam_path)
    if index is None:
        return None
    try:
        return bamscan.RecordScanner(str(bam_path), index, bam.tell())
    except (OSError, ValueError, bamscan.UnsupportedError):
        return None


def _scan_cluster(
    scanner, tid: int, start: int, stop: int, sites: list[_Site], filters: AlleleFilters
) -> dict[int, dict[str, int]] | None:
    """Counts of one cluster from the record scan, or None (count it with pysam)."""
    found = scanner.count(
        tid,
        start,
        stop,
        [site.anchor for site in sites],
        [site.kind for site in sites],
        [site.ref for site in sites],
        [site.alt for site in sites],
        filters,
        excluded_flags(filters),
    )
    if found is None:
        return None
    return {
        site.index: dict(zip(COUNT_COLUMNS, map(int, row), strict=True))
        for site, row in zip(sites, found, strict=True)
    }


CLUSTER_GAP = 16_384
"""Sites closer than this (bp, one BAI linear-index window) are counted from one ``fetch``."""


class _Site(NamedTuple):
    index: int  # row of the variants table
    chrom: str
    anchor: int  # 0-based position of the SNV or indel anchor base
    stop: int  # end (exclusive) of the reference span the site looks at
    observe: object  # what a read shows there (carmscope.ctdna.pileup.observer)
    kind: str
    ref: str
    alt: str


def _site(index: int, variant: Mapping[str, object], filters: AlleleFilters) -> _Site:
    anchor = int(variant["pos"]) - 1
    kind = variant["kind"]
    observe, stop = pileup.observer(
        kind, anchor, variant["ref"], variant["alt"], filters.min_indel_flank
    )
    return _Site(
        index, variant["chrom"], anchor, stop, observe, kind, variant["ref"], variant["alt"]
    )


def _clusters(sites: list[_Site]):
    """``(contig, start, stop, sites)`` of runs of sorted sites less than CLUSTER_GAP apart."""
    cluster: list[_Site] = []
    stop = 0
    for site in sites:
        if cluster and (site.chrom != cluster[0].chrom or site.anchor >= stop + CLUSTER_GAP):
            yield cluster[0].chrom, cluster[0].anchor, stop, cluster
            cluster = []
        stop = max(stop, site.stop) if cluster else site.stop
        cluster.append(site)
    if cluster:
        yield cluster[0].chrom, cluster[0].anchor, stop, cluster
