"""The CAR feature of a count matrix (carmscope.car.matrix_feature)."""

import gzip

import anndata
import numpy as np
import pandas as pd
import pytest
from scipy import io as spio
from scipy import sparse

from carmscope.car.matrix_feature import MatrixError, read_matrix_cells
from carmscope.synthetic.tenx import car_feature, write_tenx_h5

BARCODES = [f"{'ACGT'[i % 4] * 15}{'ACGT'[i // 4 % 4]}-1" for i in range(12)]
GENES = pd.DataFrame({"gene_id": [f"ENSG{i:011d}" for i in range(5)], "gene_symbol": list("ABCDE")})
CAR_UMIS = np.array([0, 3, 0, 1, 0, 0, 7, 0, 0, 2, 0, 0])


def counts() -> sparse.csr_matrix:
    rng = np.random.default_rng(1)
    return sparse.csr_matrix(rng.poisson(2.0, size=(len(BARCODES), len(GENES))))


def test_h5_with_a_car_feature(tmp_path):
    path = tmp_path / "m.h5"
    write_tenx_h5(path, counts(), BARCODES, GENES, extra_features=[car_feature(CAR_UMIS)])
    cells = read_matrix_cells(path, ["CAR_anti_HER2", "CAR_other"])
    assert cells.barcodes == BARCODES
    assert list(cells.features) == ["CAR_anti_HER2"]
    assert cells.feature_umis.tolist() == CAR_UMIS.tolist()


def test_h5_without_a_car_feature(tmp_path):
    path = tmp_path / "m.h5"
    write_tenx_h5(path, counts(), BARCODES, GENES)
    cells = read_matrix_cells(path, ["CAR_anti_HER2"])
    assert cells.barcodes == BARCODES and cells.feature_umis is None


def test_mtx_folder(tmp_path):
    folder = tmp_path / "mtx"
    folder.mkdir()
    matrix = sparse.hstack([counts(), sparse.csr_matrix(CAR_UMIS[:, None])]).tocsr()
    with gzip.open(folder / "matrix.mtx.gz", "wb") as handle:
        spio.mmwrite(handle, matrix.T.tocoo())
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as handle:
        handle.write("\n".join(BARCODES) + "\n")
    features = [
        *zip(GENES["gene_id"], GENES["gene_symbol"], strict=True),
        ("CAR1", "CAR_anti_HER2"),
    ]
    with gzip.open(folder / "features.tsv.gz", "wt") as handle:
        handle.writelines(f"{i}\t{n}\tGene Expression\n" for i, n in features)
    cells = read_matrix_cells(folder, ["CAR_anti_HER2"])
    assert cells.barcodes == BARCODES
    assert cells.feature_umis.tolist() == CAR_UMIS.tolist()


def test_h5ad(tmp_path):
    matrix = sparse.hstack([counts(), sparse.csr_matrix(CAR_UMIS[:, None])]).tocsr()
    var = pd.DataFrame(index=[*GENES["gene_symbol"], "CAR_anti_HER2"])
    path = tmp_path / "m.h5ad"
    anndata.AnnData(
        matrix.astype(np.float32), obs=pd.DataFrame(index=BARCODES), var=var
    ).write_h5ad(path)
    cells = read_matrix_cells(path, ["CAR_anti_HER2"])
    assert cells.barcodes == BARCODES
    assert cells.feature_umis.tolist() == CAR_UMIS.tolist()


def test_unreadable_matrix_is_refused(tmp_path):
    path = tmp_path / "m.h5"
    path.write_text("not hdf5")
    with pytest.raises(MatrixError, match=r"m\.h5"):
        read_matrix_cells(path, ["CAR_anti_HER2"])
