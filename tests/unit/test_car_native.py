"""The compiled CAR-scan kernels (carmscope.bam._native) against plain-Python references.

Each kernel is checked on random reads against a direct Python reading of what it must do,
and the BAM walker on small hand-built BGZF/BAM files, damaged in the ways real copies are.
"""

import itertools
import struct
import threading
import zlib
from collections import defaultdict

import numpy as np
import pytest

from carmscope.bam import _native
from carmscope.car import bam, text
from carmscope.car.evidence import AMBIGUOUS, EvidenceSettings, Placement, place_read
from carmscope.car.kmers import build_index, encode, lookup_args, sequence_hit_positions
from carmscope.construct import Construct, read_construct, reverse_complement

SETTINGS = EvidenceSettings()
NIBBLES = "=ACMGRSVTWYHKDBN"


@pytest.fixture(scope="module")
def car():
    return read_construct()


@pytest.fixture(scope="module")
def index(car):
    return build_index([car])


@pytest.fixture(scope="module")
def twin_index(car):
    """Two constructs: the CAR and a copy differing only in its second half's third codons."""
    sequence = list(car.sequence)
    for position in range(car.length // 2, car.length, 3):
        sequence[position] = {"A": "C", "C": "G", "G": "T", "T": "A"}.get(sequence[position], "A")
    segments = tuple(s._replace(construct="twin_CAR") for s in car.segments)
    twin = Construct("twin_CAR", "".join(sequence), segments)
    return build_index([car, twin])


def stored_codes(index) -> set[int]:
    return {encode(x) for kmer in index.occurrences for x in (kmer, reverse_complement(kmer))}


def random_read(rng, car: Construct) -> str:
    """A read from the construct (errors, N, flanks, either strand), or random sequence."""
    length = int(rng.integers(30, 160))
    kind = rng.random()
    if kind < 0.2:
        return "".join(rng.choice(list("ACGTN"), size=length))
    start = int(rng.integers(-40, car.length - 20))
    flank = "".join(rng.choice(list("ACGT"), size=max(0, -start)))
    read = (flank + car.sequence[max(start, 0) :])[:length]
    bases = list(read)
    for position in np.flatnonzero(rng.random(len(bases)) < rng.choice([0, 0.01, 0.05, 0.15])):
        bases[position] = str(rng.choice(list("ACGTN")))
    read = "".join(bases)
    if rng.random() < 0.5:
        read = reverse_complement(read)
    if rng.random() < 0.1:
        read = read.lower()
    return read


# --- plain-Python references ------------------------------------------------------------------


def reference_hits(sequence: str, codes: set[int], k: int) -> list[int]:
    upper = sequence.upper()
    return [
        start
        for start in range(len(upper) - k + 1)
        if set(upper[start : start + k]) <= set("ACGT")
        and encode(upper[start : start + k]) in codes
    ]


def reference_place(sequence: str, index, settings: EvidenceSettings):
    """place_read as docs/car_detection.md and carmscope.car.evidence describe it."""
    sequence = sequence.upper()
    k, length = index.k, len(sequence)
    votes: dict[tuple, list[int]] = defaultdict(list)
    hits = 0
    for start in range(length - k + 1):
        window = sequence[start : start + k]
        if not set(window) <= set("ACGT"):
            continue
        rows = [(o, False) for o in index.occurrences.get(window, ())]
        rows += [(o, True) for o in index.occurrences.get(reverse_complement(window), ())]
        hits += bool(rows)
        for occurrence, reverse in rows:
            oriented = length - start - k if reverse else start
            key = (occurrence.construct, reverse, occurrence.position - oriented)
            votes[key].append(oriented)
    if hits < settings.min_kmers:
        return None
    counting = []
    for construct, reverse, diagonal in sorted(votes):
        positions = sorted(votes[construct, reverse, diagonal])
        if len(positions) < settings.min_kmers:
            continue
        if not any(b - a == 1 for a, b in itertools.pairwise(positions)):
            continue
        read = reverse_complement(sequence) if reverse else sequence
        reference = index.constructs[construct].sequence
        first, last = max(0, -diagonal), min(length, len(reference) - diagonal)
        overlap = max(last - first, 0)
        mismatches = sum(
            read[i] != reference[diagonal + i] and read[i] != "N" for i in range(first, last)
        )
        if mismatches > settings.max_mismatch_fraction * overlap:
            continue
        counting.append(
            Placement(construct, reverse, diagonal, length, len(positions), overlap, mismatches)
        )
    if not counting:
        return None
    best = max(counting, key=lambda p: (p.kmers, -p.mismatches))
    rivals = {
        p.construct for p in counting if (p.kmers, p.mismatches) == (best.kmers, best.mismatches)
    }
    return AMBIGUOUS if len(rivals) > 1 else best


def reference_sampled_hit(sequence: str, codes: set[int], k: int) -> bool:
    """Whether a BAM read has a stored k-mer at an odd start (non-ACGT read as A)."""
    bases = "".join(b if b in "ACGT" else "A" for b in sequence)
    end = 2 * (len(sequence) // 2)
    return any(encode(bases[s : s + k]) in codes for s in range(1, end - k + 1, 2))


# --- hand-built BAM files ---------------------------------------------------------------------


def pack(sequence: str) -> bytes:
    nibbles = [NIBBLES.index(b) for b in sequence] + [0]
    return bytes((nibbles[i] << 4) | nibbles[i + 1] for i in range(0, len(sequence), 2))


def bam_record(name: str, sequence: str, flag: int = 4, tags: bytes = b"") -> bytes:
    read_name = name.encode() + b"\0"
    body = (
        struct.pack(
            "<iiBBHHHiiii", -1, -1, len(read_name), 0, 4680, 0, flag, len(sequence), -1, -1, 0
        )
        + read_name
        + pack(sequence)
        + b"\xff" * len(sequence)
        + tags
    )
    return struct.pack("<i", len(body)) + body


def z_tag(tag: str, value: str) -> bytes:
    return tag.encode() + b"Z" + value.encode() + b"\0"


def bgzf_block(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    payload = compressor.compress(data) + compressor.flush()
    header = b"\x1f\x8b\x08\x04\0\0\0\0\0\xff" + struct.pack(
        "<H2sHH", 6, b"BC", 2, len(payload) + 25
    )
    return header + payload + struct.pack("<II", zlib.crc32(data), len(data))


def bam_header(references=("CAR",)) -> bytes:
    text = b"@HD\tVN:1.6\n"
    refs = b"".join(
        struct.pack("<i", len(name) + 1) + name.encode() + b"\0" + struct.pack("<i", 1000)
        for name in references
    )
    return (
        b"BAM\1" + struct.pack("<i", len(text)) + text + struct.pack("<i", len(references)) + refs
    )


def write_bam(path, records: list[bytes], block_bytes: int = 3000, eof: bool = True) -> bytes:
    """Header block, then the records cut into blocks of ``block_bytes`` (records span them)."""
    data = b"".join(records)
    blocks = [bgzf_block(bam_header())]
    blocks += [bgzf_block(data[i : i + block_bytes]) for i in range(0, len(data), block_bytes)]
    content = b"".join(blocks) + (bam.EOF_BLOCK if eof else b"")
    path.write_bytes(content)
    return content


@pytest.fixture(scope="module")
def reads(car):
    """300 reads: names, sequences (ACGT, N and other IUPAC codes) and flags."""
    rng = np.random.default_rng(11)
    found = []
    for number in range(300):
        sequence = random_read(rng, car).upper()
        if rng.random() < 0.1:
            sequence = "".join(
                str(rng.choice(list("RYKM="))) if rng.random() < 0.05 else b for b in sequence
            )
        flag = int(rng.choice([0, 16, 4, 256, 2048]))
        found.append((f"read{number}", sequence, flag))
    return found


def collect(path, lookup, start=None, stop=None):
    records: list[bytes] = []
    start = start or bam.read_header(path).first_record
    counts = bam.walk_range(str(path), start, stop, lookup, records.append)
    return counts, records


# --- tests ------------------------------------------------------------------------------------


def test_libdeflate_is_found():
    assert _native.libdeflate() is not None


def test_text_hits_equal_a_python_scan(car, index):
    rng = np.random.default_rng(5)
    codes = stored_codes(index)
    for _ in range(300):
        read = random_read(rng, car)
        expected = reference_hits(read, codes, index.k)
        assert sequence_hit_positions(read, index.lookup).tolist() == expected
        flagged = text.flag_sequences([read, "ACGT" * 10], index.lookup)
        assert flagged == ([0] if expected else [])


def test_placement_equals_the_python_reference(car, index, twin_index):
    rng = np.random.default_rng(7)
    seen = defaultdict(int)
    strict = EvidenceSettings(min_kmers=4, max_mismatch_fraction=0.02)
    for number in range(600):
        read = random_read(rng, car)
        chosen = twin_index if number % 2 else index
        for settings in (SETTINGS, strict):
            expected = reference_place(read, chosen, settings)
            assert place_read(read, chosen, settings) == expected, read
            seen[type(expected).__name__ if expected != AMBIGUOUS else "ambiguous"] += 1
    assert seen["Placement"] > 200 and seen["NoneType"] > 100 and seen["ambiguous"] > 20


def test_placement_of_reads_without_hits_and_of_short_reads(index):
    assert place_read("", index, SETTINGS) is None
    assert place_read("ACGT", index, SETTINGS) is None
    assert place_read("N" * 200, index, SETTINGS) is None


def test_record_walk_flags_exactly_the_primary_reads_with_a_sampled_hit(index, reads):
    codes = stored_codes(index)
    data = b"".join(bam_record(name, sequence, flag) for name, sequence, flag in reads)
    buffer = np.frombuffer(data, dtype=np.uint8)
    candidates = np.empty(buffer.size // 36 + 1, dtype=np.int64)
    position, n_records, n_primary, n_candidates, error = bam.scan_records(
        buffer, buffer.size, *lookup_args(index.lookup), index.k, candidates
    )
    assert (position, n_records, error) == (len(data), len(reads), 0)
    assert n_primary == sum(flag & 0x900 == 0 for _, _, flag in reads)
    flagged = [
        bam.parse_record(
            data[offset : offset + 4 + int.from_bytes(data[offset : offset + 4], "little")]
        ).name
        for offset in candidates[:n_candidates].tolist()
    ]
    expected = [
        name
        for name, sequence, flag in reads
        if flag & 0x900 == 0 and reference_sampled_hit(sequence, codes, index.k)
    ]
    assert flagged == expected
    assert len(expected) > 50


@pytest.mark.parametrize("k", [11, 13, 15, 17, 19, 21, 31])
def test_record_walk_prefilter_loses_no_read(car, k):
    """The prefilter (short windows on every stride-th byte, strides 2-4 by k) flags every read
    the exact walk flags: one stored k-mer planted at each offset of reads of odd and even
    lengths, on both strands, among random reads, N and other IUPAC codes."""
    index = build_index([car], k=k)
    codes = stored_codes(index)
    rng = np.random.default_rng(k)
    kmers = sorted(index.occurrences)
    reads = []
    for length in (k, k + 1, k + 2, k + 5, k + 8, 2 * k + 1, 91, 150):
        for offset in range(length - k + 1):
            kmer = kmers[int(rng.integers(len(kmers)))]
            if rng.random() < 0.5:
                kmer = reverse_complement(kmer)
            flank = "".join(rng.choice(list("ACGTN"), size=length))
            reads.append(flank[:offset] + kmer + flank[offset + k :])
    reads += [random_read(rng, car).upper() for _ in range(300)]
    reads = [
        "".join(str(rng.choice(list("RYKM="))) if rng.random() < 0.02 else b for b in read)
        for read in reads
    ]
    records = [bam_record(f"r{n}", read, 0) for n, read in enumerate(reads)]
    offsets = dict(
        zip(itertools.accumulate((len(r) for r in records), initial=0), itertools.count())
    )
    data = b"".join(records)
    buffer = np.frombuffer(data, dtype=np.uint8)
    found = {}
    for prefilter in (True, False):
        candidates = np.empty(buffer.size // 36 + 1, dtype=np.int64)
        result = bam.scan_records(
            buffer,
            buffer.size,
            *lookup_args(index.lookup),
            k,
            candidates,
            prefilter=prefilter,
        )
        assert result[:3] == (len(data), len(reads), len(reads))
        found[prefilter] = [offsets[offset] for offset in candidates[: result[3]].tolist()]
    assert found[True] == found[False]
    expected = [n for n, read in enumerate(reads) if reference_sampled_hit(read, codes, k)]
    assert found[True] == expected
    assert len(expected) > len(reads) // 3


def test_record_walk_stops_at_a_partial_record_and_reports_a_malformed_one(index, reads):
    records = [bam_record(name, sequence, flag) for name, sequence, flag in reads[:3]]
    args = (*lookup_args(index.lookup), index.k, np.empty(10, dtype=np.int64))
    partial = np.frombuffer(b"".join(records)[:-5], dtype=np.uint8)
    assert bam.scan_records(partial, partial.size, *args)[:2] == (
        len(records[0]) + len(records[1]),
        2,
    )
    broken = bytearray(b"".join(records))
    broken[len(records[0]) : len(records[0]) + 4] = struct.pack("<i", 10)
    buffer = np.frombuffer(bytes(broken), dtype=np.uint8)
    assert bam.scan_records(buffer, buffer.size, *args)[4] == len(records[0]) + 1


def test_parse_record_decodes_every_tag_type():
    tags = (
        z_tag("CB", "AAACCTGAGAAACCAT-1")
        + b"XAAq"
        + b"XCc"
        + struct.pack("<b", -3)
        + b"XSS"
        + struct.pack("<H", 60000)
        + b"XIi"
        + struct.pack("<i", -70000)
        + b"XUI"
        + struct.pack("<I", 4_000_000_000)
        + b"XFf"
        + struct.pack("<f", 1.1)
        + b"XBBI"
        + struct.pack("<III", 2, 5, 6)
        + z_tag("UB", "TTTGGCCA")
    )
    record = bam.parse_record(
        bam_record("r1", "ACGTNRY=A", flag=16, tags=tags),
        ("CB", "UB", "XA", "XC", "XS", "XI", "XU", "XF", "XB"),
    )
    assert (record.name, record.flag, record.reference_id, record.sequence) == (
        "r1",
        16,
        -1,
        "ACGTNRY=A",
    )
    assert record.tags == {
        "CB": "AAACCTGAGAAACCAT-1",
        "XA": "q",
        "XC": "-3",
        "XS": "60000",
        "XI": "-70000",
        "XU": "4000000000",
        "XF": str(struct.unpack("<f", struct.pack("<f", 1.1))[0]),
        "UB": "TTTGGCCA",
    }
    assert bam.parse_record(bam_record("r2", "", tags=tags)).tags == {
        "CB": "AAACCTGAGAAACCAT-1",
        "UB": "TTTGGCCA",
    }
    with pytest.raises(ValueError, match="malformed"):
        bam.parse_record(bam_record("r3", "ACGT", tags=b"CBZunterminated"))


@pytest.mark.parametrize("block_bytes", [200, 3000, 60_000])
def test_walker_finds_what_the_record_walk_finds(tmp_path, index, reads, block_bytes, monkeypatch):
    records = [bam_record(name, sequence, flag) for name, sequence, flag in reads]
    path = tmp_path / "reads.bam"
    write_bam(path, records, block_bytes)
    data = np.frombuffer(b"".join(records), dtype=np.uint8)
    candidates = np.empty(data.size // 36 + 1, dtype=np.int64)
    expected = bam.scan_records(data, data.size, *lookup_args(index.lookup), index.k, candidates)
    start = bam.read_header(path).first_record
    for chunk, read in ((1 << 20, 1 << 20), (1, 1), (5000, 100)):
        monkeypatch.setattr(bam, "CHUNK_BYTES", chunk)
        monkeypatch.setattr(bam, "READ_BYTES", read)
        counts, found = collect(path, index.lookup, start)
        assert (counts.n_records, counts.n_primary) == expected[1:3]
        starts = candidates[: expected[3]].tolist()
        assert found == [
            data[s : s + 4 + int(data[s : s + 4].view("<i4")[0])].tobytes() for s in starts
        ]


def test_walker_threads_give_the_same_records(tmp_path, index, reads, monkeypatch):
    records = [bam_record(name, sequence, flag) for name, sequence, flag in reads] * 20
    path = tmp_path / "reads.bam"
    write_bam(path, records, 2000)
    header = bam.read_header(path)
    points = bam.split_points(str(path), header, 4)
    assert len(points) == 4
    single = collect(path, index.lookup)
    results: dict[int, tuple] = {}

    def run(part: int) -> None:
        stop = points[part + 1] if part + 1 < len(points) else None
        results[part] = collect(path, index.lookup, points[part], stop)

    threads = [threading.Thread(target=run, args=(part,)) for part in range(len(points))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(results[p][0].n_records for p in results) == single[0].n_records
    assert [r for p in sorted(results) for r in results[p][1]] == single[1]


def damaged(content: bytes, header_block: int, at: int, replacement: bytes) -> bytes:
    position = header_block + at
    return content[:position] + replacement + content[position + len(replacement) :]


DAMAGES = [
    ("magic", "bad block header"),
    ("bsize", "block without a BSIZE field"),
    ("payload", "corrupt BGZF block"),
    ("size", "corrupt BGZF block"),
    ("truncate", "truncated file: partial BGZF block"),
    ("no_eof", "no BGZF end-of-file block"),
    ("cut_record", "the last record is incomplete"),
]
"""The damages of :func:`write_damaged_bam` and the error each must raise."""


def write_damaged_bam(path, records: list[bytes], damage: str) -> None:
    """A BAM of ``records`` in 3,000-byte blocks, damaged in its second block (or records)."""
    content = write_bam(path, records, 3000)
    first = len(bgzf_block(bam_header()))
    second = first + struct.unpack_from("<H", content, first + 16)[0] + 1
    if damage == "magic":
        content = damaged(content, second, 0, b"\x1f\x8b\x08\x00")
    elif damage == "bsize":
        content = damaged(content, second, 12, b"XY")
    elif damage == "payload":
        content = damaged(content, second, 30, bytes(40))
    elif damage == "size":
        block_end = second + struct.unpack_from("<H", content, second + 16)[0] + 1
        content = content[: block_end - 4] + struct.pack("<I", 2999) + content[block_end:]
    elif damage == "truncate":
        content = content[: second + 100]
    elif damage == "no_eof":
        content = content[: -len(bam.EOF_BLOCK)]
    elif damage == "cut_record":
        content = write_bam(path, [b"".join(records)[:-7]], 3000)
    path.write_bytes(content)


@pytest.mark.parametrize(("damage", "message"), DAMAGES)
def test_walker_refuses_damaged_files(tmp_path, index, reads, damage, message):
    records = [bam_record(name, sequence, flag) for name, sequence, flag in reads[:100]]
    path = tmp_path / "damaged.bam"
    write_damaged_bam(path, records, damage)
    with pytest.raises(bam.ReadsError, match=message):
        collect(path, index.lookup)


def test_walker_reports_the_offset_of_a_malformed_record(tmp_path, index, reads):
    records = [bam_record(name, sequence, flag) for name, sequence, flag in reads[:50]]
    at = sum(len(record) for record in records[:20])
    records[20] = struct.pack("<i", 12) + records[20][4:]
    path = tmp_path / "malformed.bam"
    write_bam(path, records, 3000)
    first_record = bam.read_header(path).first_record
    assert first_record == bam.Position(0, len(bam_header()))
    # offsets count the inflated bytes from the start of the walk's first block (the header's)
    offset = len(bam_header()) + at
    with pytest.raises(bam.ReadsError, match=f"malformed BAM record at inflated offset {offset}$"):
        collect(path, index.lookup)


def test_walker_refuses_a_stop_inside_a_record(tmp_path, index, reads):
    records = [bam_record(name, sequence, flag) for name, sequence, flag in reads[:50]]
    path = tmp_path / "reads.bam"
    write_bam(path, records, 3000)
    inside = bam.Position(len(bgzf_block(bam_header())), 5)  # in the first record
    with pytest.raises(bam.ReadsError, match="disagree"):
        collect(path, index.lookup, stop=inside)


def test_walker_of_a_missing_file_and_bad_lookup(tmp_path, index):
    lookup = index.lookup
    with pytest.raises(bam.ReadsError, match="cannot be read"):
        bam.walk_range(str(tmp_path / "absent.bam"), bam.Position(0, 0), None, lookup, print)
    with pytest.raises(ValueError, match="do not match"):
        _native.contains(lookup.table[:-1], lookup.bits, lookup.filter, lookup.filter_bits, 0)


# --- the walker's inflating threads (BamWalker threads > 1) ------------------------------------


def collect_threaded(path, lookup, threads, start=None, stop=None):
    records: list[bytes] = []
    start = start or bam.read_header(path).first_record
    counts = bam.walk_range(str(path), start, stop, lookup, records.append, threads)
    return counts, records


@pytest.mark.parametrize("threads", [2, 3])
def test_inflating_threads_find_what_one_thread_finds(tmp_path, index, reads, threads, monkeypatch):
    """Every batch size and file read size, the whole file and ranges of it."""
    records = [bam_record(name, sequence, flag) for name, sequence, flag in reads] * 10
    path = tmp_path / "reads.bam"
    write_bam(path, records, 2000)
    single = collect(path, index.lookup)
    points = bam.split_points(str(path), bam.read_header(path), 3)
    assert len(points) == 3
    for chunk, read in ((1 << 20, 1 << 20), (1, 1), (5000, 100), (30_000, 7000)):
        monkeypatch.setattr(bam, "CHUNK_BYTES", chunk)
        monkeypatch.setattr(bam, "READ_BYTES", read)
        counts, found = collect_threaded(path, index.lookup, threads)
        assert (counts.n_records, counts.n_primary) == (single[0].n_records, single[0].n_primary)
        assert found == single[1]
        parts = [
            collect_threaded(path, index.lookup, threads, start, stop)
            for start, stop in zip(points, [*points[1:], None], strict=True)
        ]
        assert sum(part[0].n_records for part in parts) == single[0].n_records
        assert [record for part in parts for record in part[1]] == single[1]


@pytest.mark.parametrize(("damage", "message"), DAMAGES)
def test_inflating_threads_refuse_damaged_files(tmp_path, index, reads, damage, message):
    records = [bam_record(name, sequence, flag) for name, sequence, flag in reads[:100]] * 5
    path = tmp_path / "damaged.bam"
    write_damaged_bam(path, records, damage)
    with pytest.raises(bam.ReadsError, match=message):
        collect_threaded(path, index.lookup, 2)


def test_walker_thread_count_is_checked(tmp_path, index):
    with pytest.raises(ValueError, match="threads must be 1-256"):
        bam.walk_range(str(tmp_path / "x.bam"), bam.Position(0, 0), None, index.lookup, print, 0)
