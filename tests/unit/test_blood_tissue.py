"""PBMC RNA samples (tissue blood) feed the blood stage, never the tumour biopsy answers."""

import pandas as pd

from carmscope.expression.paired import baseline_post_pairs
from carmscope.tables.patients import biopsy_pairs


def samples(with_tissue=True):
    frame = pd.DataFrame(
        {
            "sample_id": ["T0", "P0", "P1", "T1"],
            "patient_id": ["A"] * 4,
            "timepoint": ["screening", "pre", "H2", "D8"],
            "day": [-21, 0, 1, 8],
            "assay": ["bulk_rna"] * 4,
            "tissue": ["tumour", "blood", "blood", "tumour"],
        }
    ).set_index("sample_id")
    return frame if with_tissue else frame.drop(columns="tissue")


def test_pairs_are_tumour_biopsies():
    pair = baseline_post_pairs(samples(), "bulk_rna").iloc[0]
    assert (pair["baseline_sample"], pair["post_sample"]) == ("T0", "T1")
    assert biopsy_pairs(samples(), ["bulk_rna"]).loc["A", "biopsy_post_sample"] == "T1"
    # without the column every RNA sample is a biopsy, as before
    pair = baseline_post_pairs(samples(with_tissue=False), "bulk_rna").iloc[0]
    assert (pair["baseline_sample"], pair["post_sample"]) == ("P0", "P1")
