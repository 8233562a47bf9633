"""Which reads and bases count as allele evidence at a variant site, and the count columns.

Shared by both counting engines of :func:`carmscope.ctdna.alleles.count_alleles` (the record
scan, :mod:`carmscope.ctdna.bamscan`, and pysam, :mod:`carmscope.ctdna.pileup`).
"""

from __future__ import annotations

from dataclasses import dataclass

COUNT_COLUMNS = [
    "ref_count",
    "alt_count",
    "other_count",
    "depth",
    "ref_fwd",
    "ref_rev",
    "alt_fwd",
    "alt_rev",
]
"""Fragment counts per variant (pandas ``Int64``; missing where the site was not counted)."""

MAX_COMBINED_QUALITY = 200
"""Cap on the summed base quality of two agreeing mates (as in htslib)."""


@dataclass(frozen=True)
class AlleleFilters:
    """Which reads and bases count as evidence at a variant site.

    Unmapped reads never count. A fragment is counted once at most (see
    ``count_overlapping_mates_once``), and only if its base quality at the site reaches
    ``min_base_quality``.
    """

    min_base_quality: int = 20
    """Minimum Phred base quality of the base read at an SNV (the anchor base of an indel;
    for an insertion, the lowest of the anchor and inserted bases)."""
    min_mapping_quality: int = 20
    """Minimum mapping quality of a read."""
    exclude_duplicates: bool = True
    """Skip reads flagged as PCR/optical duplicates (0x400)."""
    exclude_secondary: bool = True
    """Skip secondary alignments (0x100)."""
    exclude_supplementary: bool = True
    """Skip supplementary alignments (0x800)."""
    exclude_qc_fail: bool = True
    """Skip reads failing vendor quality checks (0x200)."""
    exclude_improper_pairs: bool = True
    """Skip paired reads not flagged as a proper pair (0x1 set, 0x2 unset), as samtools and
    bcftools mpileup do by default (their ``-A`` keeps them)."""
    min_indel_flank: int = 10
    """Aligned reference bases a read needs on each side of an indel (up to and including the
    anchor; after the inserted or deleted bases) to count there, whatever allele it shows.
    Aligners soft-clip indels near read ends, so without this symmetric rule reads ending
    close to an indel would count as REF but never as ALT (a bias towards REF)."""
    count_overlapping_mates_once: bool = True
    """Count the two mates of a fragment that both cover the site as one observation: if they
    agree, once, with the sum of their base qualities (capped at 200; two independent reads of
    one molecule), on the strand of one mate chosen pseudo-randomly by read name (CRC32 parity,
    so overlaps add no strand bias); if they disagree, the mate with the higher base quality;
    if they disagree with equal quality, neither."""


def excluded_flags(filters: AlleleFilters) -> int:
    """SAM flags (bits) of the reads ``filters`` skip; unmapped reads always."""
    mask = 0x4  # unmapped
    for wanted, flag in (
        (filters.exclude_secondary, 0x100),
        (filters.exclude_qc_fail, 0x200),
        (filters.exclude_duplicates, 0x400),
        (filters.exclude_supplementary, 0x800),
    ):
        if wanted:
            mask |= flag
    return mask
