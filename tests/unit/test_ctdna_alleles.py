"""Tumour-variant VCFs and allele counts on hand-made reads (tiny BAMs built in tmp_path)."""

import zlib
from dataclasses import replace

import numpy as np
import pandas as pd
import pysam
import pytest

from carmscope.ctdna import alleles, pileup
from carmscope.ctdna.alleles import COUNT_COLUMNS, AlleleFilters, count_alleles
from carmscope.ctdna.reads import ensure_index
from carmscope.ctdna.variants import CtdnaInputError, read_tumour_variants
from tests.bcftools_oracle import count_alleles_bcftools

CONTIG_LENGTH = 600
REFERENCE = "".join(np.random.default_rng(7).choice(list("ACGT"), CONTIG_LENGTH))
READ_LENGTH = 50
SNV_SITE = 100  # 0-based
ALT_OF = {"A": "C", "C": "G", "G": "T", "T": "A"}
OTHER_OF = {"A": "G", "C": "T", "G": "A", "T": "C"}

FLAG_PAIRED, FLAG_PROPER, FLAG_UNMAPPED = 0x1, 0x2, 0x4
FLAG_REVERSE, FLAG_MATE_REVERSE, FLAG_READ1, FLAG_READ2 = 0x10, 0x20, 0x40, 0x80
FLAG_SECONDARY, FLAG_QCFAIL, FLAG_DUPLICATE, FLAG_SUPPLEMENTARY = 0x100, 0x200, 0x400, 0x800


def header(so="coordinate", contigs=("chr1",)):
    return {
        "HD": {"VN": "1.6", "SO": so},
        "SQ": [{"SN": name, "LN": CONTIG_LENGTH} for name in contigs],
    }


def read(
    name,
    start,
    bases=None,
    quals=None,
    ops=None,
    reverse=False,
    mapq=60,
    flag=0,
    proper=True,
    mate_start=None,
    read2=False,
):
    """A read spec: reference bases from ``start`` with ``bases``/``quals`` overrides at
    0-based reference positions; ``ops`` (CIGAR as [("M", n), ("D", n), ("I", "SEQ")])
    defaults to READ_LENGTH matches."""
    ops = ops or [("M", READ_LENGTH)]
    sequence, cigar, ref_pos, qual_by_ref = [], [], start, {}
    for op, value in ops:
        if op == "M":
            for offset in range(value):
                position = ref_pos + offset
                qual_by_ref[len(sequence)] = position
                sequence.append((bases or {}).get(position, REFERENCE[position]))
            cigar.append(f"{value}M")
            ref_pos += value
        elif op == "D":
            cigar.append(f"{value}D")
            ref_pos += value
        else:  # insertion
            sequence.extend(value)
            cigar.append(f"{len(value)}I")
    qualities = [30] * len(sequence)
    for index, position in qual_by_ref.items():
        qualities[index] = (quals or {}).get(position, 30)
    return {
        "name": name,
        "start": start,
        "end": ref_pos,
        "seq": "".join(sequence),
        "cigar": "".join(cigar),
        "qual": qualities,
        "reverse": reverse,
        "mapq": mapq,
        "flag": flag,
        "proper": proper,
        "mate_start": start + 300 if mate_start is None else mate_start,
        "read2": read2,
    }


def pair(name, start1, start2, bases1=None, bases2=None, quals1=None, quals2=None, **kw):
    """Two mates of one fragment: read 1 forward at start1, read 2 reverse at start2."""
    return [
        read(name, start1, bases1, quals1, mate_start=start2, **kw),
        read(name, start2, bases2, quals2, reverse=True, mate_start=start1, read2=True, **kw),
    ]


