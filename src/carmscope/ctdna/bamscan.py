"""Allele counting straight from BAM records: the fast path of ``count_alleles``.

:func:`carmscope.ctdna.alleles.count_alleles` reads each cluster of nearby sites with one pass
over its reads. Through pysam that pass costs a Python object and several attribute lookups
per read; here it costs none. For a BAM with a ``.bai`` index, :class:`RecordScanner` finds
where a cluster's reads start from the index's linear index, inflates the BGZF blocks from there
(libdeflate through the ``deflate`` package, :mod:`zlib` without it) and walks the raw records
with a compiled kernel (:func:`_scan`) that applies the read filters, finds what each read shows
at every site it spans (the same rules as the observers in ``alleles.py``) and writes one
observation per read and site into flat arrays. A second kernel (:func:`_tally`) groups the
observations by site and read name (mates of a fragment) and applies the one-fragment-one-count
rule. Nothing is kept per read beyond those arrays.

Anything this path does not handle gives ``None`` and the caller counts the cluster with pysam
instead: CRAM, a ``.csi`` index (htslib prefers it, and it has no linear index), a record whose
CIGAR is kept in a ``CG`` tag (more than 65,535 operations; htslib moves it back on reading), a
malformed or truncated record (pysam then raises its own error).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
from numba import njit

try:  # libdeflate is about 3x faster than zlib on BGZF blocks
    import deflate as _deflate
except ImportError:  # pragma: no cover - exercised only without the optional package
    _deflate = None

KIND_CODES = {"snv": 0, "insertion": 1, "deletion": 2}
BASE_CODES = {"A": 1, "C": 2, "G": 4, "T": 8}
"""4-bit BAM codes of the bases (``=ACMGRSVTWYHKDBN``)."""
ALLELES = ("ref", "alt", "other")
"""Allele codes 0, 1, 2 of the kernels."""
MAX_COMBINED_QUALITY = 200

_NEED_DATA, _DONE, _FULL, _UNSUPPORTED, _MALFORMED = 0, 1, 2, 3, 4
_BGZF_MAGIC = b"\x1f\x8b\x08\x04"
_MAX_CHUNK_BLOCKS = 64
"""BGZF blocks (up to 64 KiB inflated each) handed to the kernel at once, at most; a cluster
starts with one and doubles, so small clusters inflate little beyond their reads."""
_READ_BYTES = 1 << 18


class UnsupportedError(Exception):
    """The record scan cannot count this cluster; pysam will."""


# --- the index --------------------------------------------------------------------------------


def bai_path(bam_path: str | os.PathLike) -> str | None:
    """The ``.bai`` index htslib would use for ``bam_path``, or None (no index, or a ``.csi``,
    which htslib prefers)."""
    path = str(bam_path)
    stem = os.path.splitext(path)[0]
    if os.path.exists(path + ".csi") or os.path.exists(stem + ".csi"):
        return None
    for candidate in (path + ".bai", stem + ".bai"):
        if os.path.exists(candidate):
            return candidate
    return None


def read_linear_index(path: str) -> list[np.ndarray]:
    """Per reference, the BAI linear index: the virtual file offset of the first read that
    overlaps each 16 kb window (htslib fills empty windows with an earlier offset)."""
    with open(path, "rb") as handle:
        data = handle.read()
    if data[:4] != b"BAI\x01":
        raise UnsupportedError(f"{path} is not a BAI index")
    (n_references,) = struct.unpack_from("<i", data, 4)
    at = 8
    linear = []
    for _ in range(n_references):
        (n_bins,) = struct.unpack_from("<i", data, at)
        at += 4
        for _ in range(n_bins):
            (n_chunks,) = struct.unpack_from("<i", data, at + 4)
            at += 8 + 16 * n_chunks
        (n_windows,) = struct.unpack_from("<i", data, at)
        at += 4
        linear.append(np.frombuffer(data, dtype="<u8", count=n_windows, offset=at))
        at += 8 * n_windows
    return linear


# --- BGZF -------------------------------------------------------------------------------------


def _inflate(data: memoryview, size: int) -> bytes:
    if size == 0:
        return b""
    if _deflate is not None:
        return _deflate.deflate_decompress(data, size)
    return zlib.decompress(data, -15)


def _inflated_chunks(handle, virtual_offset: int) -> Iterator[list[bytes]]:
    """Inflated blocks from a BGZF virtual offset on: 1, 2, 4, ... blocks at a time."""
    handle.seek(virtual_offset >> 16)
    skip = virtual_offset & 0xFFFF
    raw, at = b"", 0
    wanted = 1
    while True:
        pieces = []
        for _ in range(wanted):
            if len(raw) - at < 65_536 + 26:
                raw = raw[at:] + handle.read(_READ_BYTES)
                at = 0
            if len(raw) - at < 18:
                if len(raw) > at:
                    raise UnsupportedError("truncated BGZF block")
                break
            if raw[at : at + 4] != _BGZF_MAGIC:
                raise UnsupportedError("not a BGZF block")
            (extra_length,) = struct.unpack_from("<H", raw, at + 10)
            total = _block_size(raw, at, extra_length)
            if len(raw) - at < total:
                raise UnsupportedError("truncated BGZF block")
            (size,) = struct.unpack_from("<I", raw, at + total - 4)
            with memoryview(raw) as view:
                try:
                    data = _inflate(view[at + 12 + extra_length : at + total - 8], size)
                except Exception as error:  # libdeflate and zlib raise their own types
                    raise UnsupportedError(f"corrupt BGZF block ({error})") from None
            at += total
            if skip:
                data, skip = data[skip:], 0
            pieces.append(data)
        if not pieces:
            return
        yield pieces
        wanted = min(2 * wanted, _MAX_CHUNK_BLOCKS)


def _block_size(raw: bytes, at: int, extra_length: int) -> int:
    """Total size of the BGZF block at ``raw[at]`` (its BSIZE subfield plus one)."""
    field = at + 12
    end = field + extra_length
    while field + 4 <= end:
        length = raw[field + 2] | (raw[field + 3] << 8)
        if raw[field] == 66 and raw[field + 1] == 67 and length == 2:  # "BC"
            return (raw[field + 4] | (raw[field + 5] << 8)) + 1
        field += 4 + length
    raise UnsupportedError("BGZF block without BSIZE")


# --- kernels ----------------------------------------------------------------------------------


def _crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ 0xEDB88320 if value & 1 else value >> 1
        table[byte] = value
    return table


_CRC_TABLE = _crc_table()
_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@njit(cache=True, nogil=True, inline="always")
def _u16(buffer, at):
    return np.int64(buffer[at]) | (np.int64(buffer[at + 1]) << 8)


@njit(cache=True, nogil=True, inline="always")
def _u32(buffer, at):
    return (
        np.int64(buffer[at])
        | (np.int64(buffer[at + 1]) << 8)
        | (np.int64(buffer[at + 2]) << 16)
        | (np.int64(buffer[at + 3]) << 24)
    )


@njit(cache=True, nogil=True, inline="always")
def _i32(buffer, at):
    value = _u32(buffer, at)
    return value - (np.int64(1) << 32) if value >= (np.int64(1) << 31) else value


@njit(cache=True, nogil=True)
def _query_position(buffer, cigar_at, n_cigar, start, ref_pos):
    """Query index aligned to a reference position, or -1 (gap, clip or not covered)."""
    ref = start
    query = np.int64(0)
    for number in range(n_cigar):
        value = _u32(buffer, cigar_at + 4 * number)
        op = value & 15
        length = value >> 4
        if op == 0 or op == 7 or op == 8:  # M, =, X
            if ref <= ref_pos < ref + length:
                return query + ref_pos - ref
            ref += length
            query += length
        elif op == 1 or op == 4:  # I, S
            query += length
        elif op == 2 or op == 3:  # D, N
            ref += length
    return np.int64(-1)


@njit(cache=True, nogil=True)
def _gap_in(buffer, cigar_at, n_cigar, start, gap_start, gap_end, exact):
    """Whether a deletion or skip spans exactly (``exact``) or overlaps the reference interval
    [gap_start, gap_end)."""
    ref = start
    for number in range(n_cigar):
        value = _u32(buffer, cigar_at + 4 * number)
        op = value & 15
        length = value >> 4
        if op == 2 or op == 3:
            if exact:
                if ref == gap_start and ref + length == gap_end:
                    return True
            elif ref < gap_end and gap_start < ref + length:
                return True
            ref += length
        elif op == 0 or op == 7 or op == 8:
            ref += length
    return False


@njit(cache=True, nogil=True)
def _insertion_before(buffer, cigar_at, n_cigar, start, ref_pos):
    """``(query start, length)`` of the (last) insertion right before a reference position,
    or (-1, 0)."""
    ref = start
    query = np.int64(0)
    found, found_length = np.int64(-1), np.int64(0)
    for number in range(n_cigar):
        value = _u32(buffer, cigar_at + 4 * number)
        op = value & 15
        length = value >> 4
        if op == 0 or op == 7 or op == 8:
            ref += length
            query += length
        elif op == 1:
            if ref == ref_pos:
                found, found_length = query, length
            query += length
        elif op == 4:
            query += length
        elif op == 2 or op == 3:
            ref += length
    return found, found_length


@njit(cache=True, nogil=True)
def _insertion_within(buffer, cigar_at, n_cigar, start, low, high):
    """Whether an insertion sits right before a reference position in (low, high]."""
    ref = start
    for number in range(n_cigar):
        value = _u32(buffer, cigar_at + 4 * number)
        op = value & 15
        length = value >> 4
        if op == 0 or op == 7 or op == 8 or op == 2 or op == 3:
            ref += length
        elif op == 1 and low < ref <= high:
            return True
    return False


@njit(cache=True, nogil=True, inline="always")
def _base(buffer, sequence_at, query):
    packed = buffer[sequence_at + (query >> 1)]
    return (packed >> 4) if query & 1 == 0 else (packed & 15)


@njit(cache=True, nogil=True, inline="always")
def _quality(buffer, quality_at, has_qualities, query):
    return np.int64(buffer[quality_at + query]) if has_qualities else np.int64(0)


@njit(cache=True, nogil=True)
def _observe(
    buffer, start, end, cigar_at, n_cigar, sequence_at, quality_at, has_qualities,
    site, anchor, kinds, ref_codes, alt_codes, inserted_at, inserted_length, inserted_codes,
    deleted_length, flank,
):  # fmt: skip
    """``(allele, quality)`` a read shows at one site (allele -1: not counted there); the
    rules of ``alleles._snv_observer``, ``_insertion_observer``, ``_deletion_observer`` and
    ``_with_flank``."""
    kind = kinds[site]
    if kind == 0:  # SNV
        query = _query_position(buffer, cigar_at, n_cigar, start, anchor)
        if query < 0:
            return -1, 0
        base = _base(buffer, sequence_at, query)
        allele = 0 if base == ref_codes[site] else 1 if base == alt_codes[site] else 2
        return allele, _quality(buffer, quality_at, has_qualities, query)
    after = anchor + 1 if kind == 1 else anchor + deleted_length[site] + 1
    if anchor - start + 1 < flank or end - after < flank:
        return -1, 0
    query = _query_position(buffer, cigar_at, n_cigar, start, anchor)
    if query < 0:
        return -1, 0
    quality = _quality(buffer, quality_at, has_qualities, query)
    if kind == 1:  # insertion
        deleted_next = _gap_in(buffer, cigar_at, n_cigar, start, anchor + 1, anchor + 2, False)
        if not deleted_next and _query_position(buffer, cigar_at, n_cigar, start, after) < 0:
            return -1, 0
        inserted, length = _insertion_before(buffer, cigar_at, n_cigar, start, anchor + 1)
        if inserted >= 0:
            same = length == inserted_length[site]
            for offset in range(length):
                quality = min(
                    quality, _quality(buffer, quality_at, has_qualities, inserted + offset)
                )
                if same and (
                    _base(buffer, sequence_at, inserted + offset)
                    != inserted_codes[inserted_at[site] + offset]
                ):
                    same = False
            return (1 if same else 2), quality
        return (2 if deleted_next else 0), quality
    # deletion
    if _gap_in(buffer, cigar_at, n_cigar, start, anchor + 1, after, True):
        return 1, quality
    if _gap_in(buffer, cigar_at, n_cigar, start, anchor + 1, after, False) or _insertion_within(
        buffer, cigar_at, n_cigar, start, anchor, after
    ):
        return 2, quality
    if _query_position(buffer, cigar_at, n_cigar, start, after) < 0:
        return -1, 0
    return 0, quality


@njit(cache=True, nogil=True)
def _scan(
    buffer, tid, stop, anchors, kinds, ref_codes, alt_codes, inserted_at, inserted_length,
    inserted_codes, deleted_length, flank, excluded, improper, min_mapping_quality, by_name,
    crc_table, state, out_site, out_allele, out_quality, out_reverse, out_key, out_crc,
):  # fmt: skip
    """Walk the records in ``buffer`` and write one observation per read and site it spans.

    ``state`` carries, between calls, the first site not left of the reads, the number of
    reads walked (the fragment key when mates are not merged) and of observations written.
    Returns ``(offset reached, status)``: more data needed (the record at the offset is
    incomplete), done (a record past the cluster, or past the last site), output arrays full
    (call again from the offset with larger ones), unsupported or malformed record there.
    """
    first, ordinal, n_out = state[0], state[1], state[2]
    last = anchors.size
    capacity = out_site.size
    at = np.int64(0)
    size = buffer.size
    status = _NEED_DATA
    while True:
        if at + 4 > size:
            break
        block_size = _i32(buffer, at)
        if block_size < 32:
            status = _MALFORMED
            break
        if at + 4 + block_size > size:
            break
        record_end = at + 4 + block_size
        ref_id = _i32(buffer, at + 4)
        start = _i32(buffer, at + 8)
        if ref_id != tid:
            if 0 <= ref_id < tid:  # an earlier contig's read (the index points before ours)
                at = record_end
                continue
            status = _DONE
            break
        if start >= stop:
            status = _DONE
            break
        while first < last and anchors[first] < start:
            first += 1
        if first == last:
            status = _DONE
            break
        name_length = np.int64(buffer[at + 12])
        mapping_quality = np.int64(buffer[at + 13])
        n_cigar = _u16(buffer, at + 16)
        flag = _u16(buffer, at + 18)
        l_seq = _i32(buffer, at + 20)
        cigar_at = at + 36 + name_length
        sequence_at = cigar_at + 4 * n_cigar
        quality_at = sequence_at + (l_seq + 1) // 2
        if l_seq < 0 or quality_at + l_seq > record_end:
            status = _MALFORMED
            break
        if n_cigar > 0 and l_seq > 0:
            value = _u32(buffer, cigar_at)
            if value & 15 == 4 and value >> 4 == l_seq:  # CIGAR kept in a CG tag
                status = _UNSUPPORTED
                break
        if flag & 4 or n_cigar == 0:  # pysam: no reference_end
            ordinal += 1
            at = record_end
            continue
        end = start
        for number in range(n_cigar):
            value = _u32(buffer, cigar_at + 4 * number)
            op = value & 15
            if op == 0 or op == 2 or op == 3 or op == 7 or op == 8:
                end += value >> 4
        if end == start:
            end = start + 1  # as bam_endpos
        if end <= anchors[first]:
            ordinal += 1
            at = record_end
            continue
        beyond = first
        while beyond < last and anchors[beyond] < end:
            beyond += 1
        if (
            flag & excluded
            or (improper and flag & 1 and not flag & 2)
            or mapping_quality < min_mapping_quality
            or l_seq == 0
        ):
            ordinal += 1
            at = record_end
            continue
        if n_out + beyond - first > capacity:
            status = _FULL
            break
        reverse = (flag & 16) != 0
        has_qualities = buffer[quality_at] != 255
        if by_name:
            key = _FNV_OFFSET
            crc = np.uint32(0xFFFFFFFF)
            for offset in range(at + 36, at + 36 + name_length - 1):  # without the NUL
                byte = buffer[offset]
                key = (key ^ np.uint64(byte)) * _FNV_PRIME
                crc = crc_table[(crc ^ np.uint32(byte)) & np.uint32(255)] ^ (crc >> np.uint32(8))
            crc = crc ^ np.uint32(0xFFFFFFFF)
            key = key ^ (np.uint64(name_length) << np.uint64(56))
        else:
            key = np.uint64(ordinal)
            crc = np.uint32(0)
        for site in range(first, beyond):
            allele, quality = _observe(
                buffer, start, end, cigar_at, n_cigar, sequence_at, quality_at, has_qualities,
                site, anchors[site], kinds, ref_codes, alt_codes, inserted_at, inserted_length,
                inserted_codes, deleted_length, flank,
            )  # fmt: skip
            if allele >= 0:
                out_site[n_out] = site
                out_allele[n_out] = allele
                out_quality[n_out] = quality
                out_reverse[n_out] = reverse
                out_key[n_out] = key
                out_crc[n_out] = crc
                n_out += 1
        ordinal += 1
        at = record_end
    state[0], state[1], state[2] = first, ordinal, n_out
    return at, status


_MIX_CRC = np.uint64(0x9E3779B97F4A7C15)
_MIX_SITE = np.uint64(0xC2B2AE3D27D4EB4F)
_MIX_FINAL = np.uint64(0xFF51AFD7ED558CCD)


@njit(cache=True, nogil=True)
def _tally(site, allele, quality, reverse, key, crc, min_base_quality, counts):
    """Group the observations (in file order) into fragments, one site and one read name
    (``key`` and ``crc``) each, resolve each fragment to one observation and count it (see
    ``AlleleFilters.count_overlapping_mates_once``).

    Fragments are found with an open-addressing hash table and kept as linked lists in file
    order (no sort). ``counts`` columns: ref, alt, other, depth, ref_fwd, ref_rev, alt_fwd,
    alt_rev.
    """
    n = site.size
    size = 16
    while size < 2 * n:
        size <<= 1
    mask = np.uint64(size - 1)
    slots = np.full(size, -1, dtype=np.int64)
    following = np.full(n, -1, dtype=np.int64)  # next observation of the same fragment
    tail = np.empty(n, dtype=np.int64)  # of a fragment's first observation: its last one
    first = np.zeros(n, dtype=np.bool_)
    for number in range(n):
        mixed = (
            key[number]
            ^ (np.uint64(crc[number]) * _MIX_CRC)
            ^ (np.uint64(site[number]) * _MIX_SITE)
        )
        mixed = (mixed ^ (mixed >> np.uint64(33))) * _MIX_FINAL
        slot = (mixed ^ (mixed >> np.uint64(33))) & mask
        while True:
            head = slots[slot]
            if head < 0:
                slots[slot] = number
                first[number] = True
                tail[number] = number
                break
            if site[head] == site[number] and key[head] == key[number] and crc[head] == crc[number]:
                following[tail[head]] = number
                tail[head] = number
                break
            slot = (slot + np.uint64(1)) & mask
    for head in range(n):
        if not first[head]:
            continue
        chosen = head
        chosen_quality = np.int64(quality[head])
        if following[head] >= 0:
            size_of = 0
            same = True
            total = np.int64(0)
            best = np.int64(-1)
            member = head
            while member >= 0:
                size_of += 1
                total += quality[member]
                if allele[member] != allele[head]:
                    same = False
                best = max(best, np.int64(quality[member]))
                member = following[member]
            if same:
                # the mate whose strand counts: pseudo-random by read name (CRC32)
                chosen = head
                for _ in range(np.int64(crc[head] % np.uint32(size_of))):
                    chosen = following[chosen]
                chosen_quality = min(total, MAX_COMBINED_QUALITY)
            else:
                chosen = -1
                member = head
                while member >= 0:
                    if quality[member] == best:
                        if chosen >= 0 and allele[member] != allele[chosen]:
                            chosen = -2  # a tie between different alleles: neither counts
                            break
                        chosen = member
                    member = following[member]
                chosen_quality = best
        if chosen < 0 or chosen_quality < min_base_quality:
            continue
        row = site[chosen]
        code = allele[chosen]
        counts[row, code] += 1
        counts[row, 3] += 1
        if code < 2:
            counts[row, 4 + 2 * code + (1 if reverse[chosen] else 0)] += 1


# --- the scanner ------------------------------------------------------------------------------


class RecordScanner:
    """Counts clusters of sites from the raw records of one BAM (see the module docstring).

    Parameters
    ----------
    bam_path
        The BAM.
    index_path
        Its ``.bai`` index (:func:`bai_path`).
    first_record
        Virtual offset of the first record (after the header), a lower bound for every start.
    """

    def __init__(self, bam_path: str, index_path: str, first_record: int) -> None:
        self.linear = read_linear_index(index_path)
        self.first_record = first_record
        self.handle = open(bam_path, "rb")  # noqa: SIM115 - closed by close()

    def close(self) -> None:
        self.handle.close()

    def __enter__(self) -> RecordScanner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def count(
        self,
        tid: int,
        start: int,
        stop: int,
        anchors: Sequence[int],
        kinds: Sequence[str],
        refs: Sequence[str],
        alts: Sequence[str],
        filters,
        excluded: int,
    ) -> np.ndarray | None:
        """Counts (one row per site, columns as ``alleles.COUNT_COLUMNS``) of the sorted sites
        of one cluster on reference ``tid``, spanning [start, stop); None when the cluster
        must be counted with pysam."""
        try:
            return self._count(tid, start, stop, anchors, kinds, refs, alts, filters, excluded)
        except UnsupportedError:
            return None

    def _count(self, tid, start, stop, anchors, kinds, refs, alts, filters, excluded):
        n_sites = len(anchors)
        counts = np.zeros((n_sites, 8), dtype=np.int64)
        linear = self.linear[tid] if tid < len(self.linear) else None
        if linear is None or linear.size == 0:
            return counts  # no reads on this contig
        virtual_offset = max(int(linear[min(start >> 14, linear.size - 1)]), self.first_record)
        sites = _site_arrays(anchors, kinds, refs, alts)
        capacity = 1 << 16
        out = _outputs(capacity)
        state = np.zeros(3, dtype=np.int64)
        pending = b""
        status = _NEED_DATA
        for blocks in _inflated_chunks(self.handle, virtual_offset):
            pending = b"".join([pending, *blocks])
            buffer = np.frombuffer(pending, dtype=np.uint8)
            while True:
                reached, status = _scan(
                    buffer, tid, stop, *sites, filters.min_indel_flank, excluded,
                    filters.exclude_improper_pairs, filters.min_mapping_quality,
                    filters.count_overlapping_mates_once, _CRC_TABLE, state, *out,
                )  # fmt: skip
                if status != _FULL:
                    break
                capacity *= 2
                out = _grow(out, capacity, int(state[2]))
                buffer = buffer[reached:]
                pending = pending[reached:]
            if status != _NEED_DATA:
                break
            pending = pending[reached:]
        if status in (_UNSUPPORTED, _MALFORMED) or (status == _NEED_DATA and pending):
            raise UnsupportedError("record the scan cannot read")
        n_out = int(state[2])
        site, allele, quality, reverse, key, crc = (array[:n_out] for array in out)
        _tally(site, allele, quality, reverse, key, crc, filters.min_base_quality, counts)
        return counts


def _site_arrays(anchors, kinds, refs, alts) -> tuple:
    n_sites = len(anchors)
    kind_codes = np.array([KIND_CODES[kind] for kind in kinds], dtype=np.int8)
    ref_codes = np.zeros(n_sites, dtype=np.int8)
    alt_codes = np.zeros(n_sites, dtype=np.int8)
    inserted_at = np.zeros(n_sites, dtype=np.int64)
    inserted_length = np.zeros(n_sites, dtype=np.int64)
    deleted_length = np.zeros(n_sites, dtype=np.int64)
    inserted: list[int] = []
    for number, (kind, ref, alt) in enumerate(zip(kinds, refs, alts, strict=True)):
        if kind == "snv":
            ref_codes[number], alt_codes[number] = BASE_CODES[ref], BASE_CODES[alt]
        elif kind == "insertion":
            inserted_at[number], inserted_length[number] = len(inserted), len(alt) - 1
            inserted.extend(BASE_CODES[base] for base in alt[1:])
        else:
            deleted_length[number] = len(ref) - 1
    return (
        np.asarray(anchors, dtype=np.int64),
        kind_codes,
        ref_codes,
        alt_codes,
        inserted_at,
        inserted_length,
        np.array(inserted, dtype=np.uint8),
        deleted_length,
    )


_OUTPUT_TYPES = (np.int64, np.int8, np.int16, np.bool_, np.uint64, np.uint32)
"""site, allele, quality, reverse strand, fragment key, CRC32 of the read name."""


def _outputs(capacity: int) -> list[np.ndarray]:
    return [np.empty(capacity, dtype=dtype) for dtype in _OUTPUT_TYPES]


def _grow(arrays: list[np.ndarray], capacity: int, used: int) -> list[np.ndarray]:
    grown = _outputs(capacity)
    for old, new in zip(arrays, grown, strict=True):
        new[:used] = old[:used]
    return grown
