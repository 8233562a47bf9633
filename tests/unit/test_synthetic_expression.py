"""Gene sets, gene universe, simulated scRNA/bulk counts and the 10x HDF5 writer."""

from __future__ import annotations

import dataclasses
import hashlib
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from scipy import sparse

from carmscope.celltypes import CELL_TYPES, MACROPHAGE_TYPES
from carmscope.genesets import GeneSetFormatError, read_gmt, read_signature_table
from carmscope.synthetic.design import PRESETS, design_cohort, design_patient
from carmscope.synthetic.expression import (
    BULK_TOTAL_READS,
    CHUNK_CELLS,
    simulate_biopsy,
    simulate_bulk_counts,
    write_bulk_counts,
)
from carmscope.synthetic.genes import (
    MITOCHONDRIAL_GENES,
    gene_table,
    programme_genes,
    specific_markers,
)
from carmscope.synthetic.tenx import CAR_FEATURE, car_feature, write_tenx_h5

GENESETS = Path(__file__).resolve().parents[2] / "resources" / "genesets"
GMT = GENESETS / "hallmark_inflammation.v7.0.gmt"
SIGNATURES = GENESETS / "immune_signatures.tsv"
TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def hallmarks() -> dict[str, list[str]]:
    return read_gmt(GMT)


@pytest.fixture(scope="module")
def inflammatory(hallmarks) -> set[str]:
    return {gene for genes in hallmarks.values() for gene in genes}


@pytest.fixture(scope="module")
def genes(hallmarks) -> pd.DataFrame:
    return gene_table(TINY, {**hallmarks, **read_signature_table(SIGNATURES)})


@pytest.fixture(scope="module")
def cohort():
    return design_cohort(TINY)


@pytest.fixture(scope="module")
def biopsies(cohort, genes, inflammatory):
    """Every scRNA biopsy of the tiny cohort: ``[(patient, sample, BiopsyCells)]``."""
    return [
        (patient, sample, simulate_biopsy(sample, patient, TINY, genes, inflammatory))
        for patient in cohort
        for sample in patient.samples
        if sample.assay == "scrna"
    ]


def _sum_rows(matrix: sparse.csr_matrix) -> np.ndarray:
    return np.asarray(matrix.sum(axis=1)).ravel()


def _columns(genes: pd.DataFrame, symbols) -> np.ndarray:
    return np.flatnonzero(genes["gene_symbol"].isin(list(symbols)).to_numpy())


def _share(biopsy, symbols, mask: np.ndarray) -> float:
    """Share of the counts of ``mask`` cells that fall on ``symbols``."""
    rows = biopsy.matrix[mask]
    return rows[:, _columns(biopsy.genes, symbols)].sum() / rows.sum()


def _good(biopsy, cell_types) -> np.ndarray:
    cells = biopsy.cells
    return (cells["cell_type"].isin(list(cell_types)) & ~cells["low_quality"]).to_numpy()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- gene-set readers -------------------------------------------------------------------------


def test_read_gmt_resource(hallmarks):
    assert len(hallmarks) == 5
    assert len(hallmarks["HALLMARK_INTERFERON_GAMMA_RESPONSE"]) == 200
    assert "IL1B" in hallmarks["HALLMARK_INFLAMMATORY_RESPONSE"]
    assert all(gene and gene == gene.strip() for genes in hallmarks.values() for gene in genes)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("SET_A\tdesc\tG1\tG2\nSET_B\tdesc\n", 2, "no genes"),
        ("SET_A\tdesc\tG1\n\n\tdesc\tG2\n", 3, "empty gene set name"),
        ("SET_A\tdesc\tG1\nSET_A\tdesc\tG2\n", 2, "defined twice"),
    ],
)
def test_read_gmt_malformed_names_file_and_line(tmp_path, text, line, problem):
    path = tmp_path / "bad.gmt"
    path.write_text(text)
    with pytest.raises(GeneSetFormatError, match=rf"bad\.gmt, line {line}: .*{problem}"):
        read_gmt(path)


