"""Synthetic reads: host transcripts, the 10x-style BAM and the bulk FASTQ."""

import gzip
import time
from collections import Counter, defaultdict
from dataclasses import replace

import numpy as np
import pandas as pd
import pysam
import pytest

from carmscope.celltypes import CELL_TYPES
from carmscope.construct import read_construct, read_fasta, reverse_complement
from carmscope.synthetic.benchmark_bam import write_benchmark_bam
from carmscope.synthetic.bulk_fastq import write_bulk_fastq
from carmscope.synthetic.design import PRESETS, rng_for
from carmscope.synthetic.host_transcripts import (
    OTHER_HOST_LENGTHS,
    host_transcripts,
    locate_host_segments,
    write_host_transcripts_fasta,
)
from carmscope.synthetic.reads import ReadTruth
from carmscope.synthetic.tenx_bam import write_tenx_bam
from carmscope.synthetic.tenx_library import MIN_ALIGNED

SEED = 508
PARAMS = replace(PRESETS["tiny"], host_reads_per_cell=24, bulk_reads=5000)
T_NK = {"cd8_t", "cd4_t", "treg", "nk"}


@pytest.fixture(scope="module")
def car(repo):
    car_dir = repo / "resources" / "car"
    return read_construct(car_dir / "anti_her2_car.fa", car_dir / "anti_her2_car.segments.tsv")


@pytest.fixture(scope="module")
def hosts(car):
    return host_transcripts(SEED, car)


def make_cells(seed: int = 1) -> pd.DataFrame:
    """Six cells of every type; macrophages carry 0-5 CAR UMIs; some cells damaged."""
    rng = np.random.default_rng(seed)
    types = np.repeat(CELL_TYPES, 6)
    barcodes = sorted({"".join(rng.choice(list("ACGT"), 16)) for _ in range(types.size)})
    macrophage = np.char.startswith(types.astype(str), "macrophage")
    return pd.DataFrame(
        {
            "barcode": [f"{b}-1" for b in barcodes],
            "cell_type": types,
            "low_quality": np.arange(types.size) % 7 == 3,
            "car_umis": np.where(macrophage, np.arange(types.size) % 6, 0),
        }
    )


def write_bam(path, car, hosts, seed=SEED, truth=None):
    return write_tenx_bam(
        path, make_cells(), car, hosts, PARAMS, rng_for(seed, "bam"), sample_id="S1", truth=truth
    )


@pytest.fixture(scope="module")
def bam(tmp_path_factory, car, hosts):
    path = tmp_path_factory.mktemp("bam") / "sample.bam"
    truth = ReadTruth()
    result = write_bam(path, car, hosts, truth=truth)
    with pysam.AlignmentFile(str(path)) as handle:
        reads = list(handle.fetch(until_eof=True))
    return {"path": path, "truth": truth, "result": result, "reads": reads}


def tag(read, name):
    return read.get_tag(name) if read.has_tag(name) else None


# --- host transcripts -------------------------------------------------------------------------


def test_host_transcripts_are_deterministic_stand_ins_of_realistic_length(car, hosts):
    assert host_transcripts(SEED, car) == hosts
    assert host_transcripts(SEED + 1, car) != hosts
    assert list(hosts) == ["CD8A", "CD247", *OTHER_HOST_LENGTHS]
    assert all(1000 <= len(sequence) <= 3000 for sequence in hosts.values())
    assert all(set(sequence) == set("ACGT") for sequence in hosts.values())


def test_cd8a_and_cd247_carry_exactly_the_native_car_parts(car, hosts):
    located = locate_host_segments(car, hosts)
    assert {name: contig for name, (contig, _) in located.items()} == {
        "CD8A_leader": "CD8A",
        "CD8A_hinge_TM": "CD8A",
        "CD247_zeta_ICD": "CD247",
    }
    leader, hinge = located["CD8A_leader"][1], located["CD8A_hinge_TM"][1]
    assert leader < hinge
    assert hosts["CD247"][located["CD247_zeta_ICD"][1] + 336 :].startswith("TAA")


def test_no_specific_or_junction_25mer_occurs_in_any_host_transcript(car, hosts):
    k = 25
    host_kmers = {
        strand[i : i + k]
        for sequence in hosts.values()
        for strand in (sequence, reverse_complement(sequence))
        for i in range(len(strand) - k + 1)
    }
    specific = [car.segment_sequence(s.name) for s in car.specific_segments]
    specific_kmers = {s[i : i + k] for s in specific for i in range(len(s) - k + 1)}
    junction_kmers = {
        car.sequence[start : start + k]
        for left, _ in car.junctions
        for start in range(max(0, left - k + 1), min(left, car.length - k + 1))
    }
    assert len(junction_kmers) > 100
    assert not (specific_kmers | junction_kmers) & host_kmers
    assert not car.specific_kmers(k) & host_kmers
    # while host-derived 25-mers are shared, as in real CD8A/CD247
    assert car.segment_sequence("CD8A_hinge_TM")[:k] in host_kmers


