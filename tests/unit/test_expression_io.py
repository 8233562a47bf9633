"""Readers of count matrices: 10x HDF5, 10x MTX, h5ad and bulk TSV, and their errors."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from scipy import io as spio
from scipy import sparse

from carmscope.expression.io import (
    ExpressionInputError,
    read_10x_h5,
    read_10x_mtx,
    read_bulk_counts,
    read_counts,
    read_h5ad,
)
from carmscope.genesets import read_gmt, read_signature_table
from carmscope.synthetic.design import PRESETS, design_cohort
from carmscope.synthetic.expression import (
    simulate_biopsy,
    simulate_bulk_counts,
    write_bulk_counts,
)
from carmscope.synthetic.genes import gene_table
from carmscope.synthetic.tenx import CAR_FEATURE, ExtraFeature, car_feature, write_tenx_h5

GENESETS = Path(__file__).resolve().parents[2] / "resources" / "genesets"
TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def synthetic():
    """``(patient, sample, BiopsyCells, genes, inflammatory genes)`` of a post-infusion biopsy."""
    hallmarks = read_gmt(GENESETS / "hallmark_inflammation.v7.0.gmt")
    genes = gene_table(
        TINY, {**hallmarks, **read_signature_table(GENESETS / "immune_signatures.tsv")}
    )
    inflammatory = {gene for genes_ in hallmarks.values() for gene in genes_}
    patient = design_cohort(TINY)[0]
    sample = next(s for s in patient.samples if s.assay == "scrna" and s.day > 0)
    cells = simulate_biopsy(sample, patient, TINY, genes, inflammatory)
    return patient, sample, cells, genes, inflammatory


def _same_counts(a: sparse.spmatrix, b: sparse.spmatrix) -> bool:
    return a.shape == b.shape and (sparse.csr_matrix(a) != sparse.csr_matrix(b)).nnz == 0


def _write_mtx(folder: Path, cells, genes: pd.DataFrame, compressed: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compressed else ""
    spio.mmwrite(folder / "matrix.mtx", sparse.coo_matrix(cells.matrix.T))
    features = pd.DataFrame({0: genes["gene_id"], 1: genes["gene_symbol"], 2: "Gene Expression"})
    features.to_csv(folder / "features.tsv", sep="\t", header=False, index=False)
    pd.Series(cells.barcodes).to_csv(folder / "barcodes.tsv", header=False, index=False)
    if compressed:
        for name in ("matrix.mtx", "features.tsv", "barcodes.tsv"):
            with open(folder / name, "rb") as src, gzip.open(folder / (name + suffix), "wb") as dst:
                shutil.copyfileobj(src, dst)
            (folder / name).unlink()
    return folder


# --- 10x HDF5 ---------------------------------------------------------------------------------


def test_read_10x_h5_round_trip(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    path = tmp_path / "sample.h5"
    write_tenx_h5(path, cells.matrix, cells.barcodes, genes)
    adata = read_counts(path)
    assert sparse.isspmatrix_csr(adata.X) or isinstance(adata.X, sparse.csr_array)
    assert adata.X.dtype == np.float32
    assert list(adata.obs_names) == list(cells.barcodes)
    assert list(adata.var_names) == list(genes["gene_symbol"])
    assert list(adata.var["gene_ids"]) == list(genes["gene_id"])
    assert _same_counts(adata.X, cells.matrix)
    assert adata.uns["counts_file"] == str(path)


def test_read_10x_h5_makes_symbols_unique_and_keeps_ids(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    genes = genes.copy()
    genes.loc[1, "gene_symbol"] = genes.loc[0, "gene_symbol"]  # two IDs, one symbol
    path = tmp_path / "dup.h5"
    write_tenx_h5(path, cells.matrix, cells.barcodes, genes)
    adata = read_10x_h5(path)
    assert adata.var_names.is_unique
    symbol = genes.loc[0, "gene_symbol"]
    assert adata.var_names[0] == symbol and adata.var_names[1] == f"{symbol}-1"
    assert list(adata.var["gene_ids"][:2]) == list(genes["gene_id"][:2])


def test_read_10x_h5_car_feature_is_a_gene(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    path = tmp_path / "car.h5"
    write_tenx_h5(
        path,
        cells.matrix,
        cells.barcodes,
        genes,
        extra_features=[car_feature(cells.cells.car_umis)],
    )
    adata = read_10x_h5(path)
    assert adata.var_names[-1] == CAR_FEATURE
    column = np.asarray(adata[:, CAR_FEATURE].X.sum(axis=1)).ravel()
    assert np.array_equal(column, cells.cells["car_umis"].to_numpy())


def test_read_10x_h5_drops_other_feature_types_like_scanpy(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    path = tmp_path / "adt.h5"
    antibody = ExtraFeature(
        "CD3_TotalSeqB",
        "CD3",
        np.arange(cells.matrix.shape[0]) % 5,
        feature_type="Antibody Capture",
        genome="",
    )
    write_tenx_h5(path, cells.matrix, cells.barcodes, genes, extra_features=[antibody])
    adata = read_10x_h5(path)
    assert adata.n_vars == len(genes) and "CD3" not in adata.var_names
    assert (adata.var["feature_types"] == "Gene Expression").all()
    assert _same_counts(adata.X, cells.matrix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = sc.read_10x_h5(path, gex_only=True)
    assert adata.var.equals(expected.var)
    assert _same_counts(adata.X, expected.X)


def _scanpy_10x_h5(path, **kwargs) -> anndata.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return sc.read_10x_h5(path, **kwargs)


def test_read_10x_h5_equals_scanpy_without_importing_it(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    path = tmp_path / "sample.h5"
    write_tenx_h5(path, cells.matrix, cells.barcodes, genes)
    adata = read_10x_h5(path)
    expected = _scanpy_10x_h5(path)
    assert adata.var.equals(expected.var) and adata.obs.equals(expected.obs)
    assert _same_counts(adata.X, expected.X) and adata.X.dtype == expected.X.dtype
    code = "import sys; import carmscope.expression.io; print('scanpy' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def _write_legacy_h5(path: Path, genomes: dict[str, tuple], barcodes) -> None:
    """A Cell Ranger v2 file: one group per genome, genes x cells CSC."""
    with h5py.File(path, "w") as handle:
        for genome, (matrix, ids, names) in genomes.items():
            csc = sparse.csr_matrix(matrix).astype(
                np.int32
            )  # cells x genes CSR = genes x cells CSC
            group = handle.create_group(genome)
            group["data"], group["indices"], group["indptr"] = csc.data, csc.indices, csc.indptr
            group["shape"] = np.array(csc.shape[::-1], dtype=np.int32)
            group["barcodes"] = np.array(barcodes, dtype="S")
            group["genes"] = np.array(ids, dtype="S")
            group["gene_names"] = np.array(names, dtype="S")


def test_read_10x_h5_legacy_v2_and_genome_choice(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    ids, names = list(genes["gene_id"]), list(genes["gene_symbol"])
    one = tmp_path / "v2.h5"
    _write_legacy_h5(one, {"GRCh38": (cells.matrix, ids, names)}, cells.barcodes)
    adata = read_counts(one)
    expected = _scanpy_10x_h5(one)
    assert list(adata.obs_names) == list(cells.barcodes)
    assert list(adata.var_names) == names and list(adata.var["gene_ids"]) == ids
    assert adata.var.equals(expected.var) and _same_counts(adata.X, cells.matrix)

    mouse = sparse.csr_matrix(cells.matrix[:, :3])
    two = tmp_path / "v2_two.h5"
    _write_legacy_h5(
        two,
        {"GRCh38": (cells.matrix, ids, names), "mm10": (mouse, ids[:3], ["a", "b", "c"])},
        cells.barcodes,
    )
    assert list(read_10x_h5(two, genome="mm10").var_names) == ["a", "b", "c"]
    with pytest.raises(ExpressionInputError, match=r"v2_two\.h5.*give the genome"):
        read_10x_h5(two)
    with pytest.raises(ExpressionInputError, match=r"no genome 'hg19'.*GRCh38"):
        read_10x_h5(two, genome="hg19")


def test_read_10x_h5_v3_genome_choice(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    path = tmp_path / "sample.h5"
    write_tenx_h5(path, cells.matrix, cells.barcodes, genes)
    genome = str(read_10x_h5(path).var["genome"].iloc[0])
    assert read_10x_h5(path, genome=genome).n_vars == len(genes)
    with pytest.raises(ExpressionInputError, match=rf"no genome 'mm10'.*{genome}"):
        read_10x_h5(path, genome="mm10")


@pytest.mark.parametrize("content", [b"", b"not an hdf5 file\n"])
def test_read_10x_h5_unreadable_names_file(tmp_path, content):
    path = tmp_path / "broken.h5"
    path.write_bytes(content)
    with pytest.raises(ExpressionInputError, match=r"broken\.h5") as error:
        read_counts(path)
    assert error.value.path == str(path)


def test_read_10x_h5_missing_file(tmp_path):
    with pytest.raises(ExpressionInputError, match="no such file"):
        read_10x_h5(tmp_path / "absent.h5")


def test_read_10x_h5_duplicated_barcodes(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    barcodes = cells.barcodes.copy()
    barcodes[5] = barcodes[4]
    path = tmp_path / "dupbc.h5"
    write_tenx_h5(path, cells.matrix, barcodes, genes)
    with pytest.raises(ExpressionInputError, match=rf"dupbc.h5.*{barcodes[4]}"):
        read_10x_h5(path)


def test_read_10x_h5_empty_matrix(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    path = tmp_path / "empty.h5"
    write_tenx_h5(path, cells.matrix[:0], cells.barcodes[:0], genes)
    with pytest.raises(ExpressionInputError, match=r"empty.h5.*empty count matrix \(0 cells"):
        read_10x_h5(path)


# --- 10x MTX ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [True, False])
def test_read_10x_mtx(tmp_path, synthetic, compressed):
    _, _, cells, genes, _ = synthetic
    folder = _write_mtx(tmp_path / "mtx", cells, genes, compressed)
    adata = read_counts(folder)
    assert sparse.issparse(adata.X) and adata.X.format == "csr"
    assert list(adata.obs_names) == list(cells.barcodes)
    assert list(adata.var["gene_ids"]) == list(genes["gene_id"])
    assert _same_counts(adata.X, cells.matrix)


def test_read_10x_mtx_missing_part(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    folder = _write_mtx(tmp_path / "mtx", cells, genes, compressed=True)
    (folder / "barcodes.tsv.gz").unlink()
    with pytest.raises(ExpressionInputError, match=r"mtx: a 10x MTX folder needs"):
        read_10x_mtx(folder)


def test_read_10x_mtx_inconsistent_parts(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    folder = _write_mtx(tmp_path / "mtx", cells, genes, compressed=False)
    pd.Series(cells.barcodes[:-1]).to_csv(folder / "barcodes.tsv", header=False, index=False)
    with pytest.raises(ExpressionInputError, match="mtx"):
        read_10x_mtx(folder)


def test_read_10x_mtx_duplicated_barcodes(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    folder = _write_mtx(tmp_path / "mtx", cells, genes, compressed=False)
    barcodes = cells.barcodes.copy()
    barcodes[-1] = barcodes[0]
    pd.Series(barcodes).to_csv(folder / "barcodes.tsv", header=False, index=False)
    with pytest.raises(ExpressionInputError, match="occur more than once"):
        read_10x_mtx(folder)


# --- h5ad -------------------------------------------------------------------------------------


def _anndata(cells, genes, **kwargs) -> anndata.AnnData:
    return anndata.AnnData(
        sparse.csr_matrix(cells.matrix, dtype=np.float32),
        obs=pd.DataFrame(index=cells.barcodes),
        var=pd.DataFrame({"gene_ids": genes["gene_id"].to_numpy()}, index=genes["gene_symbol"]),
        **kwargs,
    )


def test_read_h5ad_counts_in_x_or_layer(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    plain = _anndata(cells, genes)
    plain.write_h5ad(tmp_path / "plain.h5ad")
    normalised = _anndata(cells, genes)
    normalised.layers["counts"] = normalised.X.copy()
    normalised.X = normalised.X.multiply(0.37).tocsr()  # not counts
    normalised.write_h5ad(tmp_path / "layer.h5ad")
    for name in ("plain.h5ad", "layer.h5ad"):
        adata = read_counts(tmp_path / name)
        assert _same_counts(adata.X, cells.matrix), name
        assert list(adata.var["gene_ids"]) == list(genes["gene_id"])


def test_read_h5ad_dense_becomes_sparse(tmp_path):
    dense = anndata.AnnData(
        np.array([[1, 0, 2], [0, 3, 0]], dtype=np.float32),
        obs=pd.DataFrame(index=["AAAC-1", "AAAG-1"]),
        var=pd.DataFrame(index=["CD3D", "CD8A", "MT-CO1"]),
    )
    dense.write_h5ad(tmp_path / "dense.h5ad")
    adata = read_h5ad(tmp_path / "dense.h5ad")
    assert sparse.issparse(adata.X) and adata.X.format == "csr"
    assert adata.X.nnz == 3


def test_read_h5ad_rejects_normalised_values(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    adata = _anndata(cells, genes)
    adata.X = adata.X.multiply(0.37).tocsr()
    adata.write_h5ad(tmp_path / "norm.h5ad")
    with pytest.raises(ExpressionInputError, match=r"norm.h5ad.*not raw counts"):
        read_h5ad(tmp_path / "norm.h5ad")


@pytest.mark.filterwarnings("ignore:Observation names are not unique")
def test_read_h5ad_duplicated_barcodes_and_empty(tmp_path, synthetic):
    _, _, cells, genes, _ = synthetic
    adata = _anndata(cells, genes)
    names = list(adata.obs_names)
    names[1] = names[0]
    adata.obs_names = names
    adata.write_h5ad(tmp_path / "dup.h5ad")
    with pytest.raises(ExpressionInputError, match=r"dup.h5ad: 1 cell barcode"):
        read_h5ad(tmp_path / "dup.h5ad")
    _anndata(cells, genes)[:0].copy().write_h5ad(tmp_path / "empty.h5ad")
    with pytest.raises(ExpressionInputError, match=r"empty.h5ad: empty count matrix"):
        read_h5ad(tmp_path / "empty.h5ad")


def test_read_h5ad_unreadable(tmp_path):
    path = tmp_path / "junk.h5ad"
    path.write_text("junk")
    with pytest.raises(ExpressionInputError, match=r"junk\.h5ad"):
        read_counts(path)


# --- bulk -------------------------------------------------------------------------------------


def test_read_bulk_counts_round_trip(tmp_path, synthetic):
    patient, sample, _, genes, inflammatory = synthetic
    table = simulate_bulk_counts(sample, patient, TINY, genes, inflammatory, total_reads=10**6)
    path = tmp_path / "bulk.counts.tsv"
    write_bulk_counts(path, table)
    counts = read_bulk_counts(path)
    assert list(counts.index) == list(table["gene"])
    assert np.array_equal(counts.to_numpy(), table["count"].to_numpy(dtype=float))
    assert counts.name == "count"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("gene\tcounts\nCD8A\t3\n", r"missing column\(s\) \['count'\]"),
        ("gene\tcount\n", "no genes"),
        ("gene\tcount\nCD8A\t3\nPRF1\t-1\n", "line 3, column 'count': '-1' .* gene 'PRF1'"),
        ("gene\tcount\nCD8A\t3\nPRF1\tmany\n", "line 3, column 'count': 'many' is not a count"),
        ("gene\tcount\nCD8A\t3\nPRF1\t2\nCD8A\t1\n", "line 4, column 'gene': 'CD8A' is dup"),
        ("gene\tcount\nCD8A\t3\n \t2\n", "line 3, column 'gene': no gene name"),
        ("gene\tcount\nCD8A\t0\n", "every count is 0"),
    ],
)
def test_read_bulk_counts_errors(tmp_path, text, message):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(ExpressionInputError, match=rf"bad.tsv: .*{message}"):
        read_bulk_counts(path)


def test_read_bulk_counts_missing_file(tmp_path):
    with pytest.raises(ExpressionInputError, match=r"absent\.tsv"):
        read_bulk_counts(tmp_path / "absent.tsv")
