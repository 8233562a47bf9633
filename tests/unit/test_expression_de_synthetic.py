"""Paired pseudobulk DE and enrichment against the synthetic cohort's ground truth.

The generator raises a hash-chosen half of the hallmark inflammation genes after infusion, by
the patient's ``inflammation_log2fc`` (0.8-1.5), in macrophages, monocytes, DCs, T and NK cells
and tumour cells (``carmscope.synthetic.expression.INFLAMED_CELL_TYPES``), and leaves B,
plasma, fibroblast and endothelial cells unchanged. Pseudobulks are built from the simulated
(true) cell types of the good-quality cells, so this tests the DE step, not the annotation
(tested in test_expression_annotation.py).
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
from carmscope.synthetic.expression import INFLAMED_CELL_TYPES, simulate_biopsy
from carmscope.vocabulary import SCRNA
from tests.conftest import REPO

GMT = REPO / "resources/genesets/hallmark_inflammation.v7.0.gmt"
SIGNATURES = REPO / "resources/genesets/immune_signatures.tsv"
INFLAMED = ("macrophage_m2", "tumour_epithelium")
UNCHANGED = ("fibroblast", "b")


def _auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive outranks a negative (ties count half)."""
    ranks = pd.Series(scores).rank().to_numpy()
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


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
    return profiles, n_cells, design, simulation.inflammatory_genes


@pytest.mark.slow
@pytest.mark.parametrize("cell_type", INFLAMED + UNCHANGED)
def test_designed_inflammation_is_recovered_where_raised(cohort, cell_type):
    profiles, n_cells, design, inflammatory = cohort
    result = de.de_cell_type(profiles, n_cells, design, cell_type)
    assert result.tested, result.reason
    results = result.results.dropna(subset=["pvalue"])
    raised = results["gene"].isin(inflammatory).to_numpy()
    if cell_type not in INFLAMED_CELL_TYPES:
        raised[:] = False
    significant = (results["padj"] < 0.05).to_numpy()
    # false discovery proportion among the unchanged genes at FDR 0.05
    assert (significant & ~raised).sum() <= 0.10 * max(significant.sum(), 1)
    enrichment = ulm_enrichment(
        result.results.set_index("gene")["stat"], load_collections([GMT], [SIGNATURES])
    ).set_index("set")
    hallmarks = enrichment[enrichment["source"] == GMT.name.removesuffix(".gmt")]
    up = (hallmarks["padj"] < 0.05) & (hallmarks["direction"] == "up")
    if cell_type in INFLAMED_CELL_TYPES:
        assert _auroc(results["stat"].to_numpy(), raised) >= 0.9
        assert raised[significant].mean() >= 0.9
        assert up.all(), hallmarks[["score", "padj"]]
    else:
        assert not up.any(), hallmarks[["score", "padj"]]
