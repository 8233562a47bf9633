"""Synthetic cfDNA: reference, tumour variant panels and plasma BAMs with ground truth."""

import time
from collections import Counter, defaultdict
from dataclasses import replace
from itertools import combinations
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pysam
import pysam.bcftools
import pytest

from carmscope.synthetic.cfdna import FRAGMENT_LENGTHS, HEALTHY_FRAGMENTS, fragment_length_pmf
from carmscope.synthetic.design import PRESETS, design_cohort
from carmscope.synthetic.genome import make_reference, write_reference
from carmscope.synthetic.plasma_bam import TRUTH_COLUMNS, write_normal_plasma_bam, write_plasma_bam
from carmscope.synthetic.tumour_variants import (
    CONTIG_MARGIN,
    MIN_SITE_SPACING,
    VARIANT_COLUMNS,
    design_variants,
    write_variants_vcf,
)

PARAMS = replace(PRESETS["tiny"], indels_per_patient=2)
"""The tiny cohort with an insertion and a deletion among its variants."""
BIGGER = replace(PARAMS, n_patients=6, templates=(*PARAMS.templates, 2, 3))
"""The same cohort with two patients added."""


def _plasma(patient):
    return [sample for sample in patient.samples if sample.assay == "cfdna"]


def _own(panel, patient):
    return panel[panel["patient_id"] == patient.patient_id].reset_index(drop=True)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Reference, panel, VCFs and four plasma BAMs of patient 0 (template 0)."""
    out = tmp_path_factory.mktemp("cfdna")
    contigs = make_reference(PARAMS)
    write_reference(out / "genome.fa", contigs)
    patients = design_cohort(PARAMS)
    panel = design_variants(patients, contigs, PARAMS)
    vcfs = {}
    for patient in patients:
        if patient.tumor_variants:
            vcfs[patient.patient_id] = out / f"{patient.patient_id}.vcf.gz"
            write_variants_vcf(vcfs[patient.patient_id], _own(panel, patient), contigs)
    patient = patients[0]
    baseline = _plasma(patient)[0]
    samples = {
        "baseline": baseline,
        # mean VAF 0.25: many tumour fragments for the statistics
        "rich": replace(
            baseline, sample_id="rich_cf", ctdna_fold=0.25 / patient.ctdna_baseline_vaf
        ),
        "cleared": replace(baseline, sample_id="cleared_cf", ctdna_fold=0.0),
    }
    bams, truths = {}, {}
    for name, sample in samples.items():
        bams[name] = out / f"{name}.bam"
        truths[name] = write_plasma_bam(bams[name], sample, patient, panel, contigs, PARAMS)
    return SimpleNamespace(
        out=out,
        contigs=contigs,
        fasta=out / "genome.fa",
        patients=patients,
        patient=patient,
        panel=panel,
        vcfs=vcfs,
        samples=samples,
        bams=bams,
        truths=truths,
    )


def _fragments_by_base(bam, chrom, pos):
    """Base -> names of the non-duplicate fragments with a read showing it at 1-based ``pos``."""
    fragments = defaultdict(set)
    with pysam.AlignmentFile(str(bam)) as reads:
        for column in reads.pileup(
            chrom,
            pos - 1,
            pos,
            truncate=True,
            stepper="nofilter",
            ignore_overlaps=False,
            min_base_quality=0,
            max_depth=1_000_000,
        ):
            for read in column.pileups:
                if read.alignment.is_duplicate or read.query_position is None:
                    continue
                base = read.alignment.query_sequence[read.query_position]
                fragments[base].add(read.alignment.query_name)
    return fragments


def _reads(bam):
    with pysam.AlignmentFile(str(bam)) as reads:
        return list(reads)


# --- reference --------------------------------------------------------------------------------


def test_reference_is_deterministic_gc_balanced_and_indexed(cohort):
    assert list(cohort.contigs) == ["chr1"]
    assert len(cohort.contigs["chr1"]) == PARAMS.reference_contig_length
    assert make_reference(PARAMS) == cohort.contigs
    assert make_reference(replace(PARAMS, seed=1)) != cohort.contigs
    sequence = cohort.contigs["chr1"]
    assert set(sequence) == set("ACGT")
    assert 0.39 < (sequence.count("G") + sequence.count("C")) / len(sequence) < 0.43
    assert (cohort.out / "genome.fa.fai").exists()
    with pysam.FastaFile(str(cohort.fasta)) as fasta:
        assert list(fasta.references) == ["chr1"]
        assert fasta.fetch("chr1") == sequence
    assert max(map(len, cohort.fasta.read_text().splitlines())) == 60


def test_more_contigs_leave_existing_contigs_unchanged():
    more = make_reference(replace(PARAMS, reference_contigs=3))
    assert list(more) == ["chr1", "chr2", "chr3"]
    assert more["chr1"] == make_reference(PARAMS)["chr1"]


# --- variant panel ----------------------------------------------------------------------------


def test_each_patient_with_ctdna_gets_its_variants(cohort):
    panel = cohort.panel
    assert list(panel.columns) == list(VARIANT_COLUMNS)
    for patient in cohort.patients:
        own = _own(panel, patient)
        if not patient.tumor_variants:
            assert own.empty
            continue
        records = own.groupby(["chrom", "pos"])["alt"].agg(list)
        multiallelic = records[records.map(len) > 1]
        assert len(records) == PARAMS.variants_per_patient + (patient.template == 0)
        assert len(multiallelic) == (patient.template == 0)
        assert (own["kind"] != "snv").sum() == PARAMS.indels_per_patient
        assert own["clonality"].mean() == pytest.approx(1.0)
        assert own["clonality"].between(0.25, 2.0).all()
    assert set(panel["kind"]) == {"snv", "insertion", "deletion"}


def test_variants_match_the_reference_and_are_normalised(cohort):
    for row in cohort.panel.itertuples():
        sequence = cohort.contigs[row.chrom]
        assert sequence[row.pos - 1 : row.pos - 1 + len(row.ref)] == row.ref
        if row.kind == "snv":
            assert len(row.ref) == len(row.alt) == 1 and row.ref != row.alt
        else:
            assert row.ref[0] == row.alt[0]  # anchor base
            assert 1 <= abs(len(row.ref) - len(row.alt)) <= 3
            assert row.ref[-1] != row.alt[-1]  # cannot shift left
            assert (row.kind == "insertion") == (len(row.alt) > len(row.ref))


def test_sites_are_spaced_and_away_from_contig_ends(cohort):
    sites = cohort.panel[["chrom", "pos"]].drop_duplicates()
    for chrom, positions in sites.groupby("chrom")["pos"]:
        assert positions.min() > CONTIG_MARGIN
        assert positions.max() <= len(cohort.contigs[chrom]) - CONTIG_MARGIN
        for a, b in combinations(positions, 2):
            assert abs(a - b) >= MIN_SITE_SPACING


def test_adding_patients_leaves_existing_variants_unchanged(cohort):
    bigger = design_variants(design_cohort(BIGGER), cohort.contigs, BIGGER)
    assert set(bigger["patient_id"]) > set(cohort.panel["patient_id"])
    existing = bigger[bigger["patient_id"].isin(cohort.panel["patient_id"])]
    pd.testing.assert_frame_equal(existing.reset_index(drop=True), cohort.panel)
    assert design_variants(cohort.patients, cohort.contigs, PARAMS).equals(cohort.panel)


def test_a_reference_too_small_for_the_panel_is_an_error():
    params = replace(PARAMS, reference_contig_length=4000)
    with pytest.raises(ValueError, match="too small"):
        design_variants(design_cohort(params), make_reference(params), params)


# --- VCF ---------------------------------------------------------------------------------------


def test_vcf_is_indexed_matches_the_reference_and_declares_contigs(cohort):
    with pysam.FastaFile(str(cohort.fasta)) as fasta:
        for patient_id, path in cohort.vcfs.items():
            assert (cohort.out / f"{patient_id}.vcf.gz.tbi").exists()
            with pysam.VariantFile(str(path)) as vcf:
                assert list(vcf.header.samples) == [f"{patient_id}_tumour"]
                assert dict(vcf.header.contigs.items())["chr1"].length == 20_000
                records = list(vcf.fetch("chr1"))  # needs the index
            own = cohort.panel[cohort.panel["patient_id"] == patient_id]
            assert len(records) == own[["chrom", "pos"]].drop_duplicates().shape[0]
            assert [r.pos for r in records] == sorted(r.pos for r in records)
            for record in records:
                assert fasta.fetch(record.chrom, record.start, record.stop) == record.ref
                genotype = record.samples[0]["GT"]
                assert genotype == ((1, 2) if len(record.alts) == 2 else (0, 1))


def test_bcftools_reads_the_vcf_and_finds_nothing_to_normalise(cohort):
    for patient_id, path in cohort.vcfs.items():
        text = pysam.bcftools.norm("-f", str(cohort.fasta), "-c", "e", "-m", "-any", str(path))
        normalised = {
            (fields[0], int(fields[1]), fields[3], fields[4])
            for fields in (line.split("\t") for line in text.splitlines() if line[0] != "#")
        }
        own = cohort.panel[cohort.panel["patient_id"] == patient_id]
        assert normalised == set(own[["chrom", "pos", "ref", "alt"]].itertuples(index=False))


def test_multiallelic_record_has_two_alts(cohort):
    with pysam.VariantFile(str(cohort.vcfs[cohort.patient.patient_id])) as vcf:
        assert sorted(len(record.alts) for record in vcf)[-1] == 2


# --- plasma BAMs -------------------------------------------------------------------------------


def test_bam_is_sorted_indexed_and_properly_paired(cohort):
    path = cohort.bams["baseline"]
    assert (cohort.out / "baseline.bam.bai").exists()
    with pysam.AlignmentFile(str(path)) as bam:
        assert bam.check_index()
        header = bam.header.to_dict()
        assert header["HD"]["SO"] == "coordinate"
        assert header["RG"] == [
            {
                "ID": cohort.samples["baseline"].sample_id,
                "SM": cohort.samples["baseline"].sample_id,
                "LB": cohort.samples["baseline"].sample_id,
                "PL": "ILLUMINA",
            }
        ]
        assert all("CL" not in program for program in header["PG"])
    reads = _reads(path)
    assert [r.reference_start for r in reads] == sorted(r.reference_start for r in reads)
    pairs = defaultdict(list)
    for read in reads:
        assert read.is_paired and read.is_proper_pair and read.mapping_quality == 60
        assert read.query_length == 100 and read.get_tag("RG") == reads[0].get_tag("RG")
        pairs[read.query_name].append(read)
    for first, second in pairs.values():
        assert {first.is_read1, second.is_read1} == {True, False}
        assert first.is_reverse != second.is_reverse
        assert first.next_reference_start == second.reference_start
        assert second.next_reference_start == first.reference_start
        assert first.template_length == -second.template_length != 0


def test_samtools_reencodes_the_bam_identically(cohort, tmp_path):
    copy = tmp_path / "copy.bam"
    pysam.samtools.view(
        "-u", "--no-PG", "-o", str(copy), str(cohort.bams["baseline"]), catch_stdout=False
    )
    assert copy.exists()
    assert pysam.BGZFile(str(copy)).read() == pysam.BGZFile(str(cohort.bams["baseline"])).read()


def test_every_panel_site_is_covered_at_the_designed_depth(cohort):
    truth = cohort.truths["baseline"]
    for chrom, pos in cohort.panel[["chrom", "pos"]].drop_duplicates().itertuples(index=False):
        fragments = set().union(*_fragments_by_base(cohort.bams["baseline"], chrom, pos).values())
        assert abs(len(fragments) - PARAMS.cfdna_depth) < 5 * np.sqrt(PARAMS.cfdna_depth)
        own = truth[(truth["chrom"] == chrom) & (truth["pos"] == pos)]
        assert (own["unique_fragments"] == len(fragments)).all()  # each seen by a read


@pytest.mark.parametrize("name", ["baseline", "rich"])
def test_alt_fractions_follow_the_truth_vaf(cohort, name):
    truth = cohort.truths[name]
    assert list(truth.columns) == list(TRUTH_COLUMNS)
    assert len(truth) == len(_own(cohort.panel, cohort.patient))
    expected = cohort.patient.ctdna_baseline_vaf * cohort.samples[name].ctdna_fold
    own = _own(cohort.panel, cohort.patient)
    assert truth["truth_vaf"].to_numpy() == pytest.approx(expected * own["clonality"])
    snvs = truth[(truth["ref"].str.len() == 1) & (truth["alt"].str.len() == 1)]
    for row in snvs.itertuples():
        fragments = _fragments_by_base(cohort.bams[name], row.chrom, row.pos)
        depth = len(set().union(*fragments.values()))
        alt = len(fragments[row.alt])
        assert abs(alt - row.tumour_fragments) <= 2  # sequencing errors only
        sd = np.sqrt(row.truth_vaf * (1 - row.truth_vaf) / depth)
        assert abs(alt / depth - row.truth_vaf) < 4 * sd + 2 / depth


def test_fragment_lengths_are_cfdna_like_and_tumour_fragments_shorter(cohort):
    allele_of = {}  # fragment name -> allele at the patient's SNVs
    for row in cohort.truths["rich"].itertuples():
        if len(row.ref) == len(row.alt) == 1:
            fragments = _fragments_by_base(cohort.bams["rich"], row.chrom, row.pos)
            allele_of |= dict.fromkeys(fragments[row.ref], "ref")
            allele_of |= dict.fromkeys(fragments[row.alt], "alt")
    lengths = defaultdict(list)
    for read in _reads(cohort.bams["rich"]):
        if read.template_length > 0 and not read.is_duplicate and read.query_name in allele_of:
            lengths[allele_of[read.query_name]].append(read.template_length)
    assert len(lengths["alt"]) > 100
    assert np.median(lengths["alt"]) < np.median(lengths["ref"]) - 3
    assert 157 <= Counter(lengths["ref"]).most_common(1)[0][0] <= 177
    assert min(lengths["ref"]) >= 100 and max(lengths["ref"]) > 250


def test_no_alt_at_other_patients_sites_beyond_errors(cohort):
    others = cohort.panel[cohort.panel["patient_id"] != cohort.patient.patient_id]
    alt, non_ref, fragments = 0, 0, 0
    for row in others.itertuples():  # the SNV or the indel's anchor base
        by_base = _fragments_by_base(cohort.bams["rich"], row.chrom, row.pos)
        fragments += len(set().union(*by_base.values()))
        non_ref += sum(len(names) for base, names in by_base.items() if base != row.ref[0])
        alt += len(by_base[row.alt]) if row.kind == "snv" else 0
    assert fragments > 1500
    assert alt <= 2
    assert non_ref / fragments < 3 * PARAMS.cfdna_error_rate  # two reads per fragment at most


def test_sequencing_errors_match_the_rate_and_follow_quality(cohort):
    reference = cohort.contigs["chr1"]
    mismatches, qualities = [], []
    for read in _reads(cohort.bams["cleared"]):  # no tumour DNA: every read is reference
        assert read.cigarstring == "100M"
        expected = reference[read.reference_start : read.reference_end]
        mismatches.append(np.array(list(read.query_sequence)) != np.array(list(expected)))
        qualities.append(np.array(read.query_qualities))
    mismatch, quality = np.concatenate(mismatches), np.concatenate(qualities)
    assert 0.8 < mismatch.mean() / PARAMS.cfdna_error_rate < 1.2
    assert mismatch[quality < 20].mean() > 10 * mismatch[quality >= 30].mean()
    assert 0.9 < (quality >= 30).mean() < 0.99


def test_duplicates_are_flagged_copies_of_an_unflagged_original(cohort):
    reads = _reads(cohort.bams["baseline"])

    def key(read):
        return (read.reference_start, read.cigarstring, read.next_reference_start,
                read.template_length, read.flag & ~0x400)  # fmt: skip

    originals = {key(read) for read in reads if not read.is_duplicate}
    duplicates = [read for read in reads if read.is_duplicate]
    expected = 1.5 * PARAMS.cfdna_duplicate_rate / (1 + 1.5 * PARAMS.cfdna_duplicate_rate)
    assert abs(len(duplicates) / len(reads) - expected) < 0.03
    assert all(key(read) in originals for read in duplicates)


def _indel(read):
    """Anchor (0-based) and inserted bases or deleted length of a read's indel, else None."""
    pairs = read.get_aligned_pairs()
    aligned = [(q, r) for q, r in pairs if q is not None and r is not None]
    inserted = [q for q, r in pairs if r is None and q is not None]
    deleted = [r for q, r in pairs if q is None]
    if deleted:
        return deleted[0] - 1, len(deleted)
    if inserted and aligned[0][0] < inserted[0] < aligned[-1][0]:  # not a soft clip
        anchor = max(r for q, r in aligned if q < inserted[0])
        return anchor, read.query_sequence[inserted[0] : inserted[-1] + 1]
    return None


