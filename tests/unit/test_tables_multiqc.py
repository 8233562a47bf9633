"""MultiQC custom-content tables of the per-sample QC."""

import pandas as pd
import yaml

from carmscope.tables.multiqc import SECTIONS, file_name, section_table, write_sections


def _samples():
    return pd.DataFrame(
        {
            "sample_id": ["S1", "S2", "P1"],
            "input.n_cells": [1500.0, 900.0, None],
            "qc.cells_before": [1500.0, 900.0, None],
            "qc.cells_after": [1400.0, 850.0, None],
            "car.reads": [12.0, None, None],
            "car.reads_per_million": [24201.35527589545, None, None],
            "ctdna.depth": [None, None, 5321.0],
            "indication": ["=1+2", "breast", "lung"],
        }
    )


def test_each_section_has_its_samples_and_columns():
    car = next(s for s in SECTIONS if s.id == "carmscope_car")
    table = section_table(_samples(), car)
    assert list(table["Sample"]) == ["S1"]
    assert list(table.columns) == ["Sample", "car.reads", "car.reads_per_million"]
    ctdna = next(s for s in SECTIONS if s.id == "carmscope_ctdna")
    assert list(section_table(_samples(), ctdna)["Sample"]) == ["P1"]


def test_files_carry_multiqc_headers_and_printed_numbers(tmp_path):
    paths = write_sections(_samples(), tmp_path)
    assert [p.rsplit("/", 1)[-1] for p in paths] == [file_name(s) for s in SECTIONS]
    text = (tmp_path / "carmscope_car_mqc.tsv").read_text()
    header = yaml.safe_load("\n".join(line[2:] for line in text.splitlines() if line[0] == "#"))
    assert header["id"] == "carmscope_car" and header["plot_type"] == "table"
    assert header["section_name"] == "carmscope: CAR reads"
    assert "CAR" in header["headers"]["car.reads"]["description"]
    rows = [line for line in text.splitlines() if not line.startswith("#")]
    assert rows[0] == "Sample\tcar.reads\tcar.reads_per_million"
    assert rows[1] == "S1\t12\t24201.4"
    qc = pd.read_csv(tmp_path / "carmscope_scrna_qc_mqc.tsv", sep="\t", comment="#")
    assert list(qc["qc.cells_after"]) == [1400, 850]
