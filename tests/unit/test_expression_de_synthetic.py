"""Paired pseudobulk DE and enrichment against the synthetic cohort's ground truth.

The generator raises a hash-chosen half of the hallmark inflammation genes after infusion
(``Simulation.inflammatory_genes``, written to ``truth/inflammatory_genes.txt``), by the
patient's ``inflammation_log2fc`` (0.8-1.5), in macrophages, monocytes, DCs, T and NK cells and
tumour cells (``carmscope.synthetic.expression.INFLAMED_CELL_TYPES``; IFNG also in CD8 T and NK
cells), and leaves B, plasma, fibroblast and endothelial cells unchanged:
``carmscope.synthetic.expression.raised_genes`` gives the truth of one cell type. Pseudobulks
are built from the simulated (true) cell types of the good-quality cells, so this tests the DE
step, not the annotation (tested in test_expression_annotation.py).

Cost: the cohort (6 patients x 2 biopsies of 600 cells, 2,686 genes) is simulated and
aggregated once, and each cell type is fitted once for all the checks, without the apeglm
shrinkage (the checks use the Wald statistic and adjusted p-values, which shrinkage does not
change); about 5 s of CPU per cell type, so the module belongs to the default suite.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from carmscope.expression import de
from carmscope.expression.enrichment import ulm_enrichment
from carmscope.expression.pseudobulk import pseudobulk_by_cell_type
from carmscope.expression.scoring import load_collections
from carmscope.synthetic.cohort import prepare
from carmscope.synthetic.design import params_from_config
from carmscope.synthetic.expression import INFLAMED_CELL_TYPES, raised_genes, simulate_biopsy
from carmscope.vocabulary import SCRNA
from tests.conftest import REPO

GMT = REPO / "resources/genesets/hallmark_inflammation.v7.0.gmt"
SIGNATURES = REPO / "resources/genesets/immune_signatures.tsv"
INFLAMED = ("macrophage_m2", "tumour_epithelium", "cd8_t")
UNCHANGED = ("fibroblast", "b", "endothelium")
FDR = 0.05


def _auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive outranks a negative (ties count half)."""
    ranks = pd.Series(scores).rank().to_numpy()
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_auroc_of_a_known_ranking():
    positive = np.array([True, False, True, False])
    assert _auroc(np.array([4.0, 3.0, 2.0, 1.0]), positive) == 0.75
    assert _auroc(np.array([2.0, 1.0, 2.0, 1.0]), positive) == 1.0


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Six CAR+ patients (CT-0508 templates 0-5), 600 cells a biopsy: profiles and truth."""
    params = params_from_config(
        {"preset": "tiny", "n_patients": 6, "templates": None, "cells_per_biopsy": 600}
    )
    simulation = prepare(
        params,
        tmp_path_factory.mktemp("de_cohort"),
        construct_fasta=REPO / "resources/car/anti_her2_car.fa",
        segments_tsv=REPO / "resources/car/anti_her2_car.segments.tsv",
        gmt_paths=[GMT],
        signatures_tsv=SIGNATURES,
    )
    profiles, n_cells, rows = {}, {}, []
    for patient in simulation.patients.values():
        assert patient.car_positive
        for sample in patient.samples:
            if sample.assay != SCRNA:
                continue
            biopsy = simulate_biopsy(
                sample, patient, params, simulation.genes, simulation.inflammatory_genes
            )
            good = ~biopsy.cells["low_quality"].to_numpy()
            cells = ad.AnnData(
                X=biopsy.matrix[good].astype(np.float32),
                obs=biopsy.cells.loc[good, ["cell_type"]],
            )
            cells.var_names = biopsy.genes["gene_symbol"].to_numpy()
            profiles[sample.sample_id], n_cells[sample.sample_id] = pseudobulk_by_cell_type(
                cells, layer=None
            )
            rows.append(
                {"sample_id": sample.sample_id, "patient_id": patient.patient_id, "day": sample.day}
            )
    design = de.paired_design(pd.DataFrame(rows).set_index("sample_id"))
    assert design["patient_id"].nunique() == 6
    return profiles, n_cells, design, simulation.inflammatory_genes


@pytest.fixture(scope="module")
def tested(cohort):
    """Cell type -> (tested genes with their truth, hallmark enrichment), each fitted once."""
    profiles, n_cells, design, inflammatory = cohort
    collections = load_collections([GMT], [SIGNATURES])
    out = {}
    for cell_type in INFLAMED + UNCHANGED:
        result = de.de_cell_type(profiles, n_cells, design, cell_type, de.DESettings(shrink=False))
        assert result.tested, result.reason
        results = result.results.dropna(subset=["pvalue"]).reset_index(drop=True)
        results["raised"] = results["gene"].isin(raised_genes(cell_type, inflammatory))
        enrichment = ulm_enrichment(result.results.set_index("gene")["stat"], collections)
        hallmarks = enrichment[enrichment["source"] == GMT.name.removesuffix(".gmt")]
        out[cell_type] = results, hallmarks.set_index("set")
    return out


def test_the_truth_raises_genes_only_in_the_inflamed_cell_types(tested):
    for cell_type in INFLAMED:
        assert cell_type in INFLAMED_CELL_TYPES
        assert tested[cell_type][0]["raised"].sum() >= 50
    for cell_type in UNCHANGED:
        assert cell_type not in INFLAMED_CELL_TYPES
        assert not tested[cell_type][0]["raised"].any()


@pytest.mark.parametrize("cell_type", INFLAMED)
def test_raised_genes_are_recovered_where_raised(tested, cell_type):
    results, _ = tested[cell_type]
    raised = results["raised"].to_numpy()
    assert _auroc(results["stat"].to_numpy(), raised) >= 0.9
    assert (results["padj"] < FDR).sum() > 0


@pytest.mark.parametrize("cell_type", INFLAMED + UNCHANGED)
def test_false_discovery_proportion_at_fdr_005(tested, cell_type):
    results, _ = tested[cell_type]
    significant = (results["padj"] < FDR).to_numpy()
    false = significant & ~results["raised"].to_numpy()
    assert false.sum() <= 0.10 * max(significant.sum(), 1), results[false].head()


@pytest.mark.parametrize("cell_type", INFLAMED)
def test_inflammation_sets_enriched_upwards_where_raised(tested, cell_type):
    _, hallmarks = tested[cell_type]
    assert len(hallmarks) == 5
    up = (hallmarks["padj"] < FDR) & (hallmarks["direction"] == "up")
    assert up.all(), hallmarks[["score", "padj"]]


@pytest.mark.parametrize("cell_type", UNCHANGED)
def test_inflammation_sets_not_enriched_where_unchanged(tested, cell_type):
    _, hallmarks = tested[cell_type]
    assert len(hallmarks) == 5
    up = (hallmarks["padj"] < FDR) & (hallmarks["direction"] == "up")
    assert not up.any(), hallmarks[["score", "padj"]]
