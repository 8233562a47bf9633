"""The record scan (``carmscope.ctdna.bamscan``) against the pysam path of count_alleles, on
random reads with every CIGAR operation, flags, missing qualities and two contigs."""

import numpy as np
import pandas as pd
import pysam
import pytest

from carmscope.ctdna import alleles, bamscan, pileup, variants
from carmscope.ctdna.alleles import COUNT_COLUMNS, AlleleFilters, count_alleles

CONTIGS = ("chrA", "chrB")
LENGTH = 3000
BASES = "ACGT"


def reference(rng):
    return {name: "".join(rng.choice(list(BASES), LENGTH)) for name in CONTIGS}


def design_sites(rng, genome):
    rows = []
    for chrom in CONTIGS:
        for anchor in sorted(rng.choice(np.arange(50, LENGTH - 50), 40, replace=False)):
            anchor = int(anchor)
            ref = genome[chrom][anchor]
            kind = str(rng.choice(["snv", "snv", "insertion", "deletion"]))
            if kind == "snv":
                rows.append(
                    (chrom, anchor + 1, ref, str(rng.choice([b for b in BASES if b != ref])))
                )
            elif kind == "insertion":
                rows.append((chrom, anchor + 1, ref, ref + "".join(rng.choice(list(BASES), 2))))
            else:
                size = int(rng.integers(1, 4))
                rows.append((chrom, anchor + 1, genome[chrom][anchor : anchor + 1 + size], ref))
    return pd.DataFrame(rows, columns=["chrom", "pos", "ref", "alt"]).drop_duplicates(
        ["chrom", "pos"]
    )


def random_read(rng, genome, chrom, start, events):
    """(cigartuples, sequence): mostly matches, with the sites' events and random ones."""
    contig = genome[chrom]
    cigar, sequence, ref = [], [], start
    if rng.random() < 0.2:
        clip = "".join(rng.choice(list(BASES), int(rng.integers(1, 8))))
        cigar.append((4, len(clip)))
        sequence.append(clip)
    elif rng.random() < 0.05:
        cigar.append((5, int(rng.integers(1, 20))))
    target = int(rng.integers(40, 90))
    while ref < start + target and ref < LENGTH - 10:
        step = int(rng.integers(3, 25))
        bases = list(contig[ref : ref + step])
        for offset in range(len(bases)):
            event = events.get(ref + offset)
            draw = rng.random()
            if event is not None and event[0] == "snv" and draw < 0.5:
                alt = event[1]
                bases[offset] = alt if draw < 0.4 else {"A": "C", "C": "G", "G": "T", "T": "A"}[alt]
            elif rng.random() < 0.04:
                bases[offset] = str(rng.choice(list(BASES)))
        cigar.append((int(rng.choice([0, 0, 0, 7, 8])), len(bases)))
        sequence.append("".join(bases))
        ref += len(bases)
        event = events.get(ref - 1)
        draw = rng.random()
        if event is not None and event[0] != "snv" and draw < 0.5:
            kind, value = event
            if kind == "insertion":
                cigar.append((1, len(value)))
                sequence.append(value)
            elif kind == "deletion":
                cigar.append((2, value))
                ref += value
        elif draw < 0.08:
            inserted = "".join(rng.choice(list(BASES), int(rng.integers(1, 4))))
            cigar.append((1, len(inserted)))
            sequence.append(inserted)
        elif draw < 0.14:
            skipped = int(rng.integers(1, 4))
            cigar.append((2, skipped))
            ref += skipped
        elif draw < 0.16:
            skipped = int(rng.integers(20, 200))
            cigar.append((3, skipped))
            ref += skipped
    if rng.random() < 0.2:
        clip = "".join(rng.choice(list(BASES), int(rng.integers(1, 8))))
        cigar.append((4, len(clip)))
        sequence.append(clip)
    return cigar, "".join(sequence)


