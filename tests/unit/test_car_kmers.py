"""The construct-specific k-mer index (carmscope.car.kmers)."""

import numpy as np
import pytest

from carmscope.car.kmers import (
    KmerIndexError,
    SpecificKmerIndex,
    build_index,
    build_lookup,
    contains,
    encode,
    host_segment_kmers,
    lookup_args,
    sequence_hit_positions,
)
from carmscope.construct import (
    Construct,
    ConstructError,
    Segment,
    read_construct,
    read_constructs,
    reverse_complement,
)


@pytest.fixture(scope="module")
def car():
    return read_construct()


@pytest.fixture(scope="module")
def index(car):
    return build_index([car], 21)


def test_index_holds_exactly_the_specific_windows_minus_host_kmers(car, index):
    host = host_segment_kmers([car], 21)
    assert index.occurrences
    assert set(index.occurrences) == car.specific_kmers(21) - host
    assert not set(index.occurrences) & host


def test_no_kmer_lies_inside_a_host_segment(car, index):
    for places in index.occurrences.values():
        for place in places:
            assert car.is_specific_window(place.position + 1, place.position + 21)


def test_every_junction_contributes_kmers(car, index):
    regions = set(index.to_table()["region"])
    for left, right in zip(car.segments, car.segments[1:], strict=False):
        assert f"{left.name}|{right.name}" in regions


def test_lookup_holds_both_strands(index):
    lookup = index.lookup
    args = lookup_args(lookup)
    for kmer in list(index.occurrences)[:50]:
        assert contains(*args, np.uint64(encode(kmer)))
        assert contains(*args, np.uint64(encode(reverse_complement(kmer))))
    assert not contains(*args, np.uint64(encode("A" * 21)))
    assert len(lookup) == 2 * len(index)


def test_compiled_hits_equal_a_python_scan(car, index):
    rng = np.random.default_rng(3)
    for _ in range(20):
        start = int(rng.integers(0, car.length - 91))
        read = car.sequence[start : start + 91]
        if rng.random() < 0.5:
            read = reverse_complement(read)
        expected = [
            i
            for i in range(len(read) - 20)
            if read[i : i + 21] in index.occurrences
            or reverse_complement(read[i : i + 21]) in index.occurrences
        ]
        assert sequence_hit_positions(read, index.lookup).tolist() == expected


def test_lookup_of_many_codes_is_exact():
    rng = np.random.default_rng(0)
    codes = {int(c) for c in rng.integers(0, 4**21, size=5000)}
    lookup = build_lookup(codes, 21)
    args = lookup_args(lookup)
    assert all(contains(*args, np.uint64(code)) for code in list(codes)[:500])
    absent = [int(c) for c in rng.integers(0, 4**21, size=500) if int(c) not in codes]
    assert not any(contains(*args, np.uint64(code)) for code in absent)


def test_host_transcripts_remove_their_kmers(tmp_path, car, index):
    shared = car.sequence[200:260]  # part of the VL
    fasta = tmp_path / "host.fa"
    fasta.write_text(f">HOST1 some gene\nACGTACGN\n{reverse_complement(shared)}N\n>HOST2\nTTTT\n")
    filtered = build_index([car], 21, fasta)
    removed = {shared[i : i + 21] for i in range(len(shared) - 20)}
    assert removed <= set(index.occurrences)
    assert not removed & set(filtered.occurrences)
    assert filtered.removed_host == len(removed)
    assert len(filtered) == len(index) - len(removed)


@pytest.mark.parametrize("k", [9, 20, 33])
def test_bad_k_is_refused(car, k):
    with pytest.raises(KmerIndexError, match="odd"):
        build_index([car], k)


def test_construct_of_one_host_segment_has_no_evidence():
    sequence = "ACGT" * 30
    construct = Construct("host_only", sequence, (Segment("host_only", "a", 1, 120, False),))
    with pytest.raises(KmerIndexError, match="no specific"):
        build_index([construct], 21)


def test_table_round_trip(car, index):
    table = index.to_table()
    assert list(table.columns) == ["construct", "position", "kmer", "region"]
    again = SpecificKmerIndex.from_table(table, [car], 21)
    assert again.occurrences == index.occurrences


def test_table_of_another_construct_is_refused(car, index):
    table = index.to_table()
    table.loc[0, "kmer"] = "A" * 21
    with pytest.raises(KmerIndexError, match="rebuild"):
        SpecificKmerIndex.from_table(table, [car], 21)


def test_segment_table_disagreeing_with_fasta_is_refused(tmp_path, repo):
    fasta = repo / "resources/car/anti_her2_car.fa"
    segments = tmp_path / "segments.tsv"
    text = (repo / "resources/car/anti_her2_car.segments.tsv").read_text()
    segments.write_text(text.replace("1332", "1400"))
    with pytest.raises(ConstructError, match="beyond the 1332 bp"):
        read_constructs(fasta, segments)


def test_non_acgtn_sequence_is_refused(tmp_path, repo):
    fasta = tmp_path / "car.fa"
    text = (repo / "resources/car/anti_her2_car.fa").read_text().splitlines()
    text[3] = "X" + text[3][1:]
    fasta.write_text("\n".join(text) + "\n")
    with pytest.raises(ConstructError, match="invalid character 'X'"):
        read_constructs(fasta, repo / "resources/car/anti_her2_car.segments.tsv")
