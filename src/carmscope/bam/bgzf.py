"""BGZF blocks and the BAM header, read in Python.

BGZF (the block-gzip container of BAM, tabix-indexed VCF and others; SAM/BAM specification,
section 4.1) is a series of gzip members of at most 64 KiB inflated each, with the compressed
size in a ``BC`` extra subfield. This module reads them for the few places that need whole
blocks in Python: the BAM header (:func:`read_header`), the split points of a threaded CAR scan
(:mod:`carmscope.car.bam`) and the allele-counting record scan (:mod:`carmscope.ctdna.bamscan`).
The records themselves are walked in C (:mod:`carmscope.bam._native`). Blocks are inflated with
libdeflate (the pinned ``deflate`` package), or :mod:`zlib` without it.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from typing import NamedTuple

try:  # libdeflate is about 3x faster than zlib on BGZF blocks
    import deflate as _deflate
except ImportError:  # pragma: no cover - exercised only without the optional package
    _deflate = None

BGZF_MAGIC = b"\x1f\x8b\x08\x04"
BAM_MAGIC = b"BAM\x01"
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
"""The empty BGZF block that ends every complete BAM file."""
READ_BYTES = 1 << 20
"""Compressed bytes read from the file at once (per thread)."""
_MAX_BLOCK = 65_536
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


class ReadsError(ValueError):
    """A reads file that cannot be scanned; the message starts with its path."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


# --- BGZF blocks ------------------------------------------------------------------------------


def inflate(data: bytes | memoryview, size: int) -> bytes:
    """Raw-deflate ``data`` into ``size`` bytes (libdeflate if installed, else zlib)."""
    if size == 0:
        return b""
    if _deflate is not None:
        return _deflate.deflate_decompress(data, size)
    return zlib.decompress(data, -15)


_STANDARD_EXTRA = b"\x06\x00BC\x02\x00"
"""XLEN = 6 and a single BC subfield: the extra field of (almost) every BGZF block."""


def block_size(path: str, buffer: bytes, at: int) -> tuple[int, int]:
    """Total size and extra-field length of the BGZF block starting at ``buffer[at]``."""
    if len(buffer) - at < 18 or buffer[at : at + 4] != BGZF_MAGIC:
        raise ReadsError(path, "not a BGZF file (BAM): bad block header")
    if buffer[at + 10 : at + 16] == _STANDARD_EXTRA:
        return _U16.unpack_from(buffer, at + 16)[0] + 1, 6
    extra_length = _U16.unpack_from(buffer, at + 10)[0]
    extra = buffer[at + 12 : at + 12 + extra_length]
    offset = 0
    while offset + 4 <= len(extra):
        sub_length = _U16.unpack_from(extra, offset + 2)[0]
        if extra[offset : offset + 2] == b"BC" and sub_length == 2:
            return _U16.unpack_from(extra, offset + 4)[0] + 1, extra_length
        offset += 4 + sub_length
    raise ReadsError(path, "not a BGZF file (BAM): block without a BSIZE field")


class Block(NamedTuple):
    """One inflated BGZF block and the file offset of its compressed start."""

    offset: int
    data: bytes


def iter_blocks(
    path: str, start: int = 0, last: int | None = None, read_bytes: int = READ_BYTES
) -> Iterator[Block]:
    """Inflated BGZF blocks from compressed offset ``start`` on.

    Parameters
    ----------
    path
        The BAM (or any BGZF) file.
    start
        Compressed offset of a block start.
    last
        Offset of the last block to yield; None reads to the end and then checks that the file
        ends with the BGZF end-of-file block.
    read_bytes
        Compressed bytes read from the file at once (less for short reads of a region).

    Raises
    ------
    ReadsError
        On a damaged or truncated block, or a missing end-of-file block.
    """
    yield from (Block(offset, data) for offset, data in _blocks(path, start, last, read_bytes))


