"""ctDNA tracking through the workflow, checked against the synthetic cohort's truth.

A 5-patient tiny cohort covers every trajectory that matters here: a transient fall
(CARM-001), a stable patient (CARM-002), a confirmed fall that later rises (CARM-003), a
patient without plasma (CARM-004) and a clearance (CARM-005, tumour-free plasma after
infusion). Two plasma samples are turned into vendor VAF tables (one with counts, one with VAFs
only) and flow through the same outputs.
"""

import fcntl
import gzip
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pysam
import pytest

from carmscope.ctdna.alleles import AlleleFilters, count_alleles
from carmscope.ctdna.background import mark_carriers, site_background
from carmscope.ctdna.calls import sample_calls, variant_calls
from carmscope.ctdna.variants import VARIANT_KEY, read_tumour_variants
from carmscope.synthetic import genome, plasma_bam, tumour_variants
from carmscope.synthetic.design import CohortParams, design_cohort
from carmscope.verdict import left_out_reason
from tests.bcftools_oracle import count_alleles_bcftools
from tests.conftest import generate_tiny_cohort
from tests.integration.test_workflow import snakemake, write_config

pytestmark = pytest.mark.integration

TEMPLATES = [0, 7, 1, 13, 4]  # transient fall, stable, fall then rise, no ctDNA, clearance
VENDOR_COUNTS = "CARM-003_D8_cf"  # alt_count and depth: tested like a BAM sample
VENDOR_VAF = "CARM-001_D57_cf"  # VAF only: vendor-reported, judged on the VAF alone
FLAGS = ["molecular_response", "transient_decrease", "clearance", "progression"]
TARGETS = [
    "results/ctdna/variants.tsv",
    "results/ctdna/samples.tsv",
    "results/ctdna/timepoints.tsv",
    "results/ctdna/patients.tsv",
    "results/ctdna/spider.png",
    "results/ctdna/spider.svg",
    "results/ctdna/waterfall.png",
    "results/ctdna/waterfall.svg",
]


def read_tsv(path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"patient_id": str, "sample_id": str, "chrom": str})


