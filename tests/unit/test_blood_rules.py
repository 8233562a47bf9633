"""What the blood rules need (workflow/lib/wiring/blood.py) and the stage's figures."""

import dataclasses

import pandas as pd
import pytest
from wiring import blood as rules

from carmscope.blood.cohort import BloodSettings
from carmscope.blood.plots import cytokine_heatmap, kinetics_plot
from carmscope.blood.records import records_frame
from tests.config_schema import with_defaults


def samples():
    frame = pd.DataFrame(
        [
            ("B1", "P1", "pre", 0, -1.0, "car_pcr", "blood", "t/b1.tsv", ""),
            ("B2", "P1", "H24", 1, 24.0, "car_pcr", "blood", "t/b2.tsv", ""),
            ("C1", "P1", "pre", 0, -1.0, "cytokines", "blood", "t/cohort.tsv", ""),
            ("C2", "P1", "H24", 1, 24.0, "cytokines", "blood", "t/cohort.tsv", ""),
            ("R1", "P1", "H24", 1, 24.0, "bulk_rna", "blood", "", "r1.fastq.gz"),
            ("T1", "P1", "D8", 8, 192.0, "bulk_rna", "tumour", "t1.tsv", "t1.fastq.gz"),
        ],
        columns=[
            "sample_id",
            "patient_id",
            "timepoint",
            "day",
            "hours",
            "assay",
            "tissue",
            "counts",
            "reads",
        ],
    )
    return frame.set_index("sample_id")


def test_inputs_outputs_and_records():
    sheet = samples()
    assert rules.has_blood(sheet)
    files = rules.inputs(sheet, "results/car/summary.tsv")
    assert files["tables"] == ["t/b1.tsv", "t/b2.tsv", "t/cohort.tsv"]  # each table once
    # the four draws of P1 are inspected by one job, into one file
    assert files["verdicts"] == ["results/qc/inputs/blood/P1.tsv"]
    assert files["car_summary"] == "results/car/summary.tsv"  # R1: PBMC with reads
    assert "results/blood/kinetics.tsv" in rules.outputs(sheet)
    records = rules.sample_records(sheet)
    assert [r["sample_id"] for r in records] == ["B1", "B2", "C1", "C2", "R1"]
    back = records_frame(records)
    assert back.loc["B1", "hours"] == -1.0 and back["reads"].eq("").all()
    tumour_only = sheet.loc[["T1"]]
    assert not rules.has_blood(tumour_only) and rules.outputs(tumour_only) == []
    assert "car_summary" not in rules.inputs(sheet.drop(index="R1"), "x")


def test_settings_from_the_config_section():
    # the schema's defaults are the library's, but for half_life_min_adj_r2: the library keeps
    # PKNCA's 0 (carmscope.blood.nca.MIN_ADJ_R2), the pipeline's schema raises it to 0.7
    filled = BloodSettings(**rules.settings(with_defaults()["blood"]))
    assert filled == dataclasses.replace(BloodSettings(), half_life_min_adj_r2=0.7)
    section = {"blq_fraction": 0.25, "half_life_adj_r2_factor": 0.01}
    chosen = rules.settings(with_defaults({"blood": section})["blood"])
    settings = BloodSettings(**chosen)
    assert settings.blq_fraction == 0.25 and settings.adj_r2_factor == 0.01


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_figures_are_written(tmp_path, suffix):
    series = pd.DataFrame(
        {
            "patient_id": ["P1"] * 4,
            "sample_id": ["a", "b", "c", "d"],
            "measure": ["qpcr"] * 4,
            "analyte": ["CAR"] * 4,
            "hours": [-1.0, 2.0, 24.0, 72.0],
            "value": [0.0, 500.0, 120.0, 0.0],
            "unit": ["copies/ug gDNA"] * 4,
            "lloq": [50.0] * 4,
            "blq": [True, False, False, True],
        }
    )
    cytokines = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2"],
            "analyte": ["IL6", "IFNG", ""],
            "unit": ["pg/mL", "NPX", ""],
            "peak_fold": [40.0, 2.5, float("nan")],
        }
    )
    kinetics_plot(series, ["P1", "P2"], tmp_path / f"k.{suffix}")
    cytokine_heatmap(cytokines, ["P1", "P2"], tmp_path / f"c.{suffix}")
    assert (tmp_path / f"k.{suffix}").stat().st_size > 1000
    assert (tmp_path / f"c.{suffix}").stat().st_size > 1000
