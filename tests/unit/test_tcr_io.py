"""Repertoire readers: format detection, productive TRB clones, IMGT names, clear errors, and
real files from the scirpy package read like scirpy reads them."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import pandas as pd
import pytest

from carmscope.tcr.genes import imgt_gene, imgt_genes
from carmscope.tcr.io import RepertoireError, detect_format, read_repertoire

DATA = Path(__file__).resolve().parents[1] / "data" / "tcr"


def _write(path: Path, header: list[str], rows: list[list[object]], sep: str = "\t") -> Path:
    lines = [sep.join(header)] + [sep.join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("name", "imgt"),
    [
        ("TCRBV06-05", "TRBV6-5"),
        ("TCRBV06-05*01", "TRBV6-5"),
        ("TCRBV02-01", "TRBV2"),
        ("TCRBV30-01*01", "TRBV30"),
        ("TCRBV20-01", "TRBV20-1"),
        ("TCRBJ02-07", "TRBJ2-7"),
        ("TCRBD01-01", "TRBD1"),
        ("TCRBV06", "TRBV6"),
        ("TCRAV12-02", "TRAV12-2"),
        ("TCRBV20-or09_02", "TRBV20/OR9-2"),
        ("TRBV6-5*01", "TRBV6-5"),
        ("trbv6-5", "TRBV6-5"),
        ("TRBV16*01,TRBV16*02", "TRBV16"),
        ("TRBV6-5*01,TRBV6-6*01", "TRBV6-5,TRBV6-6"),
        ("TRAV29/DV5*01", "TRAV29/DV5"),
        ("unresolved", ""),
        ("None", ""),
        ("", ""),
        (float("nan"), ""),
    ],
)
def test_imgt_gene_names(name, imgt):
    assert imgt_gene(name) == imgt


def test_imgt_genes_keeps_order():
    assert imgt_genes(["TCRBV02-01", "TRBV2*01", "TCRBV02-01"]) == ["TRBV2"] * 3


def test_immunoseq_v2(tmp_path):
    header = [
        "nucleotide",
        "aminoAcid",
        "count (templates/reads)",
        "frequencyCount (%)",
        "vFamilyName",
        "vGeneName",
        "jGeneName",
        "sequenceStatus",
    ]
    rows = [
        ["ACGT", "CASSLGQAYEQYF", 10, 0.1, "TCRBV06", "TCRBV06-05", "TCRBJ02-07", "In"],
        ["ACGA", "CASSLGQAYEQYF", 5, 0.1, "TCRBV06", "TCRBV06-05", "TCRBJ02-07", "In"],  # same
        ["ACGC", "CASSPGTEAFF", 3, 0.1, "TCRBV02", "TCRBV02-01", "TCRBJ01-01", "In"],
        ["ACGG", "CASSQ*EAFF", 7, 0.1, "TCRBV02", "TCRBV02-01", "TCRBJ01-01", "Stop"],
        ["ACTT", "", 4, 0.1, "TCRBV02", "TCRBV02-01", "TCRBJ01-01", "Out"],
        ["ACTA", "CASSRRF", 2, 0.1, "TCRBV07", "unresolved", "TCRBJ01-01", "In"],
    ]
    rep = read_repertoire(_write(tmp_path / "v2.tsv", header, rows))
    assert rep.format == "immunoseq_v2" and rep.unit == "templates"
    clones = rep.clones.set_index("clone_id")
    assert clones["count"].to_dict() == {
        "TRBV6-5:CASSLGQAYEQYF": 15,
        "TRBV2:CASSPGTEAFF": 3,
        "TRBV7:CASSRRF": 2,  # gene unresolved: the family
    }
    assert rep.nonproductive == 11
    assert clones["frequency"].sum() == pytest.approx(1.0)
    assert clones.loc["TRBV6-5:CASSLGQAYEQYF", "j_gene"] == "TRBJ2-7"


def test_immunoseq_v3_templates_then_reads(tmp_path):
    header = [
        "rearrangement",
        "amino_acid",
        "frame_type",
        "templates",
        "seq_reads",
        "v_resolved",
        "j_resolved",
    ]
    rows = [
        ["ACGT", "CASSLGQAYEQYF", "In", 4, 100, "TCRBV06-05*01", "TCRBJ02-07*01"],
        ["ACGA", "CASSPGTEAFF", "In", 2, 50, "TCRBV02-01*01", "TCRBJ01-01*01"],
        ["ACGC", "", "Out", 1, 20, "TCRBV02-01*01", "TCRBJ01-01*01"],
    ]
    rep = read_repertoire(_write(tmp_path / "v3.tsv", header, rows))
    assert rep.format == "immunoseq_v3" and rep.unit == "templates"
    assert rep.total == 6 and rep.nonproductive == 1
    zero = [[*row[:3], 0, *row[4:]] for row in rows]
    rep = read_repertoire(_write(tmp_path / "v3_reads.tsv", header, zero))
    assert rep.unit == "reads" and rep.total == 150 and rep.nonproductive == 20


def test_header_is_case_insensitive_and_gzip(tmp_path):
    header = ["Rearrangement", "Amino Acid", "Frame Type", "Templates", "V Resolved"]
    text = "\t".join(header) + "\nACGT\tCASSF\tIn\t3\tTCRBV05-01\n"
    path = tmp_path / "v3.tsv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(text)
    rep = read_repertoire(path)
    assert rep.clones["clone_id"].tolist() == ["TRBV5-1:CASSF"]


def test_airr_duplicate_count(tmp_path):
    header = [
        "sequence_id",
        "v_call",
        "j_call",
        "junction_aa",
        "productive",
        "locus",
        "duplicate_count",
    ]
    rows = [
        ["s1", "TRBV6-5*01", "TRBJ2-7*01", "CASSLGQAYEQYF", "T", "TRB", 12],
        ["s2", "TRBV6-5*02", "TRBJ2-7*01", "CASSLGQAYEQYF", "true", "TRB", 3],
        ["s3", "TRAV1-2*01", "TRAJ33*01", "CAVMDSNYQLIW", "T", "TRA", 8],
        ["s4", "TRBV2*01", "TRBJ1-1*01", "CASSQ", "F", "TRB", 5],
    ]
    rep = read_repertoire(_write(tmp_path / "airr.tsv", header, rows))
    assert rep.format == "airr" and rep.unit == "duplicate_count"
    assert rep.clones.set_index("clone_id")["count"].to_dict() == {"TRBV6-5:CASSLGQAYEQYF": 15}
    assert rep.nonproductive == 5


def test_10x_one_trb_chain_per_cell(tmp_path):
    header = [
        "barcode",
        "is_cell",
        "contig_id",
        "high_confidence",
        "chain",
        "v_gene",
        "j_gene",
        "productive",
        "cdr3",
        "reads",
        "umis",
    ]
    rows = [
        ["AAA-1", "True", "c1", "True", "TRB", "TRBV6-5", "TRBJ2-7", "True", "CASSA", 100, 3],
        ["AAA-1", "True", "c2", "True", "TRB", "TRBV2", "TRBJ1-1", "True", "CASSB", 200, 9],
        ["AAA-1", "True", "c3", "True", "TRA", "TRAV1-2", "TRAJ33", "True", "CAVMD", 50, 4],
        ["CCC-1", "True", "c4", "True", "TRB", "TRBV2", "TRBJ1-1", "True", "CASSB", 80, 2],
        ["GGG-1", "True", "c5", "True", "TRB", "TRBV2", "TRBJ1-1", "False", "None", 80, 2],
        ["TTT-1", "False", "c6", "True", "TRB", "TRBV2", "TRBJ1-1", "True", "CASSB", 80, 2],
    ]
    rep = read_repertoire(_write(tmp_path / "contigs.csv", header, rows, sep=","))
    assert rep.format == "10x_vdj" and rep.unit == "cells"
    assert rep.clones.set_index("clone_id")["count"].to_dict() == {"TRBV2:CASSB": 2}
    assert rep.nonproductive == 1  # GGG-1: a TRB contig, none productive
    cells = rep.cells.set_index("barcode")
    assert cells.loc["AAA-1", "tra_cdr3_aa"] == "CAVMD"
    assert cells.loc["CCC-1", "tra_cdr3_aa"] == ""


def test_unknown_format_names_columns_and_formats(tmp_path):
    path = _write(tmp_path / "x.tsv", ["gene", "count"], [["A", 1]])
    with pytest.raises(RepertoireError) as error:
        read_repertoire(path)
    message = str(error.value)
    assert str(path) in message and "line 1" in message
    assert "gene, count" in message
    for label in ("immunoSEQ v2", "immunoSEQ v3+", "AIRR", "10x"):
        assert label in message


def test_count_not_whole_number(tmp_path):
    header = ["rearrangement", "amino_acid", "frame_type", "templates", "v_resolved"]
    rows = [["A", "CASSF", "In", 3, "TCRBV05-01"], ["C", "CASSG", "In", 2.5, "TCRBV05-01"]]
    with pytest.raises(RepertoireError, match=r"line 3, column 'templates': '2.5'"):
        read_repertoire(_write(tmp_path / "v3.tsv", header, rows))
    rows[1][3] = "many"
    with pytest.raises(RepertoireError, match=r"line 3, column 'templates': 'many'"):
        read_repertoire(_write(tmp_path / "v3.tsv", header, rows))


def test_airr_without_counts_or_cells(tmp_path):
    path = _write(
        tmp_path / "a.tsv", ["v_call", "junction_aa", "productive"], [["TRBV2", "C", "T"]]
    )
    with pytest.raises(RepertoireError, match="one of duplicate_count / consensus_count / cell_id"):
        read_repertoire(path)


def test_detect_format_prefers_specific():
    assert detect_format(["barcode", "chain", "v_gene", "cdr3", "productive", "umis"]).name == (
        "10x_vdj"
    )


# --- real files from the scirpy package ------------------------------------------------------

REAL_FILES = {
    "scirpy_10x_filtered_contig_annotations.csv": ("10x_vdj", 4, 4),
    "scirpy_vdj_nextgem_hs_pbmc3_t_filtered_contig_annotations.csv.gz": ("10x_vdj", 1460, 1521),
    "scirpy_airr_tra_issue_280.tsv": ("airr", 1, 1),
    "scirpy_airr_rearrangement_ig.tsv": ("airr", 0, 0),
}


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_files_load(name):
    fmt, clones, cells = REAL_FILES[name]
    rep = read_repertoire(DATA / name)
    assert rep.format == fmt and rep.unit == "cells"
    assert len(rep.clones) == clones and rep.total == cells
    assert rep.clones["clone_id"].is_unique
    assert all(gene.startswith("TRBV") for gene in rep.clones["v_gene"])
    assert not rep.clones["cdr3_aa"].str.contains(r"\*").any()


def test_real_10x_sensible_figures():
    rep = read_repertoire(DATA / "scirpy_vdj_nextgem_hs_pbmc3_t_filtered_contig_annotations.csv.gz")
    top = rep.clones.iloc[0]
    assert top["clone_id"] == "TRBV7-6:CASSLEVGGGEETQYF" and top["count"] == 14
    assert rep.cells["tra_cdr3_aa"].ne("").mean() > 0.5  # most T cells have a paired TRA


def _scirpy_clone_counts(path: Path) -> pd.Series:
    ir = pytest.importorskip("scirpy", reason="scirpy (test extra) not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = (
            ir.io.read_10x_vdj(str(path))
            if "10x" in path.name or "vdj" in path.name
            else (ir.io.read_airr(str(path)))
        )
        ir.pp.index_chains(adata)
        chains = ir.get.airr(adata, ["junction_aa", "v_call", "locus"], "VDJ_1")
    chains = chains.dropna(subset=["VDJ_1_junction_aa"])
    chains = chains[chains["VDJ_1_locus"] == "TRB"]
    v_gene = imgt_genes(chains["VDJ_1_v_call"].astype(str))
    keys = pd.Series(v_gene, index=chains.index) + ":" + chains["VDJ_1_junction_aa"].astype(str)
    return keys.value_counts().sort_index()


@pytest.mark.parametrize("name", REAL_FILES)
def test_same_clone_counts_as_scirpy(name):
    expected = _scirpy_clone_counts(DATA / name)
    mine = read_repertoire(DATA / name).clones.set_index("clone_id")["count"].sort_index()
    assert mine.to_dict() == expected.to_dict()


def test_input_inspection_names_the_repertoire_format(tmp_path):
    from carmscope.inputs import InputContentError, inspect_counts

    header = ["rearrangement", "amino_acid", "frame_type", "templates", "v_resolved"]
    path = _write(tmp_path / "v3.tsv", header, [["A", "CASSF", "In", 3, "TCRBV05-01"]])
    row = inspect_counts(str(path), "tcr")
    assert row == {"counts_format": "tcr_immunoseq_v3", "n_features": 1, "total_counts": 3}
    bad = _write(tmp_path / "bad.tsv", ["gene", "count"], [["A", 1]])
    with pytest.raises(InputContentError, match="not a known repertoire format"):
        inspect_counts(str(bad), "tcr")
