"""Input inspection: figures of good files, a clear error for each kind of bad one."""

import gzip
from pathlib import Path

import h5py
import numpy as np
import pysam
import pytest

from carmscope.inputs import (
    InputContentError,
    gather_inventory,
    inspect_blood_draws,
    inspect_counts,
    inspect_reads,
    inspect_sample,
    inspect_variants,
    write_inventory_row,
    write_inventory_rows,
)
from carmscope.verdict import read_verdicts

DATA = Path(__file__).resolve().parents[1] / "data"
HEADER = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": 1000}]}


def write_bam(path, tags=(("CB", "AAAC-1"),), header=HEADER, index=True, n=5):
    with pysam.AlignmentFile(str(path), "wb", header=header) as bam:
        for i in range(n):
            read = pysam.AlignedSegment(bam.header)
            read.query_name = f"r{i}"
            read.query_sequence = "ACGT" * 10
            read.query_qualities = pysam.qualitystring_to_array("I" * 40)
            read.reference_id = 0
            read.reference_start = 10 * i
            read.cigarstring = "40M"
            read.mapping_quality = 60
            read.set_tags(list(tags))
            bam.write(read)
    if index:
        pysam.index(str(path))
    return str(path)


def write_tenx_h5(path, barcodes, n_genes=3):
    n_cells = len(barcodes)
    with h5py.File(path, "w") as handle:
        matrix = handle.create_group("matrix")
        matrix["barcodes"] = np.array([b.encode() for b in barcodes])
        matrix["data"] = np.ones(n_cells, dtype=np.int32)
        matrix["indices"] = np.zeros(n_cells, dtype=np.int64)
        matrix["indptr"] = np.arange(n_cells + 1, dtype=np.int64)
        matrix["shape"] = np.array([n_genes, n_cells], dtype=np.int32)
    return str(path)


def write_vcf(path, contig="chr1", records=1):
    lines = [
        "##fileformat=VCFv4.2",
        f"##contig=<ID={contig},length=1000>",
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    lines += [f"{contig}\t{100 + i}\t.\tA\tC\t.\tPASS\t." for i in range(records)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_tenx_h5_figures(tmp_path):
    figures = inspect_counts(write_tenx_h5(tmp_path / "m.h5", ["A-1", "C-1"]), "scrna")
    assert figures == {"counts_format": "10x_h5", "n_cells": 2, "n_features": 3, "total_counts": 2}


def test_tenx_h5_duplicate_barcode(tmp_path):
    with pytest.raises(InputContentError, match="'A-1' occurs more than once"):
        inspect_counts(write_tenx_h5(tmp_path / "m.h5", ["A-1", "A-1"]), "scrna")


def test_h5_without_matrix_group_and_unreadable_file(tmp_path):
    with h5py.File(tmp_path / "v2.h5", "w") as handle:
        handle.create_group("GRCh38")
    with pytest.raises(InputContentError, match="no 'matrix' group"):
        inspect_counts(str(tmp_path / "v2.h5"), "scrna")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(InputContentError, match=r"junk\.h5: cannot be read as HDF5"):
        inspect_counts(str(tmp_path / "junk.h5"), "scrna")


def test_empty_matrix(tmp_path):
    with pytest.raises(InputContentError, match="empty count matrix"):
        inspect_counts(write_tenx_h5(tmp_path / "m.h5", []), "scrna")


def test_mtx_folder(tmp_path):
    (tmp_path / "matrix.mtx").write_text(
        "%%MatrixMarket matrix coordinate integer general\n%\n3 2 1\n1 1 5\n"
    )
    with gzip.open(tmp_path / "barcodes.tsv.gz", "wt") as handle:
        handle.write("A-1\nC-1\n")
    figures = inspect_counts(str(tmp_path), "scrna")
    assert figures["n_cells"] == 2 and figures["n_features"] == 3
    with gzip.open(tmp_path / "barcodes.tsv.gz", "wt") as handle:
        handle.write("A-1\n")
    with pytest.raises(InputContentError, match="1 barcodes but the matrix has 2 columns"):
        inspect_counts(str(tmp_path), "scrna")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("gene\tcounts\nA\t1\n", r"missing column\(s\) \['count'\]"),
        ("gene\tcount\nA\t1\nB\tx\n", "line 3, column 'count': 'x' is not a count"),
        ("gene\tcount\nA\t1\nA\t2\n", "line 3, column 'gene': 'A' is duplicated"),
        ("gene\tcount\nA\t-1\n", "line 2, column 'count'"),
    ],
)
def test_bulk_counts_errors(tmp_path, content, message):
    path = tmp_path / "bulk.tsv"
    path.write_text(content)
    with pytest.raises(InputContentError, match=message):
        inspect_counts(str(path), "bulk_rna")


def test_bulk_counts_figures(tmp_path):
    path = tmp_path / "bulk.tsv"
    path.write_text("gene\tcount\nA\t3\nB\t4\n")
    assert inspect_counts(str(path), "bulk_rna")["total_counts"] == 7


