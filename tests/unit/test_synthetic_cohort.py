"""The whole synthetic cohort: formats real tools read, truth consistent with the files."""

import hashlib
from dataclasses import replace

import anndata
import pandas as pd
import pysam
import pytest
import scanpy as sc

from carmscope.sheets import load_sheets
from carmscope.synthetic import cohort
from carmscope.synthetic.design import PRESETS, design_cohort, plasma_normals
from carmscope.synthetic.tables import data_files
from tests.conftest import REPO, generate_tiny_cohort

RESOURCES = {
    "construct_fasta": REPO / "resources/car/anti_her2_car.fa",
    "segments_tsv": REPO / "resources/car/anti_her2_car.segments.tsv",
    "gmt_paths": [REPO / "resources/genesets/hallmark_inflammation.v7.0.gmt"],
    "signatures_tsv": REPO / "resources/genesets/immune_signatures.tsv",
}


def digest(folder):
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_writes_exactly_the_designed_files(tiny_cohort):
    tiny = PRESETS["tiny"]
    expected = set(data_files(design_cohort(tiny), plasma_normals(tiny)))
    assert set(digest(tiny_cohort)) == expected | {"patients.tsv", "samples.tsv"}
    assert "cfdna_normals/PON-003.bam" in expected


def test_tables_pass_validation(tiny_cohort, monkeypatch):
    monkeypatch.chdir(tiny_cohort)
    sheets = load_sheets("patients.tsv", "samples.tsv")
    assert len(sheets.patients) == 4
    assays = {"scrna", "bulk_rna", "cfdna", "car_pcr", "cytokines", "tcr"}
    assert set(sheets.samples["assay"]) == assays
    assert (sheets.samples["vdj"] != "").sum() == 2  # CARM-003's biopsies


def test_same_seed_gives_identical_bytes_whatever_the_workers(tiny_cohort, tmp_path):
    again = generate_tiny_cohort(tmp_path / "again", threads=2)
    assert digest(again) == digest(tiny_cohort)


def test_other_seed_changes_the_data(tiny_cohort, tmp_path):
    other = digest(generate_tiny_cohort(tmp_path / "other", seed=7))
    original = digest(tiny_cohort)
    assert other["scrna/CARM-001_D8_sc.h5"] != original["scrna/CARM-001_D8_sc.h5"]
    assert other["samples.tsv"] == original["samples.tsv"]


def test_scrna_matrices_read_with_scanpy_and_match_cell_truth(tiny_cohort):
    truth = pd.read_csv(tiny_cohort / "truth/samples.tsv", sep="\t").set_index("sample_id")
    cells = pd.read_csv(tiny_cohort / "truth/cells.tsv.gz", sep="\t")
    for sample_id in truth.index[truth["assay"] == "scrna"]:
        adata = sc.read_10x_h5(tiny_cohort / f"scrna/{sample_id}.h5")
        assert adata.n_obs == truth.loc[sample_id, "n_cells"]
        assert adata.var["gene_ids"].str.startswith("ENSG").all()
        assert {"CD8A", "ERBB2", "MT-CO1"} <= set(adata.var_names)
        own = cells[cells["sample_id"] == sample_id]
        assert sorted(own["barcode"]) == sorted(adata.obs_names)
        expected_car = truth.loc[sample_id, "car_present"]
        assert (own["car_umis"].sum() > 0) == expected_car, sample_id
        if own["car_umis"].sum():
            carriers = own[own["car_umis"] > 0]
            assert carriers["cell_type"].isin(["macrophage_m1", "macrophage_m2"]).all()
            assert not carriers["low_quality"].any()
        cd8 = (own.loc[~own["low_quality"], "cell_type"] == "cd8_t").mean()
        assert cd8 == pytest.approx(truth.loc[sample_id, "cd8_fraction"])