def test_read_gmt_skips_trailing_tabs_and_duplicates(tmp_path):
    path = tmp_path / "ok.gmt"
    path.write_text("SET_A\tdesc\tG1\tG2\tG1\t\n")
    assert read_gmt(path) == {"SET_A": ["G1", "G2"]}


def test_read_signature_table_resource():
    signatures = read_signature_table(SIGNATURES)
    assert signatures["CD8_T_cells"] == ["CD8A", "CD8B"]
    assert signatures["Cytolytic_activity"] == ["GZMA", "PRF1"]
    assert len(signatures["IFNG_6"]) == 6


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("signature\tgene\tsource\nA\tG1\tx\nA\tG2\n", 3, "2 fields, expected 3"),
        ("name\tgene\nA\tG1\n", 1, "lacks column"),
        ("signature\tgene\nA\t \n", 2, "empty signature or gene"),
        ("", 1, "empty file"),
    ],
)
def test_read_signature_table_malformed(tmp_path, text, line, problem):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(GeneSetFormatError, match=rf"bad\.tsv, line {line}: .*{problem}"):
        read_signature_table(path)


# --- gene universe ----------------------------------------------------------------------------


def test_gene_table_universe(genes, hallmarks):
    symbols = genes["gene_symbol"]
    assert list(genes.columns) == ["gene_id", "gene_symbol"]
    assert symbols.is_unique and genes["gene_id"].is_unique
    assert genes["gene_id"].str.fullmatch(r"ENSG9\d{10}").all()
    named = set(programme_genes()) | {g for gs in hallmarks.values() for g in gs}
    named |= {g for gs in read_signature_table(SIGNATURES).values() for g in gs}
    assert named <= set(symbols)
    assert symbols[symbols.str.startswith("MT-")].tolist() == list(MITOCHONDRIAL_GENES)
    assert len(MITOCHONDRIAL_GENES) == 13
    assert symbols.str.fullmatch(r"SYNG\d{5}").sum() == TINY.n_background_genes
    assert {"ERBB2", "CD8A", "ACTB", "PTPRC", "CD163", "IFNG"} <= set(symbols)


def test_gene_ids_depend_only_on_symbol(genes, hallmarks):
    bigger = gene_table(PRESETS["default"], hallmarks)
    ids = dict(zip(bigger["gene_symbol"], bigger["gene_id"], strict=True))
    shared = genes[genes["gene_symbol"].isin(list(ids))]
    assert len(shared) > 500
    assert (shared["gene_symbol"].map(ids) == shared["gene_id"]).all()


# --- single-cell simulation: shape, determinism ------------------------------------------------


def test_biopsy_shape_and_barcodes(biopsies, genes):
    _, _, biopsy = biopsies[0]
    assert biopsy.matrix.shape == (TINY.cells_per_biopsy, len(genes))
    assert biopsy.matrix.dtype == np.int32 and sparse.issparse(biopsy.matrix)
    barcodes = pd.Series(biopsy.barcodes)
    assert barcodes.str.fullmatch(r"[ACGT]{16}-1").all() and barcodes.is_unique
    assert (biopsy.cells.index == biopsy.barcodes).all()
    assert (biopsy.cells["barcode"] == biopsy.barcodes).all()
    assert set(biopsy.cells["cell_type"]) <= set(CELL_TYPES)
    assert list(biopsy.cells.columns) == ["barcode", "cell_type", "low_quality", "car_umis"]


def test_biopsy_is_deterministic_and_depends_only_on_its_design(biopsies, genes, inflammatory):
    _, sample, first = biopsies[0]
    alone = dataclasses.replace(TINY, n_patients=1, templates=(TINY.template_of(0),))
    again = simulate_biopsy(sample, design_patient(0, alone), alone, genes, inflammatory)
    assert (first.matrix != again.matrix).nnz == 0
    pd.testing.assert_frame_equal(first.cells, again.cells)
    _, _, other = biopsies[1]
    assert not np.array_equal(first.barcodes, other.barcodes)


# --- truth consistency ------------------------------------------------------------------------


