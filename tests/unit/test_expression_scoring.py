"""Signature scores on pseudobulk and bulk profiles, composition metrics, sparsity."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from scipy.sparse import _base

from carmscope.expression.annotation import annotate_cells, read_markers
from carmscope.expression.composition import (
    EXHAUSTION_GENES,
    composition_metrics,
    erbb2_in_tumour,
    exhaustion_score,
)
from carmscope.expression.io import read_bulk_counts
from carmscope.expression.qc import filter_cells, normalize_log1p
from carmscope.expression.scoring import (
    GeneSetError,
    cytolytic_activity,
    load_collections,
    load_gmt,
    log2_cpm,
    pseudobulk,
    score_bulk_sample,
    score_profile,
    score_scrna_sample,
    scores_to_metrics,
    singscore,
)
from carmscope.genesets import read_gmt, read_signature_table
from carmscope.synthetic.design import PRESETS, design_cohort
from carmscope.synthetic.expression import (
    simulate_biopsy,
    simulate_bulk_counts,
    write_bulk_counts,
)
from carmscope.synthetic.genes import gene_table

REPO = Path(__file__).resolve().parents[2]
GMT = REPO / "resources" / "genesets" / "hallmark_inflammation.v7.0.gmt"
SIGNATURES = REPO / "resources" / "genesets" / "immune_signatures.tsv"
MARKERS = REPO / "resources" / "markers" / "cell_type_markers.tsv"
TINY = PRESETS["tiny"]


def _universe(params):
    hallmarks = read_gmt(GMT)
    genes = gene_table(params, {**hallmarks, **read_signature_table(SIGNATURES)})
    return genes, {gene for genes_ in hallmarks.values() for gene in genes_}


def _adata(cells, genes) -> anndata.AnnData:
    return anndata.AnnData(
        sparse.csr_matrix(cells.matrix, dtype=np.float32),
        obs=cells.cells.drop(columns="barcode").add_prefix("true_"),
        var=pd.DataFrame(index=genes["gene_symbol"].to_numpy()),
    )


def _process(adata, markers) -> anndata.AnnData:
    filtered, _ = filter_cells(adata)
    normalize_log1p(filtered)
    annotate_cells(filtered, markers)
    return filtered


@pytest.fixture(scope="module")
def collections():
    return load_collections([GMT], [SIGNATURES])


@pytest.fixture(scope="module")
def markers():
    return read_markers(MARKERS)


@pytest.fixture(scope="module")
def cohort(markers):
    """Tiny cohort: ``{patient_id: (patient, {day: annotated AnnData})}`` and the genes."""
    genes, inflammatory = _universe(TINY)
    result = {}
    for patient in design_cohort(TINY):
        by_day = {
            sample.day: _process(
                _adata(simulate_biopsy(sample, patient, TINY, genes, inflammatory), genes),
                markers,
            )
            for sample in patient.samples
            if sample.assay == "scrna"
        }
        result[patient.patient_id] = (patient, by_day)
    return result, genes, inflammatory


def _scores(adata, collections) -> pd.Series:
    table = score_scrna_sample(adata, collections)
    return table.set_index(["compartment", "gene_set"])["score"]


# --- inflammation after infusion --------------------------------------------------------------


def test_inflammation_up_when_inflamed_and_flat_when_not(cohort, collections):
    patients, _, _ = cohort
    inflamed = [p for p, _ in patients.values() if p.inflammation_log2fc > 0]
    flat = [p for p, _ in patients.values() if p.inflammation_log2fc == 0]
    assert inflamed and flat
    hallmarks = list(read_gmt(GMT))
    for patient in inflamed + flat:
        by_day = patients[patient.patient_id][1]
        (_, baseline), (_, post) = sorted(by_day.items())
        before, after = _scores(baseline, collections), _scores(post, collections)
        for compartment in ("all", "macrophage", "t_cell"):
            for name in hallmarks:
                delta = after[(compartment, name)] - before[(compartment, name)]
                if patient.inflammation_log2fc > 0:
                    assert delta > 0.15, (patient.patient_id, compartment, name, delta)
                else:
                    # compartments pool ~30 cells in the tiny cohort: more sampling noise
                    tolerance = 0.1 if compartment == "all" else 0.15
                    assert abs(delta) < tolerance, (patient.patient_id, compartment, name, delta)


def test_bulk_scores_follow_inflammation(tmp_path, collections):
    genes, inflammatory = _universe(TINY)
    patient = next(p for p in design_cohort(TINY) if any(s.assay == "bulk_rna" for s in p.samples))
    assert patient.inflammation_log2fc > 0
    scores = {}
    for sample in (s for s in patient.samples if s.assay == "bulk_rna"):
        path = tmp_path / f"{sample.sample_id}.tsv"
        write_bulk_counts(path, simulate_bulk_counts(sample, patient, TINY, genes, inflammatory))
        table = score_bulk_sample(read_bulk_counts(path), collections)
        assert (table["compartment"] == "all").all() and table["n_cells"].isna().all()
        scores[sample.day] = table.set_index("gene_set")["score"]
    (_, before), (_, after) = sorted(scores.items())
    for name in read_gmt(GMT):
        assert after[name] - before[name] > 0.15, name


# --- what gets scored -------------------------------------------------------------------------


def test_two_gene_signatures_are_scored(cohort, collections):
    adata = next(iter(cohort[0].values()))[1][-21]
    table = score_scrna_sample(adata, collections).set_index(["compartment", "gene_set"])
    for name in ("CD8_T_cells", "Cytolytic_activity"):
        row = table.loc[("all", name)]
        assert row["status"] == "ok" and row["n_genes"] == 2 and row["n_found"] == 2
        assert np.isfinite(row["score"]) and np.isfinite(row["singscore"])
    cyt = table.loc[("all", "cytolytic_activity")]
    assert cyt["score_method"] == "rooney_cyt" and cyt["score"] > 0
    signatures = set(read_signature_table(SIGNATURES))
    scored = set(table.loc["all"].index)
    assert signatures <= scored, "every signature has a row"
    # signatures on the whole sample only; hallmark sets in every compartment
    assert not signatures & set(table.loc["macrophage"].index)
    assert set(read_gmt(GMT)) <= set(table.loc["t_cell"].index)


def test_missing_and_partial_sets_are_reported(tmp_path, cohort):
    adata = next(iter(cohort[0].values()))[1][-21]
    gmt = tmp_path / "user.gmt"
    gmt.write_text(
        "ONE_GENE\tuser\tCD8A\n"
        "PARTIAL\tuser\tGZMA\tNOT_A_GENE\tPRF1\n"
        "ABSENT\tuser\tNOT_A_GENE\tALSO_NOT\n"
    )
    table = score_scrna_sample(adata, load_collections([gmt])).set_index(
        ["compartment", "gene_set"]
    )
    expression = log2_cpm(pseudobulk(adata))
    assert table.loc[("all", "ONE_GENE"), "score"] == pytest.approx(expression["CD8A"])
    partial = table.loc[("all", "PARTIAL")]
    assert (partial["n_genes"], partial["n_found"], partial["genes_missing"]) == (
        3,
        2,
        "NOT_A_GENE",
    )
    assert partial["score"] == pytest.approx(expression[["GZMA", "PRF1"]].mean())
    absent = table.loc[("all", "ABSENT")]
    assert absent["status"] == "missing" and np.isnan(absent["score"])
    assert absent["reason"] == "none of the 2 genes is in the matrix"


def test_small_compartment_is_missing_with_reason(cohort, collections):
    adata = next(iter(cohort[0].values()))[1][-21]
    table = score_scrna_sample(adata, collections, min_cells=10_000)
    small = table[table["compartment"] != "all"]
    assert (small["status"] == "missing").all()
    assert small["reason"].str.contains(r"\(< 10000\)").all()
    assert (table.loc[table["compartment"] == "all", "status"] == "ok").all()


# --- gene-set file errors ---------------------------------------------------------------------


def test_gmt_without_sets_is_an_error(tmp_path):
    path = tmp_path / "empty.gmt"
    path.write_text("\n\n")
    with pytest.raises(GeneSetError, match=r"empty.gmt: no usable gene set"):
        load_gmt(path)


def test_no_overlap_with_the_matrix_is_an_error(tmp_path, cohort, collections):
    adata = next(iter(cohort[0].values()))[1][-21]
    path = tmp_path / "mouse.gmt"
    path.write_text("MOUSE_SET\tdesc\tCd8a\tGzma\n")
    with pytest.raises(GeneSetError, match=r"mouse.gmt: none of its 2 genes"):
        score_scrna_sample(adata, [*collections, *load_collections([path])])
    with pytest.raises(GeneSetError, match=r"mouse\.gmt"):
        score_bulk_sample(pseudobulk(adata), load_collections([path]))


def test_set_defined_in_two_files_is_an_error(tmp_path):
    path = tmp_path / "again.gmt"
    path.write_text("HALLMARK_INFLAMMATORY_RESPONSE\tcopy\tIL1B\n")
    with pytest.raises(GeneSetError, match=r"again.gmt: gene set 'HALLMARK_INFLAMMATORY_RESPONSE'"):
        load_collections([GMT, path])


# --- the scores on hand-made profiles ---------------------------------------------------------


def test_singscore_known_values():
    expression = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0], index=list("ABCDE"))
    assert singscore(expression, ["D", "E"]) == pytest.approx(0.5)
    assert singscore(expression, ["A", "B"]) == pytest.approx(-0.5)
    assert singscore(expression, ["A", "E"]) == pytest.approx(0.0)
    ties = pd.Series([0.0, 0.0, 0.0, 4.0, 5.0], index=list("ABCDE"))  # ranks 1, 1, 1, 4, 5
    assert singscore(ties, ["B", "D"]) == pytest.approx((2.5 - 1.5) / 3 - 0.5)


def test_cytolytic_activity_and_mean_log2cpm_known_values(collections):
    counts = pd.Series({"GZMA": 30.0, "PRF1": 70.0, "CD8A": 100.0, "ACTB": 800.0})
    expected = np.sqrt((30_000 + 0.01) * (70_000 + 0.01))
    assert cytolytic_activity(counts) == pytest.approx(expected)
    assert np.isnan(cytolytic_activity(counts.drop("PRF1")))
    table = score_profile(counts, collections).set_index("gene_set")
    assert table.at["Cytolytic_activity", "score"] == pytest.approx(
        (np.log2(30_001) + np.log2(70_001)) / 2
    )
    assert table.at["cytolytic_activity", "score"] == pytest.approx(expected)
    assert table.at["CD8_T_cells", "n_found"] == 1  # CD8B absent: still scored
    metrics = scores_to_metrics(table.reset_index()).set_index("metric")["value"]
    assert metrics["all/cytolytic_activity/rooney_cyt"] == pytest.approx(expected)
    assert "all/CD8_T_cells/singscore" in metrics.index


def test_pseudobulk_sums_raw_counts(cohort):
    adata = next(iter(cohort[0].values()))[1][8]
    totals = pseudobulk(adata)
    assert totals.sum() == pytest.approx(float(adata.layers["counts"].sum()))
    mask = (adata.obs["cell_type"] == "cd8_t").to_numpy()
    gene = "CD8A"
    column = adata.layers["counts"][:, [adata.var_names.get_loc(gene)]]
    assert pseudobulk(adata, mask=mask)[gene] == pytest.approx(float(column[mask].sum()))


def test_pseudobulk_of_a_mask_equals_summing_the_selected_rows(cohort):
    """The rows are not copied, but the totals are those of ``counts[mask].sum(axis=0)``."""
    adata = next(iter(cohort[0].values()))[1][8]
    counts = adata.layers["counts"]
    rng = np.random.default_rng(0)
    masks = [rng.random(adata.n_obs) < fraction for fraction in (0.0, 0.05, 0.5, 0.95, 1.0)]
    masks.append(adata.obs["cell_type"].isin(["m1_like", "m2_like"]).to_numpy())
    for mask in masks:
        expected = np.asarray(counts[mask].sum(axis=0), dtype=np.float64).ravel()
        assert np.array_equal(pseudobulk(adata, mask=mask).to_numpy(), expected)
    dense = anndata.AnnData(counts.toarray(), var=adata.var)  # small: a dense matrix works too
    assert np.array_equal(
        pseudobulk(dense, layer=None, mask=masks[2]).to_numpy(),
        np.asarray(counts[masks[2]].sum(axis=0), dtype=np.float64).ravel(),
    )
    big = anndata.AnnData(sparse.csr_matrix(np.full((3, 2), 2**30, dtype=np.int32)))
    assert pseudobulk(big, layer=None, mask=np.array([True, False, True])).tolist() == [2**31] * 2
    with pytest.raises(ValueError, match="one value per cell"):
        pseudobulk(adata, mask=masks[2][:-1])


# --- composition metrics ----------------------------------------------------------------------


def test_composition_metrics(cohort):
    patients, _, _ = cohort
    _, by_day = next(iter(patients.values()))
    for adata in by_day.values():
        metrics = composition_metrics(adata).set_index("metric")["value"]
        truth = adata.obs["true_cell_type"]
        assert metrics["n_cells"] == adata.n_obs
        assert abs(metrics["fraction_of_cells/cd8_t"] - (truth == "cd8_t").mean()) <= 0.02
        treg, cd4 = (truth == "treg").sum(), (truth == "cd4_t").sum()
        assert abs(metrics["treg_share_of_cd4"] - treg / (treg + cd4)) <= 0.05
        m1, m2 = (truth == "macrophage_m1").sum(), (truth == "macrophage_m2").sum()
        assert abs(metrics["m2_share_of_macrophages"] - m2 / (m1 + m2)) <= 0.05
        assert np.isfinite(metrics["cd8_t/exhaustion/mean_log2cpm"])
        fractions = metrics[metrics.index.str.startswith("fraction_of_cells/")]
        assert fractions.sum() == pytest.approx(1.0)
        immune = metrics[metrics.index.str.startswith("fraction_of_immune/")]
        assert immune.sum() == pytest.approx(1.0)


def test_exhaustion_needs_cd8_cells(cohort):
    adata = next(iter(cohort[0].values()))[1][-21]
    result = exhaustion_score(adata, min_cells=10_000)
    assert np.isnan(result["score"]) and "CD8 T cell" in result["reason"]
    result = exhaustion_score(adata)
    assert result["n_found"] == len(EXHAUSTION_GENES) and result["score"] > 0


def test_erbb2_higher_in_her2_3plus_than_2plus(markers):
    params = dataclasses.replace(TINY, n_patients=2, templates=(0, 3))  # HER2 3+ and 2+
    genes, inflammatory = _universe(params)
    values = {}
    for patient in design_cohort(params):
        sample = next(s for s in patient.samples if s.assay == "scrna")
        adata = _process(
            _adata(simulate_biopsy(sample, patient, params, genes, inflammatory), genes), markers
        )
        values[patient.her2_ihc] = erbb2_in_tumour(adata)
        assert values[patient.her2_ihc]["n_tumour_cells"] > 50
    assert values["3+"]["mean_lognorm"] > values["2+"]["mean_lognorm"] + 0.5
    assert values["3+"]["fraction_positive"] > values["2+"]["fraction_positive"]


def test_erbb2_in_tumour_equals_the_tumour_rows_computation(cohort):
    """Same values as taking the tumour cells' rows first (which copied them)."""
    for _, by_day in cohort[0].values():
        for adata in by_day.values():
            counts = adata.layers["counts"]
            mask = (adata.obs["cell_type"].astype(str) == "tumour_epithelium").to_numpy()
            if not mask.any():
                continue
            tumour = counts[mask]
            column = np.asarray(tumour[:, [adata.var_names.get_loc("ERBB2")]].sum(axis=1)).ravel()
            totals = np.asarray(tumour.sum(axis=1), dtype=np.float64).ravel()
            lognorm = np.log1p(
                np.divide(column * 1e4, totals, out=np.zeros(mask.sum()), where=totals > 0)
            )
            result = erbb2_in_tumour(adata)
            assert result["n_tumour_cells"] == mask.sum()
            assert result["mean_lognorm"] == float(lognorm.mean())
            assert result["fraction_positive"] == float((column > 0).mean())