def write_bam(path, reads, so="coordinate", index=True, contigs=("chr1",)):
    with pysam.AlignmentFile(str(path), "wb", header=header(so, contigs)) as bam:
        for spec in sorted(reads, key=lambda r: r["start"]):
            segment = pysam.AlignedSegment(bam.header)
            segment.query_name = spec["name"]
            segment.query_sequence = spec["seq"]
            segment.query_qualities = pysam.qualitystring_to_array(
                "".join(chr(q + 33) for q in spec["qual"])
            )
            segment.reference_id = 0
            segment.reference_start = spec["start"]
            segment.cigarstring = spec["cigar"]
            segment.mapping_quality = spec["mapq"]
            mate_reverse = not spec["reverse"]
            segment.flag = (
                FLAG_PAIRED
                | (FLAG_PROPER if spec["proper"] else 0)
                | (FLAG_REVERSE if spec["reverse"] else 0)
                | (FLAG_MATE_REVERSE if mate_reverse else 0)
                | (FLAG_READ2 if spec["read2"] else FLAG_READ1)
                | spec["flag"]
            )
            segment.next_reference_id = 0
            segment.next_reference_start = spec["mate_start"]
            left = min(spec["start"], spec["mate_start"])
            right = max(spec["end"], spec["mate_start"] + READ_LENGTH)
            segment.template_length = (right - left) * (1 if spec["start"] == left else -1)
            bam.write(segment)
    if index:
        pysam.index(str(path))
    return str(path)


def write_reference(folder):
    path = folder / "ref.fa"
    lines = [REFERENCE[i : i + 60] for i in range(0, CONTIG_LENGTH, 60)]
    path.write_text(">chr1\n" + "\n".join(lines) + "\n")
    pysam.faidx(str(path))
    return str(path)


def write_vcf(path, records, contigs=("chr1",)):
    lines = ["##fileformat=VCFv4.2"]
    lines += [f"##contig=<ID={c},length={CONTIG_LENGTH}>" for c in contigs]
    lines.append('##FILTER=<ID=LowQual,Description="low quality">')
    lines.append("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO")
    lines += ["\t".join(map(str, (*record, ".", ".", ".")[:8])) for record in records]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def snv(site=SNV_SITE, alt=None):
    ref = REFERENCE[site]
    return pd.DataFrame(
        {"chrom": ["chr1"], "pos": [site + 1], "ref": [ref], "alt": [alt or ALT_OF[ref]]}
    )


def alt_base(site=SNV_SITE):
    return {site: ALT_OF[REFERENCE[site]]}


def counts_of(table, row=0):
    return {column: int(table.loc[row, column]) for column in COUNT_COLUMNS}


# --- read_tumour_variants --------------------------------------------------------------------


def test_multiallelic_records_split_into_one_row_per_alt(tmp_path):
    x, y = REFERENCE[150], REFERENCE[151]
    z = OTHER_OF[x]
    mnv_ref = REFERENCE[300:302]
    vcf = write_vcf(
        tmp_path / "tumour.vcf",
        [
            (
                "chr1",
                101,
                ".",
                REFERENCE[100],
                f"{ALT_OF[REFERENCE[100]]},{OTHER_OF[REFERENCE[100]]}",
            ),
            ("chr1", 151, ".", x + y, f"{x},{x}{y}G,{z}{y}"),
            ("chr1", 301, ".", mnv_ref, ALT_OF[mnv_ref[0]] + ALT_OF[mnv_ref[1]]),
            ("chr1", 401, ".", REFERENCE[400], "<DEL>"),
            ("chr1", 451, ".", REFERENCE[450], ALT_OF[REFERENCE[450]], ".", "LowQual", "."),
            ("chr1", 101, ".", REFERENCE[100], ALT_OF[REFERENCE[100]]),
        ],
    )
    variants = read_tumour_variants(vcf, reference=write_reference(tmp_path))
    as_tuples = list(variants[["pos", "ref", "alt", "kind", "evaluable"]].itertuples(index=False))
    assert as_tuples == [
        (101, REFERENCE[100], ALT_OF[REFERENCE[100]], "snv", True),
        (101, REFERENCE[100], OTHER_OF[REFERENCE[100]], "snv", True),
        (151, x + y, x, "deletion", True),
        (152, y, y + "G", "insertion", True),  # XY>XYG trimmed to Y>YG
        (151, x, z, "snv", True),  # XY>ZY trimmed to the SNV X>Z
        (301, mnv_ref, ALT_OF[mnv_ref[0]] + ALT_OF[mnv_ref[1]], "complex", False),
        (401, REFERENCE[400], "<DEL>", "complex", False),
        (451, REFERENCE[450], ALT_OF[REFERENCE[450]], "snv", False),
        (101, REFERENCE[100], ALT_OF[REFERENCE[100]], "snv", False),
    ]
    reasons = variants["reason"].tolist()
    assert reasons[:5] == [""] * 5
    assert "complex" in reasons[5] and "symbolic" in reasons[6]
    assert "LowQual" in reasons[7] and "duplicate" in reasons[8]