def random_bam(path, rng, genome, sites):
    events = {chrom: {} for chrom in CONTIGS}
    for site in sites.itertuples(index=False):
        kind = variants.classify_alleles(site.ref, site.alt)[0]
        anchor = site.pos - 1
        if kind == "snv":
            events[site.chrom][anchor] = ("snv", site.alt)
        elif kind == "insertion":
            events[site.chrom][anchor] = ("insertion", site.alt[1:])
        elif kind == "deletion":
            events[site.chrom][anchor] = ("deletion", len(site.ref) - 1)
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": name, "LN": LENGTH} for name in CONTIGS],
    }
    records = []
    with pysam.AlignmentFile(str(path), "wb", header=header) as bam:
        for number in range(2500):
            tid = int(rng.integers(0, 2))
            chrom = CONTIGS[tid]
            name = f"fragment_{number}_" + "x" * int(rng.integers(0, 40))
            start1 = int(rng.integers(0, LENGTH - 300))
            start2 = start1 + int(rng.integers(0, 80))
            flags = 0x1 | (0x2 if rng.random() > 0.05 else 0)
            for draw, flag in ((0.05, 0x400), (0.02, 0x200), (0.02, 0x100), (0.02, 0x800)):
                if rng.random() < draw:
                    flags |= flag
            mapq = int(rng.choice([60, 60, 60, 25, 10, 0]))
            mates = [(start1, 0x40 | 0x20), (start2, 0x80 | 0x10)]
            if rng.random() < 0.1:
                mates = mates[:1]
            for start, mate_flags in mates:
                segment = pysam.AlignedSegment(bam.header)
                segment.query_name = name
                segment.reference_id = tid
                segment.reference_start = start
                segment.mapping_quality = mapq
                segment.flag = flags | mate_flags
                segment.next_reference_id = tid
                segment.next_reference_start = start2 if start == start1 else start1
                if rng.random() < 0.02:  # unmapped, placed at the mate
                    segment.flag = segment.flag | 0x4
                    segment.query_sequence = "".join(rng.choice(list(BASES), 50))
                else:
                    cigar, sequence = random_read(rng, genome, chrom, start, events[chrom])
                    segment.cigartuples = cigar
                    segment.query_sequence = sequence
                if rng.random() > 0.05:  # else no base qualities (stored as 0xff)
                    segment.query_qualities = pysam.qualitystring_to_array(
                        "".join(chr(int(q) + 33) for q in rng.choice([2, 15, 20, 25, 37], 400))[
                            : len(segment.query_sequence)
                        ]
                    )
                records.append(segment)
        for segment in sorted(records, key=lambda s: (s.reference_id, s.reference_start)):
            bam.write(segment)
    pysam.index(str(path))
    return str(path)


def pysam_counts(bam, variants, filters, monkeypatch):
    return count_alleles(bam, variants, filters, engine="pysam")