def test_indel_reads_carry_the_cigar_operation(cohort):
    truth = cohort.truths["rich"]
    indels = truth[truth["ref"].str.len() != truth["alt"].str.len()]
    assert len(indels) == PARAMS.indels_per_patient
    with pysam.AlignmentFile(str(cohort.bams["rich"])) as bam:
        for row in indels.itertuples():
            delta = len(row.alt) - len(row.ref)
            expected = (row.pos - 1, row.alt[1:] if delta > 0 else -delta)
            operation = 1 if delta > 0 else 2  # CIGAR I or D
            fragments, events = set(), Counter()
            for read in bam.fetch(row.chrom, row.pos - 1, row.pos + 1):
                if not read.is_duplicate and (operation, abs(delta)) in read.cigartuples:
                    fragments.add(read.query_name)
                    events[_indel(read) == expected] += 1
            assert len(fragments) == row.tumour_fragments > 10
            assert events[True] > 0.9 * sum(events.values())  # inserted bases may carry errors


def test_a_sample_without_tumour_dna_has_no_tumour_fragments(cohort):
    truth = cohort.truths["cleared"]
    assert (truth["truth_vaf"] == 0).all() and (truth["tumour_fragments"] == 0).all()
    assert all(read.cigarstring == "100M" for read in _reads(cohort.bams["cleared"]))