def test_scrna_bam_needs_cell_barcodes(tmp_path):
    figures = inspect_reads(write_bam(tmp_path / "ok.bam"), "scrna")
    assert figures["reads_with_cell_barcode"] == 1.0
    assert figures["reads_indexed"] is True
    with pytest.raises(InputContentError, match="has a CB tag"):
        inspect_reads(write_bam(tmp_path / "nocb.bam", tags=()), "scrna")


def test_cfdna_bam_must_be_sorted_and_its_index_is_reported(tmp_path):
    unsorted = {**HEADER, "HD": {"VN": "1.6", "SO": "unsorted"}}
    with pytest.raises(InputContentError, match=r"coordinate-sorted.*samtools sort"):
        inspect_reads(write_bam(tmp_path / "u.bam", header=unsorted, index=False), "cfdna")
    # the index policy (docs/alignment_files.md): a sorted BAM without an index is indexed by
    # the job that reads it by position (through a link), so inspection reports, not refuses
    figures = inspect_reads(write_bam(tmp_path / "n.bam", index=False), "cfdna")
    assert figures["reads_indexed"] is False and figures["reads_sort_order"] == "coordinate"
    assert inspect_reads(write_bam(tmp_path / "ok.bam"), "cfdna")["reads_sort_order"] == (
        "coordinate"
    )


def test_truncated_bam(tmp_path):
    good = write_bam(tmp_path / "ok.bam", index=False)
    data = Path(good).read_bytes()
    (tmp_path / "cut.bam").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputContentError, match=r"cut\.bam"):
        inspect_reads(str(tmp_path / "cut.bam"), "scrna")


def test_bam_cut_short_after_its_first_reads(tmp_path):
    # a real samtools BAM (tests/data/bam) whose copy stopped before the end: the header and
    # the first reads decode, only the missing end-of-file block tells (htslib checks it)
    data = (DATA / "bam/samtools_ex1_no_hd.bam").read_bytes()
    assert inspect_reads(str(DATA / "bam/samtools_ex1_no_hd.bam"), "bulk_rna")["reads_contigs"]
    (tmp_path / "copy.bam").write_bytes(data[: len(data) - 28])
    with pytest.raises(InputContentError, match=r"copy\.bam: cannot be .* \(no BGZF EOF marker"):
        inspect_reads(str(tmp_path / "copy.bam"), "bulk_rna")


def test_fastq(tmp_path):
    path = tmp_path / "r.fastq.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("@r1\nACGT\n+\nIIII\n")
    assert inspect_reads(str(path), "bulk_rna")["reads_format"] == "fastq"
    with gzip.open(path, "wt") as handle:
        handle.write("")
    with pytest.raises(InputContentError, match="no FASTQ records"):
        inspect_reads(str(path), "bulk_rna")


def test_variants_contigs_must_be_in_plasma_bam(tmp_path):
    bam = write_bam(tmp_path / "p.bam")
    assert inspect_variants(write_vcf(tmp_path / "v.vcf", records=3), [bam]) == {"n_variants": 3}
    with pytest.raises(InputContentError, match=r"contig\(s\) \['chr9'\] are not in the header"):
        inspect_variants(write_vcf(tmp_path / "w.vcf", contig="chr9"), [bam])
    with pytest.raises(InputContentError, match="no variant records"):
        inspect_variants(write_vcf(tmp_path / "e.vcf", records=0), [bam])


def test_inspect_sample_combines_checks(tmp_path):
    bam = write_bam(tmp_path / "p.bam")
    row = inspect_sample("S1", "cfdna", "", bam, write_vcf(tmp_path / "v.vcf"))
    assert row["sample_id"] == "S1" and row["n_variants"] == 1
    assert row["reads_sort_order"] == "coordinate"


def test_cfdna_vendor_table_instead_of_bam(tmp_path):
    table = tmp_path / "vaf.tsv"
    table.write_text("chrom\tpos\tref\talt\talt_count\tdepth\nchr1\t100\tA\tC\t3\t500\n")
    row = inspect_sample("S1", "cfdna", str(table), "", write_vcf(tmp_path / "v.vcf"))
    assert row["counts_format"] == "vendor_vaf" and row["n_features"] == 1
    assert row["n_variants"] == 1
    table.write_text("chrom\tpos\tref\talt\tdepth\nchr1\t100\tA\tC\t500\n")
    with pytest.raises(InputContentError, match=r"vaf\.tsv, line 1: missing column\(s\)"):
        inspect_sample("S1", "cfdna", str(table), "", write_vcf(tmp_path / "v.vcf"), strict=True)


def test_an_unusable_file_is_a_verdict_not_a_crash(tmp_path):
    # the sample is left out of the analyses with the problem; the rest of the cohort runs
    table = tmp_path / "vaf.tsv"
    table.write_text("chrom\tpos\tref\talt\tdepth\nchr1\t100\tA\tC\t500\n")
    row = inspect_sample("S1", "cfdna", str(table), "", write_vcf(tmp_path / "v.vcf"))
    assert row["usable"] is False
    assert row["problem"].startswith(f"{table}, line 1: missing column(s)")
    good = inspect_sample("S2", "cfdna", "", write_bam(tmp_path / "p.bam"), "")
    assert good["usable"] is True and good["problem"] == ""


