"""Loading and validating patients.tsv and samples.tsv."""

import gzip
import os
import pickle
import re
from pathlib import Path

import pytest

from carmscope import sheet_reading
from carmscope import sheets as sheets_module
from carmscope.sheets import (
    PATIENT_COLUMNS,
    SAMPLE_COLUMNS,
    Problem,
    SheetError,
    Sheets,
    baseline_sample,
    first_post_infusion_sample,
    load_sheets,
    post_infusion_samples,
)

# --- a small valid cohort: tables in config/, data in data/ -----------------------------------

PATIENTS = [
    {
        "patient_id": "P01",
        "indication": "gastric",
        "her2_ihc": "3+",
        "dosing": "fractionated",
        "best_response": "PR",
        "tumor_variants": "../data/P01.vcf.gz",
        "site": "S1",
        "notes": "NA",
    },
    {
        "patient_id": "P02",
        "indication": "breast",
        "her2_ihc": "2+",
        "dosing": "single",
        "best_response": "",
        "tumor_variants": "",
        "site": "S2",
        "notes": "",
    },
]

SAMPLES = [
    # sample_id, patient_id, timepoint, day, assay, counts, reads
    ("P01_scr_sc", "P01", "screening", "-14", "scrna", "../data/P01_scr.h5", "../data/P01_scr.bam"),
    ("P01_pre_sc", "P01", "pre", "-1", "scrna", "../data/P01_pre_mtx", ""),
    ("P01_pre2_sc", "P01", "pre", "-1", "scrna", "../data/P01_pre2.h5ad", ""),
    ("P01_D15_sc", "P01", "D15", "15", "scrna", "../data/P01_D15.h5", ""),
    ("P01_D8_sc", "P01", "D8", "+8", "scrna", "", "../data/P01_D8.cram"),
    ("P01_D8b_sc", "P01", "D8", "8", "scrna", "../data/P01_D8b.h5", ""),
    ("P01_scr_cf", "P01", "screening", "-14", "cfdna", "", "../data/P01_scr_cf.cram"),
    ("P01_D8_cf", "P01", "D8", "8", "cfdna", "", "../data/P01_D8_cf.bam"),
    (
        "P02_scr_bulk",
        "P02",
        "screening",
        "0",
        "bulk_rna",
        "../data/P02.tsv.gz",
        "../data/P02.fq.gz",
    ),
    ("P02_D8_bulk", "P02", "D8", "8", "bulk_rna", "../data/P02_D8.txt", ""),
]

DATA_FILES = [
    "P01.vcf.gz",
    "P01_scr.h5",
    "P01_scr.bam",
    "P01_pre_mtx/matrix.mtx.gz",
    "P01_pre_mtx/barcodes.tsv.gz",
    "P01_pre_mtx/features.tsv.gz",
    "P01_pre2.h5ad",
    "P01_D15.h5",
    "P01_D8.cram",
    "P01_D8b.h5",
    "P01_scr_cf.cram",
    "P01_D8_cf.bam",
    "P02.tsv.gz",
    "P02.fq.gz",
    "P02_D8.txt",
]


def sample_row(values: tuple[str, ...]) -> dict[str, str]:
    return {**dict(zip(SAMPLE_COLUMNS, values, strict=True)), "batch": "B1"}


