"""Scanning reads files for CAR reads (carmscope.car.scan, carmscope.car.bam)."""

import gzip
import shutil
import tracemalloc
from dataclasses import replace

import pandas as pd
import pysam
import pytest

from carmscope.car import bam
from carmscope.car.formats import detect_format
from carmscope.car.kmers import build_index
from carmscope.car.scan import ReadsError, ScanSettings, read_bed, scan_reads
from carmscope.construct import read_construct
from carmscope.synthetic.benchmark_bam import benchmark_cells
from carmscope.synthetic.design import PRESETS, rng_for
from carmscope.synthetic.host_transcripts import host_transcripts, write_host_transcripts_fasta
from carmscope.synthetic.reads import ReadTruth
from carmscope.synthetic.tenx_bam import write_tenx_bam

SEED = 508
PARAMS = replace(PRESETS["tiny"], host_reads_per_cell=40)
PER_CELL = ScanSettings(per_cell=True)


@pytest.fixture(scope="module")
def car():
    return read_construct()


@pytest.fixture(scope="module")
def index(car):
    return build_index([car])


@pytest.fixture(scope="module")
def hosts(car):
    return host_transcripts(SEED, car)


@pytest.fixture(scope="module")
def tenx(tmp_path_factory, car, hosts):
    """A 10x-style BAM of 1200 cells (CAR in a quarter of macrophages), its truth and FASTA."""
    folder = tmp_path_factory.mktemp("car_scan")
    cells = benchmark_cells(1200, rng_for(SEED, "car_scan_cells"))
    truth = ReadTruth()
    path = folder / "sample.bam"
    per_cell = write_tenx_bam(
        path, cells, car, hosts, PARAMS, rng_for(SEED, "car_scan_bam"), truth=truth
    )
    reference = folder / "hosts.fa"
    write_host_transcripts_fasta(reference, hosts)
    pysam.faidx(str(reference))
    return {"bam": path, "cells": per_cell, "truth": truth, "reference": reference}


def cell_umis(result, construct=0) -> pd.Series:
    cells = result.tally.constructs[construct].cells
    return pd.Series({barcode: len(cell.umis) for barcode, cell in cells.items()}, dtype=int)


def summary(result) -> tuple:
    tally = result.tally.constructs[0]
    return (
        result.total_reads,
        tally.reads,
        tally.umis,
        tally.reads_without_barcode,
        tuple(tally.coverage.depth()),
        dict(cell_umis(result)),
    )


def test_per_cell_umis_match_the_simulated_detectable_ones(tenx, index):
    result = scan_reads(tenx["bam"], index, PER_CELL)
    truth = tenx["cells"].set_index("barcode")["car_specific_umis"]
    found = cell_umis(result).reindex(truth.index, fill_value=0)
    assert set(cell_umis(result).index) <= set(truth.index)  # no CAR read in another barcode
    assert (found <= truth).all()  # never more than the simulation made
    assert found.sum() >= 0.95 * truth.sum()
    assert ((found > 0) == (truth > 0)).mean() >= 0.98
    assert result.total_reads == sum(1 for _ in pysam.AlignmentFile(str(tenx["bam"])))


def test_no_car_read_is_called_from_endogenous_cd8a_or_cd247(tenx, index):
    result = scan_reads(tenx["bam"], index, PER_CELL, keep_read_names=True)
    called = set(result.tally.car_read_names)
    assert called
    assert called <= set(tenx["truth"].car_reads)
    endogenous = {
        read.query_name
        for read in pysam.AlignmentFile(str(tenx["bam"]))
        if read.reference_name in ("CD8A", "CD247")
    } - set(tenx["truth"].car_reads)
    assert len(endogenous) > 100
    assert not called & endogenous


def test_threads_give_the_same_result(tenx, index, monkeypatch):
    single = scan_reads(tenx["bam"], index, PER_CELL)
    monkeypatch.setattr(bam, "MIN_RANGE_BYTES", 16_384)
    for threads in (2, 3, 7):
        several = scan_reads(tenx["bam"], index, PER_CELL._replace(threads=threads))
        assert summary(several) == summary(single)


def test_split_points_are_record_starts(tenx):
    header = bam.read_header(tenx["bam"])
    points = bam.split_points(str(tenx["bam"]), header, 5)
    assert len(points) == 5
    assert [p.block for p in points] == sorted({p.block for p in points})


def test_pysam_engine_agrees_with_the_native_reader(tenx, index):
    native = scan_reads(tenx["bam"], index, PER_CELL)
    with_pysam = scan_reads(tenx["bam"], index, PER_CELL._replace(engine="pysam"))
    assert summary(with_pysam) == summary(native)


