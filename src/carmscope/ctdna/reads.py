"""Opening a plasma BAM (or CRAM) for allele counting, with the checks that name the file.

Counting reads by position, so the file must be coordinate-sorted (from the header's ``@HD
SO:``, or from its records when the header is silent: :func:`carmscope.bam.alignments.sort_order`)
and indexed (:func:`carmscope.bam.index.find_index`; a job without an index indexes a link,
:func:`carmscope.bam.index.indexed`). A CRAM needs the FASTA it was written against
(``ctdna.reference``), checked before htslib tries to decode it. Every variant contig must be
in the file's header.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import pysam

from carmscope.bam.alignments import (
    cram_reference_problem,
    not_sorted_message,
    sort_advice,
    sort_order,
)
from carmscope.bam.index import find_index, index_advice
from carmscope.ctdna.variants import CtdnaInputError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    import pandas as pd

REFERENCE_KEY = "ctdna.reference"
"""The config key of the FASTA a plasma CRAM is decoded with (named in errors)."""


def check_sorted(bam: pysam.AlignmentFile, bam_path: str | os.PathLike) -> None:
    """Refuse a file that is not coordinate-sorted (header ``SO``, else its records)."""
    order, detail = sort_order(bam)
    if order != "coordinate":
        raise CtdnaInputError(bam_path, not_sorted_message(bam_path, detail))


def open_bam(
    bam_path: str | os.PathLike, reference: str | os.PathLike | None = None
) -> pysam.AlignmentFile:
    """Open a BAM (or, with its ``reference`` FASTA, a ``.cram``) checked to be
    coordinate-sorted and indexed.

    Raises
    ------
    CtdnaInputError
        Unreadable, unsorted or unindexed file; a CRAM whose reference cannot be found.
    """
    cram = str(bam_path).lower().endswith(".cram")
    if cram:
        problem = cram_reference_problem(bam_path, reference, REFERENCE_KEY)
        if problem is not None:
            raise CtdnaInputError(bam_path, problem)
    try:
        if cram:
            bam = pysam.AlignmentFile(
                str(bam_path),
                "rc",
                reference_filename=None if reference is None else str(reference),
            )
        else:
            bam = pysam.AlignmentFile(str(bam_path), "rb")
    except (OSError, ValueError) as error:
        kind = "CRAM" if cram else "BAM"
        raise CtdnaInputError(bam_path, f"cannot be read as {kind}: {error}") from error
    try:
        check_sorted(bam, bam_path)
        if find_index(bam_path) is None:
            raise CtdnaInputError(
                bam_path,
                f"has no index (.bai/.csi/.crai); index it: {index_advice(bam_path)} "
                "(or carmscope.ctdna.reads.ensure_index)",
            )
    except CtdnaInputError:
        bam.close()
        raise
    return bam


def ensure_index(bam_path: str | os.PathLike) -> str:
    """Index a coordinate-sorted BAM whose index is missing, beside it.

    The workflow never calls this (its jobs index a link instead, leaving inputs untouched:
    :func:`carmscope.bam.index.indexed`); it is for users preparing their files.

    Parameters
    ----------
    bam_path
        Coordinate-sorted BAM. The index is written next to it.

    Returns
    -------
    str
        Path of the index (the existing one, see :func:`carmscope.bam.index.find_index`, or
        the new ``<bam>.bai``).

    Raises
    ------
    CtdnaInputError
        The BAM cannot be read, is not coordinate-sorted, or indexing fails.
    """
    path = str(bam_path)
    existing = find_index(path)
    if existing is not None:
        return existing
    try:
        bam = pysam.AlignmentFile(path, "rb")
    except (OSError, ValueError) as error:
        raise CtdnaInputError(path, f"cannot be read as BAM: {error}") from error
    with bam:
        check_sorted(bam, path)
    try:
        pysam.index(path)
    except pysam.SamtoolsError as error:
        raise CtdnaInputError(
            path, f"samtools index failed ({error}); re-sort it: {sort_advice(path)}"
        ) from error
    return path + ".bai"


def check_contigs(
    bam: pysam.AlignmentFile, bam_path: str | os.PathLike, variants: pd.DataFrame
) -> None:
    """Refuse evaluable variants on a contig the file's header lacks, or beyond a contig's end
    (variants that are not evaluable are not counted, wherever they lie): :func:`check_sites`
    over a variants table."""
    evaluable = variants[variants["evaluable"].astype(bool)]
    check_sites(bam, bam_path, evaluable[["chrom", "pos"]].itertuples(index=False))


def check_sites(
    bam: pysam.AlignmentFile, bam_path: str | os.PathLike, sites: Iterable[tuple[str, int]]
) -> None:
    """Refuse a site (``chrom``, 1-based ``pos``; the evaluable variants) on a contig the
    file's header lacks, or beyond a contig's end; the first such site in order is named."""
    lengths = dict(zip(bam.references, bam.lengths, strict=True))
    for chrom, pos in sites:
        if chrom not in lengths:
            raise CtdnaInputError(
                bam_path,
                f"variant contig {chrom!r} is not in the BAM header (its contigs: "
                f"{', '.join(list(lengths)[:10])}{', ...' if len(lengths) > 10 else ''}); "
                "were the variants called on another assembly or naming (chr1 vs 1)?",
            )
        if pos > lengths[chrom]:
            raise CtdnaInputError(
                bam_path, f"variant {chrom}:{pos} lies beyond the contig end ({lengths[chrom]})"
            )