def test_good_cell_fractions_follow_the_design(biopsies):
    for _, sample, biopsy in biopsies:
        good = biopsy.cells[~biopsy.cells["low_quality"]]
        realised = good["cell_type"].value_counts(normalize=True)
        slack = 1.0 / len(good)
        for cell_type in set(CELL_TYPES) - MACROPHAGE_TYPES:
            expected = sample.composition[cell_type]
            assert abs(realised.get(cell_type, 0.0) - expected) <= slack, (sample, cell_type)
        macrophages = sum(realised.get(t, 0.0) for t in MACROPHAGE_TYPES)
        assert abs(macrophages - sum(sample.composition[t] for t in MACROPHAGE_TYPES)) <= slack


def test_low_quality_cells_are_small_and_mitochondrial(biopsies, genes):
    mito = _columns(genes, MITOCHONDRIAL_GENES)
    for _, _, biopsy in biopsies:
        low = biopsy.cells["low_quality"].to_numpy()
        assert low.sum() == round(TINY.cells_per_biopsy * TINY.low_quality_fraction)
        totals = _sum_rows(biopsy.matrix)
        mito_fraction = _sum_rows(biopsy.matrix[:, mito]) / totals
        assert mito_fraction[low].min() > 0.2 and np.median(mito_fraction[low]) > 0.35
        assert mito_fraction[~low].max() < 0.2
        assert 0.02 < np.median(mito_fraction[~low]) < 0.08
        assert np.median(totals[low]) < 0.3 * np.median(totals[~low])
        assert 0.7 < np.median(totals[~low]) / TINY.median_umis_per_cell < 1.3


def test_car_cells_only_post_infusion_car_positive_macrophages(biopsies):
    seen_car = False
    for patient, sample, biopsy in biopsies:
        cells = biopsy.cells
        car = cells["car_umis"] > 0
        if not sample.car_present:
            assert not car.any(), sample.sample_id
            continue
        assert sample.timepoint == "D8" and patient.car_positive
        assert car.any()
        assert (cells.loc[car, "cell_type"] == "macrophage_m1").all()
        assert not cells.loc[car, "low_quality"].any()
        expected = patient.car_macrophage_fraction * _good(biopsy, MACROPHAGE_TYPES).sum()
        assert abs(car.sum() - expected) < 4 * np.sqrt(expected) + 2
        seen_car = True
    assert seen_car


def test_erbb2_higher_in_her2_3plus_than_2plus(genes, inflammatory):
    params = dataclasses.replace(TINY, n_patients=2, templates=(0, 3))
    patients = design_cohort(params)
    assert [p.her2_ihc for p in patients] == ["3+", "2+"]
    shares = []
    for patient in patients:
        sample = patient.samples[0]
        biopsy = simulate_biopsy(sample, patient, params, genes, inflammatory)
        shares.append(_share(biopsy, ["ERBB2"], _good(biopsy, ["tumour_epithelium"])))
    assert shares[0] > 2 * shares[1]


def _post_vs_baseline(patient, params, genes, inflammatory):
    """``ratio(symbols, cell types)``: post/baseline counts on ``symbols`` per reference count.

    The reference is every nuclear gene outside the inflammatory programme, so the ratio
    estimates the fold change itself (a share of all counts would be compressed by it).
    """
    baseline, post = (
        simulate_biopsy(s, patient, params, genes, inflammatory)
        for s in patient.samples
        if s.assay == "scrna"
    )
    symbols = genes["gene_symbol"]
    reference = symbols[~symbols.isin([*inflammatory, "IFNG", *MITOCHONDRIAL_GENES])]

    def level(biopsy, chosen, cell_types):
        mask = _good(biopsy, cell_types)
        return _share(biopsy, chosen, mask) / _share(biopsy, reference, mask)

    def ratio(chosen, cell_types):
        return level(post, chosen, cell_types) / level(baseline, chosen, cell_types)

    return ratio


