"""The vdj join, which repertoires are compared, and the patient-level figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carmscope.tcr.cells import annotate_cells, cd8_fraction, cell_type_counts
from carmscope.tcr.io import Repertoire, RepertoireError
from carmscope.tcr.patients import compared_samples, patient_row, tissue_changes


def _repertoire(barcodes, clones) -> Repertoire:
    cells = pd.DataFrame({"barcode": barcodes, "clone_id": clones})
    table = cells.groupby("clone_id").size().rename("count").reset_index()
    return Repertoire("vdj.csv", "10x_vdj", "cells", table, 0, cells)


def test_annotate_cells_by_barcode_and_counts():
    rep = _repertoire(["A-1", "B-1", "C-1"], ["x", "x", "y"])
    types = pd.DataFrame({"barcode": ["A-1", "B-1", "Z-1"], "cell_type": ["cd8_t", "cd4_t", "b"]})
    cells = annotate_cells(rep, types, "cells.tsv.gz")
    assert cells["cell_type"].tolist() == ["cd8_t", "cd4_t", ""]
    counts = cell_type_counts(cells).set_index("clone_id")
    assert counts.loc["x", "cells_cd8_t"] == 1 and counts.loc["y", "cells_unannotated"] == 1
    assert cd8_fraction(cells, {"x"}) == (0.5, 2)


def test_annotate_cells_without_gem_well_suffix():
    rep = _repertoire(["AAAC-1"], ["x"])
    types = pd.DataFrame({"barcode": ["AAAC"], "cell_type": ["cd8_t"]})
    assert annotate_cells(rep, types, "cells.tsv.gz")["cell_type"].tolist() == ["cd8_t"]


def test_vdj_barcodes_matching_no_cell_is_an_error():
    rep = _repertoire(["AAAC-1", "GGGT-1"], ["x", "y"])
    types = pd.DataFrame({"barcode": ["TTTT-1"], "cell_type": ["cd8_t"]})
    with pytest.raises(RepertoireError) as error:
        annotate_cells(rep, types, "results/expression/scrna/S1/cells.tsv.gz")
    message = str(error.value)
    assert "vdj.csv" in message and "column 'barcode'" in message and "line 2" in message
    assert "none of its 2 cell barcodes" in message and "S1/cells.tsv.gz" in message


def _sheet() -> pd.DataFrame:
    rows = [
        ("T0", "P1", -7, "tcr", "tumour", ""),
        ("T1", "P1", 14, "tcr", "tumour", ""),
        ("B0", "P1", 0, "tcr", "blood", ""),
        ("S0", "P1", -7, "scrna", "tumour", "s0.csv"),  # tumour has tcr: vdj not compared
        ("S1", "P1", 14, "scrna", "tumour", "s1.csv"),
        ("Q0", "P2", -7, "scrna", "tumour", "q0.csv"),
        ("Q1", "P2", 14, "scrna", "tumour", "q1.csv"),
        ("R1", "P3", 14, "tcr", "tumour", ""),
    ]
    frame = pd.DataFrame(rows, columns=["sample_id", "patient_id", "day", "assay", "tissue", "vdj"])
    return frame.set_index("sample_id")


def test_compared_samples_prefer_tcr_then_vdj():
    compared = compared_samples(_sheet())
    assert compared == {
        ("P1", "tumour"): ["T0", "T1"],
        ("P1", "blood"): ["B0"],
        ("P2", "tumour"): ["Q0", "Q1"],
        ("P3", "tumour"): ["R1"],
    }


def _clones(counts: dict[str, int]) -> pd.DataFrame:
    ids = list(counts)
    return pd.DataFrame(
        {"clone_id": ids, "cdr3_aa": ids, "v_gene": "TRBV2", "count": list(counts.values())}
    )


def test_only_post_or_only_baseline_is_not_evaluable_with_reason():
    samples = _sheet()
    clones = {
        "T0": _clones({"A": 100, "B": 5}),
        "T1": _clones({"A": 100, "B": 80}),
        "B0": _clones({"A": 9}),
        "R1": _clones({"A": 9}),
    }
    changes = {"tumour": tissue_changes(samples.loc[["T0", "T1"]], clones)}
    row = patient_row("P1", samples, {"tumour": ["T0", "T1"], "blood": ["B0"]}, clones, changes, {})
    assert row["tcr_tumour_expanded_clones"] == 1 and row["tcr_expansion"] is True
    assert row["tcr_blood_reason"] == "no post-infusion blood repertoire"
    assert row["tcr_tumour_expanded_in_blood"] == 0
    only_post = patient_row("P3", samples, {"tumour": ["R1"]}, clones, {}, {})
    assert only_post["tcr_tumour_reason"] == "no pre-infusion tumour repertoire"
    assert only_post["tcr_expansion"] is pd.NA and "tumour:" in only_post["tcr_expansion_reason"]
    assert np.isnan(only_post["tcr_tumour_clonality_baseline"])


def test_exhaustion_per_cell_clone_and_expanded_cd8():
    import anndata
    import scipy.sparse as sp

    from carmscope.tcr.cells import clone_exhaustion, exhaustion_of, exhaustion_scores

    genes = ["PDCD1", "HAVCR2", "CD3E"]
    x = sp.csr_matrix(np.array([[2.0, 0.0, 5.0], [1.0, 1.0, 0.0], [0.0, 0.0, 3.0]]))
    adata = anndata.AnnData(
        X=x, obs=pd.DataFrame(index=["A-1", "B-1", "C-1"]), var=pd.DataFrame(index=genes)
    )
    scores = exhaustion_scores(adata)  # mean of PDCD1 and HAVCR2 (the others are absent)
    assert scores.to_dict() == {"A-1": 1.0, "B-1": 1.0, "C-1": 0.0}
    cells = pd.DataFrame(
        {
            "barcode": ["A-1", "B-1", "C-1", "D-1"],
            "clone_id": ["x", "x", "y", "y"],
            "cell_type": ["cd8_t", "cd4_t", "cd8_t", "cd8_t"],
        }
    )
    cells["exhaustion"] = cells["barcode"].map(scores)
    assert clone_exhaustion(cells).set_index("clone_id")["mean_exhaustion"].to_dict() == {
        "x": 1.0,
        "y": 0.0,
    }
    assert exhaustion_of(cells, {"x"}) == (1.0, 0.0)  # CD8 only; D-1 unscored (QC)
