"""A fast, streaming BAM reader for the CAR scan.

Scanning every read of a 10x BAM with pysam costs a Python object per read; this reader does
not. A compiled walker (:class:`carmscope.car._native.BamWalker`, C) reads the file, inflates
its BGZF blocks with libdeflate and walks the records of each megabyte of inflated data,
looking the k-mers of every primary read up in the specific k-mer lookup
(:class:`carmscope.car.kmers.KmerLookup`). Only the records with a hit come back to Python, as
raw bytes (:func:`parse_record`), where every k-mer of the read is checked. libdeflate is the
copy inside the pinned ``deflate`` package (found at run time; see ``_native.c``). The header
and the split points are read in Python (:func:`iter_blocks`, ``deflate`` or :mod:`zlib`).

With several threads the file is cut into byte ranges. Each cut moves to the next BGZF block
and then to the first record start in it, found by checking that a chain of records decodes
consistently from there (the approach of Hadoop-BAM's split guesser). Every range is walked
until it lands exactly on the next range's first record; anything else is an error, so a wrong
guess cannot go unnoticed. The walker releases the GIL while it reads, inflates and walks, so
threads run in parallel.

Memory is flat in the number of reads: one chunk per thread plus the candidate records.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from carmscope.car import _native
from carmscope.car.kmers import KmerLookup, lookup_args

try:  # libdeflate is about 3x faster than zlib on BGZF blocks
    import deflate as _deflate
except ImportError:  # pragma: no cover - exercised only without the optional package
    _deflate = None

BGZF_MAGIC = b"\x1f\x8b\x08\x04"
BAM_MAGIC = b"BAM\x01"
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
"""The empty BGZF block that ends every complete BAM file."""
CHUNK_BYTES = 1 << 20
"""Inflated bytes handed to the kernel at once (per thread)."""
READ_BYTES = 1 << 20
"""Compressed bytes read from the file at once (per thread)."""
MIN_RANGE_BYTES = 8 << 20
"""Smallest compressed range worth a thread of its own."""
SECONDARY_OR_SUPPLEMENTARY = 0x900
_FIXED = 36
"""Bytes of a record before its read name, ``block_size`` included."""
_CHAIN = 8
"""Consecutive records that must decode for a guessed record start to be accepted."""
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


def _block_size(path: str, buffer: bytes, at: int) -> tuple[int, int]:
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


@dataclass(frozen=True)
class Block:
    """One inflated BGZF block and the file offset of its compressed start."""

    offset: int
    data: bytes


def iter_blocks(path: str, start: int = 0, last: int | None = None) -> Iterator[Block]:
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

    Raises
    ------
    ReadsError
        On a damaged or truncated block, or a missing end-of-file block.
    """
    yield from (Block(offset, data) for offset, data in _blocks(path, start, last))


def _blocks(path: str, start: int, last: int | None) -> Iterator[tuple[int, bytes]]:
    """``(offset, inflated data)`` of each block (see :func:`iter_blocks`)."""
    with open(path, "rb") as handle:
        handle.seek(start)
        buffer = b""
        at = 0  # start of the next block in buffer
        offset = start  # its offset in the file
        final_size = -1
        while last is None or offset <= last:
            if len(buffer) - at < _MAX_BLOCK:
                buffer = buffer[at:] + handle.read(READ_BYTES)
                at = 0
            if at == len(buffer):
                break
            if len(buffer) - at < 18:
                raise ReadsError(path, f"truncated file: partial BGZF block at byte {offset}")
            total, extra_length = _block_size(path, buffer, at)
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


@dataclass(frozen=True)
class Position:
    """A place in a BAM: compressed offset of a block and offset within its inflated data."""

    block: int
    within: int


@dataclass(frozen=True)
class BamHeader:
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


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """The fields of a BAM record the CAR scan uses."""

    name: str
    flag: int
    reference_id: int
    sequence: str
    tags: dict[str, str] = field(default_factory=dict)


def parse_record(record: bytes, wanted: tuple[str, ...] = ("CB", "UB")) -> Record:
    """Decode one raw record (``block_size`` first); only the ``wanted`` tags are kept.

    Tag values are strings: text as is, numbers as ``str(number)``; array tags are skipped.

    Raises
    ------
    ValueError
        When the record is malformed.
    """
    name, flag, reference_id, sequence, tags = _native.parse_record(record, tuple(wanted))
    return Record(name, flag, reference_id, sequence, tags)