# --- sparsity ---------------------------------------------------------------------------------


def _sparse_classes(cls):
    yield cls
    for subclass in cls.__subclasses__():
        yield from _sparse_classes(subclass)


def test_densification_guard_works(monkeypatch):
    _guard_sparse(monkeypatch, [])
    matrix = sparse.random(50, 50, density=0.1, format="csr")
    for variant in (matrix, matrix.tocsc(), matrix.tocoo(), sparse.csr_array(matrix)):
        with pytest.raises(AssertionError, match="densified"):
            variant.toarray()
    assert matrix[:, [0]].toarray().shape == (50, 1)  # one column is fine


def _guard_sparse(monkeypatch, calls: list) -> None:
    """Make toarray/todense of any sparse matrix wider and taller than 20 fail."""

    def guard(original):
        def wrapper(self, *args, **kwargs):
            calls.append(self.shape)
            if min(self.shape) > 20:
                raise AssertionError(f"densified a {self.shape} sparse matrix")
            return original(self, *args, **kwargs)

        return wrapper

    for cls in set(_sparse_classes(_base._spbase)):
        for name in ("toarray", "todense"):
            if name in cls.__dict__:
                monkeypatch.setattr(cls, name, guard(cls.__dict__[name]))


def test_pipeline_never_densifies_the_matrix(monkeypatch, cohort, markers, collections):
    """toarray/todense on anything bigger than a few columns fails the test."""
    _, genes, inflammatory = cohort
    patient = design_cohort(TINY)[0]
    sample = next(s for s in patient.samples if s.assay == "scrna" and s.day > 0)
    adata = _adata(simulate_biopsy(sample, patient, TINY, genes, inflammatory), genes)
    calls: list = []
    _guard_sparse(monkeypatch, calls)
    processed = _process(adata, markers)
    scores = score_scrna_sample(processed, collections)
    metrics = composition_metrics(processed)
    assert sparse.issparse(processed.X) and sparse.issparse(processed.layers["counts"])
    assert (scores["status"] == "ok").all() and len(metrics)
    assert all(min(shape) <= 20 for shape in calls)
