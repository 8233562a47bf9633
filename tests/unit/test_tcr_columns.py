"""Reading repertoire columns (carmscope.tcr.columns): the pyarrow reader gives what the pandas
reader gives, files pyarrow refuses are read by pandas, and the per-distinct-value helpers."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from carmscope.tcr import columns
from carmscope.tcr.clones import clone_table
from carmscope.tcr.columns import Factor, first_rows
from carmscope.tcr.io import RepertoireError, read_repertoire

DATA = Path(__file__).resolve().parents[1] / "data" / "tcr"

AIRR_TEXT = (
    "sequence_id\tv_call\tj_call\tjunction_aa\tproductive\tlocus\tduplicate_count\tv_call\n"
    "1\t TRBV6-5*01\tTRBJ2-7*01\tCASSLGF\tT\tTRB\t10\tx\n"
    '2\t"TRBV6-5*02"\tTRBJ2-7*01\t CASSLGF\tT\tTRB\t 5\tx\n'
    "\n"
    "3\tTRBV2*01\tTRBJ1-1*01\tCASRRF\tT\tTRB\t7\tx\r\n"
    "4\tTRBV2*01 \tTRBJ1-1*01\tCASS*F\tF\tTRB\t3\tx\n"
    '5\tTRBV28*01\t"TRBJ2-1*01"\tCASTTF\tTRUE\t TRB\t2\tx\n'
    "6\tTRBV20-1*01\tTRBJ2-1*01\tCASTTF\tT\tTRB\t0\tx\n"
)


def _pandas_only(monkeypatch):
    def refuse(*args, **kwargs):
        raise pa.ArrowInvalid("refused for the test")

    monkeypatch.setattr(columns, "_read_arrow", refuse)


def _compare_readers(path: Path, monkeypatch) -> None:
    fast = read_repertoire(path)
    with monkeypatch.context() as patch:
        _pandas_only(patch)
        slow = read_repertoire(path)
    pd.testing.assert_frame_equal(fast.clones, slow.clones)
    assert (fast.format, fast.unit, fast.nonproductive) == (
        slow.format,
        slow.unit,
        slow.nonproductive,
    )
    if fast.cells is not None:
        pd.testing.assert_frame_equal(fast.cells, slow.cells)


def test_pyarrow_reads_like_pandas(tmp_path, monkeypatch):
    """Leading blanks, quotes, a blank line, CRLF, a repeated column name, gzip named .tsv."""
    plain = tmp_path / "airr.tsv"
    plain.write_text(AIRR_TEXT)
    zipped = tmp_path / "airr_gzipped.tsv"
    zipped.write_bytes(gzip.compress(AIRR_TEXT.encode()))
    for path in (plain, zipped):
        _compare_readers(path, monkeypatch)
    pd.testing.assert_frame_equal(read_repertoire(zipped).clones, read_repertoire(plain).clones)
    clones = read_repertoire(zipped).clones
    assert clones["clone_id"].tolist() == ["TRBV6-5:CASSLGF", "TRBV2:CASRRF", "TRBV28:CASTTF"]
    assert clones["count"].tolist() == [15, 7, 2]
    assert read_repertoire(plain).nonproductive == 3


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.iterdir() if p.suffix != ".md"))
def test_shipped_files_read_alike(name, monkeypatch):
    path = DATA / name
    try:
        read_repertoire(path)
    except RepertoireError:
        pytest.skip(f"{name} is not a repertoire")
    _compare_readers(path, monkeypatch)


def test_ragged_rows_are_read_by_pandas(tmp_path):
    short = tmp_path / "short.tsv"
    short.write_text(
        "v_call\tjunction_aa\tproductive\tlocus\tduplicate_count\n"
        "TRBV2\tCASRRF\tT\tTRB\t4\n"
        "TRBV2\tCASRRF\tT\n"
    )
    # pandas fills the missing cells: the count is empty, not a whole number
    with pytest.raises(RepertoireError, match=r"line 3, column 'duplicate_count': ''"):
        read_repertoire(short)
    long = tmp_path / "long.tsv"
    long.write_text(
        "v_call\tjunction_aa\tproductive\tlocus\tduplicate_count\n"
        "TRBV2\tCASRRF\tT\tTRB\t4\n"
        "TRBV2\tCASRRF\tT\tTRB\t4\textra\tmore\n"
    )
    # pyarrow refuses the extra cells; pandas (as before) reads the named columns of the row
    with pytest.raises(pa.ArrowInvalid):
        columns._read_arrow(long, "\t", 5, {"duplicate_count": 4})
    assert read_repertoire(long).clones["count"].tolist() == [8]


def test_count_errors_name_line_and_column_on_both_readers(tmp_path, monkeypatch):
    path = tmp_path / "bad.tsv"
    path.write_text(
        "v_call\tjunction_aa\tproductive\tlocus\tduplicate_count\n"
        "TRBV2\tCASRRF\tT\tTRB\t4\n"
        "TRBV2\tCASSF\tT\tTRB\t-1\n"
    )
    message = r"line 3, column 'duplicate_count': '-1' is not a whole number"
    with pytest.raises(RepertoireError, match=message):
        read_repertoire(path)
    _pandas_only(monkeypatch)
    with pytest.raises(RepertoireError, match=message):
        read_repertoire(path)


def test_first_rows_equal_numpy_unique():
    rng = np.random.default_rng(3)
    codes, _ = pd.factorize(rng.integers(0, 500, 5000))
    assert np.array_equal(first_rows(codes), np.unique(codes, return_index=True)[1])
    assert first_rows(np.array([], dtype=np.int64)).size == 0


def test_factor_mapping_merges_values():
    names = Factor.of(["TCRBV02-01", " TRBV2*01", "TRBV6-5", "TCRBV02-01"])
    genes = columns.imgt_factor(columns.stripped(names), "resources/tcr/trb_gene_names.tsv")
    assert genes.values().tolist() == ["TRBV2", "TRBV2", "TRBV6-5", "TRBV2"]
    assert len(genes.uniques) == 2


def test_clone_table_groups_by_id_when_gene_names_have_colons():
    # an unknown spelling with ':' makes ('A:B', 'C') and ('A', 'B:C') one clone ID
    clones = clone_table(
        Factor.of(["C", "B:C", "C"]),
        Factor.of(["A:B", "A", "D"]),
        Factor.of(["J1", "J2", "J3"]),
        [1, 2, 5],
    )
    assert clones["clone_id"].tolist() == ["D:C", "A:B:C"]
    assert clones["count"].tolist() == [5, 3]
    assert clones["j_gene"].tolist() == ["J3", "J1"]