def test_ref_disagreeing_with_reference_names_line_and_position(tmp_path):
    wrong = OTHER_OF[REFERENCE[200]]
    vcf = write_vcf(
        tmp_path / "t.vcf",
        [("chr1", 101, ".", REFERENCE[100], "N"), ("chr1", 201, ".", wrong, REFERENCE[200])],
    )
    with pytest.raises(CtdnaInputError) as caught:
        read_tumour_variants(vcf, reference=write_reference(tmp_path))
    message = str(caught.value)
    assert vcf in message and "line 6" in message and "chr1:201" in message
    assert f"REF {wrong}" in message
    # without a reference the same file reads
    assert len(read_tumour_variants(vcf)) == 2


def test_empty_and_unreadable_vcfs_are_rejected(tmp_path):
    with pytest.raises(CtdnaInputError, match="no variant records"):
        read_tumour_variants(write_vcf(tmp_path / "empty.vcf", []))
    garbage = tmp_path / "garbage.vcf"
    garbage.write_text("this is not a VCF\n")
    with pytest.raises(CtdnaInputError, match=r"garbage\.vcf"):
        read_tumour_variants(garbage)


# --- SNV counting and filters ----------------------------------------------------------------


def test_snv_counts_split_by_allele_and_strand(tmp_path):
    reads = [read(f"rf{i}", 60 + i) for i in range(5)]
    reads += [read(f"rr{i}", 70 + i, reverse=True) for i in range(3)]
    reads += [read(f"af{i}", 55 + i, alt_base()) for i in range(2)]
    reads += [read(f"ar{i}", 80 + i, alt_base(), reverse=True) for i in range(4)]
    reads += [read("other", 90, {SNV_SITE: OTHER_OF[REFERENCE[SNV_SITE]]})]
    reads += [read("elsewhere", 200, alt_base())]  # does not cover the site
    table = count_alleles(write_bam(tmp_path / "s.bam", reads), snv())
    assert counts_of(table) == {
        "ref_count": 8,
        "alt_count": 6,
        "other_count": 1,
        "depth": 15,
        "ref_fwd": 5,
        "ref_rev": 3,
        "alt_fwd": 2,
        "alt_rev": 4,
    }
    assert table.loc[0, "vaf"] == pytest.approx(6 / 15)


@pytest.mark.parametrize(
    ("extra", "relaxed"),
    [
        ({"quals": {SNV_SITE: 10}}, {"min_base_quality": 5}),
        ({"mapq": 10}, {"min_mapping_quality": 5}),
        ({"flag": FLAG_DUPLICATE}, {"exclude_duplicates": False}),
        ({"flag": FLAG_SECONDARY}, {"exclude_secondary": False}),
        ({"flag": FLAG_SUPPLEMENTARY}, {"exclude_supplementary": False}),
        ({"flag": FLAG_QCFAIL}, {"exclude_qc_fail": False}),
        ({"proper": False}, {"exclude_improper_pairs": False}),
    ],
    ids=[
        "base_quality",
        "mapping_quality",
        "duplicate",
        "secondary",
        "supplementary",
        "qcfail",
        "improper_pair",
    ],
)
def test_each_filter_excludes_only_its_reads(tmp_path, extra, relaxed):
    reads = [read(f"alt{i}", 60 + i, alt_base()) for i in range(3)]
    reads += [read(f"ref{i}", 70 + i) for i in range(2)]
    reads.append(read("special", 75, alt_base(), **extra))
    bam = write_bam(tmp_path / "f.bam", reads)
    default = count_alleles(bam, snv())
    assert (default.loc[0, "alt_count"], default.loc[0, "depth"]) == (3, 5)
    loose = count_alleles(bam, snv(), replace(AlleleFilters(), **relaxed))
    assert (loose.loc[0, "alt_count"], loose.loc[0, "depth"]) == (4, 6)