def test_plasma_bam_is_byte_identical_for_the_same_inputs(cohort, tmp_path):
    sample = cohort.samples["baseline"]
    again = tmp_path / "again.bam"
    truth = write_plasma_bam(again, sample, cohort.patient, cohort.panel, cohort.contigs, PARAMS)
    assert again.read_bytes() == cohort.bams["baseline"].read_bytes()
    assert (tmp_path / "again.bam.bai").read_bytes() == (
        cohort.out / "baseline.bam.bai"
    ).read_bytes()
    pd.testing.assert_frame_equal(truth, cohort.truths["baseline"])
    vcf = tmp_path / "again.vcf.gz"
    write_variants_vcf(vcf, _own(cohort.panel, cohort.patient), cohort.contigs)
    assert vcf.read_bytes() == cohort.vcfs[cohort.patient.patient_id].read_bytes()


def test_adding_patients_leaves_reads_at_existing_sites_unchanged(cohort, tmp_path):
    bigger = design_variants(design_cohort(BIGGER), cohort.contigs, BIGGER)
    path = tmp_path / "bigger.bam"
    sample = cohort.samples["baseline"]
    truth = write_plasma_bam(path, sample, cohort.patient, bigger, cohort.contigs, BIGGER)
    pd.testing.assert_frame_equal(truth, cohort.truths["baseline"])
    before = {read.to_string() for read in _reads(cohort.bams["baseline"])}
    after = {read.to_string() for read in _reads(path)}
    assert before < after


