"""The car_pcr / cytokines long-table reader, and the cohort's blood series."""

import math

import pandas as pd
import pytest

from carmscope.blood.measurements import BloodInputError, read_measurements
from carmscope.blood.series import car_pcr_series, read_assay_tables, rna_series


def write(tmp_path, text, name="table.tsv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_values_markers_and_lloq(tmp_path):
    path = write(
        tmp_path,
        "analyte\tvalue\tunit\tlloq\n"
        "# a comment\n"
        "CAR\t1200.5\tcopies/ug gDNA\t50\n"
        "CAR2\t<LLOQ\tcopies/ug gDNA\t50\n"
        "CAR3\t20\tcopies/ug gDNA\t50\n",
    )
    table = read_measurements(path, "car_pcr", "S1")
    assert list(table["analyte"]) == ["CAR", "CAR2", "CAR3"]
    assert list(table["blq"]) == [False, True, True]  # a marker; a number below lloq
    assert table["value"].iloc[0] == 1200.5 and math.isnan(table["value"].iloc[1])
    assert set(table["sample_id"]) == {"S1"}


def test_npx_and_case_of_units(tmp_path):
    path = write(tmp_path, "analyte\tvalue\tunit\nIL6\t3.2\tNPX\nTNF\t12\tpg/ml\n")
    table = read_measurements(path, "cytokines")
    assert list(table["unit"]) == ["NPX", "pg/mL"]


def test_marker_takes_lloq_of_same_analyte(tmp_path):
    path = write(
        tmp_path,
        "sample_id\tanalyte\tvalue\tunit\tlloq\nS1\tIL6\t5\tpg/mL\t1.5\nS2\tIL6\tBLQ\tpg/mL\t\n",
    )
    table = read_measurements(path, "cytokines", "S2", {"S1": "cytokines", "S2": "cytokines"})
    assert len(table) == 1 and table["lloq"].iloc[0] == 1.5 and table["blq"].iloc[0]


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("CAR\t5\tcopies/furlong\t\n", 2, "unit", "unknown unit 'copies/furlong'"),
        ("CAR\tlots\tcopies/uL\t\n", 2, "value", "'lots' is not a number"),
        ("CAR\t<LLOQ\tcopies/uL\t\n", 2, "lloq", "needs the assay's lloq"),
        ("CAR\t5\tcopies/uL\tten\n", 2, "lloq", "'ten' is not a number"),
        ("CAR\t5\tcopies/uL\t\nCAR\t6\tcopies/uL\t\n", 3, "analyte", "given twice"),
        ("CAR\t\tcopies/uL\t\n", 2, "value", "must not be empty"),
    ],
)
def test_bad_cells_name_file_line_and_column(tmp_path, text, line, column, message):
    path = write(tmp_path, "analyte\tvalue\tunit\tlloq\n" + text)
    with pytest.raises(BloodInputError, match=message) as error:
        read_measurements(path, "car_pcr")
    assert (error.value.line, error.value.column) == (line, column)
    assert str(path) in str(error.value) and f"line {line}" in str(error.value)


def test_cytokine_units_are_not_car_units(tmp_path):
    path = write(tmp_path, "analyte\tvalue\tunit\nCAR\t5\tpg/mL\n")
    with pytest.raises(BloodInputError, match="unknown unit 'pg/mL'"):
        read_measurements(path, "car_pcr")


def test_unknown_sample_id(tmp_path):
    path = write(
        tmp_path, "sample_id\tanalyte\tvalue\tunit\nS1\tCAR\t5\tcopies/uL\nS9\tCAR\t5\tcopies/uL\n"
    )
    kinds = {"S1": "car_pcr", "S2": "scrna"}
    with pytest.raises(BloodInputError, match="'S9' is not a car_pcr sample") as error:
        read_measurements(path, "car_pcr", "S1", kinds)
    assert (error.value.line, error.value.column) == (3, "sample_id")
    bad = write(tmp_path, "sample_id\tanalyte\tvalue\tunit\nS2\tCAR\t5\tcopies/uL\n", "b.tsv")
    with pytest.raises(BloodInputError, match=r"a scrna sample"):
        read_measurements(bad, "car_pcr", "S1", kinds)


def test_missing_column_and_empty_file(tmp_path):
    with pytest.raises(BloodInputError, match="missing column"):
        read_measurements(write(tmp_path, "analyte\tvalue\nCAR\t5\n"), "car_pcr")
    with pytest.raises(BloodInputError, match="is empty"):
        read_measurements(write(tmp_path, "", "e.tsv"), "car_pcr")
    with pytest.raises(BloodInputError, match="cannot be read"):
        read_measurements(tmp_path / "absent.tsv", "car_pcr")