def scan_records(
    buffer, stop, table, bits, byte_filter, filter_bits, k, candidates
) -> tuple[int, int, int, int, int]:
    """Walk the records of ``buffer`` up to offset ``stop`` and flag those with k-mer hits.

    A read is flagged when its packed sequence (BAM SEQ) has a stored k-mer at an odd start:
    one byte (two bases) is shifted into a window of k + 1 bases at a time and the k-mer
    ending on its second base is looked up; with odd k that is the k-mer starting at each odd
    position. Of any two overlapping k-mers (an exact match of k + 1 bases) one starts at an
    odd position, so every read with such a match is found, at half the lookups. Bases other
    than A, C, G, T are read as A: a k-mer with an N matches only by chance, and every
    candidate is checked base by base afterwards.

    Parameters
    ----------
    candidates
        Output (``int64``, at least ``len(buffer) // 36 + 1`` slots).

    Returns
    -------
    position, n_records, n_primary, n_candidates, error
        Offset reached (the first record not wholly in ``buffer``, or ``stop``), records and
        primary (not secondary or supplementary) records walked, candidates written to
        ``candidates`` (record offsets of primary reads with a sampled k-mer hit) and 0, or the
        offset of a malformed record plus one.
    """
    return _native.scan_records(buffer, stop, table, bits, byte_filter, filter_bits, k, candidates)


# --- walking a range of the file --------------------------------------------------------------


@dataclass
class RangeResult:
    """Records walked: all of them, and the primary ones (not secondary or supplementary)."""

    n_records: int = 0
    n_primary: int = 0

    def add(self, other: RangeResult) -> None:
        self.n_records += other.n_records
        self.n_primary += other.n_primary


Consumer = Callable[[bytes], None]
"""Receives each candidate record (raw bytes, ``block_size`` first) as it is found."""


def walk_range(
    path: str, start: Position, stop: Position | None, lookup: KmerLookup, consume: Consumer
) -> RangeResult:
    """Scan the records from ``start`` up to ``stop`` (exclusive; None: the end of the file).

    Each candidate record is passed to ``consume``. The compiled walker reads
    :data:`READ_BYTES` of the file and inflates about :data:`CHUNK_BYTES` at a time.

    Raises
    ------
    ReadsError
        On a malformed or truncated record or BGZF block, a missing end-of-file block, or if
        the records do not land exactly on ``stop``.
    """
    table, bits, byte_filter, filter_bits = lookup_args(lookup)
    try:
        walker = _native.BamWalker(
            path,
            start.block,
            start.within,
            -1 if stop is None else stop.block,
            0 if stop is None else stop.within,
            table,
            bits,
            byte_filter,
            filter_bits,
            lookup.k,
            CHUNK_BYTES,
            READ_BYTES,
        )
        while (records := walker.step()) is not None:
            for record in records:
                consume(record)
    except _native.FormatError as error:
        raise ReadsError(path, str(error)) from None
    except OSError as error:
        raise ReadsError(path, f"cannot be read ({error.strerror or error})") from None
    n_records, n_primary = walker.counts
    return RangeResult(n_records, n_primary)


# --- splitting a file between threads ---------------------------------------------------------


def _next_block(path: str, handle, offset: int) -> int | None:
    """Compressed offset of the first BGZF block at or after ``offset`` (None: none left)."""
    handle.seek(offset)
    data = handle.read(3 * 65_536)
    search = 0
    while True:
        found = data.find(BGZF_MAGIC, search)
        if found < 0 or found + 18 > len(data):
            return None
        try:
            total, _ = _block_size(path, data, found)
        except ReadsError:
            total = 0
        following = data[found + total : found + total + 4]
        if total > 18 and (following == BGZF_MAGIC or found + total >= len(data)):
            return offset + found
        search = found + 1


def _valid_record(data: bytes, at: int, n_references: int) -> int:
    """Size of a plausible BAM record starting at ``at`` in ``data`` (0: not a record)."""
    if at + _FIXED > len(data):
        return 0
    block_size, reference, position = struct.unpack_from("<iii", data, at)
    l_read_name, _, _, n_cigar, _, l_seq, mate_reference, mate_position = struct.unpack_from(
        "<BBHHHiii", data, at + 12
    )
    if not (
        -1 <= reference < n_references
        and -1 <= mate_reference < n_references
        and position >= -1
        and mate_position >= -1
        and l_read_name >= 2
        and l_seq >= 0
        and _FIXED - 4 + l_read_name + 4 * n_cigar + (l_seq + 1) // 2 + l_seq <= block_size
    ):
        return 0
    name_end = at + _FIXED + l_read_name - 1
    if name_end >= len(data) or data[name_end] != 0:
        return 0
    name = data[at + _FIXED : name_end]
    if any(byte < 33 or byte > 126 for byte in name):
        return 0
    return 4 + block_size


