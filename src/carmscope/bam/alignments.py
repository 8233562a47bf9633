"""Opening a BAM or CRAM with pysam: the CRAM reference check and the sort order.

:func:`cram_reference_problem` says, before htslib is asked to decode a CRAM, why its reference
cannot be found (htslib would otherwise fail mid-file with an error that reads like a truncated
or corrupt file, or try to download the reference). :func:`sort_order` takes the sort order
from the header's ``@HD SO:`` and, when the header is silent (no ``@HD`` line, as samtools
writes for SAM input without one, or ``SO:unknown``), from the records themselves.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

RECORDS_TO_CHECK = 100_000
"""Records read to check the order of a file whose header does not state it."""
SILENT_ORDERS = ("", "unknown")
"""``@HD SO:`` values that say nothing about the order (a missing line counts as '')."""


def header_sort_order(header: Mapping) -> str:
    """``@HD SO:`` of a pysam header dict ('' when there is no ``@HD`` line or no ``SO``)."""
    return str((header.get("HD") or {}).get("SO") or "")


def records_in_coordinate_order(alignments, limit: int = RECORDS_TO_CHECK) -> tuple[bool, int]:
    """Whether the first ``limit`` records of an open pysam file are in coordinate order.

    Mapped records must come by reference (header order), then by position; unmapped records
    without a position come last (as ``samtools sort`` writes them).

    Returns
    -------
    in_order, record
        Whether they are, and the 1-based number of the first record out of order (0 if none).
    """
    previous = (-1, -1)
    unplaced_seen = False
    for number, read in enumerate(alignments.fetch(until_eof=True), start=1):
        if number > limit:
            break
        if read.reference_id < 0:
            unplaced_seen = True
            continue
        key = (read.reference_id, read.reference_start)
        if unplaced_seen or key < previous:
            return False, number
        previous = key
    return True, 0


def sort_order(alignments) -> tuple[str, str]:
    """Sort order of an open pysam file and what it was read from.

    Returns
    -------
    order, detail
        ``order`` is the header's ``SO`` when it states one (``coordinate``, ``queryname``,
        ``unsorted``); when the header is silent, ``coordinate`` if the first
        :data:`RECORDS_TO_CHECK` records are in coordinate order, else ``unsorted``. ``detail``
        says where that came from, for messages (``header SO: unsorted``, ``no SO in the
        header; record 12 is out of order``). The file is rewound to its first record when
        the records were read.
    """
    order = header_sort_order(alignments.header.to_dict())
    if order not in SILENT_ORDERS:
        return order, f"header SO: {order}"
    try:
        start = alignments.tell()
    except (NotImplementedError, OSError, ValueError):  # text SAM: no seeking back
        start = None
    if start is None:
        import pysam

        with pysam.AlignmentFile(alignments.filename, check_sq=False) as fresh:
            in_order, record = records_in_coordinate_order(fresh)
    else:
        in_order, record = records_in_coordinate_order(alignments)
        alignments.seek(start)
    if in_order:
        return "coordinate", "no SO in the header; the records are in coordinate order"
    return "unsorted", f"no SO in the header; record {record} is out of coordinate order"


def sort_advice(path: str | os.PathLike) -> str:
    """The commands that sort and index ``path``."""
    return f"samtools sort -o sorted.bam {path} && samtools index sorted.bam"


def not_sorted_message(path: str | os.PathLike, detail: str) -> str:
    """Why a file read by position is refused: not coordinate-sorted (the one wording, for the
    counting jobs and input inspection alike)."""
    return f"is not coordinate-sorted ({detail}); sort and index it: {sort_advice(path)}"


def cram_reference_problem(
    path: str | os.PathLike, reference: str | os.PathLike | None, config_key: str
) -> str | None:
    """Why the reference a CRAM needs cannot be found (a message naming it), or None.

    htslib looks for the reference in ``reference`` when given, else where the header's
    ``@SQ UR:`` points, else in ``REF_PATH``/``REF_CACHE`` (or downloads it by MD5, which a
    compute node without network cannot). Without ``reference`` and with no ``UR`` file on
    disk and no ``REF_PATH``, decoding would fail on the first record.

    Parameters
    ----------
    path
        The CRAM.
    reference
        The FASTA given in the config, or None.
    config_key
        The config key that sets it (``car.cram_reference``, ``ctdna.reference``), named in the
        message.
    """
    if reference is not None:
        if os.path.exists(reference):
            return None
        return (
            f"the CRAM reference {reference} (config key {config_key}) does not exist: set "
            f"{config_key} to the FASTA the reads were aligned to"
        )
    import pysam

    try:
        with pysam.AlignmentFile(str(path), "rc", check_sq=False) as cram:
            sequences = cram.header.to_dict().get("SQ", [])
    except (OSError, ValueError):
        return None  # unreadable: the reader reports it
    locations = sorted({str(sq["UR"]) for sq in sequences if sq.get("UR")})
    local = [location.removeprefix("file://") for location in locations]
    if local and all(os.path.exists(location) for location in local):
        return None
    if os.environ.get("REF_PATH") or os.environ.get("REF_CACHE"):
        return None
    where = (
        f"its header points to {', '.join(locations[:2])}, which does not exist"
        if locations
        else "its header names no reference file (no @SQ UR: tag)"
    )
    return (
        f"cannot decode this CRAM: the reference FASTA it was written against is not found "
        f"({where}); set {config_key} to the FASTA the reads were aligned to"
    )