def test_sam_and_cram_agree_with_bam(tmp_path, tenx, index):
    native = summary(scan_reads(tenx["bam"], index, PER_CELL))
    sam = tmp_path / "sample.sam"
    cram = tmp_path / "sample.cram"
    pysam.view("-h", "-o", str(sam), str(tenx["bam"]), catch_stdout=False)
    pysam.view(
        "-C", "-T", str(tenx["reference"]), "-o", str(cram), str(tenx["bam"]), catch_stdout=False
    )
    assert detect_format(sam) == "sam" and detect_format(cram) == "cram"
    assert summary(scan_reads(sam, index, PER_CELL)) == native
    cram_settings = PER_CELL._replace(reference=str(tenx["reference"]))
    assert summary(scan_reads(cram, index, cram_settings)) == native


def write_fastq(bam_path, fastq_path, reverse_every=0) -> None:
    """The primary reads of a BAM as gzipped FASTQ (every n-th reverse-complemented)."""
    with pysam.AlignmentFile(str(bam_path)) as reads, gzip.open(fastq_path, "wt") as out:
        for number, read in enumerate(reads):
            sequence, quality = (
                read.query_sequence,
                pysam.qualities_to_qualitystring(read.query_qualities),
            )
            if reverse_every and number % reverse_every == 0:
                sequence = sequence[::-1].translate(str.maketrans("ACGTN", "TGCAN"))
                quality = quality[::-1]
            out.write(f"@{read.query_name} 1:N:0\n{sequence}\n+\n{quality}\n")


def test_fastq_finds_the_same_reads_on_either_strand(tmp_path, tenx, index):
    fastq = tmp_path / "sample.fastq.gz"
    write_fastq(tenx["bam"], fastq, reverse_every=2)
    assert detect_format(fastq) == "fastq"
    bam_result = scan_reads(tenx["bam"], index, keep_read_names=True)
    fastq_result = scan_reads(fastq, index, keep_read_names=True)
    assert fastq_result.total_reads == bam_result.total_reads
    assert sorted(fastq_result.tally.car_read_names) == sorted(bam_result.tally.car_read_names)
    assert fastq_result.tally.constructs[0].antisense_reads > 0
    plain = tmp_path / "sample.fastq"
    with gzip.open(fastq, "rb") as source, open(plain, "wb") as target:
        shutil.copyfileobj(source, target)
    assert (
        scan_reads(plain, index).tally.constructs[0].reads == bam_result.tally.constructs[0].reads
    )


def test_targeted_mode_finds_the_same_car_reads(tmp_path, tenx, index):
    bed = tmp_path / "host_loci.bed"
    bed.write_text("CD8A\t0\t1000\nCD8A\t900\t1522\nCD247\t0\t1439\n")
    full = scan_reads(tenx["bam"], index, PER_CELL)
    targeted = scan_reads(
        tenx["bam"], index, PER_CELL._replace(targeted=True, targeted_bed=str(bed))
    )
    assert targeted.mode == "targeted"
    assert targeted.scanned_reads < full.total_reads / 10
    assert targeted.total_reads == full.total_reads
    assert summary(targeted)[1:] == summary(full)[1:]


def test_targeted_bed_of_another_reference_is_refused(tmp_path, tenx, index):
    bed = tmp_path / "hg38.bed"
    bed.write_text("chr2\t100\t200\n")
    with pytest.raises(ReadsError, match="another reference"):
        scan_reads(tenx["bam"], index, ScanSettings(targeted=True, targeted_bed=str(bed)))


def test_targeted_mode_needs_an_index(tmp_path, tenx, index):
    copy = tmp_path / "no_index.bam"
    shutil.copy(tenx["bam"], copy)
    with pytest.raises(ReadsError, match="indexed BAM"):
        scan_reads(copy, index, ScanSettings(targeted=True))


def test_the_sample_job_indexes_a_link_for_a_targeted_scan(tmp_path, tenx, index, capsys):
    """The index policy (docs/alignment_files.md): scan_reads refuses an unindexed BAM in
    targeted mode (above); the sample's job indexes a link and leaves the input folder as it
    was."""
    from carmscope.car.sample import analyse_sample

    folder = tmp_path / "inputs"
    folder.mkdir()
    copy = folder / "no_index.bam"
    shutil.copy(tenx["bam"], copy)
    settings = ScanSettings(targeted=True)
    unindexed = analyse_sample("S1", "bulk_rna", copy, index, settings)
    indexed = analyse_sample("S1", "bulk_rna", tenx["bam"], index, settings)
    assert sorted(p.name for p in folder.iterdir()) == ["no_index.bam"]
    assert f"samtools index {copy}" in capsys.readouterr().err
    pd.testing.assert_frame_equal(unindexed.evidence, indexed.evidence)