def test_unmapped_reads_placed_at_the_site_never_count(tmp_path):
    reads = [read("alt", 60, alt_base()), read("unmapped", 70, alt_base(), flag=FLAG_UNMAPPED)]
    table = count_alleles(write_bam(tmp_path / "u.bam", reads), snv())
    assert (table.loc[0, "alt_count"], table.loc[0, "depth"]) == (1, 1)


def test_overlapping_mates_count_once(tmp_path):
    site, alt, ref = SNV_SITE, ALT_OF[REFERENCE[SNV_SITE]], REFERENCE[SNV_SITE]
    reads = pair("agree", 70, 90, {site: alt}, {site: alt})
    reads += pair("low_agree", 71, 91, {site: alt}, {site: alt}, {site: 15}, {site: 15})
    reads += pair("disagree", 72, 92, {site: alt}, {site: ref}, {site: 30}, {site: 25})
    reads += pair("tie", 73, 93, {site: alt}, {site: ref}, {site: 30}, {site: 30})
    reads += pair("apart", 20, 140, {}, {})  # mates do not overlap the site together
    bam = write_bam(tmp_path / "o.bam", reads)
    once = counts_of(count_alleles(bam, snv()))
    # agree, low_agree (15 + 15 >= 20) and disagree (the Q30 ALT mate) give ALT; tie gives none
    assert (once["alt_count"], once["ref_count"], once["depth"]) == (3, 0, 3)
    assert once["alt_fwd"] + once["alt_rev"] == 3
    twice = counts_of(count_alleles(bam, snv(), AlleleFilters(count_overlapping_mates_once=False)))
    # every mate alone: 2 + 0 (Q15) + 1 + 1 ALT, 0 + 0 + 1 + 1 REF
    assert (twice["alt_count"], twice["ref_count"]) == (4, 2)


def test_agreeing_overlapping_mates_add_no_strand_bias(tmp_path):
    # read 1 (forward) always comes first: keeping "the later mate" would count all on reverse
    reads = []
    for number in range(200):
        reads += pair(f"frag:{number}", 60 + number % 30, 95, alt_base(), alt_base())
    table = count_alleles(write_bam(tmp_path / "b.bam", reads), snv())
    assert table.loc[0, "alt_count"] == 200
    assert 70 <= table.loc[0, "alt_fwd"] <= 130


# --- indels ----------------------------------------------------------------------------------


def test_deletion_counted_from_cigar(tmp_path):
    anchor, length = 200, 3
    variant = pd.DataFrame(
        {
            "chrom": ["chr1"],
            "pos": [anchor + 1],
            "ref": [REFERENCE[anchor : anchor + length + 1]],
            "alt": [REFERENCE[anchor]],
        }
    )

    def deleted(name, start, size=length, **kw):
        before = anchor - start + 1
        return read(name, start, ops=[("M", before), ("D", size), ("M", 30)], **kw)

    reads = [deleted(f"alt{i}", 170 + i, reverse=i == 0) for i in range(3)]
    reads += [read(f"ref{i}", 180 + i) for i in range(2)]  # span anchor..after with no gap
    reads.append(deleted("other", 175, size=2))  # another deletion at the same anchor
    reads.append(read("short", 160, ops=[("M", anchor - 160 + 2)]))  # ends inside the deletion
    reads.append(deleted("lowq", 176, quals={anchor: 5}))  # anchor base quality too low
    reads.append(read("later", anchor + 1))  # starts after the anchor: uninformative
    table = count_alleles(write_bam(tmp_path / "d.bam", reads), variant)
    assert table.loc[0, "kind"] == "deletion"
    counts = counts_of(table)
    assert (counts["alt_count"], counts["ref_count"], counts["other_count"]) == (3, 2, 1)
    assert (counts["alt_fwd"], counts["alt_rev"]) == (2, 1)


