"""The whole synthetic cohort: formats real tools read, truth consistent with the files."""

import hashlib

import anndata
import pandas as pd
import pysam
import pytest
import scanpy as sc

from carmscope.sheets import load_sheets
from carmscope.synthetic.design import PRESETS, design_cohort, plasma_normals
from carmscope.synthetic.tables import data_files
from tests.conftest import generate_tiny_cohort


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
    assert set(sheets.samples["assay"]) == {"scrna", "bulk_rna", "cfdna"}


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
