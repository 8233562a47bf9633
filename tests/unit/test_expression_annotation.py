"""Marker-based annotation against the synthetic truth; CD8 fraction; CAR+ cells by type."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from carmscope.celltypes import CELL_TYPES, IMMUNE_CELL_TYPES, UNASSIGNED
from carmscope.expression.annotation import (
    MarkerTableError,
    annotate_cells,
    assign_labels,
    marker_scores,
    read_markers,
)
from carmscope.expression.composition import car_by_cell_type, cell_type_table
from carmscope.expression.qc import filter_cells, normalize_log1p
from carmscope.genesets import read_gmt, read_signature_table
from carmscope.synthetic.design import PRESETS, design_cohort, design_patient
from carmscope.synthetic.expression import simulate_biopsy
from carmscope.synthetic.genes import gene_table

REPO = Path(__file__).resolve().parents[2]
GENESETS = REPO / "resources" / "genesets"
MARKERS = REPO / "resources" / "markers" / "cell_type_markers.tsv"
TINY = PRESETS["tiny"]


def _gene_sets():
    hallmarks = read_gmt(GENESETS / "hallmark_inflammation.v7.0.gmt")
    inflammatory = {gene for genes in hallmarks.values() for gene in genes}
    return {**hallmarks, **read_signature_table(GENESETS / "immune_signatures.tsv")}, inflammatory


def _biopsy(sample, patient, params, genes, inflammatory) -> anndata.AnnData:
    """A simulated biopsy as AnnData of raw counts, truth in ``obs`` (prefixed ``true_``)."""
    cells = simulate_biopsy(sample, patient, params, genes, inflammatory)
    truth = cells.cells.drop(columns="barcode").add_prefix("true_")
    return anndata.AnnData(
        sparse.csr_matrix(cells.matrix, dtype=np.float32),
        obs=truth,
        var=pd.DataFrame(index=genes["gene_symbol"].to_numpy()),
    )


def _process(adata: anndata.AnnData, markers: pd.DataFrame) -> anndata.AnnData:
    filtered, _ = filter_cells(adata)
    normalize_log1p(filtered)
    annotate_cells(filtered, markers)
    return filtered


@pytest.fixture(scope="module")
def markers() -> pd.DataFrame:
    return read_markers(MARKERS)


@pytest.fixture(scope="module")
def annotated(markers):
    """``[(patient, sample, annotated QC-passed AnnData)]`` for every tiny-cohort biopsy."""
    gene_sets, inflammatory = _gene_sets()
    genes = gene_table(TINY, gene_sets)
    return [
        (patient, sample, _process(_biopsy(sample, patient, TINY, genes, inflammatory), markers))
        for patient in design_cohort(TINY)
        for sample in patient.samples
        if sample.assay == "scrna"
    ]


# --- the marker table -------------------------------------------------------------------------


def test_marker_resource_covers_every_cell_type_with_sources(markers):
    assert set(markers["cell_type"]) == set(CELL_TYPES)
    per_type = markers.groupby("cell_type").size()
    assert (per_type >= 5).all(), per_type
    assert (markers["source"].str.len() > 0).all(), "every marker names its source"
    assert (markers["weight"] > 0).all()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cell_type\tgene\nmacrophage\tCD68\n", "line 2: unknown cell type 'macrophage'"),
        ("celltype\tgene\ncd8_t\tCD8A\n", r"missing column\(s\) \['cell_type'\]"),
        ("cell_type\tgene\tweight\ncd8_t\tCD8A\t-1\n", "line 2: weight '-1'"),
        ("cell_type\tgene\ncd8_t\tCD8A\ncd8_t\tCD8A\n", "line 3: 'CD8A' is listed twice"),
        ("cell_type\tgene\n", "no markers"),
        ("", "empty file"),
    ],
)
def test_read_markers_errors(tmp_path, text, message):
    path = tmp_path / "markers.tsv"
    path.write_text(text)
    with pytest.raises(MarkerTableError, match=rf"markers.tsv: {message}"):
        read_markers(path)


def test_read_markers_optional_columns(tmp_path):
    path = tmp_path / "m.tsv"
    path.write_text("cell_type\tgene\ncd8_t\tCD8A\nnk\tGNLY\n")
    table = read_markers(path)
    assert table["weight"].tolist() == [1.0, 1.0]
    assert table["source"].tolist() == ["", ""]


# --- agreement with the truth -----------------------------------------------------------------


def test_annotation_agrees_with_truth_on_every_biopsy(annotated):
    for _, sample, adata in annotated:
        agreement = (adata.obs["cell_type"].astype(str) == adata.obs["true_cell_type"]).mean()
        assert agreement >= 0.90, (sample.sample_id, agreement)
        assert adata.obs["cell_type_confidence"].between(0, 1).all()
        assert list(adata.obs["cell_type"].cat.categories) == [*CELL_TYPES, UNASSIGNED]


@pytest.mark.parametrize("cell_type", ["macrophage_m1", "macrophage_m2", "treg", "cd4_t", "cd8_t"])
def test_annotation_separates_close_populations(annotated, cell_type):
    obs = pd.concat([adata.obs for _, _, adata in annotated])
    truth = obs["true_cell_type"] == cell_type
    assert truth.sum() >= 30
    recall = (obs.loc[truth, "cell_type"].astype(str) == cell_type).mean()
    called = obs["cell_type"].astype(str) == cell_type
    precision = (obs.loc[called, "true_cell_type"] == cell_type).mean()
    assert recall >= 0.90 and precision >= 0.90, (cell_type, recall, precision)


def test_cd8_fraction_within_002_of_truth(annotated):
    for _, sample, adata in annotated:
        table = cell_type_table(adata.obs).set_index("cell_type")
        estimate = table.at["cd8_t", "fraction_of_cells"]
        assert abs(estimate - sample.composition["cd8_t"]) <= 0.02, sample.sample_id
        immune_truth = adata.obs["true_cell_type"].isin(list(IMMUNE_CELL_TYPES))
        truth_of_immune = (adata.obs["true_cell_type"] == "cd8_t").sum() / immune_truth.sum()
        assert abs(table.at["cd8_t", "fraction_of_immune"] - truth_of_immune) <= 0.02


def test_scores_of_a_cell_do_not_depend_on_the_other_cells(annotated, markers):
    """A tumour-dominated subset scores each cell exactly as the whole sample does."""
    adata = annotated[0][2]
    full = marker_scores(adata, markers)
    tumour = np.flatnonzero(adata.obs["true_cell_type"] == "tumour_epithelium")
    others = np.flatnonzero(adata.obs["true_cell_type"] != "tumour_epithelium")[:10]
    subset = adata[np.concatenate([tumour, others])].copy()  # ~90% tumour cells
    scores = marker_scores(subset, markers)
    pd.testing.assert_frame_equal(scores, full.loc[subset.obs_names], check_exact=False)
    labels = assign_labels(scores)
    assert (labels["cell_type"] == subset.obs["true_cell_type"]).mean() >= 0.9


def test_scores_are_the_same_on_counts_and_lognorm(annotated, markers):
    adata = annotated[1][2]
    on_counts = marker_scores(adata, markers, layer="counts")
    on_lognorm = marker_scores(adata, markers)
    pd.testing.assert_frame_equal(on_counts, on_lognorm, atol=1e-9)


def test_cells_without_markers_are_unassigned(markers):
    genes = ["CD8A", "CD8B", "GNLY", "EPCAM", "KRT8", "BG1", "BG2", "BG3"]
    matrix = sparse.csr_matrix(
        np.array(
            [
                [9, 8, 0, 0, 0, 1, 1, 1],  # CD8 T cell
                [0, 0, 0, 0, 0, 5, 4, 3],  # background genes only
                [0, 0, 0, 7, 6, 1, 0, 0],  # epithelial
            ],
            dtype=np.float32,
        )
    )
    adata = anndata.AnnData(matrix, var=pd.DataFrame(index=genes))
    annotate_cells(adata, markers)
    assert adata.obs["cell_type"].astype(str).tolist() == ["cd8_t", UNASSIGNED, "tumour_epithelium"]
    coverage = pd.DataFrame(adata.uns["cell_type_annotation"]["coverage"])
    assert coverage.set_index("cell_type").at["cd8_t", "n_found"] == 2


def test_no_marker_in_matrix_is_an_error(markers):
    adata = anndata.AnnData(
        sparse.csr_matrix(np.ones((2, 2), np.float32)), var=pd.DataFrame(index=["X1", "X2"])
    )
    with pytest.raises(ValueError, match="none of the marker genes"):
        marker_scores(adata, markers)


# --- CAR+ cells -------------------------------------------------------------------------------


def test_car_cells_by_cell_type(annotated):
    _, _, adata = next(
        item for item in annotated if item[1].car_present and item[2].obs["true_car_umis"].sum()
    )
    car = pd.DataFrame(
        {"barcode": adata.obs_names, "car_umis": adata.obs["true_car_umis"].to_numpy()}
    )
    car = pd.concat([car, pd.DataFrame({"barcode": ["QCFAILED-1"], "car_umis": [3]})])
    table = car_by_cell_type(adata.obs, car).set_index("cell_type")
    n_true = int((adata.obs["true_car_umis"] > 0).sum())
    assert table.at["all", "n_car_positive"] == n_true
    assert table.at["macrophage_m1", "share_of_car_positive"] >= 0.9  # CAR-M are M1-like
    assert table.at["not_annotated", "n_car_positive"] == 1
    assert (
        table.loc[list(CELL_TYPES), "n_car_positive"].sum() + table.at[UNASSIGNED, "n_car_positive"]
        == n_true
    )
    assert table.at["tumour_epithelium", "n_car_positive"] == 0
    with pytest.raises(ValueError, match="twice"):
        car_by_cell_type(adata.obs, pd.concat([car, car]))
    with pytest.raises(ValueError, match="lacks column"):
        car_by_cell_type(adata.obs, car.rename(columns={"car_umis": "umis"}))


# --- scale ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_50k_cell_sample(markers):
    gene_sets, inflammatory = _gene_sets()
    params = dataclasses.replace(PRESETS["default"], n_patients=1, cells_per_biopsy=50_000)
    genes = gene_table(params, gene_sets)
    patient = design_patient(0, params)
    sample = next(s for s in patient.samples if s.assay == "scrna" and s.day > 0)
    adata = _biopsy(sample, patient, params, genes, inflammatory)
    start = time.perf_counter()
    annotated = _process(adata, markers)
    elapsed = time.perf_counter() - start
    assert not annotated.obs["true_low_quality"].any()
    agreement = (annotated.obs["cell_type"].astype(str) == annotated.obs["true_cell_type"]).mean()
    assert agreement >= 0.95
    assert sparse.issparse(annotated.X) and sparse.issparse(annotated.layers["counts"])
    assert elapsed < 120, elapsed