def test_insertion_counted_with_its_exact_bases(tmp_path):
    anchor = 300
    variant = pd.DataFrame(
        {
            "chrom": ["chr1"],
            "pos": [anchor + 1],
            "ref": [REFERENCE[anchor]],
            "alt": [REFERENCE[anchor] + "GA"],
        }
    )

    def inserted(name, start, bases="GA"):
        return read(name, start, ops=[("M", anchor - start + 1), ("I", bases), ("M", 30)])

    reads = [inserted(f"alt{i}", 270 + i) for i in range(2)]
    reads.append(inserted("other", 275, "GT"))  # same length, other bases
    reads += [read(f"ref{i}", 280 + i) for i in range(3)]
    reads.append(read("ends", anchor - READ_LENGTH + 1))  # last base is the anchor
    reads.append(read("near_end", anchor - READ_LENGTH + 4))  # 3 bases after the site
    bam = write_bam(tmp_path / "i.bam", reads)
    counts = counts_of(count_alleles(bam, variant))
    assert (counts["alt_count"], counts["ref_count"], counts["other_count"]) == (2, 3, 1)
    # reads need 10 aligned bases on each side (aligners clip ALT reads nearer the end)
    loose = counts_of(count_alleles(bam, variant, AlleleFilters(min_indel_flank=1)))
    assert (loose["alt_count"], loose["ref_count"]) == (2, 4)


# --- agreement with bcftools mpileup ---------------------------------------------------------


def simulated_fragments(rng, sites, n_fragments=240, overlap=True):
    """Random pairs over a few SNV sites: alleles, qualities, flags and (if ``overlap``)
    overlaps vary, but no pair disagrees with equal qualities (htslib then keeps one mate,
    carmscope neither)."""
    reads = []
    qualities = [5, 12, 15, 25, 30, 37, 41]
    for number in range(n_fragments):
        name = f"frag{number}"
        start1 = int(rng.integers(30, 300))
        start2 = start1 + int(rng.integers(0 if overlap else READ_LENGTH, 90))
        mates = []
        for start in (start1, start2):
            bases, quals = {}, {}
            for site in sites:
                draw = rng.random()
                base = REFERENCE[site]
                if draw < 0.25:
                    base = ALT_OF[base]
                elif draw < 0.30:
                    base = OTHER_OF[base]
                bases[site], quals[site] = base, int(rng.choice(qualities))
            mates.append((start, bases, quals))
        (_, bases1, quals1), (start2_, bases2, quals2) = mates
        for site in sites:
            if bases1[site] != bases2[site] and quals1[site] == quals2[site]:
                quals2[site] = qualities[(qualities.index(quals2[site]) + 1) % len(qualities)]
        extra = {}
        draw = rng.random()
        if draw < 0.05:
            extra = {"flag": FLAG_DUPLICATE}
        elif draw < 0.08:
            extra = {"flag": FLAG_QCFAIL}
        elif draw < 0.11:
            extra = {"mapq": 10}
        elif draw < 0.14:
            extra = {"proper": False}
        reads += pair(name, start1, start2_, bases1, bases2, quals1, quals2, **extra)
        if rng.random() < 0.04:
            reads.append(read(name, start1, bases1, flag=FLAG_SUPPLEMENTARY))
        if rng.random() < 0.04:
            reads.append(read(name, start2_, bases2, flag=FLAG_SECONDARY))
    return reads


