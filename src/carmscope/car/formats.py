"""Telling a reads file's format from its content, not its name: BAM, CRAM, SAM or FASTQ."""

from __future__ import annotations

import os
import re
import zlib

from carmscope.car import bam
from carmscope.car.bam import ReadsError

FORMATS = ("bam", "cram", "sam", "fastq")


_SAM_HEADER = re.compile(rb"^@(HD|SQ|RG|PG|CO)\t")


# --- formats ----------------------------------------------------------------------------------


def _text_format(path: str, head: bytes) -> str:
    """``sam`` or ``fastq`` from the first bytes of a text file."""
    lines = head.split(b"\n")
    if _SAM_HEADER.match(head) or (lines and lines[0].count(b"\t") >= 10):
        return "sam"
    if head.startswith(b"@") and len(lines) > 2 and lines[2].startswith(b"+"):
        return "fastq"
    raise ReadsError(path, "not a BAM, CRAM, SAM or FASTQ file")


def detect_format(path: str | os.PathLike) -> str:
    """Format of a reads file from its content: one of :data:`FORMATS`.

    Raises
    ------
    ReadsError
        When the file is missing, empty or of no known format.
    """
    path = str(path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(65_536)
    except OSError as error:
        raise ReadsError(path, f"cannot be read ({error.strerror or error})") from None
    if not head:
        raise ReadsError(path, "empty file")
    if head.startswith(b"CRAM"):
        return "cram"
    if head.startswith(b"\x1f\x8b"):
        inflated = _gunzip_head(path, head)
        if head.startswith(bam.BGZF_MAGIC) and inflated.startswith(bam.BAM_MAGIC):
            return "bam"
        return _text_format(path, inflated)
    return _text_format(path, head)


def _gunzip_head(path: str, head: bytes) -> bytes:
    """The first inflated bytes of a gzip (or BGZF) file."""
    try:
        return zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(head, 65_536)
    except zlib.error as error:
        raise ReadsError(path, f"corrupt gzip data ({error})") from None