def _blocks(
    path: str, start: int, last: int | None, read_bytes: int
) -> Iterator[tuple[int, bytes]]:
    """``(offset, inflated data)`` of each block (see :func:`iter_blocks`)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        buffer = b""
        at = 0  # start of the next block in buffer
        offset = start  # its offset in the file
        final_size = -1
        while last is None or offset <= last:
            if len(buffer) - at < _MAX_BLOCK:
                buffer = buffer[at:] + handle.read(read_bytes)
                at = 0
            if at == len(buffer):
                break
            if len(buffer) - at < 18:
                raise ReadsError(path, f"truncated file: partial BGZF block at byte {offset}")
            total, extra_length = block_size(path, buffer, at)
            if len(buffer) - at < total:
                raise ReadsError(path, f"truncated file: partial BGZF block at byte {offset}")
            final_size = _U32.unpack_from(buffer, at + total - 4)[0]
            with memoryview(buffer) as view:
                data = _inflate_block(
                    path, view[at + 12 + extra_length : at + total - 8], final_size, offset
                )
            yield offset, data
            at += total
            offset += total
        if last is None and final_size != 0:
            raise ReadsError(
                path, "truncated file: no BGZF end-of-file block (the copy may be incomplete)"
            )


def _inflate_block(path: str, data: memoryview, size: int, offset: int) -> bytes:
    try:
        inflated = inflate(data, size)
    except Exception as error:  # libdeflate and zlib raise their own error types
        raise ReadsError(path, f"corrupt BGZF block at byte {offset} ({error})") from None
    if len(inflated) != size:
        raise ReadsError(path, f"corrupt BGZF block at byte {offset} (wrong inflated size)")
    return inflated


# --- the BAM header ---------------------------------------------------------------------------


class Position(NamedTuple):
    """A place in a BAM: compressed offset of a block and offset within its inflated data."""

    block: int
    within: int


class BamHeader(NamedTuple):
    """What the scan needs from a BAM header."""

    text: str
    references: tuple[str, ...]
    first_record: Position


def read_header(path: str | os.PathLike) -> BamHeader:
    """Header of a BAM file and where its first record starts.

    Raises
    ------
    ReadsError
        When the file is not a BAM or its header is truncated.
    """
    path = str(path)
    data = b""
    starts: list[tuple[int, int]] = []  # (block offset, position of its first byte in data)
    for block in iter_blocks(path):
        starts.append((block.offset, len(data)))
        data += block.data
        end = _header_end(path, data)
        if end is not None:
            text_length = int.from_bytes(data[4:8], "little")
            text = data[8 : 8 + text_length].decode("utf-8", "replace").rstrip("\x00")
            return BamHeader(text, _reference_names(data, text_length), _locate(starts, end))
    raise ReadsError(path, "not a BAM file: empty or truncated header")


def _header_end(path: str, data: bytes) -> int | None:
    """Offset just past the header in the inflated ``data``, or None if it needs more bytes."""
    if len(data) >= 4 and data[:4] != BAM_MAGIC:
        raise ReadsError(path, "not a BAM file (no BAM magic after BGZF decompression)")
    if len(data) < 12:
        return None
    position = 8 + int.from_bytes(data[4:8], "little")
    if len(data) < position + 4:
        return None
    n_references = int.from_bytes(data[position : position + 4], "little")
    position += 4
    for _ in range(n_references):
        if len(data) < position + 4:
            return None
        position += 4 + int.from_bytes(data[position : position + 4], "little") + 4
    return position if len(data) >= position else None


def _reference_names(data: bytes, text_length: int) -> tuple[str, ...]:
    position = 8 + text_length
    n_references = int.from_bytes(data[position : position + 4], "little")
    position += 4
    names = []
    for _ in range(n_references):
        length = int.from_bytes(data[position : position + 4], "little")
        names.append(data[position + 4 : position + 4 + length - 1].decode("ascii", "replace"))
        position += 4 + length + 4
    return tuple(names)


def _locate(starts: list[tuple[int, int]], position: int) -> Position:
    """The block and offset within it of byte ``position`` of the concatenated blocks."""
    block, first = starts[0]
    for offset, begin in starts:
        if begin > position:
            break
        block, first = offset, begin
    return Position(block, position - first)


def is_bgzf(path: str | os.PathLike) -> bool:
    """Whether the file starts like a BGZF block."""
    with open(path, "rb") as handle:
        return handle.read(4) == BGZF_MAGIC