@pytest.mark.parametrize("overlap", [True, False], ids=["overlapping", "apart"])
def test_counts_agree_with_bcftools_mpileup_on_snvs(tmp_path, overlap):
    sites = [120, 150, 151, 200, 290]
    reads = simulated_fragments(np.random.default_rng(2024), sites, overlap=overlap)
    bam = write_bam(tmp_path / "sim.bam", reads)
    variants = pd.DataFrame(
        {
            "chrom": "chr1",
            "pos": [s + 1 for s in sites] + [251],
            "ref": [REFERENCE[s] for s in sites] + [REFERENCE[250:252]],
            "alt": [ALT_OF[REFERENCE[s]] for s in sites] + [REFERENCE[250]],
        }
    )
    reference = write_reference(tmp_path)
    ours = count_alleles(bam, variants)
    theirs = count_alleles_bcftools(bam, variants, reference)
    snvs = ours["kind"] == "snv"
    assert ours.loc[snvs, "depth"].min() > 20  # a real test, not zeros against zeros
    assert ours.loc[snvs, "alt_count"].min() > 5
    # htslib picks the strand of two agreeing mates by its own read-name hash: with
    # overlapping mates only the allele counts must agree, with mates apart everything
    compared = COUNT_COLUMNS if not overlap else ["ref_count", "alt_count", "other_count", "depth"]
    pd.testing.assert_frame_equal(
        ours.loc[snvs, compared].reset_index(drop=True),
        theirs.loc[snvs, compared].reset_index(drop=True),
    )
    deletion = len(sites)
    assert not theirs.loc[deletion, "evaluable"]
    assert "SNVs only" in theirs.loc[deletion, "reason"]
    assert ours.loc[deletion, "evaluable"]


def test_bcftools_path_rejects_ref_disagreeing_with_fasta(tmp_path):
    bam = write_bam(tmp_path / "s.bam", [read("r", 80)])
    wrong = snv().assign(ref=OTHER_OF[REFERENCE[SNV_SITE]])
    with pytest.raises(CtdnaInputError, match="REF"):
        count_alleles_bcftools(bam, wrong, write_reference(tmp_path))


# --- BAM errors ------------------------------------------------------------------------------


def test_variant_contig_absent_from_bam_is_named(tmp_path):
    bam = write_bam(tmp_path / "s.bam", [read("r", 80)])
    with pytest.raises(CtdnaInputError) as caught:
        count_alleles(bam, snv().assign(chrom="chr9"))
    assert "'chr9'" in str(caught.value) and "s.bam" in str(caught.value)


def test_unsorted_bam_is_rejected_with_how_to_sort(tmp_path):
    bam = write_bam(tmp_path / "u.bam", [read("r", 80)], so="unsorted", index=False)
    with pytest.raises(CtdnaInputError, match="samtools sort"):
        count_alleles(bam, snv())
    with pytest.raises(CtdnaInputError, match="not coordinate-sorted"):
        ensure_index(bam)


def test_unindexed_bam_is_rejected_until_ensure_index(tmp_path):
    bam = write_bam(tmp_path / "n.bam", [read("r", 80, alt_base())], index=False)
    with pytest.raises(CtdnaInputError, match="samtools index"):
        count_alleles(bam, snv())
    index = ensure_index(bam)
    assert index == bam + ".bai"
    assert ensure_index(bam) == index  # present: nothing to do
    assert count_alleles(bam, snv()).loc[0, "alt_count"] == 1


def test_not_evaluable_variants_get_missing_counts(tmp_path):
    bam = write_bam(tmp_path / "s.bam", [read("r", 80)])
    variants = snv().assign(alt="<DEL>")
    table = count_alleles(bam, variants)
    assert not table.loc[0, "evaluable"]
    assert table[COUNT_COLUMNS].isna().all(axis=None)
    assert np.isnan(table.loc[0, "vaf"])


# --- clustered counting against a per-site reference -----------------------------------------


def reference_counts(bam_path, variants, filters):
    """Per-site counts from one ``fetch`` per site and ``get_aligned_pairs``: a deliberately
    simple implementation of count_alleles' rules (no soft clips in the reads it is used on)."""
    rows = []
    with pysam.AlignmentFile(bam_path) as bam:
        for variant in variants.itertuples(index=False):
            anchor = variant.pos - 1
            fragments = {}
            for order, segment in enumerate(bam.fetch(variant.chrom, anchor, anchor + 1)):
                if (
                    segment.is_unmapped
                    or segment.mapping_quality < filters.min_mapping_quality
                    or (filters.exclude_duplicates and segment.is_duplicate)
                    or (filters.exclude_secondary and segment.is_secondary)
                    or (filters.exclude_supplementary and segment.is_supplementary)
                    or (filters.exclude_qc_fail and segment.is_qcfail)
                    or (filters.exclude_improper_pairs and not segment.is_proper_pair)
                ):
                    continue
                found = observe_simply(segment, variant, anchor, filters.min_indel_flank)
                if found is not None:
                    key = segment.query_name if filters.count_overlapping_mates_once else order
                    fragments.setdefault(key, []).append(found)
            tally = dict.fromkeys(COUNT_COLUMNS, 0)
            for name, found in fragments.items():
                chosen = resolve_simply(name, found)
                if chosen is None or chosen[1] < filters.min_base_quality:
                    continue
                tally[f"{chosen[0]}_count"] += 1
                if chosen[0] != "other":
                    tally[f"{chosen[0]}_{'rev' if chosen[2] else 'fwd'}"] += 1
            tally["depth"] = tally["ref_count"] + tally["alt_count"] + tally["other_count"]
            rows.append(tally)
    return pd.DataFrame(rows, columns=COUNT_COLUMNS)