def test_tenx_bams_carry_cell_barcodes_of_the_matrix(tiny_cohort):
    cells = pd.read_csv(tiny_cohort / "truth/cells.tsv.gz", sep="\t")
    sample_id = "CARM-001_D8_sc"
    barcodes = set(cells.loc[cells["sample_id"] == sample_id, "barcode"])
    with pysam.AlignmentFile(tiny_cohort / f"scrna/{sample_id}.bam") as bam:
        assert bam.has_index()
        tagged = [read.get_tag("CB") for read in bam.fetch(until_eof=True) if read.has_tag("CB")]
    assert tagged and len(set(tagged) & barcodes) == len(barcodes)


def test_bulk_counts_and_reads(tiny_cohort):
    counts = pd.read_csv(tiny_cohort / "bulk/CARM-003_D8_bulk.counts.tsv", sep="\t")
    assert list(counts.columns) == ["gene", "count"] and counts["count"].sum() > 1e7
    with pysam.FastxFile(str(tiny_cohort / "bulk/CARM-003_D8_bulk.fastq.gz")) as reads:
        assert sum(1 for _ in reads) == PRESETS["tiny"].bulk_reads


def test_plasma_bams_and_variants_match_truth(tiny_cohort):
    truth = pd.read_csv(tiny_cohort / "truth/variants.tsv", sep="\t")
    patients = pd.read_csv(tiny_cohort / "truth/patients.tsv", sep="\t").set_index("patient_id")
    with pysam.FastaFile(str(tiny_cohort / "reference/genome.fa")) as fasta:
        for patient_id in truth["patient_id"].unique():
            with pysam.VariantFile(str(tiny_cohort / f"variants/{patient_id}.vcf.gz")) as vcf:
                for record in vcf:
                    assert fasta.fetch(record.chrom, record.pos - 1, record.stop) == record.ref
    samples = pd.read_csv(tiny_cohort / "truth/samples.tsv", sep="\t").set_index("sample_id")
    for sample_id, rows in truth.groupby("sample_id"):
        with pysam.AlignmentFile(tiny_cohort / f"cfdna/{sample_id}.bam") as bam:
            assert bam.header.to_dict()["HD"]["SO"] == "coordinate" and bam.has_index()
        patient = patients.loc[rows["patient_id"].iloc[0]]
        mean = patient["ctdna_baseline_vaf"] * samples.loc[sample_id, "ctdna_fold"]
        assert samples.loc[sample_id, "ctdna_mean_vaf"] == pytest.approx(mean)
        assert (rows["unique_fragments"] > 0).all()


def test_truth_patients_carry_design_and_ctdna_flags(tiny_cohort):
    patients = pd.read_csv(tiny_cohort / "truth/patients.tsv", sep="\t").set_index("patient_id")
    assert list(patients.index) == ["CARM-001", "CARM-002", "CARM-003", "CARM-004"]
    assert not patients.loc["CARM-002", "car_positive"]
    assert patients.loc["CARM-001", "ctdna_transient_decrease"]
    assert patients.loc["CARM-003", "ctdna_molecular_response"]
    assert pd.isna(patients.loc["CARM-004", "ctdna_trajectory"])


def test_h5ad_conversion_keeps_ids(tiny_cohort, tmp_path):
    adata = sc.read_10x_h5(tiny_cohort / "scrna/CARM-001_D8_sc.h5")
    adata.write_h5ad(tmp_path / "x.h5ad")
    again = anndata.read_h5ad(tmp_path / "x.h5ad")
    assert list(again.var["gene_ids"]) == list(adata.var["gene_ids"])


# --- the cohort in parts, as the workflow writes it (one job per patient) --------------------


def prepare(out, **overrides):
    return cohort.prepare(replace(PRESETS["tiny"], **overrides), out, **RESOURCES)


def test_parts_written_apart_and_gathered_equal_the_cohort_byte_for_byte(tiny_cohort, tmp_path):
    out = tmp_path / "parts"
    simulation = prepare(out)
    cohort.generate_reference(simulation)
    for normal in ("PON-003", "PON-001", "PON-002"):
        cohort.generate_normal(simulation, normal)
    files = []
    for patient_id in reversed(list(simulation.patients)):  # any order, fresh simulations
        truth = cohort.generate_patient(prepare(out), patient_id)
        files.append(tmp_path / f"{patient_id}.json.gz")
        cohort.write_patient_truth(files[-1], truth)
    cohort.gather_truth(prepare(out), [cohort.read_patient_truth(path) for path in files])
    expected = digest(tiny_cohort)
    del expected["patients.tsv"], expected["samples.tsv"]
    assert digest(out) == expected