def test_an_empty_panel_gives_a_valid_empty_bam(cohort, tmp_path):
    panel = design_variants([], cohort.contigs, PARAMS)
    path = tmp_path / "empty.bam"
    truth = write_plasma_bam(
        path, cohort.samples["baseline"], cohort.patient, panel, cohort.contigs, PARAMS
    )
    assert truth.empty and list(truth.columns) == list(TRUTH_COLUMNS)
    with pysam.AlignmentFile(str(path)) as bam:
        assert bam.count() == 0 and bam.check_index()


def test_a_sample_of_another_patient_is_rejected(cohort, tmp_path):
    other = _plasma(cohort.patients[1])[0]
    with pytest.raises(ValueError, match="not a cfDNA sample"):
        write_plasma_bam(
            tmp_path / "x.bam", other, cohort.patient, cohort.panel, cohort.contigs, PARAMS
        )


def test_a_plasma_normal_covers_every_site_without_tumour_alleles(cohort, tmp_path):
    path = tmp_path / "PON-001.bam"
    fragments = write_normal_plasma_bam(path, "PON-001", cohort.panel, cohort.contigs, PARAMS)
    sites = cohort.panel[["chrom", "pos"]].drop_duplicates()
    assert abs(fragments / len(sites) - PARAMS.cfdna_depth) < 3 * np.sqrt(PARAMS.cfdna_depth)
    alt, non_ref, seen = 0, 0, 0
    for row in cohort.panel.itertuples():  # every patient's sites, the SNV or indel anchor base
        by_base = _fragments_by_base(path, row.chrom, row.pos)
        seen += len(set().union(*by_base.values()))
        non_ref += sum(len(names) for base, names in by_base.items() if base != row.ref[0])
        alt += len(by_base[row.alt]) if row.kind == "snv" else 0
    assert seen > 0.8 * PARAMS.cfdna_depth * len(cohort.panel)
    assert alt <= 3
    assert non_ref / seen < 3 * PARAMS.cfdna_error_rate
    reads = _reads(path)
    assert all(read.cigarstring == "100M" for read in reads)  # no tumour indels either
    assert any(read.is_duplicate for read in reads)
    assert {read.get_tag("RG") for read in reads} == {"PON-001"}
    with pysam.AlignmentFile(str(path)) as bam:
        assert bam.header.to_dict()["HD"]["SO"] == "coordinate" and bam.check_index()