def resolve_simply(name, found):
    if len(found) == 1:
        return found[0]
    if len({f[0] for f in found}) == 1:
        kept = found[zlib.crc32(str(name).encode()) % len(found)]
        return (kept[0], min(sum(f[1] for f in found), 200), kept[2])
    best = max(f[1] for f in found)
    top = [f for f in found if f[1] == best]
    return None if len({f[0] for f in top}) > 1 else top[-1]


def observe_simply(segment, variant, anchor, flank):
    pairs = segment.get_aligned_pairs()
    aligned = {r: q for q, r in pairs if q is not None and r is not None}
    deleted = {r for q, r in pairs if q is None}
    inserted_before = {}  # next reference position -> inserted query positions
    pending = []
    for q, r in pairs:
        if r is None:
            pending.append(q)
        else:
            if pending:
                inserted_before[r] = pending
            pending = []
    sequence, qualities = segment.query_sequence.upper(), segment.query_qualities
    query = aligned.get(anchor)
    if query is None:
        return None
    quality, strand = qualities[query], segment.is_reverse
    if variant.kind == "snv":
        base = sequence[query]
        allele = "ref" if base == variant.ref else "alt" if base == variant.alt else "other"
        return (allele, quality, strand)
    after = anchor + 1 if variant.kind == "insertion" else anchor + len(variant.ref)
    if anchor - segment.reference_start + 1 < flank or segment.reference_end - after < flank:
        return None
    if variant.kind == "insertion":
        if anchor + 1 not in deleted and anchor + 1 not in aligned:
            return None
        if anchor + 1 in inserted_before:
            positions = inserted_before[anchor + 1]
            bases = "".join(sequence[p] for p in positions)
            quality = min(quality, *(qualities[p] for p in positions))
            return ("alt" if bases == variant.alt[1:] else "other", quality, strand)
        return ("other" if anchor + 1 in deleted else "ref", quality, strand)
    gap = set(range(anchor + 1, after))
    if gap <= deleted and after not in deleted:
        return ("alt", quality, strand)
    if gap & deleted or any(anchor < p <= after for p in inserted_before):
        return ("other", quality, strand)
    if after not in aligned:
        return None
    return ("ref", quality, strand)