def test_host_transcripts_fasta_round_trips(tmp_path, hosts):
    path = tmp_path / "hosts.fa"
    write_host_transcripts_fasta(path, hosts)
    assert read_fasta(path) == hosts
    assert max(len(line) for line in path.read_text().splitlines()) == 60


# --- the 10x BAM ------------------------------------------------------------------------------


def test_bam_is_coordinate_sorted_and_indexed_with_a_10x_header(bam, hosts):
    path = bam["path"]
    assert path.with_suffix(".bam.bai").exists()
    with pysam.AlignmentFile(str(path)) as handle:
        header = handle.header.to_dict()
        assert handle.check_index()
        assert handle.count("CD8A") > 0
        assert [s["SN"] for s in header["SQ"]] == list(hosts)
        assert [s["LN"] for s in header["SQ"]] == [len(s) for s in hosts.values()]
    assert header["HD"]["SO"] == "coordinate"
    assert header["RG"][0]["SM"] == "S1"
    assert header["PG"] and any("10x_bam_to_fastq" in line for line in header["CO"])
    keys = [
        (read.reference_id if not read.is_unmapped else 1_000, read.reference_start)
        for read in bam["reads"]
    ]
    assert keys == sorted(keys)
    assert bam["reads"][-1].is_unmapped


def test_every_read_has_cb_and_ub_except_the_no_barcode_reads(bam):
    cells = set(make_cells()["barcode"])
    no_cb = {read.query_name for read in bam["reads"] if not read.has_tag("CB")}
    assert no_cb == set(bam["truth"].no_barcode_reads)
    assert no_cb
    for read in bam["reads"]:
        assert read.has_tag("CR") and read.has_tag("UR")
        assert read.has_tag("UB") == read.has_tag("CB")
        if not read.has_tag("CB"):
            assert f"{read.get_tag('CR')}-1" not in cells
    names = [read.query_name for read in bam["reads"]]
    assert len(names) == len(set(names))


def test_background_barcodes_are_not_cells(bam):
    cells = set(make_cells()["barcode"])
    background = set(bam["truth"].background_barcodes)
    seen = {tag(read, "CB") for read in bam["reads"]} - {None}
    assert background and background <= seen
    assert seen == cells | background


def test_car_umis_per_cell_match_the_input(bam):
    cells = make_cells()
    car_reads = set(bam["truth"].car_reads)
    umis = defaultdict(set)
    reads = Counter()
    for read in bam["reads"]:
        if read.query_name in car_reads:
            umis[read.get_tag("CB")].add(read.get_tag("UB"))
            reads[read.get_tag("CB")] += 1
    observed = [len(umis[barcode]) for barcode in cells["barcode"]]
    assert observed == cells["car_umis"].tolist()
    assert sum(reads.values()) == len(car_reads)
    result = bam["result"]
    assert result["barcode"].tolist() == cells["barcode"].tolist()
    assert result["car_umis"].tolist() == cells["car_umis"].tolist()
    assert result["car_reads"].tolist() == [reads[b] for b in cells["barcode"]]
    assert (result["car_specific_umis"] <= result["car_umis"]).all()
    assert 0 < result["car_specific_umis"].sum() < result["car_umis"].sum() + 1


def test_reads_per_umi_look_like_pcr_duplicates(bam):
    car_reads = set(bam["truth"].car_reads)
    per_umi = defaultdict(Counter)
    for read in bam["reads"]:
        if read.has_tag("CB"):
            origin = "car" if read.query_name in car_reads else "host"
            per_umi[origin][(read.get_tag("CB"), read.get_tag("UB"), origin)] += 1
    assert set(per_umi["host"].values()) == {1, 2, 3}
    assert max(per_umi["car"].values()) <= 4


def test_car_reads_are_placed_as_an_aligner_would(bam, car, hosts):
    car_reads = set(bam["truth"].car_reads)
    placed = Counter()
    for read in bam["reads"]:
        if read.query_name not in car_reads:
            continue
        if read.is_unmapped:
            placed["unmapped"] += 1
            assert read.reference_id == -1 and read.has_tag("CB") and read.has_tag("UB")
            continue
        assert read.reference_name in ("CD8A", "CD247") and read.mapping_quality == 255
        assert read.query_alignment_length >= MIN_ALIGNED
        clipped = read.query_length - read.query_alignment_length
        placed["clipped" if clipped else "full"] += 1
        reference = hosts[read.reference_name][read.reference_start : read.reference_end]
        aligned = read.query_alignment_sequence
        assert sum(a != b for a, b in zip(aligned, reference, strict=True)) == read.get_tag("nM")
    assert placed["unmapped"] and placed["clipped"] and placed["full"]


def test_records_do_not_reveal_which_reads_are_car(bam):
    car_reads = set(bam["truth"].car_reads)
    tag_sets = defaultdict(set)
    for read in bam["reads"]:
        if read.has_tag("CB") and not read.is_unmapped:
            origin = "car" if read.query_name in car_reads else "host"
            tag_sets[origin].add(tuple(sorted(name for name, _ in read.get_tags())))
    assert tag_sets["car"] == tag_sets["host"]
    assert all(name.startswith("A00508:") for name in car_reads)