def test_inflammation_up_after_infusion(cohort, genes, inflammatory):
    patient = cohort[0]
    assert patient.car_positive and patient.inflammation_log2fc > 0
    params = dataclasses.replace(TINY, cells_per_biopsy=1500)
    ratio = _post_vs_baseline(patient, params, genes, inflammatory)
    fold = 2**patient.inflammation_log2fc
    for cell_types in (["tumour_epithelium"], MACROPHAGE_TYPES, ["cd8_t", "cd4_t"], ["dc"]):
        assert ratio(inflammatory, cell_types) == pytest.approx(fold, rel=0.2), cell_types
    assert ratio(["IFNG"], ["cd8_t", "nk"]) == pytest.approx(fold, rel=0.3)
    assert ratio(inflammatory, ["fibroblast", "endothelium", "b"]) == pytest.approx(1, rel=0.1)


def test_no_inflammation_without_car(cohort, genes, inflammatory):
    patient = cohort[1]
    assert not patient.car_positive
    ratio = _post_vs_baseline(patient, TINY, genes, inflammatory)
    assert ratio(inflammatory, ["tumour_epithelium"]) == pytest.approx(1, rel=0.1)


def test_markers_highest_in_their_cell_type(biopsies):
    means = {}
    for cell_type in CELL_TYPES:
        rows = sparse.vstack([b.matrix[_good(b, [cell_type])] for _, _, b in biopsies])
        normalised = sparse.diags(1.0 / _sum_rows(rows)) @ rows
        means[cell_type] = np.asarray(normalised.mean(axis=0)).ravel()
    genes = biopsies[0][2].genes
    for cell_type in CELL_TYPES:
        markers = specific_markers(cell_type)
        assert len(markers) >= 3, cell_type
        columns = _columns(genes, markers)
        own = means[cell_type][columns].sum()
        for other in set(CELL_TYPES) - {cell_type}:
            assert own > 2 * means[other][columns].sum(), (cell_type, other)


# --- bulk -------------------------------------------------------------------------------------


def test_bulk_counts_round_trip(tmp_path, cohort, genes, inflammatory):
    patient = next(p for p in cohort if any(s.assay == "bulk_rna" for s in p.samples))
    baseline, post = (
        simulate_bulk_counts(s, patient, TINY, genes, inflammatory)
        for s in patient.samples
        if s.assay == "bulk_rna"
    )
    assert abs(baseline["count"].sum() / BULK_TOTAL_READS - 1) < 0.02
    assert baseline["gene"].tolist() == genes["gene_symbol"].tolist()
    path = tmp_path / "bulk.counts.tsv"
    write_bulk_counts(path, baseline)
    assert path.read_text().splitlines()[0] == "gene\tcount"
    back = pd.read_csv(path, sep="\t", keep_default_na=False)
    pd.testing.assert_frame_equal(back, baseline)
    inflamed = baseline["gene"].isin(list(inflammatory))
    shares = [t.loc[inflamed, "count"].sum() / t["count"].sum() for t in (baseline, post)]
    assert shares[1] > 1.2 * shares[0]


# --- 10x HDF5 ---------------------------------------------------------------------------------


def _car_positive(biopsies):
    return next(entry for entry in biopsies if entry[1].car_present)


def test_scanpy_reads_tenx_h5(tmp_path, biopsies, genes):
    _, sample, biopsy = _car_positive(biopsies)
    path = tmp_path / "sample.h5"
    write_tenx_h5(path, biopsy.matrix, biopsy.barcodes, genes, library_id=sample.sample_id)
    adata = sc.read_10x_h5(path)
    assert adata.shape == biopsy.matrix.shape
    assert adata.obs_names.tolist() == biopsy.barcodes.tolist()
    assert adata.var_names.tolist() == genes["gene_symbol"].tolist()
    assert adata.var["gene_ids"].tolist() == genes["gene_id"].tolist()
    assert abs(adata.X - biopsy.matrix).max() == 0


