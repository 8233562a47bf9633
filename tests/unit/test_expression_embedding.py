"""Embeddings of scRNA cells (HVG, PCA, neighbours, Leiden, UMAP), CAR calls in obs, the joint
embedding of a patient's samples, and the figures drawn from them."""

from __future__ import annotations

from pathlib import Path

import anndata
import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from carmscope.expression.embedding import (
    EmbeddingSettings,
    add_car_calls,
    embed_cells,
    has_embedding,
    integrate_samples,
)
from carmscope.expression.embedding_steps import embed_patient, embed_sample

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[2]
MARKERS = REPO / "resources" / "markers" / "cell_type_markers.tsv"
TYPES = ("tumour_epithelium", "cd8_t", "macrophage_m1")
GENES = {
    "tumour_epithelium": ["EPCAM", "KRT8"],
    "cd8_t": ["CD8A", "CD8B"],
    "macrophage_m1": ["CD80", "CD86"],
}
SETTINGS = EmbeddingSettings(n_top_genes=50, n_pcs=10, n_neighbors=10)


def _cells(seed: int = 0, per_type: int = 30, shift: float = 0.0) -> anndata.AnnData:
    """Three populations, each expressing its two marker genes and a block of its own genes;
    log-normalised X as the expression step leaves it, cell types as annotated."""
    rng = np.random.default_rng(seed)
    markers = [g for t in TYPES for g in GENES[t]]
    genes = markers + [f"G{i}" for i in range(90)]
    rows, labels = [], []
    for k, cell_type in enumerate(TYPES):
        rate = np.full(len(genes), 0.3)
        rate[[genes.index(g) for g in GENES[cell_type]]] = 8.0
        rate[len(markers) + 30 * k : len(markers) + 30 * (k + 1)] = 4.0 + shift
        rows.append(rng.poisson(rate, size=(per_type, len(genes))))
        labels += [cell_type] * per_type
    counts = np.vstack(rows).astype(np.float32)
    adata = anndata.AnnData(
        X=sparse.csr_matrix(np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)),
        obs=pd.DataFrame(
            {"cell_type": pd.Categorical(labels)},
            index=[f"AAAC{seed}{i:04d}-1" for i in range(len(labels))],
        ),
        var=pd.DataFrame(index=genes),
    )
    return adata


def test_embedding_adds_hvg_pca_graph_clusters_and_umap_and_is_seeded():
    first, second = _cells(), _cells()
    labels = first.obs["cell_type"].copy()
    assert embed_cells(first, SETTINGS) == "computed"
    embed_cells(second, SETTINGS)
    assert first.var["highly_variable"].sum() == 50
    assert first.obsm["X_pca"].shape == (90, 10)
    assert "connectivities" in first.obsp
    assert first.obsm["X_umap"].shape == (90, 2)
    np.testing.assert_array_equal(first.obsm["X_umap"], second.obsm["X_umap"])
    assert list(first.obs["leiden"]) == list(second.obs["leiden"])
    # the clusters find the three populations; the labels are untouched
    crosstab = pd.crosstab(first.obs["leiden"], first.obs["cell_type"])
    assert ((crosstab > 0).sum(axis=1) == 1).all()
    pd.testing.assert_series_equal(first.obs["cell_type"], labels)
    assert first.uns["embedding"]["settings"]["n_pcs"] == 10


def test_an_existing_embedding_is_kept():
    adata = _cells()
    given = np.arange(adata.n_obs * 2, dtype=float).reshape(-1, 2)
    adata.obsm["X_umap"] = given
    assert embed_cells(adata, SETTINGS) == "kept"
    np.testing.assert_array_equal(adata.obsm["X_umap"], given)
    assert "X_pca" not in adata.obsm
    assert adata.uns["embedding"]["status"] == "kept"


def test_too_few_cells_are_not_embedded_and_say_why():
    adata = _cells(per_type=2)
    assert embed_cells(adata, SETTINGS) == "not computed"
    assert not has_embedding(adata)
    assert "6 cells" in adata.uns["embedding"]["reason"]


def test_settings_reject_unknown_keys_and_corrections():
    with pytest.raises(ValueError, match="n_pc"):
        EmbeddingSettings.from_mapping({"n_pc": 5})
    with pytest.raises(ValueError, match="batch_correction"):
        EmbeddingSettings(batch_correction="combat")