def test_t_and_nk_cells_have_endogenous_cd8a_and_cd247_reads(bam, car, hosts):
    cells = make_cells().set_index("barcode")["cell_type"]
    car_reads = set(bam["truth"].car_reads)
    located = locate_host_segments(car, hosts)
    genes = defaultdict(set)
    overlapping_parts = 0
    for read in bam["reads"]:
        barcode = tag(read, "CB")
        if read.is_unmapped or read.query_name in car_reads or barcode not in cells:
            continue
        genes[read.reference_name].add(cells[barcode])
        for segment, (contig, offset) in located.items():
            end = offset + car.segment(segment).length
            if contig == read.reference_name and read.reference_start < end:
                overlapping_parts += read.reference_end > offset
    assert genes["CD8A"] == {"cd8_t", "nk"}
    assert genes["CD247"] == T_NK
    assert overlapping_parts > 0
    t_nk_barcodes = set(cells[cells.isin(T_NK)].index)
    with_cd247 = {tag(r, "CB") for r in bam["reads"] if r.reference_name == "CD247"}
    assert t_nk_barcodes <= with_cd247


def test_bam_is_byte_identical_for_the_same_seed(tmp_path, car, hosts, bam):
    first, second = tmp_path / "a.bam", tmp_path / "b.bam"
    write_bam(first, car, hosts)
    write_bam(second, car, hosts)
    assert first.read_bytes() == second.read_bytes() == bam["path"].read_bytes()
    assert (tmp_path / "a.bam.bai").read_bytes() == (tmp_path / "b.bam.bai").read_bytes()
    other = tmp_path / "c.bam"
    write_bam(other, car, hosts, seed=SEED + 1)
    assert other.read_bytes() != first.read_bytes()


def test_benchmark_bam_has_about_the_requested_reads(tmp_path, car, hosts):
    truth = ReadTruth()
    result = write_benchmark_bam(tmp_path / "bench.bam", 20_000, car, hosts, SEED, truth=truth)
    with pysam.AlignmentFile(str(tmp_path / "bench.bam")) as handle:
        total = handle.mapped + handle.unmapped
    assert abs(total - 20_000) < 400
    assert result["car_umis"].sum() > 0
    assert result["car_reads"].sum() == len(truth.car_reads)


@pytest.mark.slow
def test_two_million_read_bam_is_written_in_a_couple_of_minutes(tmp_path, car, hosts):
    start = time.perf_counter()
    write_benchmark_bam(tmp_path / "big.bam", 2_000_000, car, hosts, SEED)
    assert time.perf_counter() - start < 180


# --- bulk FASTQ -------------------------------------------------------------------------------


def read_fastq(path):
    with gzip.open(path, "rt") as handle:
        lines = handle.read().splitlines()
    return [tuple(lines[i : i + 4]) for i in range(0, len(lines), 4)]


def mismatches_to_construct(sequence, construct_sequence):
    """Fewest mismatches of ``sequence`` (either strand) against any construct window."""
    return min(
        sum(a != b for a, b in zip(strand, construct_sequence[i : i + len(strand)], strict=True))
        for strand in (sequence, reverse_complement(sequence))
        for i in range(len(construct_sequence) - len(strand) + 1)
    )


def test_bulk_fastq_has_host_and_car_reads(tmp_path, car, hosts):
    path = tmp_path / "bulk.fastq.gz"
    truth = ReadTruth()
    n_car = write_bulk_fastq(path, True, car, hosts, PARAMS, rng_for(SEED, "bulk"), truth=truth)
    records = read_fastq(path)
    assert len(records) == PARAMS.bulk_reads
    names = [header[1:].split()[0] for header, *_ in records]
    assert len(set(names)) == len(names)
    assert all(h.startswith("@") and p == "+" for h, _, p, _ in records)
    assert all(len(s) == len(q) == PARAMS.read_length for _, s, _, q in records)
    assert n_car == len(truth.car_reads) >= 10
    by_name = dict(zip(names, records, strict=True))
    for name in truth.car_reads:
        assert mismatches_to_construct(by_name[name][1], car.sequence) <= 6


def test_bulk_fastq_is_deterministic_and_car_free_without_car(tmp_path, car, hosts):
    paths = [tmp_path / f"{i}.fastq.gz" for i in range(3)]
    for path in paths[:2]:
        write_bulk_fastq(path, True, car, hosts, PARAMS, rng_for(SEED, "bulk"))
    assert paths[0].read_bytes() == paths[1].read_bytes()
    truth = ReadTruth()
    n_car = write_bulk_fastq(
        paths[2], False, car, hosts, PARAMS, rng_for(SEED, "bulk"), truth=truth
    )
    assert n_car == 0 and truth.car_reads == []
    specific = car.specific_kmers(25)
    for _, sequence, _, _ in read_fastq(paths[2]):
        for strand in (sequence, reverse_complement(sequence)):
            assert not any(strand[i : i + 25] in specific for i in range(0, 67, 11))
