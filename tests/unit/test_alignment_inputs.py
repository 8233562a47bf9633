"""Real-world alignment and variant files through the shared reader (carmscope.bam) and the
stages that read them: index lookup, sort order from records, plain-gzip VCFs, CRAM references.

``tests/data/bam/samtools_ex1_no_hd.bam`` is samtools' example BAM as shipped in a PyPI sdist
(see ``tests/data/bam/README.md``): coordinate-sorted and indexed, with no ``@HD`` line.
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pandas as pd
import pysam
import pytest

from carmscope.bam.alignments import sort_order
from carmscope.bam.index import find_index, index_candidates, indexed
from carmscope.ctdna.alleles import count_alleles
from carmscope.ctdna.variants import CtdnaInputError, read_tumour_variants
from carmscope.inputs import InputContentError, inspect_reads, inspect_variants
from tests.unit.test_ctdna_alleles import (
    alt_base,
    read,
    snv,
    write_bam,
    write_reference,
    write_vcf,
)

DATA = Path(__file__).parent.parent / "data" / "bam"
NO_HD = DATA / "samtools_ex1_no_hd.bam"


# --- the index finder -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "present", "found"),
    [
        ("x.bam", ["x.bam.bai"], "x.bam.bai"),
        ("x.bam", ["x.bai"], "x.bai"),
        ("x.bam", ["x.bam.bai", "x.bam.csi"], "x.bam.csi"),  # htslib prefers the .csi
        ("x.bam", ["x.bai", "x.csi"], "x.csi"),
        ("x.bam", ["x.bai", "x.bam.bai"], "x.bam.bai"),
        ("x.cram", ["x.cram.crai"], "x.cram.crai"),
        ("x.cram", ["x.crai"], "x.crai"),
        ("x.cram", ["x.cram.bai"], None),  # a CRAM has no .bai
        ("x.bam", [], None),
    ],
)
def test_index_finder_policy(tmp_path, name, present, found):
    for file in [name, *present]:
        (tmp_path / file).touch()
    result = find_index(tmp_path / name)
    assert result == (None if found is None else str(tmp_path / found))
    assert index_candidates("a/x.bam") == ["a/x.bam.csi", "a/x.csi", "a/x.bam.bai", "a/x.bai"]


def test_an_unindexed_bam_is_indexed_through_a_link_and_left_untouched(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    bam = write_bam(folder / "p.bam", [read("r", 80, alt_base())], index=False)
    with indexed(bam) as usable:
        assert usable != bam and find_index(usable) is not None
        assert count_alleles(usable, snv()).loc[0, "alt_count"] == 1
    assert sorted(os.listdir(folder)) == ["p.bam"]
    assert f"samtools index {bam}" in capsys.readouterr().err
    with indexed(write_bam(folder / "q.bam", [read("r", 80)])) as usable:
        assert usable == str(folder / "q.bam")  # indexed already: the file itself


# --- sort order from the records when the header is silent -----------------------------------


def test_samtools_bam_without_hd_is_accepted_as_coordinate_sorted():
    with pysam.AlignmentFile(str(NO_HD)) as bam:
        assert "HD" not in bam.header.to_dict()
        assert sort_order(bam) == (
            "coordinate",
            "no SO in the header; the records are in coordinate order",
        )
        first = next(bam.fetch(until_eof=True))  # rewound after the check
        assert first.query_name == "EAS56_57:6:190:289:82"
    figures = inspect_reads(str(NO_HD), "cfdna")
    assert figures["reads_sort_order"] == "coordinate" and figures["reads_indexed"] is True
    # counted like any sorted, indexed BAM, by both engines
    sites = pd.DataFrame({"chrom": ["chr1", "chr2"], "pos": [200, 500], "ref": "A", "alt": "C"})
    ours = count_alleles(NO_HD, sites)
    assert (ours["depth"] > 5).all()
    pd.testing.assert_frame_equal(ours, count_alleles(NO_HD, sites, engine="pysam"))


def test_bam_without_hd_and_out_of_order_is_refused_with_the_record(tmp_path):
    path = tmp_path / "shuffled.bam"
    with pysam.AlignmentFile(str(NO_HD)) as source:
        reads = list(source.fetch(until_eof=True))
        with pysam.AlignmentFile(str(path), "wb", template=source) as out:
            for segment in [reads[5], *reads[:5], *reads[6:]]:
                out.write(segment)
    with pytest.raises(CtdnaInputError) as caught:
        count_alleles(path, pd.DataFrame({"chrom": ["chr1"], "pos": [200], "ref": "A", "alt": "C"}))
    assert str(caught.value) == (
        f"{path}: is not coordinate-sorted (no SO in the header; record 2 is out of coordinate "
        f"order); sort and index it: samtools sort -o sorted.bam {path} && samtools index "
        "sorted.bam"
    )
    with pytest.raises(InputContentError, match="record 2 is out of coordinate order"):
        inspect_reads(str(path), "cfdna")


# --- plain gzip instead of bgzip --------------------------------------------------------------


def plain_gzip_vcf(tmp_path):
    text = write_vcf(tmp_path / "tumour.vcf", [("chr1", 101, ".", "A", "C")])
    path = tmp_path / "tumour.vcf.gz"
    with open(text, "rb") as source, gzip.open(path, "wb") as target:
        shutil.copyfileobj(source, target)
    return path


def test_plain_gzip_vcf_is_refused_with_how_to_bgzip_it(tmp_path):
    path = plain_gzip_vcf(tmp_path)
    reason = (
        "is compressed with plain gzip, not bgzip, so htslib cannot read it: recompress it "
        f"with `gunzip -c {path} | bgzip > {tmp_path / 'tumour.vcf.bgz.gz'}` (bgzip comes with "
        "htslib/tabix) and use the new file"
    )
    with pytest.raises(CtdnaInputError) as caught:  # the panel rules read it so
        read_tumour_variants(path)
    assert str(caught.value) == f"{path}: {reason}"
    with pytest.raises(InputContentError) as caught:  # and so does input inspection
        inspect_variants(str(path), [])
    assert str(caught.value) == f"{path}: {reason}"
    bgzipped = tmp_path / "tumour.bgz.vcf.gz"
    pysam.tabix_compress(str(tmp_path / "tumour.vcf"), str(bgzipped))
    assert read_tumour_variants(bgzipped)["alt"].tolist() == ["C"]


# --- CRAM without its reference ---------------------------------------------------------------


def cram_without_reference(tmp_path):
    """A CRAM written against a FASTA that is then removed (its header's UR points nowhere)."""
    reads = [read(f"alt{i}", 60 + i, alt_base()) for i in range(3)]
    bam = write_bam(tmp_path / "c.bam", reads)
    reference = Path(write_reference(tmp_path))
    cram = str(tmp_path / "c.cram")
    pysam.view("-C", "-T", str(reference), "-o", cram, bam, catch_stdout=False)
    pysam.index(cram)
    with pysam.AlignmentFile(cram, "rc", check_sq=False) as handle:
        location = handle.header.to_dict()["SQ"][0]["UR"]
    reference.unlink()
    Path(f"{reference}.fai").unlink()
    return cram, location


def test_cram_whose_reference_is_missing_names_it_and_the_config_key(tmp_path, monkeypatch):
    monkeypatch.delenv("REF_PATH", raising=False)
    monkeypatch.delenv("REF_CACHE", raising=False)
    cram, location = cram_without_reference(tmp_path)
    with pytest.raises(CtdnaInputError) as caught:
        count_alleles(cram, snv())
    assert str(caught.value) == (
        f"{cram}: cannot decode this CRAM: the reference FASTA it was written against is not "
        f"found (its header points to {location}, which does not exist); set ctdna.reference "
        "to the FASTA the reads were aligned to"
    )
    with pytest.raises(CtdnaInputError) as caught:
        count_alleles(cram, snv(), reference=tmp_path / "gone.fa")
    assert str(caught.value) == (
        f"{cram}: the CRAM reference {tmp_path / 'gone.fa'} (config key ctdna.reference) does "
        "not exist: set ctdna.reference to the FASTA the reads were aligned to"
    )


def test_car_scan_of_a_cram_without_its_reference_names_it_and_the_config_key(
    tmp_path, monkeypatch
):
    from carmscope.car.bam import ReadsError
    from carmscope.car.scan import ScanSettings, scan_reads

    monkeypatch.delenv("REF_PATH", raising=False)
    monkeypatch.delenv("REF_CACHE", raising=False)
    cram, location = cram_without_reference(tmp_path)
    with pytest.raises(ReadsError) as caught:
        scan_reads(cram, index=None, settings=ScanSettings())
    assert str(caught.value) == (
        f"{cram}: cannot decode this CRAM: the reference FASTA it was written against is not "
        f"found (its header points to {location}, which does not exist); set "
        "car.cram_reference to the FASTA the reads were aligned to"
    )


def test_biopsy_bam_sharing_no_contig_with_the_car_loci_is_flagged(tmp_path, capsys):
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "NC_000017.11", "LN": 900}]}
    path = tmp_path / "other_reference.bam"
    with pysam.AlignmentFile(str(path), "wb", header=header) as bam:
        segment = pysam.AlignedSegment(bam.header)
        segment.query_name, segment.query_sequence = "r1", "ACGT" * 10
        segment.reference_id, segment.reference_start, segment.cigarstring = 0, 10, "40M"
        segment.query_qualities = pysam.qualitystring_to_array("I" * 40)
        bam.write(segment)
    figures = inspect_reads(str(path), "bulk_rna")
    assert figures["reads_host_loci_contigs"] == 0
    assert capsys.readouterr().err == (
        f"warning: {path}: no contig in common with the CAR construct or its host loci (CD247 "
        "on 1/chr1, CD8A on 2/chr2; the header has NC_000017.11): aligned to another "
        "reference?\n"
    )
    assert inspect_reads(str(NO_HD), "bulk_rna")["reads_host_loci_contigs"] == 2  # chr1, chr2
