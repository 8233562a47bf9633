"""A fast, streaming BAM reader for the CAR scan.

Scanning every read of a 10x BAM with pysam costs a Python object per read; this reader does
not. A compiled walker (:class:`carmscope.bam._native.BamWalker`, C) reads the file, inflates
its BGZF blocks with libdeflate and walks the records of each megabyte of inflated data,
looking the k-mers of every primary read up in the specific k-mer lookup
(:class:`carmscope.car.kmers.KmerLookup`). Only the records with a hit come back to Python, as
raw bytes (:func:`parse_record`), where every k-mer of the read is checked. libdeflate is the
copy inside the pinned ``deflate`` package (found at run time; see ``_native.c``). The header
and the split points are read in Python (:mod:`carmscope.bam.bgzf`, the package's one BGZF
reader, whose names this module re-exports for the CAR scan).

With several threads the walker inflates with a pool of POSIX threads inside the C kernel:
while the calling thread walks the records of one batch of blocks (about
:data:`CHUNK_BYTES` inflated), the pool inflates the next, and the caller then helps inflate
what is left of it. Blocks are claimed one at a time, so a thread descheduled on a busy
machine delays one 64 kB block, not a fixed half of the file. Inflating costs about three
times as much as walking (on the benchmark BAM, about 0.34 s and 0.12 s of CPU), so one walking
thread keeps up with about :data:`THREADS_PER_WALKER` threads in all; beyond that the file is
also cut into byte ranges, each walked by its own walker and pool. Each cut moves to the next
BGZF block and then to the first record start in it, found by checking that a chain of records
decodes consistently from there (the approach of Hadoop-BAM's split guesser). Every range is
walked until it lands exactly on the next range's first record; anything else is an error, so
a wrong guess cannot go unnoticed. The walker releases the GIL while it reads, inflates and
walks, so ranges run in parallel.

Memory is flat in the number of reads: a few chunks per walker plus the candidate records.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from typing import NamedTuple

from carmscope.bam import _native
from carmscope.bam.bgzf import (
    BAM_MAGIC,
    BGZF_MAGIC,
    EOF_BLOCK,
    READ_BYTES,
    BamHeader,
    Position,
    ReadsError,
    block_size,
    iter_blocks,
    read_header,
)
from carmscope.car.kmers import KmerLookup, lookup_args

CHUNK_BYTES = 1 << 20
"""Inflated bytes handed to the kernel at once (per thread)."""
MIN_RANGE_BYTES = 8 << 20
"""Smallest compressed size worth a thread of its own (smaller files use fewer threads)."""
THREADS_PER_WALKER = 4
"""Threads one walker uses (itself and three inflating ones) before the file is cut into
ranges."""
SECONDARY_OR_SUPPLEMENTARY = 0x900
_FIXED = 36
"""Bytes of a record before its read name, ``block_size`` included."""
_CHAIN = 8
"""Consecutive records that must decode for a guessed record start to be accepted."""


# --- records ----------------------------------------------------------------------------------


class Record(NamedTuple):
    """The fields of a BAM record the CAR scan uses (``tags``: the wanted ones it has)."""

    name: str
    flag: int
    reference_id: int
    sequence: str
    tags: dict[str, str]


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
    buffer, stop, table, bits, byte_filter, filter_bits, k, candidates, prefilter=True
) -> tuple[int, int, int, int, int]:
    """Walk the records of ``buffer`` up to offset ``stop`` and flag those with k-mer hits.

    A read is flagged when its packed sequence (BAM SEQ) has a stored k-mer at an odd start:
    one byte (two bases) is shifted into a window of k + 1 bases at a time and the k-mer
    ending on its second base is looked up; with odd k that is the k-mer starting at each odd
    position. Of any two overlapping k-mers (an exact match of k + 1 bases) one starts at an
    odd position, so every read with such a match is found, at half the lookups. Bases other
    than A, C, G, T are read as A: a k-mer with an N matches only by chance, and every
    candidate is checked base by base afterwards.

    Before its k-mers, each read's shorter windows (k + 2 - 2 * stride bases, ending on every
    stride-th byte; stride 4 for k >= 17, 3 for k = 15, 2 for k = 13) are looked up in the set
    of every substring of that length of the stored k-mers. Every odd-start k-mer contains one
    of them, so the prefilter loses no read; the reads it passes on are checked as above. It
    makes the walk about a third cheaper (``docs/car_detection.md``, "Speed").

    Parameters
    ----------
    candidates
        Output (``int64``, at least ``len(buffer) // 36 + 1`` slots).
    prefilter
        Look up the shorter windows first (the default; the walker always does). Off, every
        odd-start k-mer is looked up: the same reads are flagged, more slowly.

    Returns
    -------
    position, n_records, n_primary, n_candidates, error
        Offset reached (the first record not wholly in ``buffer``, or ``stop``), records and
        primary (not secondary or supplementary) records walked, candidates written to
        ``candidates`` (record offsets of primary reads with a sampled k-mer hit) and 0, or the
        offset of a malformed record plus one.
    """
    return _native.scan_records(
        buffer, stop, table, bits, byte_filter, filter_bits, k, candidates, prefilter
    )


# --- walking a range of the file --------------------------------------------------------------


class RangeResult:
    """Records walked: all of them, and the primary ones (not secondary or supplementary)."""

    __slots__ = ("n_primary", "n_records")

    def __init__(self, n_records: int = 0, n_primary: int = 0) -> None:
        self.n_records = n_records
        self.n_primary = n_primary

    def add(self, other: RangeResult) -> None:
        self.n_records += other.n_records
        self.n_primary += other.n_primary


Consumer = Callable[[bytes], None]
"""Receives each candidate record (raw bytes, ``block_size`` first) as it is found."""


def walk_range(
    path: str,
    start: Position,
    stop: Position | None,
    lookup: KmerLookup,
    consume: Consumer,
    threads: int = 1,
) -> RangeResult:
    """Scan the records from ``start`` up to ``stop`` (exclusive; None: the end of the file).

    Each candidate record is passed to ``consume``. The compiled walker reads
    :data:`READ_BYTES` of the file and inflates about :data:`CHUNK_BYTES` at a time, with
    ``threads - 1`` inflating threads beside the caller's.

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
            threads,
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
            total, _ = block_size(path, data, found)
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
        Threads; files under :data:`MIN_RANGE_BYTES` per thread use fewer. Up to
        :data:`THREADS_PER_WALKER` threads inflate for one walker; more cut the file into
        ranges.
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
    threads = max(1, min(threads, os.path.getsize(path) // MIN_RANGE_BYTES))
    parts = -(-threads // THREADS_PER_WALKER)
    points = split_points(path, header, parts) if parts > 1 else [header.first_record]
    ranges = list(zip(points, [*points[1:], None], strict=True))
    # the threads shared between the ranges (a cut may find fewer ranges than asked)
    shares = [threads // len(ranges) + (i < threads % len(ranges)) for i in range(len(ranges))]
    consumers = [new_consumer() for _ in ranges]
    total = RangeResult()
    if len(ranges) == 1:
        total.add(walk_range(path, ranges[0][0], None, lookup, consumers[0], shares[0]))
        return header, total, consumers
    from concurrent.futures import ThreadPoolExecutor  # only many-threaded scans pay its import

    with ThreadPoolExecutor(max_workers=len(ranges)) as pool:
        futures = [
            pool.submit(walk_range, path, start, stop, lookup, consumer, share)
            for (start, stop), consumer, share in zip(ranges, consumers, shares, strict=True)
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


__all__ = [
    "BAM_MAGIC",
    "BGZF_MAGIC",
    "EOF_BLOCK",
    "BamHeader",
    "Position",
    "RangeResult",
    "ReadsError",
    "Record",
    "first_tagged",
    "iter_blocks",
    "parse_record",
    "read_header",
    "scan_bam",
]