def test_bed_intervals_are_merged(tmp_path):
    bed = tmp_path / "loci.bed"
    bed.write_text("track name=x\nchr1\t10\t20\nchr1\t15\t30\nchr2\t0\t5\tname\n")
    assert read_bed(bed) == {"chr1": [(10, 30)], "chr2": [(0, 5)]}
    bed.write_text("chr1\t10\n")
    with pytest.raises(ReadsError, match="line 1"):
        read_bed(bed)


def test_bam_without_cell_barcodes_is_refused_for_per_cell_counts(tmp_path, tenx, index):
    stripped = tmp_path / "no_cb.bam"
    with (
        pysam.AlignmentFile(str(tenx["bam"])) as source,
        pysam.AlignmentFile(str(stripped), "wb", template=source) as target,
    ):
        for read in source:
            read.set_tag("CB", None)
            target.write(read)
    with pytest.raises(ReadsError, match="CB tag"):
        scan_reads(stripped, index, PER_CELL)
    assert scan_reads(stripped, index).tally.constructs[0].reads > 0


def test_fastq_is_refused_for_per_cell_counts(tmp_path, tenx, index):
    fastq = tmp_path / "sample.fastq.gz"
    write_fastq(tenx["bam"], fastq)
    with pytest.raises(ReadsError, match="not a FASTQ"):
        scan_reads(fastq, index, PER_CELL)


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_bam_is_refused(tmp_path, tenx, index, keep):
    data = tenx["bam"].read_bytes()
    truncated = tmp_path / "truncated.bam"
    truncated.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ReadsError, match="truncated"):
        scan_reads(truncated, index)


def test_bam_without_end_of_file_block_is_refused(tmp_path, tenx, index):
    data = tenx["bam"].read_bytes()
    assert data.endswith(bam.EOF_BLOCK)
    cut = tmp_path / "cut.bam"
    cut.write_bytes(data[: -len(bam.EOF_BLOCK)])
    with pytest.raises(ReadsError, match="end-of-file"):
        scan_reads(cut, index)


def test_corrupt_bam_is_refused(tmp_path, tenx, index):
    data = bytearray(tenx["bam"].read_bytes())
    data[len(data) // 2 : len(data) // 2 + 200] = bytes(200)
    corrupt = tmp_path / "corrupt.bam"
    corrupt.write_bytes(bytes(data))
    with pytest.raises(ReadsError):
        scan_reads(corrupt, index)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"\x00\x01\x02 not reads at all\n" * 10, "not a BAM, CRAM, SAM or FASTQ"),
        (b"@read1\nACGT\n", "not a BAM, CRAM, SAM or FASTQ"),
    ],
)
def test_unreadable_files_are_refused(tmp_path, index, content, message):
    path = tmp_path / "reads.bam"
    path.write_bytes(content)
    with pytest.raises(ReadsError, match=message):
        scan_reads(path, index)


def test_missing_file_is_refused(tmp_path, index):
    with pytest.raises(ReadsError, match="cannot be read"):
        scan_reads(tmp_path / "absent.bam", index)


def test_malformed_fastq_is_refused(tmp_path, index):
    path = tmp_path / "bad.fastq"
    path.write_text("@r1\nACGT\n+\nFFFF\n@r2\nACGT\nFFFF\n")
    with pytest.raises(ReadsError, match="malformed FASTQ"):
        scan_reads(path, index)


def test_truncated_fastq_is_refused(tmp_path, index):
    path = tmp_path / "cut.fastq.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("@r1\nACGT\n+\nFFFF\n" * 50_000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReadsError, match="truncated"):
        scan_reads(path, index)


def test_secondary_alignments_are_not_counted_twice(tmp_path, tenx, index):
    doubled = tmp_path / "doubled.bam"
    with (
        pysam.AlignmentFile(str(tenx["bam"])) as source,
        pysam.AlignmentFile(str(doubled), "wb", template=source) as target,
    ):
        for read in source:
            target.write(read)
            if not read.is_unmapped:
                read.flag |= 0x100
                target.write(read)
    once = scan_reads(tenx["bam"], index, PER_CELL)
    twice = scan_reads(doubled, index, PER_CELL)
    assert summary(twice) == summary(once)


def test_memory_stays_flat_in_the_number_of_reads(tenx, index, monkeypatch):
    """With small chunks the scan's peak memory stays far below the inflated file's size."""
    monkeypatch.setattr(bam, "CHUNK_BYTES", 65_536)
    monkeypatch.setattr(bam, "READ_BYTES", 262_144)
    inflated = sum(len(block.data) for block in bam.iter_blocks(str(tenx["bam"])))
    scan_reads(tenx["bam"], index)  # compile and load everything first
    tracemalloc.start()
    try:
        scan_reads(tenx["bam"], index)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert inflated > 4_000_000
    assert peak < inflated / 4