def test_inventory_row_is_written_as_pandas_writes_it(tiny_cohort, tmp_path):
    """The per-sample inventory row (strings, counts, fractions, booleans, empty values) is
    written without pandas, exactly as pandas.DataFrame([row]).to_csv writes it."""
    import pandas as pd

    samples = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t", keep_default_na=False)
    patients = pd.read_csv(tiny_cohort / "patients.tsv", sep="\t", keep_default_na=False)
    variants = patients.set_index("patient_id")["tumor_variants"]
    assays = set()
    for sample in samples.drop_duplicates("assay").itertuples():
        row = inspect_sample(
            sample.sample_id,
            sample.assay,
            str(tiny_cohort / sample.counts) if sample.counts else "",
            str(tiny_cohort / sample.reads) if sample.reads else "",
            str(tiny_cohort / variants[sample.patient_id]) if sample.assay == "cfdna" else "",
        )
        row["note"] = None
        write_inventory_row(row, tmp_path / "ours.tsv")
        pd.DataFrame([row]).to_csv(tmp_path / "pandas.tsv", sep="\t", index=False)
        assert (tmp_path / "ours.tsv").read_text() == (tmp_path / "pandas.tsv").read_text()
        assays.add(sample.assay)
    assert assays == {"scrna", "bulk_rna", "cfdna", "car_pcr", "cytokines", "tcr"}


def blood_draws(tiny_cohort, tmp_path):
    """A tiny-cohort patient's blood draws as the per-patient rule passes them, one draw's
    table with a unit no analyte has (unusable), one table shared by two draws."""
    import pandas as pd

    samples = pd.read_csv(tiny_cohort / "samples.tsv", sep="\t", keep_default_na=False)
    draws = samples[samples["assay"].isin(["car_pcr", "cytokines"])]
    draws = draws[draws["patient_id"] == draws["patient_id"].iloc[0]]
    records = [
        {"sample_id": r.sample_id, "assay": r.assay, "counts": str(tiny_cohort / r.counts)}
        for r in draws.itertuples()
    ]
    assert {r["assay"] for r in records} == {"car_pcr", "cytokines"} and len(records) >= 4
    cytokines = [r for r in records if r["assay"] == "cytokines"]
    bad = tmp_path / "bad_cytokines.tsv"
    bad.write_text(Path(cytokines[0]["counts"]).read_text().replace("pg/mL", "pg/furlong"))
    cytokines[0]["counts"] = str(bad)
    cytokines[2]["counts"] = cytokines[1]["counts"]  # two draws in one table
    return records


def test_a_patients_blood_draws_get_each_draws_own_verdict(tiny_cohort, tmp_path):
    draws = blood_draws(tiny_cohort, tmp_path)
    rows = inspect_blood_draws(draws)
    # the same rows as one inspection per draw, in the draws' order
    assert rows == [
        inspect_sample(d["sample_id"], d["assay"], counts=d["counts"], reads="") for d in draws
    ]
    unusable = [row for row in rows if not row["usable"]]
    assert len(unusable) == 1 and "pg/furlong" in unusable[0]["problem"]
    assert str(tmp_path / "bad_cytokines.tsv") in unusable[0]["problem"]
    with pytest.raises(InputContentError, match="pg/furlong"):
        inspect_blood_draws(draws, strict=True)


def test_blood_draw_rows_round_trip_and_gather_as_per_sample_rows_do(tiny_cohort, tmp_path):
    """A patient's draws in one file give the same verdicts, and the inventory gathered from
    it is the one gathered from one file per draw (columns, values and sheet order)."""
    import pandas as pd

    draws = blood_draws(tiny_cohort, tmp_path)
    rows = inspect_blood_draws(draws)
    write_inventory_rows(rows, tmp_path / "patient.tsv")
    header = (tmp_path / "patient.tsv").read_text().splitlines()[0].split("\t")
    assert header[-2:] == ["usable", "problem"] and header[:2] == ["sample_id", "assay"]
    assert read_verdicts(tmp_path / "patient.tsv") == [
        (row["sample_id"], row["usable"], row["problem"]) for row in rows
    ]
    singles = []
    for row in rows:
        singles.append(tmp_path / f"{row['sample_id']}.tsv")
        write_inventory_row(row, singles[-1])
    before = pd.concat([pd.read_csv(p, sep="\t", dtype=str) for p in singles], ignore_index=True)
    order = [row["sample_id"] for row in rows]
    gathered = gather_inventory([tmp_path / "patient.tsv"], order)
    assert list(gathered.columns) == list(before.columns)
    pd.testing.assert_frame_equal(gathered.replace("", float("nan")), before, check_dtype=False)
    # rows follow the sheet's order, not the files': a reversed sheet reverses them
    backwards = gather_inventory([tmp_path / "patient.tsv", *singles[:1]], order[::-1])
    assert list(backwards["sample_id"]) == [*order[::-1][:-1], order[0], order[0]]