def test_car_calls_join_by_barcode_and_absent_cells_have_none():
    adata = _cells()
    barcodes = list(adata.obs_names)
    car = pd.DataFrame(
        {
            "barcode": [barcodes[0], barcodes[5], "TTTT-1"],
            "car_reads": [7, 1, 3],
            "car_umis": [3, 1, 2],
        }
    )
    add_car_calls(adata, car, min_umis=2)
    assert adata.obs["car_reads"].dtype == np.int64
    assert adata.obs.loc[barcodes[0], ["car_reads", "car_umis"]].tolist() == [7, 3]
    assert bool(adata.obs.loc[barcodes[0], "car_positive"])
    assert not bool(adata.obs.loc[barcodes[5], "car_positive"])  # 1 UMI < 2
    assert adata.obs["car_positive"].sum() == 1
    assert adata.obs["car_reads"].iloc[1:5].eq(0).all()
    with pytest.raises(ValueError, match="twice"):
        add_car_calls(adata, pd.concat([car, car]), min_umis=1)
    with pytest.raises(ValueError, match="car_reads"):
        add_car_calls(adata, car.drop(columns="car_reads"))


def test_patient_integration_uses_harmony_across_samples():
    baseline, post = _cells(seed=1), _cells(seed=2, shift=2.0)
    joint = integrate_samples({"S_base": baseline, "S_post": post}, SETTINGS)
    assert joint.n_obs == baseline.n_obs + post.n_obs
    assert list(joint.obs["sample_id"].cat.categories) == ["S_base", "S_post"]
    assert "X_pca_harmony" in joint.obsm
    assert joint.uns["embedding"]["representation"] == "X_pca_harmony"
    # after correction, cells of one type from both samples share clusters
    crosstab = pd.crosstab(joint.obs["leiden"], [joint.obs["cell_type"], joint.obs["sample_id"]])
    shared = [(crosstab[(t, "S_base")] > 0) & (crosstab[(t, "S_post")] > 0) for t in TYPES]
    assert all(s.any() for s in shared)
    none = integrate_samples(
        {"S_base": _cells(seed=1), "S_post": _cells(seed=2, shift=2.0)},
        EmbeddingSettings(n_top_genes=50, n_pcs=10, n_neighbors=10, batch_correction="none"),
    )
    assert none.uns["embedding"]["representation"] == "X_pca"


def test_written_cells_open_in_scanpy_and_plot_by_cell_type_and_car(tmp_path):
    import scanpy as sc

    annotated = tmp_path / "annotated.h5ad"
    _cells().write_h5ad(annotated)
    car = tmp_path / "car.tsv.gz"
    pd.DataFrame({"barcode": [_cells().obs_names[40]], "car_reads": [4], "car_umis": [2]}).to_csv(
        car, sep="\t", index=False
    )
    outputs = {
        name: tmp_path / f"{name}.{ext}"
        for name, ext in (("h5ad", "h5ad"), ("umap", "png"), ("dotplot", "png"))
    }
    embed_sample(annotated, car, MARKERS, **outputs, sample_id="S1", settings=SETTINGS.__dict__)
    adata = sc.read_h5ad(outputs["h5ad"])
    assert {"car_reads", "car_umis", "car_positive"} <= set(adata.obs.columns)
    assert adata.obs["car_positive"].sum() == 1
    axes = sc.pl.umap(adata, color=["cell_type", "car_positive"], show=False)
    assert len(axes) == 2
    assert outputs["umap"].stat().st_size > 5000 and outputs["dotplot"].stat().st_size > 5000

    second = tmp_path / "second.h5ad"
    embed_sample(
        annotated,
        None,
        MARKERS,
        h5ad=second,
        umap=tmp_path / "u2.png",
        dotplot=tmp_path / "d2.png",
        sample_id="S2",
        settings=SETTINGS.__dict__,
    )
    assert sc.read_h5ad(second).uns["car_calls"]["status"] == "not measured"
    joint = embed_patient(
        {"S1": outputs["h5ad"], "S2": second},
        ["baseline", "day 8"],
        h5ad=tmp_path / "P.h5ad",
        figure=tmp_path / "P.png",
        patient_id="P",
        settings=SETTINGS.__dict__,
    )
    assert "X_umap_sample" in joint.obsm
    assert (tmp_path / "P.png").stat().st_size > 5000


def test_embedding_rules_order_a_patients_samples_by_day():
    from wiring import embedding as embedding_rules

    samples = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2", "P1"],
            "timepoint": ["D8", "screening", "screening", "bulk"],
            "day": [8, -7, -3, 1],
            "assay": ["scrna", "scrna", "scrna", "bulk_rna"],
            "reads": ["a.bam", "", "", ""],
        },
        index=["P1_D8", "P1_scr", "P2_scr", "P1_bulk"],
    )
    assert embedding_rules.patient_samples(samples, "P1") == ["P1_scr", "P1_D8"]
    assert embedding_rules.patients(samples) == ["P1", "P2"]
    assert embedding_rules.panel_labels(samples, "P1") == [
        "screening (day -7, pre-infusion)",
        "D8 (day 8, post-infusion)",
    ]
    assert embedding_rules.car_table(samples, "P1_D8") == ["results/car/scrna/P1_D8/cells.tsv.gz"]
    assert embedding_rules.car_table(samples, "P1_scr") == []
    assert "results/expression/scrna/patients/P2.h5ad" in embedding_rules.outputs(samples)