def nearby_sites_bam(tmp_path, rng):
    """Sites 5-200 bp apart (SNVs, insertions, deletions) and random overlapping pairs that
    carry ALT, REF and other alleles, other indels, low qualities and excluded flags."""
    sites, position = [], 40
    while position < CONTIG_LENGTH - 60:
        sites.append(position)
        position += int(rng.choice([5, 7, 12, 30, 80, 200]))
    kinds = [str(rng.choice(["snv", "snv", "insertion", "deletion"])) for _ in sites]
    variants = pd.DataFrame(
        {
            "chrom": "chr1",
            "pos": [s + 1 for s in sites],
            "ref": [
                REFERENCE[s : s + 3] if k == "deletion" else REFERENCE[s]
                for s, k in zip(sites, kinds, strict=True)
            ],
            "alt": [
                {"snv": ALT_OF[REFERENCE[s]], "insertion": REFERENCE[s] + "GT"}.get(k, REFERENCE[s])
                for s, k in zip(sites, kinds, strict=True)
            ],
        }
    )

    def mate(name, start, **kw):
        bases, quals, ops, here = {}, {}, [], start
        matched = 0
        for site, kind in zip(sites, kinds, strict=True):
            if not here + 8 <= site <= start + READ_LENGTH - 12 or rng.random() < 0.5:
                continue
            if kind == "snv":
                bases[site] = str(rng.choice([ALT_OF[REFERENCE[site]], OTHER_OF[REFERENCE[site]]]))
                quals[site] = int(rng.choice([10, 15, 30, 37]))
                continue
            ops.append(("M", site - here + 1))
            matched += site - here + 1
            if kind == "insertion":
                ops.append(("I", str(rng.choice(["GT", "GA", "T"]))))
                here = site + 1
            else:
                size = int(rng.choice([2, 2, 1, 3]))
                ops.append(("D", size))
                here = site + 1 + size
        ops.append(("M", max(READ_LENGTH - matched, 5)))
        return read(name, start, bases, quals, ops, **kw)

    reads = []
    for number in range(400):
        name = f"frag{number}"
        start1 = int(rng.integers(0, CONTIG_LENGTH - 120))
        start2 = start1 + int(rng.integers(0, 60))
        extra = {}
        draw = rng.random()
        if draw < 0.05:
            extra = {"flag": FLAG_DUPLICATE}
        elif draw < 0.08:
            extra = {"mapq": 10}
        elif draw < 0.11:
            extra = {"proper": False}
        first = mate(name, start1, mate_start=start2, **extra)
        second = mate(name, start2, reverse=True, mate_start=start1, read2=True, **extra)
        reads += [first, second]
        if rng.random() < 0.04:
            reads.append(mate(name, start1, flag=FLAG_SUPPLEMENTARY))
    return write_bam(tmp_path / "nearby.bam", reads), variants


@pytest.mark.parametrize("gap", [16_384, 60, 1], ids=["one_cluster", "some_clusters", "per_site"])
@pytest.mark.parametrize(
    "filters",
    [AlleleFilters(), AlleleFilters(count_overlapping_mates_once=False, min_indel_flank=3)],
    ids=["default", "each_read"],
)
@pytest.mark.parametrize("scan", [True, False], ids=["record_scan", "pysam"])
def test_clustered_counts_equal_a_per_site_reference(tmp_path, monkeypatch, gap, filters, scan):
    monkeypatch.setattr(alleles, "CLUSTER_GAP", gap)
    engine = "records" if scan else "pysam"
    if scan:  # the record scan must count every cluster itself

        def fail(*args, **kwargs):
            raise AssertionError("a cluster was counted with pysam")

        monkeypatch.setattr(pileup, "count_cluster", fail)
    bam, variants = nearby_sites_bam(tmp_path, np.random.default_rng(11))
    table = count_alleles(bam, variants, filters, engine=engine)
    assert set(table["kind"]) == {"snv", "insertion", "deletion"}
    assert table["evaluable"].all()
    expected = reference_counts(bam, table, filters)
    assert expected["depth"].min() > 0 and expected["alt_count"].sum() > 50
    for kind in ("snv", "insertion", "deletion"):  # every kind has ALT reads somewhere
        assert expected.loc[table["kind"] == kind, "alt_count"].sum() > 0
    ours = table[COUNT_COLUMNS].astype("int64")
    pd.testing.assert_frame_equal(ours, expected.astype("int64"))
    # the same sites counted one at a time (one fetch each) give the same rows
    for row in range(0, len(variants), 4):
        alone = count_alleles(bam, variants.iloc[[row]], filters, engine=engine)
        assert counts_of(alone) == counts_of(table, row)


def test_cram_is_counted_with_its_reference(tmp_path):
    reads = [read(f"alt{i}", 60 + i, alt_base()) for i in range(3)]
    reads += [read(f"ref{i}", 70 + i) for i in range(2)]
    bam = write_bam(tmp_path / "c.bam", reads)
    reference = write_reference(tmp_path)
    cram = str(tmp_path / "c.cram")
    pysam.view("-C", "-T", reference, "-o", cram, bam, catch_stdout=False)
    pysam.index(cram)
    assert counts_of(count_alleles(cram, snv(), reference=reference)) == counts_of(
        count_alleles(bam, snv())
    )