def cohort_tables(cohort: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cohort's own tables with every path made absolute (so they can be written anywhere)."""
    patients = pd.read_csv(cohort / "patients.tsv", sep="\t", dtype=str, keep_default_na=False)
    samples = pd.read_csv(cohort / "samples.tsv", sep="\t", dtype=str, keep_default_na=False)
    for table, columns in ((patients, ["tumor_variants"]), (samples, ["counts", "reads", "vdj"])):
        for column in (c for c in columns if c in table.columns):
            table[column] = [str(cohort / path) if path else "" for path in table[column]]
    return patients, samples


def write_run(workdir: Path, repo: Path, patients, samples, **ctdna) -> None:
    (workdir / "tables").mkdir(parents=True, exist_ok=True)
    patients.to_csv(workdir / "tables/patients.tsv", sep="\t", index=False)
    samples.to_csv(workdir / "tables/samples.tsv", sep="\t", index=False)
    write_config(workdir, repo, ctdna=ctdna)


def own_variants(cohort: Path, patient_id: str) -> pd.DataFrame:
    return read_tumour_variants(cohort / f"variants/{patient_id}.vcf.gz")


def once(folder: Path, build) -> Path:
    """``build(folder)``, run by one pytest-xdist worker only: the others wait and reuse it."""
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (folder / ".done").exists():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                build(folder)
                (folder / ".done").touch()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return folder


@pytest.fixture(scope="session")
def shared(tmp_path_factory) -> Path:
    """This session's temporary folder, shared by its xdist workers."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def cohort(shared) -> Path:
    def build(folder):
        generate_tiny_cohort(folder / "data", threads=2, n_patients=5, templates=TEMPLATES)

    return once(shared / "ctdna_cohort", build) / "data"


@pytest.fixture(scope="session")
def run(cohort, shared, repo, tool) -> Path:
    return once(shared / "ctdna_run", lambda workdir: run_workflow(cohort, workdir, repo, tool))


def run_workflow(cohort: Path, workdir: Path, repo: Path, tool) -> None:
    """The ctDNA targets on the cohort, two plasma samples given as vendor tables."""
    patients, samples = cohort_tables(cohort)
    samples = samples.set_index("sample_id")
    for sample_id, columns in ((VENDOR_COUNTS, ["alt_count", "depth"]), (VENDOR_VAF, ["vaf"])):
        bam = samples.loc[sample_id, "reads"]
        counts = count_alleles(bam, own_variants(cohort, samples.loc[sample_id, "patient_id"]))
        counts["vaf"] = counts["vaf"].round(6)
        path = workdir / f"vendor/{sample_id}.tsv"
        path.parent.mkdir(exist_ok=True)
        with open(path, "w") as handle:
            handle.write(f"# {sample_id}: vendor report\n")
            counts[[*VARIANT_KEY, *columns]].to_csv(handle, sep="\t", index=False)
            handle.write("\t".join(["chr1", "5", "A", "C", *["1"] * len(columns)]) + "\n")
        samples.loc[sample_id, ["counts", "reads"]] = [str(path), ""]
    write_run(
        workdir,
        repo,
        patients,
        samples.reset_index(),
        reference=str(cohort / "reference/genome.fa"),
    )
    result = snakemake(repo, tool, workdir, *TARGETS)
    assert result.returncode == 0, result.stderr[-5000:]


# --- against the truth ------------------------------------------------------------------------


def test_variant_vafs_within_binomial_error_of_truth(run, cohort):
    variants = read_tsv(run / "results/ctdna/variants.tsv")
    truth = read_tsv(cohort / "truth/variants.tsv")
    merged = truth.merge(variants, on=["sample_id", *VARIANT_KEY], how="left", validate="1:1")
    assert merged["used"].all(), merged.loc[~merged["used"].astype(bool)]
    depth = merged["depth"].where(merged["depth"].notna(), merged["unique_fragments"])
    expected = merged["truth_vaf"]
    tolerance = 4 * np.sqrt(expected * (1 - expected) / depth) + 2 / depth
    off = (merged["vaf"] - expected).abs() > tolerance
    assert not off.any(), merged.loc[off, ["sample_id", *VARIANT_KEY, "vaf", "truth_vaf", "depth"]]
    bam = merged["source"] == "bam"
    assert (merged.loc[bam, "depth"] >= 0.9 * merged.loc[bam, "unique_fragments"]).all()


def test_every_flag_matches_the_truth_trajectory(run, cohort):
    patients = read_tsv(run / "results/ctdna/patients.tsv").set_index("patient_id")
    truth = read_tsv(cohort / "truth/patients.tsv").set_index("patient_id")
    assert list(patients.index) == list(truth.index)
    for flag in FLAGS:
        assert patients[flag].astype(bool).to_dict() == truth[f"ctdna_{flag}"].to_dict(), flag
    assert not patients.loc["CARM-004", "evaluable"]
    assert patients.loc["CARM-004", "reason"].startswith("no plasma samples")
    assert patients.loc[["CARM-001", "CARM-002", "CARM-003", "CARM-005"], "evaluable"].all()


def test_patient_summary_and_timepoints(run, cohort):
    patients = read_tsv(run / "results/ctdna/patients.tsv").set_index("patient_id")
    timepoints = read_tsv(run / "results/ctdna/timepoints.tsv")
    assert patients.loc["CARM-001", "baseline_sample_id"] == "CARM-001_C1D0_cf"
    assert patients.loc["CARM-001", "baseline_day"] == 0
    assert patients.loc["CARM-001", "nadir_day"] == 8  # the transient fall
    carm003 = timepoints[timepoints["patient_id"] == "CARM-003"].set_index("day")
    assert carm003.loc[8, "change_pct"] < -50 and carm003.loc[57, "change_pct"] > 50
    calls = read_tsv(run / "results/ctdna/samples.tsv")
    assert sorted(timepoints["sample_id"]) == sorted(calls["sample_id"])  # all have coverage
    for name in ("spider", "waterfall"):
        assert (run / f"results/ctdna/{name}.png").stat().st_size > 1000
        assert (run / f"results/ctdna/{name}.svg").read_text().lstrip().startswith("<?xml")


def test_no_detection_in_tumour_free_plasma(run, cohort):
    calls = read_tsv(run / "results/ctdna/samples.tsv").set_index("sample_id")
    truth = read_tsv(cohort / "truth/samples.tsv").set_index("sample_id")
    plasma = truth.index[truth["assay"] == "cfdna"]
    assert sorted(calls.index) == sorted(plasma)
    free = plasma[truth.loc[plasma, "ctdna_fold"] == 0]
    assert len(free) == 3  # CARM-005 after infusion
    assert not calls.loc[free, "ctdna_detected"].any()
    assert (calls.loc[free, "call_status"] == "not_detected").all()
    tumour = plasma[truth.loc[plasma, "ctdna_fold"] > 0]
    assert calls.loc[tumour, "ctdna_detected"].all()


def test_vendor_samples_flow_into_sample_and_patient_outputs(run, cohort):
    calls = read_tsv(run / "results/ctdna/samples.tsv").set_index("sample_id")
    timepoints = read_tsv(run / "results/ctdna/timepoints.tsv").set_index("sample_id")
    assert calls.loc[VENDOR_COUNTS, "source"] == "vendor"
    assert calls.loc[VENDOR_COUNTS, "detection_method"] == "poisson"
    own = count_alleles(cohort / f"cfdna/{VENDOR_COUNTS}.bam", own_variants(cohort, "CARM-003"))
    assert calls.loc[VENDOR_COUNTS, "alt_count"] == own["alt_count"].sum()
    assert calls.loc[VENDOR_COUNTS, "depth"] == own["depth"].sum()
    assert timepoints.loc[VENDOR_COUNTS, "fall"] and timepoints.loc[VENDOR_COUNTS, "change_tested"]
    assert calls.loc[VENDOR_VAF, "source"] == "vendor"
    assert calls.loc[VENDOR_VAF, "detection_method"] == "vendor-reported"
    assert calls.loc[VENDOR_VAF, "call_status"] == "vendor_reported"
    assert math.isnan(calls.loc[VENDOR_VAF, "p_value"])
    assert not timepoints.loc[VENDOR_VAF, "change_tested"]
    assert timepoints.loc[VENDOR_VAF, "above"]
    assert (calls.loc[calls["source"] == "bam", "detection_method"] == "poisson").all()


# --- specificity: tumour-free plasma is not called ---------------------------------------------


def cross_patient_calls(counts: pd.DataFrame, tumour: pd.DataFrame) -> pd.DataFrame:
    """Each plasma sample judged against every other patient's variants: true negatives.

    The sample is left out of the background of the sites it is judged at, exactly as the
    workflow leaves every patient's own samples out of the background of its variants.
    """
    marked = mark_carriers(counts, tumour)
    rows = []
    for sample_id, sample in counts.groupby("sample_id", sort=False):
        background = site_background(marked[marked["sample_id"] != sample_id])
        others = tumour[tumour["patient_id"] != sample["patient_id"].iloc[0]]
        probe = sample.drop(columns="patient_id").merge(
            others[["patient_id", *VARIANT_KEY]], on=VARIANT_KEY
        )
        probe = probe.assign(carrier=True, sample_id=sample_id + " as " + probe["patient_id"])
        rows.append(sample_calls(variant_calls(probe, background)))
    return pd.concat(rows, ignore_index=True)


def test_cross_patient_negatives_of_the_workflow_counts(run):
    tumour = read_tsv(run / "results/ctdna/tumour_variants.tsv")
    counts = pd.concat(
        [read_tsv(path) for path in sorted((run / "results/ctdna/counts").glob("*.tsv"))],
        ignore_index=True,
    )
    counts = counts[counts["source"] == "bam"]
    calls = cross_patient_calls(counts, tumour)
    assert len(calls) == 14 * 3
    assert calls["ctdna_detected"].mean() <= 0.05, calls[calls["ctdna_detected"]]


def test_specificity_over_many_simulated_negatives(tmp_path):
    """~200 tumour-free plasma/variant-set pairs from simulated BAMs: >= 95% not detected."""
    params = CohortParams(
        n_patients=8,
        variants_per_patient=4,
        cfdna_depth=200,
        reference_contigs=2,
        reference_contig_length=20_000,
    )
    patients = design_cohort(params)
    contigs = genome.make_reference(params)
    panel = tumour_variants.design_variants(patients, contigs, params)
    keys = panel[["patient_id", *VARIANT_KEY]]
    counts = []
    for patient in patients:
        for sample in (s for s in patient.samples if s.assay == "cfdna"):
            bam = tmp_path / f"{sample.sample_id}.bam"
            plasma_bam.write_plasma_bam(bam, sample, patient, panel, contigs, params)
            table = count_alleles(bam, panel[VARIANT_KEY].drop_duplicates())
            counts.append(table.assign(sample_id=sample.sample_id, patient_id=patient.patient_id))
            bam.unlink()
    calls = cross_patient_calls(pd.concat(counts, ignore_index=True), keys)
    assert len(calls) >= 200
    specificity = 1 - calls["ctdna_detected"].mean()
    assert specificity >= 0.95, calls[calls["ctdna_detected"]]


# --- the bcftools cross-check -------------------------------------------------------------------


def test_allele_counts_equal_bcftools_mpileup(cohort):
    variants = pd.concat(
        [own_variants(cohort, p) for p in ("CARM-001", "CARM-002", "CARM-003", "CARM-005")]
    ).drop_duplicates(VARIANT_KEY)
    reference = cohort / "reference/genome.fa"
    columns = ["ref_count", "alt_count", "other_count", "depth"]
    strands = ["ref_fwd", "ref_rev", "alt_fwd", "alt_rev"]
    for sample_id in ("CARM-001_C1D0_cf", "CARM-003_D57_cf"):
        bam = cohort / f"cfdna/{sample_id}.bam"
        # every read on its own: both paths must agree exactly, strands included
        each_read = AlleleFilters(count_overlapping_mates_once=False)
        ours = count_alleles(bam, variants, each_read)
        theirs = count_alleles_bcftools(bam, variants, reference, each_read)
        snvs = theirs["evaluable"].to_numpy()
        assert snvs.sum() >= 12
        pd.testing.assert_frame_equal(
            ours.loc[snvs, columns + strands].astype(int),
            theirs.loc[snvs, columns + strands].astype(int),
        )
        # one count per fragment (the default): htslib resolves disagreeing overlapping mates
        # differently (docs/ctdna.md), which moves a fragment or two at most
        ours = count_alleles(bam, variants)
        theirs = count_alleles_bcftools(bam, variants, reference)
        difference = (
            ours.loc[snvs, columns].astype(int) - theirs.loc[snvs, columns].astype(int)
        ).abs()
        assert (difference <= 2).all().all(), difference


# --- bad input: a clear error ---------------------------------------------------------------------


def log_of(workdir: Path, name: str) -> str:
    return (workdir / "logs" / name).read_text()


def test_bad_bams_and_vendor_table(cohort, tmp_path, repo, tool):
    patients, samples = cohort_tables(cohort)
    patients = patients[patients["patient_id"] == "CARM-001"]
    samples = samples[(samples["patient_id"] == "CARM-001") & (samples["assay"] == "cfdna")]
    samples = samples.set_index("sample_id")
    bams = tmp_path / "bams"
    bams.mkdir()
    # unsorted: the header says so
    source = samples.loc["CARM-001_C1D0_cf", "reads"]
    unsorted = bams / "unsorted.bam"
    with pysam.AlignmentFile(source) as bam:
        header = bam.header.to_dict()
        header["HD"]["SO"] = "unsorted"
        with pysam.AlignmentFile(unsorted, "wb", header=header) as out:
            for read in bam.fetch(until_eof=True):
                out.write(read)
    samples.loc["CARM-001_C1D0_cf", "reads"] = str(unsorted)
    # unindexed: indexed for the job, never beside the input
    unindexed = bams / "unindexed.bam"
    shutil.copy(samples.loc["CARM-001_D8_cf", "reads"], unindexed)
    samples.loc["CARM-001_D8_cf", "reads"] = str(unindexed)
    # a vendor table without alt_count/depth or vaf
    vendor = tmp_path / "vendor.tsv"
    vendor.write_text("chrom\tpos\tref\talt\tdepth\nchr1\t100\tA\tC\t500\n")
    samples.loc["CARM-001_D29_cf", ["counts", "reads"]] = [str(vendor), ""]
    write_run(tmp_path, repo, patients, samples.reset_index())
    targets = [f"results/ctdna/counts/{s}.tsv" for s in samples.index[:3]]
    # unusable inputs leave their samples out (README, "What is refused and what is not
    # evaluable"): the jobs succeed and their outputs carry inspection's message
    result = snakemake(repo, tool, tmp_path, *targets)
    assert result.returncode == 0, result.stderr[-3000:]
    counts = tmp_path / "results/ctdna/counts"
    for sample, problem in (
        ("CARM-001_C1D0_cf", "unsorted.bam: is not coordinate-sorted (header SO: unsorted)"),
        ("CARM-001_D29_cf", "vendor.tsv, line 1: missing column(s): alt_count and depth, or vaf"),
    ):
        message = log_of(tmp_path, f"ctdna_count_alleles/{sample}.log")
        assert f"sample {sample} is left out of the analyses" in message
        assert problem in message
        assert problem in left_out_reason(counts / f"{sample}.tsv")
    assert "samtools sort" in log_of(tmp_path, "ctdna_count_alleles/CARM-001_C1D0_cf.log")
    assert not left_out_reason(counts / "CARM-001_D8_cf.tsv")
    assert "has no index" in log_of(tmp_path, "ctdna_count_alleles/CARM-001_D8_cf.log")
    assert not list(bams.glob("*.bai"))


def test_ref_disagreeing_with_the_reference(cohort, tmp_path, repo, tool):
    patients, samples = cohort_tables(cohort)
    variant = own_variants(cohort, "CARM-001").query("kind == 'snv'").iloc[0]
    fasta = pysam.FastaFile(str(cohort / "reference/genome.fa"))
    sequence = {name: fasta.fetch(name) for name in fasta.references}
    chrom, start = variant["chrom"], int(variant["pos"]) - 1
    other = "A" if variant["ref"] != "A" else "C"
    sequence[chrom] = sequence[chrom][:start] + other + sequence[chrom][start + 1 :]
    reference = tmp_path / "other.fa"
    reference.write_text("".join(f">{name}\n{seq}\n" for name, seq in sequence.items()))
    write_run(tmp_path, repo, patients, samples, reference=str(reference))
    result = snakemake(repo, tool, tmp_path, "results/ctdna/panel.tsv")
    assert result.returncode != 0
    message = log_of(tmp_path, "ctdna_panel.log")
    assert "CARM-001.vcf.gz: line" in message
    assert f"REF {variant['ref']} disagrees with the reference {reference}" in message


def test_vcf_contig_absent_from_the_bam(cohort, tmp_path, repo, tool):
    patients, samples = cohort_tables(cohort)
    with gzip.open(cohort / "variants/CARM-002.vcf.gz", "rt") as handle:
        text = handle.read()
    renamed = tmp_path / "CARM-002.vcf"
    renamed.write_text(
        "\n".join(
            line if line.startswith("##") else line.replace("chr1", "chr9")
            for line in text.splitlines()
        ).replace("##contig=<ID=chr1", "##contig=<ID=chr9")
        + "\n"
    )
    patients.loc[patients["patient_id"] == "CARM-002", "tumor_variants"] = str(renamed)
    write_run(tmp_path, repo, patients, samples)
    result = snakemake(repo, tool, tmp_path, "results/ctdna/counts/CARM-001_D8_cf.tsv")
    # issue 15: another patient's VCF on another naming does not fail this patient's sample;
    # its variants are not evaluable here, with the reason, and CARM-001's are counted
    assert result.returncode == 0, result.stderr
    counts = pd.read_csv(tmp_path / "results/ctdna/counts/CARM-001_D8_cf.tsv", sep="\t")
    elsewhere = counts[counts["chrom"] == "chr9"]
    assert len(elsewhere) and not elsewhere["evaluable"].any()
    assert elsewhere["reason"].str.startswith("contig 'chr9' is not in the header of ").all()
    assert elsewhere["reason"].str.contains("D8_cf.bam (variant of CARM-002", regex=False).all()
    assert counts[counts["patients"].str.contains("CARM-001", na=False)]["evaluable"].any()


def test_patient_with_plasma_but_no_variants_stops_before_any_job_in_strict_mode(
    cohort, tmp_path, repo, tool
):
    patients, samples = cohort_tables(cohort)
    patients.loc[patients["patient_id"] == "CARM-002", "tumor_variants"] = ""
    write_run(tmp_path, repo, patients, samples)
    write_config(tmp_path, repo, strict=True)
    result = snakemake(repo, tool, tmp_path, "--dry-run", *TARGETS)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "column 'tumor_variants': is empty, but the patient has cfdna sample(s)" in output
    assert not (tmp_path / "results").exists()


def test_patient_with_plasma_but_no_variants_is_left_untracked(cohort, tmp_path, repo, tool):
    # by default the cohort runs; that patient's plasma is not scheduled (the result tables say
    # why: tests/integration/test_cohort_shapes.py)
    patients, samples = cohort_tables(cohort)
    patients.loc[patients["patient_id"] == "CARM-002", "tumor_variants"] = ""
    write_run(tmp_path, repo, patients, samples)
    result = snakemake(repo, tool, tmp_path, "--dry-run", *TARGETS)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "results/ctdna/counts/CARM-001_C1D0_cf.tsv" in output
    assert "results/ctdna/counts/CARM-002_C1D0_cf.tsv" not in output