def test_a_plasma_normal_is_deterministic_and_its_own_stream(cohort, tmp_path):
    first, again, other = (tmp_path / f"{n}.bam" for n in ("first", "again", "other"))
    write_normal_plasma_bam(first, "PON-001", cohort.panel, cohort.contigs, PARAMS)
    write_normal_plasma_bam(again, "PON-001", cohort.panel, cohort.contigs, PARAMS)
    write_normal_plasma_bam(other, "PON-002", cohort.panel, cohort.contigs, PARAMS)
    assert first.read_bytes() == again.read_bytes()
    assert {r.to_string() for r in _reads(first)}.isdisjoint(r.to_string() for r in _reads(other))


def test_fragment_lengths_peak_at_the_mononucleosome():
    pmf = fragment_length_pmf(**HEALTHY_FRAGMENTS)
    assert pmf.sum() == pytest.approx(1.0)
    assert 162 <= FRAGMENT_LENGTHS[np.argmax(pmf)] <= 172
    assert pmf[FRAGMENT_LENGTHS > 300].sum() > 0.02  # di-nucleosomes


@pytest.mark.slow
def test_default_cohort_cfdna_generation_time(tmp_path):
    """The whole default cohort's plasma BAMs (~50 samples, ~8M reads); prints the timing."""
    params = PRESETS["default"]
    patients = design_cohort(params)
    contigs = make_reference(params)
    panel = design_variants(patients, contigs, params)
    started = time.perf_counter()
    truths = [
        write_plasma_bam(tmp_path / f"{s.sample_id}.bam", s, p, panel, contigs, params)
        for p in patients
        for s in _plasma(p)
    ]
    elapsed = time.perf_counter() - started
    print(f"{len(truths)} plasma BAMs in {elapsed:.1f} s")
    truth = pd.concat(truths)
    assert abs(truth["unique_fragments"].mean() / params.cfdna_depth - 1) < 0.01