def test_tenx_h5_layout(tmp_path, biopsies, genes):
    _, sample, biopsy = biopsies[0]
    path = tmp_path / "sample.h5"
    write_tenx_h5(path, biopsy.matrix, biopsy.barcodes, genes, library_id=sample.sample_id)
    with h5py.File(path, "r") as handle:
        assert handle.attrs["filetype"] == "matrix" and handle.attrs["version"] == 2
        assert handle.attrs["library_ids"].tolist() == [sample.sample_id.encode()]
        assert handle.attrs["original_gem_groups"].tolist() == [1]
        matrix = handle["matrix"]
        assert matrix["shape"][()].tolist() == [len(genes), TINY.cells_per_biopsy]
        assert matrix["data"].dtype == np.int32 and matrix["indptr"].dtype == np.int64
        assert matrix["data"].compression == "gzip"
        for name in ("barcodes", "features/id", "features/name", "features/genome"):
            assert matrix[name].dtype.kind == "S", name
        assert matrix["features/_all_tag_keys"][()].tolist() == [b"genome"]
        assert set(matrix["features/feature_type"][()]) == {b"Gene Expression"}


def test_tenx_h5_car_feature(tmp_path, biopsies, genes):
    _, _, biopsy = _car_positive(biopsies)
    car_umis = biopsy.cells["car_umis"].to_numpy()
    path = tmp_path / "car.h5"
    write_tenx_h5(
        path, biopsy.matrix, biopsy.barcodes, genes, extra_features=[car_feature(car_umis)]
    )
    adata = sc.read_10x_h5(path)
    assert adata.shape == (biopsy.matrix.shape[0], len(genes) + 1)
    assert adata.var_names[-1] == CAR_FEATURE and adata.var["genome"].iloc[-1] == "CAR"
    assert np.array_equal(adata[:, CAR_FEATURE].X.toarray().ravel(), car_umis)
    assert car_umis.sum() > 0


def test_tenx_h5_is_byte_identical(tmp_path, cohort, genes, inflammatory):
    patient = cohort[0]
    sample = next(s for s in patient.samples if s.assay == "scrna" and s.car_present)
    paths = [tmp_path / "first.h5", tmp_path / "second.h5"]
    for i, path in enumerate(paths):
        if i:
            time.sleep(1.1)  # a timestamp in the file would now differ
        biopsy = simulate_biopsy(sample, patient, TINY, genes, inflammatory)
        car = [car_feature(biopsy.cells["car_umis"].to_numpy())]
        write_tenx_h5(path, biopsy.matrix, biopsy.barcodes, genes, extra_features=car)
    assert _sha256(paths[0]) == _sha256(paths[1])


def test_tenx_h5_rejects_mismatched_shapes(tmp_path, biopsies, genes):
    _, _, biopsy = biopsies[0]
    with pytest.raises(ValueError, match="barcodes"):
        write_tenx_h5(tmp_path / "x.h5", biopsy.matrix, biopsy.barcodes[:-1], genes)


# --- benchmark size ---------------------------------------------------------------------------


@pytest.mark.slow
def test_fifty_thousand_cells_stay_sparse(monkeypatch, hallmarks, inflammatory):
    params = dataclasses.replace(PRESETS["default"], cells_per_biopsy=50_000)
    genes = gene_table(params, {**hallmarks, **read_signature_table(SIGNATURES)})
    patient = design_patient(0, params)
    sample = next(s for s in patient.samples if s.car_present)

    def refuse(*args, **kwargs):
        raise AssertionError("a sparse matrix was densified")

    for cls in (sparse.csr_matrix, sparse.csc_matrix, sparse.coo_matrix):
        monkeypatch.setattr(cls, "toarray", refuse)
        monkeypatch.setattr(cls, "todense", refuse)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        biopsy = simulate_biopsy(sample, patient, params, genes, inflammatory)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    matrix = biopsy.matrix
    assert matrix.shape == (50_000, len(genes)) and matrix.format == "csr"
    assert matrix.indices.dtype == np.int32 and matrix.data.dtype == np.int32
    sparse_bytes = matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    assert sparse_bytes < 12.5 * matrix.nnz  # 8 bytes per entry plus the row pointers
    chunk_bytes = CHUNK_CELLS * len(genes) * 8
    assert peak < 2.2 * sparse_bytes + 6 * chunk_bytes, (peak, sparse_bytes)
    assert elapsed < 60
    assert (biopsy.cells["car_umis"] > 0).sum() > 100
