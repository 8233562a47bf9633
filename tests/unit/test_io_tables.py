"""Stage tables: the pandas-free reader and writer keep read_stage_table's convention and
write what pandas' to_csv writes, byte for byte."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from carmscope.errors import LocatedInputError
from carmscope.io.tables import (
    boolean,
    integer,
    read_stage_columns,
    read_stage_table,
    write_stage_columns,
)

TABLE = (
    "sample_id\tgene\tvalue\tflag\tnote\n"
    "001\tNA\t1.5\tTrue\t\n"
    '002\tCD8A\t\tFalse\ta "quoted" note\n'
    "\n"
    '003\tn/a\t2\tTrue\t"tab\tinside"\n'
)


def test_columns_follow_the_stage_table_convention(tmp_path):
    path = tmp_path / "table.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(TABLE)
    columns = read_stage_columns(path, text_columns=["note"])
    assert list(columns) == ["sample_id", "gene", "value", "flag", "note"]
    assert columns["sample_id"] == ["001", "002", "003"]  # ID columns are text
    assert columns["gene"] == ["NA", "CD8A", "n/a"]  # NA-like strings are values
    assert columns["value"] == ["1.5", None, "2"]  # only an empty cell is missing
    assert columns["note"] == ["", 'a "quoted" note', "tab\tinside"]  # text keeps ''
    frame = read_stage_table(path, ["note"])  # the pandas reader agrees cell by cell
    assert frame["sample_id"].tolist() == columns["sample_id"]
    assert frame["gene"].tolist() == columns["gene"]
    assert frame["note"].tolist() == columns["note"]
    assert frame["value"].isna().tolist() == [cell is None for cell in columns["value"]]
    assert boolean(path, "flag", columns["flag"]) == frame["flag"].tolist()


def test_a_row_with_another_number_of_fields_is_named_by_line(tmp_path):
    path = tmp_path / "table.tsv"
    path.write_text("chrom\tpos\nchr1\t10\nchr1\t20\textra\n")
    with pytest.raises(LocatedInputError, match=r"table\.tsv, line 3: 3 tab-separated fields"):
        read_stage_columns(path)
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(LocatedInputError, match=r"empty\.tsv: is empty"):
        read_stage_columns(tmp_path / "empty.tsv")


def test_cells_that_are_not_numbers_or_booleans_are_named_by_line_and_column(tmp_path):
    path = tmp_path / "panel.tsv"
    path.write_text("pos\tevaluable\n10\tTrue\n1e3\t\n")
    columns = read_stage_columns(path)
    with pytest.raises(LocatedInputError, match=r"line 3, column 'pos': '1e3' is not a whole"):
        integer(path, "pos", columns["pos"])
    with pytest.raises(LocatedInputError, match=r"line 3, column 'evaluable': an empty cell"):
        boolean(path, "evaluable", columns["evaluable"])


def floats():
    """Floats of every kind a table holds: fractions, small and large magnitudes, exact
    integers, signed zero, NaN (missing), and random VAFs alt/depth."""
    rng = np.random.default_rng(11)
    depths = rng.integers(1, 200_000, 400)
    vafs = [
        int(alt) / int(depth) for alt, depth in zip(rng.integers(0, depths), depths, strict=True)
    ]
    edge = [0.0, -0.0, 1.0, 0.1, 0.2 + 0.1, 1e-4, 9.99e-5, 1e-5, 1 / 3, 2.5e-7, 123456789.0]
    edge += [1e15, 1e16, 1.5e16, 1e22, 5e-324, float("inf"), float("nan"), 12.0, -3.25]
    return edge + vafs


def test_written_table_is_byte_identical_to_pandas_to_csv(tmp_path):
    values = floats()
    rows = len(values)
    texts = ["plain", "", 'with "quote"', "tab\there", "line\nbreak", "comma, ok", "NA", "x\ry"]
    counts = [None if i % 7 == 0 else i * 13 for i in range(rows)]
    columns = {
        "sample_id": [f"S{i % 3}" for i in range(rows)],
        "day": [None if i % 5 == 0 else i - 40 for i in range(rows)],
        "text": [texts[i % len(texts)] for i in range(rows)],
        "pos": list(range(1000, 1000 + rows)),
        "evaluable": [i % 4 != 0 for i in range(rows)],
        "count": counts,
        "vaf": [
            None if count is None else value for count, value in zip(counts, values, strict=True)
        ],
        "value": values,
        "numpy_value": [np.float64(value) for value in values],
    }
    frame = pd.DataFrame(
        {
            "sample_id": columns["sample_id"],
            "day": pd.array(columns["day"], dtype="Int64"),
            "text": columns["text"],
            "pos": np.array(columns["pos"], dtype="int64"),
            "evaluable": np.array(columns["evaluable"], dtype=bool),
            "count": pd.array(columns["count"], dtype="Int64"),
            "vaf": pd.array(columns["vaf"], dtype="Float64").astype(float),
            "value": np.array(values, dtype=float),
            "numpy_value": np.array(values, dtype=float),
        }
    )
    frame.to_csv(tmp_path / "pandas.tsv", sep="\t", index=False)
    write_stage_columns(tmp_path / "ours.tsv", columns)
    ours, theirs = (tmp_path / "ours.tsv").read_bytes(), (tmp_path / "pandas.tsv").read_bytes()
    assert b'"tab\there"' in ours and b"1e-05" in ours  # the cases are really there
    assert ours == theirs


def test_an_empty_table_is_its_header(tmp_path):
    write_stage_columns(tmp_path / "ours.tsv", {"a": [], "b": []})
    pd.DataFrame({"a": [], "b": []}).to_csv(tmp_path / "pandas.tsv", sep="\t", index=False)
    assert (tmp_path / "ours.tsv").read_bytes() == (tmp_path / "pandas.tsv").read_bytes()
    with pytest.raises(ValueError, match="different lengths"):
        write_stage_columns(tmp_path / "bad.tsv", {"a": [1], "b": []})