def _first_record(data: bytes, first_block: int, n_references: int) -> int | None:
    """Offset of the first record start in the first ``first_block`` bytes of ``data``."""
    for at in range(first_block):
        position = at
        for _ in range(_CHAIN):
            size = _valid_record(data, position, n_references)
            if not size:
                break
            position += size
            if position >= len(data):
                return at
        else:
            return at
    return None


def split_points(path: str, header: BamHeader, parts: int) -> list[Position]:
    """Record starts that cut the file into about ``parts`` ranges of similar size."""
    size = os.path.getsize(path)
    points = [header.first_record]
    with open(path, "rb") as handle:
        for part in range(1, parts):
            offset = _next_block(path, handle, size * part // parts)
            while offset is not None and offset > points[-1].block:
                blocks = iter_blocks(path, offset, None)
                data = b""
                first_size = None
                for block in blocks:
                    data += block.data
                    first_size = len(block.data) if first_size is None else first_size
                    if len(data) >= 4 * 65_536:
                        break
                blocks.close()
                if not first_size:
                    offset = None
                    break
                within = _first_record(data, first_size, len(header.references))
                if within is not None:
                    points.append(Position(offset, within))
                    break
                offset = _next_block(path, handle, offset + 1)
    return points


def scan_bam(
    path: str | os.PathLike,
    lookup: KmerLookup,
    threads: int,
    new_consumer: Callable[[], Consumer],
) -> tuple[BamHeader, RangeResult, list[Consumer]]:
    """Scan every record of a BAM; with ``threads > 1`` ranges of the file in parallel.

    Parameters
    ----------
    path
        The BAM file.
    lookup
        Specific k-mers; records with a hit are candidates.
    threads
        Threads; files under :data:`MIN_RANGE_BYTES` per thread use fewer.
    new_consumer
        Makes the consumer of one range's candidates (each range has its own, so consumers
        need no lock).

    Returns
    -------
    header, counts, consumers
        The header, the record counts of the whole file and the consumers used.
    """
    path = str(path)
    header = read_header(path)
    parts = max(1, min(threads, os.path.getsize(path) // MIN_RANGE_BYTES))
    points = split_points(path, header, parts) if parts > 1 else [header.first_record]
    ranges = list(zip(points, [*points[1:], None], strict=True))
    consumers = [new_consumer() for _ in ranges]
    total = RangeResult()
    if len(ranges) == 1:
        total.add(walk_range(path, ranges[0][0], None, lookup, consumers[0]))
        return header, total, consumers
    with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
        futures = [
            pool.submit(walk_range, path, start, stop, lookup, consumer)
            for (start, stop), consumer in zip(ranges, consumers, strict=True)
        ]
        for future in futures:
            total.add(future.result())
    return header, total, consumers


def first_tagged(path: str | os.PathLike, tag: str, limit: int) -> tuple[bool, int]:
    """Whether one of the first ``limit`` records of a BAM carries ``tag``.

    Returns
    -------
    found, seen
        True as soon as a record has the tag; the records looked at before it.

    Raises
    ------
    ReadsError
        On a damaged file or record.
    """
    path = str(path)
    header = read_header(path)
    blocks = iter_blocks(path, header.first_record.block)
    data, position, seen, skip = b"", 0, 0, header.first_record.within
    try:
        for block in blocks:
            data, position, skip = data[position:] + block.data[skip:], 0, 0
            while position + 4 <= len(data):
                size = int.from_bytes(data[position : position + 4], "little", signed=True)
                if size < _FIXED - 4:
                    raise ReadsError(path, f"malformed BAM record (record {seen + 1})")
                if position + 4 + size > len(data):
                    break
                try:
                    tags = _native.parse_record(data[position : position + 4 + size], (tag,))[4]
                except ValueError:
                    raise ReadsError(path, f"malformed BAM record (record {seen + 1})") from None
                if tag in tags:
                    return True, seen
                seen += 1
                position += 4 + size
                if seen >= limit:
                    return False, seen
    finally:
        blocks.close()
    return False, seen


def is_bgzf(path: str | os.PathLike) -> bool:
    """Whether the file starts like a BGZF block."""
    with open(path, "rb") as handle:
        return handle.read(4) == BGZF_MAGIC


__all__ = [
    "BamHeader",
    "Position",
    "RangeResult",
    "ReadsError",
    "Record",
    "first_tagged",
    "parse_record",
    "read_header",
    "scan_bam",
]