def write_tsv(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(rows[0]), *("\t".join(row.values()) for row in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return path


class Cohort:
    """The valid cohort under ``root``; edit ``patients``/``samples`` rows, then ``load``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.patients = [dict(row) for row in PATIENTS]
        self.samples = [sample_row(values) for values in SAMPLES]
        for name in DATA_FILES:
            touch(root / "data" / name)

    @property
    def patients_path(self) -> Path:
        return self.root / "config" / "patients.tsv"

    @property
    def samples_path(self) -> Path:
        return self.root / "config" / "samples.tsv"

    def sample(self, sample_id: str) -> dict[str, str]:
        return next(row for row in self.samples if row["sample_id"] == sample_id)

    def line_of(self, sample_id: str) -> int:
        return 2 + [row["sample_id"] for row in self.samples].index(sample_id)

    def write(self) -> None:
        write_tsv(self.patients_path, self.patients)
        write_tsv(self.samples_path, self.samples)

    def load(self, **kwargs) -> Sheets:
        self.write()
        return load_sheets(self.patients_path, self.samples_path, **kwargs)

    def problems(self, **kwargs) -> list[Problem]:
        with pytest.raises(SheetError) as caught:
            self.load(**kwargs)
        return caught.value.problems


@pytest.fixture
def cohort(tmp_path) -> Cohort:
    return Cohort(tmp_path)


def only_problem(problems: list[Problem], file: Path, line: int | None, column: str | None):
    """The single problem at file/line/column; fails listing all problems otherwise."""
    found = [p for p in problems if (p.file, p.line, p.column) == (str(file), line, column)]
    assert len(found) == 1, "\n".join(map(str, problems))
    return found[0]


# --- the valid round trip ---------------------------------------------------------------------


def test_valid_cohort_round_trip(cohort, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sheets = cohort.load()
    patients, samples = sheets.patients, sheets.samples

    assert patients.index.name == "patient_id"
    assert list(patients.index) == ["P01", "P02"]
    assert list(patients.columns) == [*PATIENT_COLUMNS[1:], "site", "notes"]
    assert patients.loc["P01", "notes"] == "NA"  # read literally, not as missing
    assert patients.loc["P02", "best_response"] == ""
    assert all(isinstance(v, str) for v in patients.to_numpy().ravel())

    assert samples.index.name == "sample_id"
    assert list(samples.index) == [values[0] for values in SAMPLES]
    # the optional contract columns are always present once loaded (filled in when absent)
    assert list(samples.columns) == [*SAMPLE_COLUMNS[1:], "batch", "tissue", "hours", "vdj"]
    assert samples["day"].dtype == "int64"
    assert samples.loc["P01_D8_sc", "day"] == 8
    assert samples.loc["P01_scr_sc", "day"] == -14
    assert samples.loc["P01_D8_sc", "batch"] == "B1"


def test_relative_paths_resolve_against_the_table_folder(cohort, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # tables in config/, data in data/: relative to the cwd
    sheets = cohort.load()
    assert sheets.patients.loc["P01", "tumor_variants"] == os.path.join("data", "P01.vcf.gz")
    assert sheets.patients.loc["P02", "tumor_variants"] == ""
    assert sheets.samples.loc["P01_scr_sc", "counts"] == os.path.join("data", "P01_scr.h5")
    assert sheets.samples.loc["P01_pre_sc", "counts"] == os.path.join("data", "P01_pre_mtx")
    assert sheets.samples.loc["P01_pre_sc", "reads"] == ""


def test_paths_outside_the_cwd_are_stored_absolute(cohort, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    sheets = cohort.load()
    assert sheets.samples.loc["P01_scr_sc", "counts"] == str(tmp_path / "data" / "P01_scr.h5")


def test_absolute_paths_are_kept(cohort, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path / "data")
    cohort.sample("P01_scr_sc")["counts"] = str(tmp_path / "data" / "P01_scr.h5")
    sheets = cohort.load()
    assert sheets.samples.loc["P01_scr_sc", "counts"] == "P01_scr.h5"


def test_whitespace_blank_lines_crlf_and_bom_are_tolerated(cohort):
    cohort.write()
    for path in (cohort.patients_path, cohort.samples_path):
        header, *rows = path.read_text().splitlines()
        padded = ["\t".join(f" {cell} " for cell in row.split("\t")) + "\t" for row in rows]
        text = "\r\n".join(["", header, "", *padded, "  ", ""])
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    sheets = load_sheets(cohort.patients_path, cohort.samples_path)
    assert sheets.patients.columns[0] == "indication"  # no BOM in the first name
    assert sheets.patients.loc["P01", "indication"] == "gastric"
    assert sheets.samples.loc["P01_D8_sc", "day"] == 8
    assert list(sheets.samples.index) == [values[0] for values in SAMPLES]


def test_str_paths_and_problem_format(cohort, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cohort.sample("P01_D15_sc")["day"] = "abc"
    cohort.write()
    with pytest.raises(SheetError) as caught:
        load_sheets("config/patients.tsv", "config/samples.tsv")
    line = cohort.line_of("P01_D15_sc")
    assert str(caught.value.problems[0]).startswith(
        f"config/samples.tsv, line {line} (sample P01_D15_sc), column 'day': "
        "'abc' is not an integer"
    )
    assert str(caught.value).splitlines()[0] == "1 problem in the input tables:"


# --- per-patient helpers ----------------------------------------------------------------------


def test_baseline_is_the_last_pre_infusion_sample_with_ties_to_file_order(cohort):
    sheets = cohort.load()
    assert baseline_sample(sheets, "P01", "scrna") == "P01_pre2_sc"
    assert baseline_sample(sheets, "P01", "cfdna") == "P01_scr_cf"
    assert baseline_sample(sheets, "P02", "bulk_rna") == "P02_scr_bulk"  # day 0 is baseline


def test_no_baseline(cohort):
    cohort.sample("P02_scr_bulk")["day"] = "1"
    sheets = cohort.load()
    assert baseline_sample(sheets, "P02", "bulk_rna") is None
    assert baseline_sample(sheets, "P02", "cfdna") is None


def test_post_infusion_samples_sorted_by_day_then_file_order(cohort):
    sheets = cohort.load()
    assert post_infusion_samples(sheets, "P01", "scrna") == [
        "P01_D8_sc",
        "P01_D8b_sc",
        "P01_D15_sc",
    ]
    assert first_post_infusion_sample(sheets, "P01", "scrna") == "P01_D8_sc"
    assert post_infusion_samples(sheets, "P02", "cfdna") == []
    assert first_post_infusion_sample(sheets, "P02", "cfdna") is None


def test_helpers_do_not_depend_on_other_patients(cohort):
    before = cohort.load()
    cohort.samples.insert(0, sample_row(("P02_x", "P02", "D1", "1", "bulk_rna", "", "../p.fq")))
    touch(cohort.root / "p.fq")
    after = cohort.load()
    for helper in (baseline_sample, post_infusion_samples, first_post_infusion_sample):
        assert helper(before, "P01", "scrna") == helper(after, "P01", "scrna")


def test_helpers_reject_unknown_patient_and_assay(cohort):
    sheets = cohort.load()
    with pytest.raises(KeyError, match="P99"):
        baseline_sample(sheets, "P99", "scrna")
    with pytest.raises(ValueError, match="scrna, bulk_rna, cfdna, tcr, car_pcr or cytokines"):
        post_infusion_samples(sheets, "P01", "rna")


# --- whole-file problems ----------------------------------------------------------------------


def test_missing_table(cohort):
    cohort.write()
    cohort.patients_path.unlink()
    with pytest.raises(SheetError) as caught:
        load_sheets(cohort.patients_path, cohort.samples_path)
    problem = only_problem(caught.value.problems, cohort.patients_path, None, None)
    assert "does not exist" in problem.message


@pytest.mark.parametrize("content", ["", "\n  \n\t\n"])
def test_empty_table(cohort, content):
    cohort.write()
    cohort.samples_path.write_text(content)
    with pytest.raises(SheetError) as caught:
        load_sheets(cohort.patients_path, cohort.samples_path)
    problem = only_problem(caught.value.problems, cohort.samples_path, None, None)
    assert "is empty" in problem.message


def test_table_that_is_a_directory(cohort, tmp_path):
    cohort.write()
    with pytest.raises(SheetError) as caught:
        load_sheets(tmp_path, cohort.samples_path)
    assert "is a directory" in only_problem(caught.value.problems, tmp_path, None, None).message


def test_unreadable_table(cohort, monkeypatch):
    def denied(file, *args, **kwargs):
        raise PermissionError(13, "Permission denied", file)

    cohort.write()
    monkeypatch.setattr(sheet_reading, "open", denied, raising=False)
    with pytest.raises(SheetError) as caught:
        load_sheets(cohort.patients_path, cohort.samples_path)
    problem = only_problem(caught.value.problems, cohort.samples_path, None, None)
    assert "not readable" in problem.message
    assert len(caught.value.problems) == 2


def test_compressed_table(cohort):
    cohort.write()
    cohort.patients_path.write_bytes(gzip.compress(cohort.patients_path.read_bytes()))
    with pytest.raises(SheetError) as caught:
        load_sheets(cohort.patients_path, cohort.samples_path)
    problem = only_problem(caught.value.problems, cohort.patients_path, None, None)
    assert "not UTF-8" in problem.message


def test_comma_separated_table(cohort):
    cohort.write()
    text = cohort.samples_path.read_text().replace("\t", ",")
    cohort.samples_path.write_text(text)
    with pytest.raises(SheetError) as caught:
        load_sheets(cohort.patients_path, cohort.samples_path)
    problem = only_problem(caught.value.problems, cohort.samples_path, 1, None)
    assert "not tab-separated" in problem.message
    assert "comma" in problem.message


def test_missing_required_columns_are_named(cohort):
    for row in cohort.patients:
        row["HER2_ihc"] = row.pop("her2_ihc")
        del row["dosing"]
    problems = cohort.problems()
    message = only_problem(problems, cohort.patients_path, 1, None).message
    assert "'her2_ihc', 'dosing'" in message
    assert "'HER2_ihc' for 'her2_ihc'" in message
    assert "indication" not in message


def test_duplicated_column_names(cohort):
    cohort.write()
    text = cohort.patients_path.read_text().replace("notes", "site")
    cohort.patients_path.write_text(text)
    with pytest.raises(SheetError) as caught:
        load_sheets(cohort.patients_path, cohort.samples_path)
    problem = only_problem(caught.value.problems, cohort.patients_path, 1, "site")
    assert "columns 7, 8" in problem.message


def test_unnamed_column(cohort):
    for row in cohort.samples:
        row[""] = row.pop("day")
        row["tail"] = "x"
    problems = cohort.problems()
    assert "has no name" in problems[0].message
    assert (problems[0].line, problems[0].column) == (1, None)


def test_header_without_rows(cohort):
    cohort.write()
    cohort.samples_path.write_text("\t".join(SAMPLE_COLUMNS) + "\n\n")
    with pytest.raises(SheetError) as caught:
        load_sheets(cohort.patients_path, cohort.samples_path)
    assert (
        "no sample rows"
        in only_problem(caught.value.problems, cohort.samples_path, None, None).message
    )


def test_row_with_wrong_number_of_fields(cohort):
    cohort.write()
    lines = cohort.patients_path.read_text().splitlines()
    lines[2] = lines[2].rsplit("\t", 1)[0]  # P02 without its last field
    cohort.patients_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SheetError) as caught:
        load_sheets(cohort.patients_path, cohort.samples_path)
    problem = only_problem(caught.value.problems, cohort.patients_path, 3, None)
    assert problem.message == "has 7 tab-separated fields but the header has 8"


# --- row problems -----------------------------------------------------------------------------


def test_duplicate_ids_name_both_lines(cohort):
    cohort.patients[1]["patient_id"] = "P01"
    cohort.sample("P01_D8b_sc")["sample_id"] = "P01_D8_sc"
    problems = cohort.problems()
    assert "lines 2 and 3" in only_problem(problems, cohort.patients_path, 3, "patient_id").message
    first, second = cohort.line_of("P01_D8_sc"), cohort.line_of("P01_D8_sc") + 1
    problem = only_problem(problems, cohort.samples_path, second, "sample_id")
    assert f"lines {first} and {second}" in problem.message


@pytest.mark.parametrize("bad_id", ["P 1", "P/1", ".P1", "-P1", "P1;rm", "P1$", "Pé"])
def test_ids_must_be_safe_in_paths(cohort, bad_id):
    cohort.sample("P01_D15_sc")["sample_id"] = bad_id
    cohort.patients[1]["patient_id"] = bad_id
    for row in cohort.samples:
        if row["patient_id"] == "P02":
            row["patient_id"] = bad_id
    problems = cohort.problems()
    for file, line, column in (
        (cohort.samples_path, cohort.line_of(bad_id), "sample_id"),
        (cohort.patients_path, 3, "patient_id"),
    ):
        message = only_problem(problems, file, line, column).message
        assert f"'{bad_id}' is not a valid ID" in message
        assert "output paths" in message
    assert len(problems) == 2  # samples of the badly named patient are not "unknown"


def test_unknown_patient(cohort):
    cohort.sample("P02_D8_bulk")["patient_id"] = "P03"
    problems = cohort.problems()
    problem = only_problem(
        problems, cohort.samples_path, cohort.line_of("P02_D8_bulk"), "patient_id"
    )
    assert f"'P03' is not a patient in {cohort.patients_path}" in problem.message


@pytest.mark.parametrize(
    ("table", "column", "value", "allowed"),
    [
        ("patients", "her2_ihc", "3", "0, 1+, 2+ or 3+"),
        ("patients", "her2_ihc", "", "0, 1+, 2+ or 3+"),
        ("patients", "best_response", "progressive", "CR, PR, SD, PD, NE or leave empty"),
        ("samples", "assay", "scRNA", "scrna, bulk_rna, cfdna, tcr, car_pcr or cytokines"),
    ],
)
def test_values_outside_the_allowed_set(cohort, table, column, value, allowed):
    getattr(cohort, table)[1][column] = value
    problems = cohort.problems()
    path = getattr(cohort, f"{table}_path")
    assert allowed in only_problem(problems, path, 3, column).message


@pytest.mark.parametrize("column", ["indication", "dosing"])
def test_required_patient_text(cohort, column):
    cohort.patients[0][column] = "  "
    problems = cohort.problems()
    assert only_problem(problems, cohort.patients_path, 2, column).message == "must not be empty"


@pytest.mark.parametrize("column", ["timepoint", "patient_id", "sample_id"])
def test_required_sample_text(cohort, column):
    cohort.samples[0][column] = ""
    problems = cohort.problems()
    assert only_problem(problems, cohort.samples_path, 2, column).message == "must not be empty"


@pytest.mark.parametrize("day", ["abc", "8.0", "D8", "1e3", "--1", ""])
def test_day_must_be_an_integer(cohort, day):
    cohort.sample("P01_D15_sc")["day"] = day
    problems = cohort.problems()
    problem = only_problem(problems, cohort.samples_path, cohort.line_of("P01_D15_sc"), "day")
    assert "not an integer" in problem.message or problem.message == "must not be empty"


# --- paths ------------------------------------------------------------------------------------


def test_missing_path_names_where_it_resolved_to(cohort, tmp_path):
    cohort.sample("P01_D15_sc")["counts"] = "../data/nope.h5"
    problems = cohort.problems()
    problem = only_problem(problems, cohort.samples_path, cohort.line_of("P01_D15_sc"), "counts")
    assert "'../data/nope.h5'" in problem.message
    assert str(tmp_path / "data" / "nope.h5") in problem.message
    assert "does not exist" in problem.message


def test_missing_variants_file(cohort):
    (cohort.root / "data" / "P01.vcf.gz").unlink()
    problems = cohort.problems()
    assert (
        "does not exist"
        in only_problem(problems, cohort.patients_path, 2, "tumor_variants").message
    )


def test_relative_paths_do_not_resolve_against_the_cwd(cohort, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cohort.sample("P01_D15_sc")["counts"] = "data/P01_D15.h5"  # exists relative to the cwd only
    problems = cohort.problems()
    assert only_problem(problems, cohort.samples_path, cohort.line_of("P01_D15_sc"), "counts")


@pytest.mark.parametrize(
    ("sample_id", "column", "name", "expected"),
    [
        ("P01_D15_sc", "counts", "P01_D15.csv", "a .h5 or .h5ad file or a 10x MTX directory"),
        ("P01_scr_sc", "reads", "P01_scr.fastq.gz", "a .bam or .cram file"),
        ("P01_D8_cf", "reads", "P01_D8_cf.fq.gz", "a .bam or .cram file"),
        ("P01_D8_cf", "reads", "P01_D8_cf.bam.bai", "a .bam or .cram file"),
        ("P02_D8_bulk", "counts", "P02_D8.h5", "a .tsv, .tsv.gz or .txt file"),
        ("P02_scr_bulk", "reads", "P02.bam.gz", "a .bam, .cram, .sam, .fastq, .fq"),
    ],
)
def test_wrong_extension_for_the_assay(cohort, sample_id, column, name, expected):
    touch(cohort.root / "data" / name)
    cohort.sample(sample_id)[column] = f"../data/{name}"
    problems = cohort.problems()
    problem = only_problem(problems, cohort.samples_path, cohort.line_of(sample_id), column)
    assert "wrong extension" in problem.message
    assert expected in problem.message


def test_wrong_extension_for_variants(cohort):
    touch(cohort.root / "data" / "P01.txt")
    cohort.patients[0]["tumor_variants"] = "../data/P01.txt"
    problems = cohort.problems()
    message = only_problem(problems, cohort.patients_path, 2, "tumor_variants").message
    assert "a .vcf, .vcf.gz or .bcf file" in message


def test_directory_where_a_file_is_expected(cohort):
    (cohort.root / "data" / "reads.bam").mkdir()
    cohort.sample("P01_D8_cf")["reads"] = "../data/reads.bam"
    problems = cohort.problems()
    problem = only_problem(problems, cohort.samples_path, cohort.line_of("P01_D8_cf"), "reads")
    assert "is a directory" in problem.message


def test_unreadable_data_file(cohort, monkeypatch):
    real_access = os.access

    def access(path, mode):
        return not str(path).endswith("P01_D8_cf.bam") and real_access(path, mode)

    monkeypatch.setattr(sheets_module.os, "access", access)
    problems = cohort.problems()
    problem = only_problem(problems, cohort.samples_path, cohort.line_of("P01_D8_cf"), "reads")
    assert "not readable" in problem.message


@pytest.mark.parametrize(
    ("removed", "missing"),
    [
        ("matrix.mtx.gz", "matrix.mtx or matrix.mtx.gz"),
        ("barcodes.tsv.gz", "barcodes.tsv or barcodes.tsv.gz"),
        ("features.tsv.gz", "features.tsv, features.tsv.gz, genes.tsv or genes.tsv.gz"),
    ],
)
def test_incomplete_mtx_directory(cohort, removed, missing):
    (cohort.root / "data" / "P01_pre_mtx" / removed).unlink()
    problems = cohort.problems()
    problem = only_problem(problems, cohort.samples_path, cohort.line_of("P01_pre_sc"), "counts")
    assert "not a complete 10x MTX directory" in problem.message
    assert missing in problem.message


def test_mtx_directory_with_uncompressed_genes_file(cohort):
    mtx = cohort.root / "data" / "P01_pre_mtx"
    (mtx / "features.tsv.gz").rename(mtx / "genes.tsv")
    (mtx / "matrix.mtx.gz").rename(mtx / "matrix.mtx")
    assert cohort.load().samples.loc["P01_pre_sc", "counts"].endswith("P01_pre_mtx")


def test_mtx_directory_only_for_scrna(cohort):
    cohort.sample("P02_D8_bulk")["counts"] = "../data/P01_pre_mtx"
    problems = cohort.problems()
    problem = only_problem(problems, cohort.samples_path, cohort.line_of("P02_D8_bulk"), "counts")
    assert "is a directory" in problem.message


# --- what each assay needs --------------------------------------------------------------------


def test_cfdna_takes_reads_or_counts_not_both(cohort):
    cohort.sample("P01_D8_cf")["counts"] = "../data/P02_D8.txt"
    problems = cohort.problems()
    problem = only_problem(problems, cohort.samples_path, cohort.line_of("P01_D8_cf"), "counts")
    assert "reads (a BAM) or counts (a vendor VAF table), not both" in problem.message


def test_cfdna_needs_reads_or_counts(cohort):
    cohort.sample("P01_D8_cf")["reads"] = ""
    problems = cohort.problems()
    problem = only_problem(problems, cohort.samples_path, cohort.line_of("P01_D8_cf"), "reads")
    assert "required for cfdna" in problem.message
    assert "or a vendor VAF table in counts" in problem.message


def test_cfdna_vendor_table_instead_of_reads(cohort, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "data" / "P01_D8_cf.vaf.tsv")
    cohort.sample("P01_D8_cf")["counts"] = "../data/P01_D8_cf.vaf.tsv"
    cohort.sample("P01_D8_cf")["reads"] = ""
    samples = cohort.load().samples
    assert samples.loc["P01_D8_cf", "counts"] == os.path.join("data", "P01_D8_cf.vaf.tsv")
    assert samples.loc["P01_D8_cf", "reads"] == ""


def test_cfdna_vendor_table_must_be_a_tsv(cohort):
    cohort.sample("P01_D8_cf")["counts"] = "../data/P01_D15.h5"
    cohort.sample("P01_D8_cf")["reads"] = ""
    problems = cohort.problems()
    problem = only_problem(problems, cohort.samples_path, cohort.line_of("P01_D8_cf"), "counts")
    assert "wrong extension for cfdna counts" in problem.message


@pytest.mark.parametrize("sample_id", ["P01_D15_sc", "P02_D8_bulk"])
def test_biopsy_needs_counts_or_reads(cohort, sample_id):
    cohort.sample(sample_id)["counts"] = ""
    cohort.sample(sample_id)["reads"] = ""
    problems = cohort.problems()
    problem = only_problem(problems, cohort.samples_path, cohort.line_of(sample_id), "counts")
    assert "needs counts, reads or both" in problem.message


def test_cfdna_patient_without_tumor_variants_loads_by_default(cohort):
    # not malformed: that patient's ctDNA is reported not evaluable, the cohort still runs
    cohort.patients[0]["tumor_variants"] = ""
    sheets = cohort.load()
    assert sheets.patients.loc["P01", "tumor_variants"] == ""


def test_cfdna_patient_needs_tumor_variants_in_strict_mode(cohort):
    cohort.patients[0]["tumor_variants"] = ""
    problems = cohort.problems(strict=True)
    message = only_problem(problems, cohort.patients_path, 2, "tumor_variants").message
    assert "'P01_scr_cf', 'P01_D8_cf'" in message
    assert len(problems) == 1


# --- several problems, generated folders ------------------------------------------------------


def test_every_problem_is_reported_in_file_and_line_order(cohort):
    cohort.sample("P02_D8_bulk")["day"] = "x"
    cohort.sample("P01_scr_sc")["assay"] = "rna"
    cohort.sample("P01_scr_sc")["timepoint"] = ""
    cohort.patients[1]["her2_ihc"] = "4+"
    cohort.patients[0]["tumor_variants"] = ""
    problems = cohort.problems(strict=True)
    located = [(Path(p.file).name, p.line, p.column) for p in problems]
    assert located == [
        ("patients.tsv", 2, "tumor_variants"),
        ("patients.tsv", 3, "her2_ihc"),
        ("samples.tsv", 2, "timepoint"),
        ("samples.tsv", 2, "assay"),
        ("samples.tsv", cohort.line_of("P02_D8_bulk"), "day"),
    ]
    with pytest.raises(SheetError) as caught:
        cohort.load(strict=True)
    lines = str(caught.value).splitlines()
    assert lines[0] == "5 problems in the input tables:"
    assert lines[1:] == [f"  {problem}" for problem in problems]


def test_both_tables_are_checked_when_one_is_broken(cohort):
    cohort.sample("P01_D15_sc")["day"] = "x"
    cohort.write()
    cohort.patients_path.write_text("patient_id,indication\nP01,gastric\n")
    with pytest.raises(SheetError) as caught:
        load_sheets(cohort.patients_path, cohort.samples_path)
    problems = caught.value.problems
    assert only_problem(problems, cohort.patients_path, 1, None)
    assert only_problem(problems, cohort.samples_path, cohort.line_of("P01_D15_sc"), "day")
    assert len(problems) == 2  # no "unknown patient" noise without a patients table


def test_sheet_error_survives_pickling(cohort):
    cohort.sample("P01_D15_sc")["day"] = "x"
    with pytest.raises(SheetError) as caught:
        cohort.load()
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.problems == caught.value.problems
    assert str(copy) == str(caught.value)


@pytest.mark.parametrize("relative", [True, False])
def test_missing_files_under_generated_dirs_are_allowed(cohort, tmp_path, monkeypatch, relative):
    monkeypatch.chdir(tmp_path)
    generated = "cohort" if relative else str(tmp_path / "cohort")
    cohort.sample("P01_D15_sc")["counts"] = "../cohort/scrna/P01_D15.h5"
    cohort.sample("P01_D8_cf")["reads"] = "../cohort/cfdna/P01_D8_cf.bam"
    cohort.patients[0]["tumor_variants"] = "../cohort/variants/P01.vcf.gz"
    sheets = cohort.load(generated_dirs=[generated])
    assert sheets.samples.loc["P01_D15_sc", "counts"] == os.path.join(
        "cohort", "scrna", "P01_D15.h5"
    )
    assert sheets.patients.loc["P01", "tumor_variants"] == os.path.join(
        "cohort", "variants", "P01.vcf.gz"
    )


def test_generated_dirs_do_not_exempt_other_paths(cohort, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cohort.sample("P01_D15_sc")["counts"] = "../cohort_other/P01_D15.h5"
    problems = cohort.problems(generated_dirs=["cohort"])
    problem = only_problem(problems, cohort.samples_path, cohort.line_of("P01_D15_sc"), "counts")
    assert "does not exist" in problem.message


def test_generated_paths_are_still_type_checked(cohort, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    touch(tmp_path / "cohort" / "bulk" / "P02_D8.h5")  # exists, wrong kind for bulk counts
    cohort.sample("P02_D8_bulk")["counts"] = "../cohort/bulk/P02_D8.h5"
    cohort.sample("P01_D8_cf")["reads"] = "../cohort/cfdna/P01_D8_cf.fq"  # missing, wrong kind
    cohort.sample("P01_D15_sc")["counts"] = "../cohort/scrna/P01_D15_mtx"  # may be an MTX dir
    problems = cohort.problems(generated_dirs=["cohort"])
    for sample_id, column in (("P02_D8_bulk", "counts"), ("P01_D8_cf", "reads")):
        problem = only_problem(problems, cohort.samples_path, cohort.line_of(sample_id), column)
        assert "wrong extension" in problem.message
    assert len(problems) == 2


def test_one_of_ids_matches_exactly_the_ids_given():
    pattern = re.compile(sheets_module.one_of_ids(["CARM-001", "CARM-001.b", "P_2"]))
    for value in ("CARM-001", "CARM-001.b", "P_2"):
        assert pattern.fullmatch(value)
    # an escaped '.' matches only itself; no partial or neighbouring IDs
    for value in ("CARM-001xb", "CARM-00", "CARM-001.b.c", "P_3", ""):
        assert not pattern.fullmatch(value)


def test_one_of_no_ids_matches_nothing():
    pattern = re.compile(sheets_module.one_of_ids([]))
    for value in ("", "CARM-001", "(?!)"):
        assert not pattern.fullmatch(value)


# --- contract additions: tissue, hours, vdj, tcr/car_pcr/cytokines, crs_grade -----------------


def add_column(rows: list[dict[str, str]], column: str, value: str = "") -> None:
    for row in rows:
        row[column] = value


def test_optional_columns_are_filled_in_when_absent(cohort):
    samples = cohort.load().samples
    assert samples.loc["P01_scr_sc", "tissue"] == "tumour"
    assert samples.loc["P01_scr_cf", "tissue"] == "blood"
    assert samples.loc["P01_D8_sc", "hours"] == 8 * 24.0
    assert samples.loc["P01_scr_sc", "hours"] == -14 * 24.0
    assert (samples["vdj"] == "").all()


def test_hours_decide_the_time_and_must_agree_with_day(cohort):
    add_column(cohort.samples, "hours")
    cohort.sample("P01_D8_sc")["hours"] = "200.5"
    assert cohort.load().samples.loc["P01_D8_sc", "hours"] == 200.5
    cohort.sample("P01_D8_sc")["hours"] = "30"
    line = cohort.line_of("P01_D8_sc")
    message = only_problem(cohort.problems(), cohort.samples_path, line, "hours").message
    assert "30 h disagrees with day 8 (192 h) by more than a day" in message
    cohort.sample("P01_D8_sc")["hours"] = "six"
    line = cohort.line_of("P01_D8_sc")
    message = only_problem(cohort.problems(), cohort.samples_path, line, "hours").message
    assert "'six' is not a number" in message


def test_tissue_values_and_tcr_needs_a_tissue(cohort, tmp_path):
    add_column(cohort.samples, "tissue")
    cohort.sample("P01_scr_sc")["tissue"] = "plasma"
    touch(cohort.root / "data" / "P01_trb.tsv")
    cohort.samples.append(
        {
            **sample_row(("P01_trb", "P01", "screening", "-14", "tcr", "../data/P01_trb.tsv", "")),
            "tissue": "",
        }
    )
    problems = cohort.problems()
    assert (
        "'plasma' is not an allowed value; use tumour or blood"
        in only_problem(
            problems, cohort.samples_path, cohort.line_of("P01_scr_sc"), "tissue"
        ).message
    )
    assert (
        "is required for tcr samples; use tumour or blood"
        in only_problem(problems, cohort.samples_path, cohort.line_of("P01_trb"), "tissue").message
    )
    cohort.sample("P01_scr_sc")["tissue"] = "blood"
    cohort.sample("P01_trb")["tissue"] = "tumour"
    samples = cohort.load().samples
    assert samples.loc["P01_scr_sc", "tissue"] == "blood"
    assert samples.loc["P01_trb", "assay"] == "tcr"


@pytest.mark.parametrize("assay", ["tcr", "car_pcr", "cytokines"])
def test_table_assays_need_counts_and_no_reads(cohort, assay):
    add_column(cohort.samples, "tissue", "")
    touch(cohort.root / "data" / "x.tsv")
    row = sample_row(("P01_x", "P01", "D8", "8", assay, "", "../data/x.tsv"))
    cohort.samples.append({**row, "tissue": "blood"})
    problems = cohort.problems()
    line = cohort.line_of("P01_x")
    assert (
        f"is required for {assay} samples"
        in only_problem(problems, cohort.samples_path, line, "counts").message
    )
    assert (
        f"must be empty for {assay} samples"
        in only_problem(problems, cohort.samples_path, line, "reads").message
    )


def test_vdj_only_on_scrna_and_must_exist(cohort):
    add_column(cohort.samples, "vdj")
    cohort.sample("P01_scr_sc")["vdj"] = "../data/missing_contigs.csv"
    cohort.sample("P02_D8_bulk")["vdj"] = "../data/P02_D8.txt"
    problems = cohort.problems()
    assert (
        "does not exist"
        in only_problem(problems, cohort.samples_path, cohort.line_of("P01_scr_sc"), "vdj").message
    )
    assert (
        "is only for scrna samples"
        in only_problem(problems, cohort.samples_path, cohort.line_of("P02_D8_bulk"), "vdj").message
    )
    touch(cohort.root / "data" / "P01_contigs.csv")
    cohort.sample("P01_scr_sc")["vdj"] = "../data/P01_contigs.csv"
    cohort.sample("P02_D8_bulk")["vdj"] = ""
    samples = cohort.load().samples
    assert samples.loc["P01_scr_sc", "vdj"].endswith("data/P01_contigs.csv")


def test_crs_grade_is_checked_when_present(cohort):
    add_column(cohort.patients, "crs_grade", "1")
    cohort.patients[1]["crs_grade"] = "G2"
    message = only_problem(cohort.problems(), cohort.patients_path, 3, "crs_grade").message
    assert "'G2' is not an allowed value; use 0, 1, 2, 3, 4, 5 or leave empty" in message
    cohort.patients[1]["crs_grade"] = ""
    assert list(cohort.load().patients["crs_grade"]) == ["1", ""]


def test_baseline_uses_hours_when_given(cohort):
    # two pre-infusion biopsies on day 0: hours, not file order, decide which is the baseline
    add_column(cohort.samples, "hours")
    first, second = cohort.sample("P01_scr_sc"), cohort.sample("P01_pre2_sc")
    first.update(day="0", hours="-1")
    second.update(day="0", hours="-5")
    cohort.sample("P01_pre_sc").update(day="-2")
    assert baseline_sample(cohort.load(), "P01", "scrna") == first["sample_id"]
    second["hours"] = "-1"  # a tie: the later in the file wins
    assert baseline_sample(cohort.load(), "P01", "scrna") == second["sample_id"]