def test_a_patients_truth_file_reads_back_exactly(tmp_path):
    truth = cohort.generate_patient(prepare(tmp_path), "CARM-003")
    cohort.write_patient_truth(tmp_path / "truth.json.gz", truth)
    again = cohort.read_patient_truth(tmp_path / "truth.json.gz")
    assert again.patient_id == "CARM-003" and len(again.samples) == len(truth.samples)
    for mine, read in zip(truth.samples, again.samples, strict=True):
        assert read.sample == mine.sample
        for name in ("cells", "variants"):
            if getattr(mine, name) is None:
                assert getattr(read, name) is None
            else:
                pd.testing.assert_frame_equal(getattr(read, name), getattr(mine, name))
    first = (tmp_path / "truth.json.gz").read_bytes()
    cohort.write_patient_truth(tmp_path / "truth.json.gz", again)
    assert (tmp_path / "truth.json.gz").read_bytes() == first


def test_truth_of_some_patients_lists_them_in_design_order(tiny_cohort, tmp_path):
    simulation = prepare(tmp_path)
    truths = [cohort.generate_patient(simulation, p) for p in ("CARM-004", "CARM-002")]
    cohort.gather_truth(simulation, truths)
    patients = pd.read_csv(tmp_path / "truth/patients.tsv", sep="\t")
    assert list(patients["patient_id"]) == ["CARM-002", "CARM-004"]
    samples = pd.read_csv(tmp_path / "truth/samples.tsv", sep="\t")
    whole = pd.read_csv(tiny_cohort / "truth/samples.tsv", sep="\t")
    assert list(samples["sample_id"]) == [
        s for s in whole["sample_id"] if s.startswith(("CARM-002", "CARM-004"))
    ]


def test_unknown_patient_or_normal_is_a_clear_error(tmp_path):
    simulation = prepare(tmp_path)
    with pytest.raises(ValueError, match="patient 'CARM-005' is not in the synthetic cohort"):
        cohort.generate_patient(simulation, "CARM-005")
    with pytest.raises(ValueError, match=r"'PON-004' is not in .* \(n_plasma_normals=3\)"):
        cohort.generate_normal(simulation, "PON-004")


def _reads_by_site(bam_path) -> dict[int, list[str]]:
    """Reads of a plasma BAM by the 1-based site they were simulated at (in the read name)."""
    by_site: dict[int, list[str]] = {}
    with pysam.AlignmentFile(str(bam_path)) as bam:
        for read in bam.fetch():
            by_site.setdefault(int(read.query_name.split(":")[1]), []).append(read.to_string())
    return by_site


def test_a_patient_plasma_panel_covers_only_the_patients_own_sites(tiny_cohort, tmp_path):
    simulation = prepare(tmp_path, plasma_panel="patient")
    truth = cohort.generate_patient(simulation, "CARM-001")
    own = simulation.panel.loc[simulation.panel["patient_id"] == "CARM-001", "pos"]
    assert (simulation.panel["patient_id"] != "CARM-001").any()
    # the truth is unchanged: same VAFs, and the same fragments at the patient's sites
    variants = pd.concat([s.variants for s in truth.samples if s.variants is not None])
    expected = pd.read_csv(tiny_cohort / "truth/variants.tsv", sep="\t")
    expected = expected[expected["patient_id"] == "CARM-001"].reset_index(drop=True)
    pd.testing.assert_frame_equal(variants.reset_index(drop=True), expected, check_dtype=False)
    plasma = [s.sample["sample_id"] for s in truth.samples if s.variants is not None]
    assert len(plasma) == 4
    for sample_id in plasma:
        mine = _reads_by_site(tmp_path / f"cfdna/{sample_id}.bam")
        whole = _reads_by_site(tiny_cohort / f"cfdna/{sample_id}.bam")
        assert set(mine) == set(own) < set(whole)
        for site, reads in mine.items():
            assert sorted(reads) == sorted(whole[site])