def sheet(rows):
    columns = ["sample_id", "patient_id", "timepoint", "day", "hours", "assay", "tissue"]
    frame = pd.DataFrame(rows, columns=[*columns, "counts"]).set_index("sample_id")
    frame["reads"] = ""
    return frame


def test_cohort_table_is_split_by_sample(tmp_path):
    cohort = write(
        tmp_path,
        "sample_id\tanalyte\tvalue\tunit\tlloq\n"
        "B1\tCAR\t<LLOQ\tcopies/ug gDNA\t10\n"
        "B2\tCAR\t500\tcopies/ug gDNA\t10\n"
        "B2\tACTB\t9e5\tcopies/ug gDNA\t10\n",
    )
    own = write(tmp_path, "analyte\tvalue\tunit\nCAR\t70\tcopies/ug gDNA\n", "own.tsv")
    samples = sheet(
        [
            ("B1", "P1", "pre", "0", "-2", "car_pcr", "blood", str(cohort)),
            ("B2", "P1", "h6", "0", "6", "car_pcr", "blood", str(cohort)),
            ("B3", "P2", "d1", "1", "", "car_pcr", "blood", str(own)),
        ]
    )
    series = car_pcr_series(samples, "CAR")
    assert list(series["sample_id"]) == ["B1", "B2", "B3"]
    assert list(series["hours"]) == [-2, 6, 24]  # hours given, else day * 24
    assert list(series["blq"]) == [True, False, False]
    assert set(series["measure"]) == {"qpcr"}


def test_shared_table_needs_sample_id(tmp_path):
    shared = write(tmp_path, "analyte\tvalue\tunit\nIL6\t5\tpg/mL\n")
    samples = sheet(
        [
            ("C1", "P1", "pre", "0", "", "cytokines", "blood", str(shared)),
            ("C2", "P1", "d1", "1", "", "cytokines", "blood", str(shared)),
        ]
    )
    with pytest.raises(BloodInputError, match="needs a sample_id column"):
        read_assay_tables(samples, "cytokines")


def test_rna_series_from_car_summary():
    samples = sheet(
        [
            ("R0", "P1", "pre", "-1", "", "bulk_rna", "blood", "x.tsv"),
            ("R1", "P1", "h24", "1", "24", "bulk_rna", "blood", "y.tsv"),
            ("T1", "P1", "D8", "8", "", "bulk_rna", "tumour", "z.tsv"),
            ("S1", "P2", "h48", "2", "", "scrna", "blood", "a.h5"),
        ]
    )
    summary = pd.DataFrame(
        {
            "sample_id": ["R0", "R1", "T1", "S1"],
            "car_reads_per_million": [0.2, 35.0, 9.0, 3.0],
            "car_positive_fraction": [None, None, None, 0.02],
            "floor_per_million": [1.0] * 4,
            "car_detected": [False, True, True, True],
        }
    )
    series = rna_series(samples, summary).set_index("sample_id")
    assert list(series.index) == ["R0", "R1", "S1"]  # the tumour biopsy is not blood
    assert series.loc["R0", "blq"] and not series.loc["R1", "blq"]
    assert series.loc["R1", "value"] == 35.0 and series.loc["R1", "lloq"] == 1.0
    assert series.loc["S1", "value"] == 0.02 and series.loc["S1", "unit"] == "CAR+ cell fraction"
    assert math.isnan(series.loc["S1", "lloq"])


def test_sample_id_of_another_assay_is_named(tmp_path):
    table = write(tmp_path, "sample_id\tanalyte\tvalue\tunit\nX1\tIL6\t5\tpg/mL\n")
    samples = sheet([("C1", "P1", "pre", "0", "", "cytokines", "blood", str(table))])
    with pytest.raises(BloodInputError, match=r"'X1' is not a cytokines sample.*a scrna sample"):
        read_assay_tables(samples, "cytokines", sample_assays={"X1": "scrna", "C1": "cytokines"})


def test_input_inspection_reads_blood_tables(tmp_path):
    from carmscope.inputs import InputContentError, inspect_counts

    good = write(tmp_path, "analyte\tvalue\tunit\nIL6\t5\tpg/mL\nTNF\tBLQ\tpg/mL\n", "g.tsv")
    with pytest.raises(InputContentError, match="needs the assay's lloq"):
        inspect_counts(str(good), "cytokines")
    good.write_text("analyte\tvalue\tunit\tlloq\nIL6\t5\tpg/mL\t1\nTNF\tBLQ\tpg/mL\t1\n")
    assert inspect_counts(str(good), "cytokines") == {
        "counts_format": "analyte_table",
        "n_features": 2,
    }
    bad = write(tmp_path, "analyte\tvalue\tunit\nCAR\tmany\tcopies/uL\n", "b.tsv")
    with pytest.raises(InputContentError, match="line 2, column 'value'"):
        inspect_counts(str(bad), "car_pcr")