def no_pysam_fallback(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the cluster was counted with pysam, not the record scan")

    monkeypatch.setattr(pileup, "count_cluster", fail)


FILTERS = {
    "default": AlleleFilters(),
    "each_read": AlleleFilters(count_overlapping_mates_once=False, min_indel_flank=3),
    "relaxed": AlleleFilters(
        min_base_quality=0,
        min_mapping_quality=0,
        exclude_duplicates=False,
        exclude_secondary=False,
        exclude_supplementary=False,
        exclude_qc_fail=False,
        exclude_improper_pairs=False,
        min_indel_flank=0,
    ),
}


@pytest.fixture(scope="module")
def random_case(tmp_path_factory):
    """A random two-contig BAM (with its .bai) and 80 sites on it."""
    rng = np.random.default_rng(5)
    genome = reference(rng)
    sites = design_sites(rng, genome)
    bam = random_bam(tmp_path_factory.mktemp("scan") / "random.bam", rng, genome, sites)
    return bam, sites


@pytest.mark.parametrize("gap", [16_384, 100], ids=["per_contig", "many_clusters"])
@pytest.mark.parametrize("filters", list(FILTERS.values()), ids=list(FILTERS))
def test_record_scan_equals_pysam_path(random_case, monkeypatch, gap, filters):
    bam, sites = random_case
    monkeypatch.setattr(alleles, "CLUSTER_GAP", gap)
    expected = pysam_counts(bam, sites, filters, monkeypatch)
    no_pysam_fallback(monkeypatch)
    ours = count_alleles(bam, sites, filters)
    pd.testing.assert_frame_equal(ours, expected)
    assert expected["alt_count"].sum() > 100 and expected["other_count"].sum() > 10
    for kind in ("snv", "insertion", "deletion"):
        assert expected.loc[expected["kind"] == kind, "alt_count"].sum() > 0


def test_sites_on_one_contig_skip_the_other_contigs_reads(random_case, monkeypatch):
    bam, sites = random_case
    for chrom in CONTIGS:
        some = sites[sites["chrom"] == chrom].iloc[::7]
        expected = pysam_counts(bam, some, AlleleFilters(), monkeypatch)
        with monkeypatch.context() as patch:
            no_pysam_fallback(patch)
            pd.testing.assert_frame_equal(count_alleles(bam, some, AlleleFilters()), expected)


def test_a_csi_index_is_left_to_pysam(random_case, tmp_path):
    bam, sites = random_case
    expected = count_alleles(bam, sites)
    assert bamscan.bai_path(bam) == bam + ".bai"
    csi = str(tmp_path / "csi.bam")
    pysam.view("-b", "-o", csi, bam, catch_stdout=False)
    pysam.index("-c", csi)
    assert bamscan.bai_path(csi) is None  # htslib would use the .csi
    pd.testing.assert_frame_equal(count_alleles(csi, sites), expected)


def test_cigar_kept_in_a_cg_tag_falls_back_to_pysam(tmp_path, monkeypatch):
    """More than 65,535 CIGAR operations: the BAM stores them in a CG tag, which htslib (and
    so pysam) moves back on reading; the scan hands such a cluster to pysam."""
    genome = "".join(np.random.default_rng(1).choice(list(BASES), 200_000))
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chrL", "LN": 200_000}]}
    path = str(tmp_path / "long.bam")
    records = []
    with pysam.AlignmentFile(path, "wb", header=header) as bam:
        for number in range(6):
            segment = pysam.AlignedSegment(bam.header)
            segment.query_name = f"read{number}"
            segment.reference_id = 0
            segment.reference_start = 100 + number
            segment.mapping_quality = 60
            if number == 0:  # 1M1D x 33,000: 66,000 operations
                segment.cigartuples = [(0, 1), (2, 1)] * 33_000
                sequence = genome[100 : 100 + 66_000 : 2]
            else:
                segment.cigartuples = [(0, 300)]
                sequence = genome[100 + number : 400 + number]
            segment.query_sequence = sequence
            segment.query_qualities = pysam.qualitystring_to_array("I" * len(sequence))
            records.append(segment)
        for segment in records:
            bam.write(segment)
    pysam.index(path)
    sites = pd.DataFrame(
        {"chrom": "chrL", "pos": [201, 252], "ref": [genome[200], genome[251]], "alt": ["N", "N"]}
    )
    sites["alt"] = [{"A": "C", "C": "G", "G": "T", "T": "A"}[r] for r in sites["ref"]]
    expected = pysam_counts(path, sites, AlleleFilters(), monkeypatch)
    assert expected["ref_count"].tolist() == [6, 5]  # position 251 is deleted in read0
    with pysam.AlignmentFile(path) as bam:
        scanner = alleles._record_scanner(bam, path)
    cluster = [
        alleles._site(i, row, AlleleFilters()) for i, row in variants.as_variants(sites).iterrows()
    ]
    assert alleles._scan_cluster(scanner, 0, 200, 252, cluster, AlleleFilters()) is None
    scanner.close()
    pd.testing.assert_frame_equal(count_alleles(path, sites), expected)
    assert list(count_alleles(path, sites)[COUNT_COLUMNS[:3]].sum()) == [11, 0, 0]
