"""Data dictionary, workbook, rule settings and report figures of the result tables."""

import itertools
import os

import openpyxl
import pandas as pd
import pytest

from carmscope.tables import dictionary
from carmscope.tables.figures import cohort_overview, patient_panels
from carmscope.tables.patients import TableSettings, patient_table
from carmscope.tables.samples import sample_table
from carmscope.tables.settings import TablesConfigError, table_settings
from carmscope.tables.summary import cohort_summary
from carmscope.tables.workbook import number_text, write_tsv, write_workbook
from tests.config_schema import with_defaults
from tests.unit.test_tables import SETS, outputs, sheets


@pytest.fixture
def tables():
    settings = TableSettings(inflammation_sets=SETS)
    patients = patient_table(outputs(), settings)
    return {
        "patients": patients,
        "samples": sample_table(outputs()),
        "cohort_summary": cohort_summary(patients, settings),
    }


def test_docs_outputs_md_is_rendered_from_the_dictionary(repo):
    committed = (repo / "docs/outputs.md").read_text()
    assert committed == dictionary.render_markdown(), (
        "docs/outputs.md is stale: .venv/bin/python -m carmscope.tables dictionary > "
        "docs/outputs.md"
    )


def test_patterns_match_families_of_columns():
    assert dictionary.describe("patients", "HALLMARK_X_delta").name == "<SET>_delta"
    assert dictionary.describe("patients", "car_detected").name == "car_detected"
    assert dictionary.describe("samples", "expr.all.CD8_T_cells.singscore").name == "expr.<metric>"
    assert dictionary.describe("samples", "car.reads").name == "car.reads"
    assert dictionary.describe("cohort_summary", "no_such_column") is None


def test_every_column_of_the_tables_is_documented(tables):
    clinical = list(sheets()[0].columns)
    for name, table in tables.items():
        assert dictionary.undocumented(name, list(table.columns), clinical) == [], name
    assert dictionary.undocumented("patients", ["made_up"]) == ["made_up"]


def test_tsv_writes_missing_values_as_empty_cells(tables, tmp_path):
    path = tmp_path / "patients.tsv"
    write_tsv(tables["patients"], path)
    back = pd.read_csv(path, sep="\t", keep_default_na=False, dtype=str).set_index("patient_id")
    assert back.loc["P3", "car_detected"] == ""
    assert back.loc["P1", "car_detected"] == "True"
    assert back.loc["P4", "ctdna_baseline_mean_vaf"] == ""


def test_numbers_are_written_by_value_not_by_column_dtype(tmp_path):
    with_gap = pd.DataFrame({"n": [12.0, float("nan")], "x": [0.1, 2.5]})
    without = pd.DataFrame({"n": [12], "x": [0.1]})
    write_tsv(with_gap, tmp_path / "a.tsv")
    write_tsv(without, tmp_path / "b.tsv")
    a, b = (tmp_path / "a.tsv").read_text(), (tmp_path / "b.tsv").read_text()
    assert a.splitlines()[1] == b.splitlines()[1] == "12\t0.1"
    assert a.splitlines()[2] == "\t2.5"
    assert number_text(24201.35527589545) == "24201.4"


def test_workbook_has_every_table_and_the_dictionary(tables, tmp_path):
    path = tmp_path / "results.xlsx"
    write_workbook(tables, path)
    sheets_read = pd.read_excel(path, sheet_name=None)
    assert list(sheets_read) == ["patients", "samples", "cohort_summary", "dictionary"]
    patients = sheets_read["patients"].set_index("patient_id")
    assert list(patients.index) == ["P1", "P2", "P3", "P4"]
    assert pd.isna(patients.loc["P3", "car_detected"])
    assert patients.loc["P1", "car_reads_per_million"] == 2500
    assert len(sheets_read["dictionary"]) == len(dictionary.COLUMNS)
    assert os.listdir(tmp_path) == ["results.xlsx"]


def test_control_characters_are_dropped_not_fatal(tables, tmp_path):
    pasted = dict(tables, patients=tables["patients"].assign(note="pasted\x01 text"))
    write_workbook(pasted, tmp_path / "results.xlsx")
    back = pd.read_excel(tmp_path / "results.xlsx", sheet_name="patients")
    assert (back["note"] == "pasted text").all()


def test_failed_workbook_leaves_nothing(tables, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(openpyxl.Workbook, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        write_workbook(tables, tmp_path / "results.xlsx")
    assert os.listdir(tmp_path) == []


def config(repo, **tables_section):
    return with_defaults(
        {
            "patients": "patients.tsv",
            "genesets": {"gmt": [str(repo / "resources/genesets/hallmark_inflammation.v7.0.gmt")]},
            "tables": tables_section,
        }
    )


def settings(config, patients):
    """The tables settings as tables.smk builds them."""
    return table_settings(config["tables"], config["genesets"]["gmt"], patients, config["patients"])


def test_settings_take_every_gmt_set_by_default_and_check_names(repo):
    patients, _ = sheets()
    chosen = settings(config(repo), patients)
    assert "HALLMARK_INFLAMMATORY_RESPONSE" in chosen.inflammation_sets
    assert chosen.strata == ("her2_ihc", "dosing")
    one = settings(config(repo, inflammation_sets=["HALLMARK_IL6_JAK_STAT3_SIGNALING"]), patients)
    assert one.inflammation_sets == ("HALLMARK_IL6_JAK_STAT3_SIGNALING",)
    with pytest.raises(TablesConfigError, match=r"HALLMARK_NOPE.*available"):
        settings(config(repo, inflammation_sets=["HALLMARK_NOPE"]), patients)
    with pytest.raises(TablesConfigError, match=r"tables\.strata: arm .*patients\.tsv"):
        settings(config(repo, strata=["arm"]), patients)


def test_figures_are_drawn_for_every_patient(tables, tmp_path):
    overview = tmp_path / "overview.png"
    cohort_overview(tables["patients"], tables["cohort_summary"], overview)
    assert overview.stat().st_size > 10_000
    paths = patient_panels(
        tables["patients"], tables["samples"], SETS, "mean_log2cpm", tmp_path / "patients"
    )
    assert sorted(os.listdir(tmp_path / "patients")) == [f"P{i}.png" for i in range(1, 5)]
    assert all(os.path.getsize(path) > 10_000 for path in paths)


@pytest.mark.parametrize(
    ("value", "p_value", "text"),
    [
        (1500.0, False, "1500"),
        (0.044351999999999996, False, "0.044352"),
        (1 / 3, False, "0.333333"),
        (-73.63266598580684, False, "-73.6327"),
        (3.2e-7, False, "3.2e-07"),
        (1.234567891e-5, False, "1.23457e-05"),
        (float("nan"), False, ""),
        (0.044351999999999996, True, "4.44e-02"),
        (1.0, True, "1.00e+00"),
    ],
)
def test_numbers_print_at_sensible_precision(value, p_value, text):
    assert number_text(value, p_value=p_value) == text


def test_p_value_columns_come_from_the_dictionary():
    from carmscope.tables.formatting import is_p_value

    assert is_p_value("p_value") and is_p_value("q_value") and is_p_value("car.p_value")
    assert is_p_value("ctdna.p_fall")
    assert not is_p_value("fraction") and not is_p_value("ci_low")


def test_formula_like_texts_are_escaped_in_tsv_and_workbook(tables, tmp_path):
    hostile = ["=1+2", "+SUM(A1)", "-cmd|' /C calc'!A0", "@SUM(1)", "breast"]
    patients = tables["patients"].assign(indication=hostile[: len(tables["patients"])])
    patients.loc[patients.index[0], "dosing"] = "-2.5"  # a number written as text stays
    write_tsv(patients, tmp_path / "patients.tsv")
    write_workbook(dict(tables, patients=patients), tmp_path / "results.xlsx")
    back = pd.read_csv(tmp_path / "patients.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert list(back["indication"]) == ["'=1+2", "'+SUM(A1)", "'-cmd|' /C calc'!A0", "'@SUM(1)"]
    assert back.loc[0, "dosing"] == "-2.5"
    sheet = openpyxl.load_workbook(tmp_path / "results.xlsx")["patients"]
    column = [c.value for c in sheet[1]].index("indication") + 1
    cells = [sheet.cell(row=r, column=column) for r in range(2, 6)]
    assert [c.value for c in cells] == list(back["indication"])
    assert all(c.data_type == "s" for c in cells)  # text, not formula ("f")


def test_workbook_reads_well_and_matches_the_tsv(tables, tmp_path):
    path = tmp_path / "results.xlsx"
    write_workbook(tables, path)
    book = openpyxl.load_workbook(path)
    sheet = book["patients"]
    assert sheet.freeze_panes == "B2"
    headers = {c.value: c for c in sheet[1]}
    assert "Patient ID" in headers["patient_id"].comment.text
    width = sheet.column_dimensions["A"].width
    assert 8 <= width <= 60
    for name, table in tables.items():
        write_tsv(table, tmp_path / f"{name}.tsv")
        tsv = pd.read_csv(tmp_path / f"{name}.tsv", sep="\t")
        excel = pd.read_excel(path, sheet_name=name)
        pd.testing.assert_frame_equal(tsv, excel, check_dtype=False)


def test_same_tables_give_the_same_workbook_bytes(tables, tmp_path):
    import time

    write_workbook(tables, tmp_path / "a.xlsx")
    time.sleep(1.1)
    write_workbook(tables, tmp_path / "b.xlsx")
    assert (tmp_path / "a.xlsx").read_bytes() == (tmp_path / "b.xlsx").read_bytes()


@pytest.mark.parametrize("n", [2, 4, 6, 12])
def test_car_panel_tick_labels_do_not_overlap(n):
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from carmscope.tables.figures import _car_axes

    biopsies = pd.DataFrame(
        {
            "sample_id": [f"CARM-0123_timepoint{i}_scrna_long" for i in range(n)],
            "timepoint": (["screening", "progression"] * n)[:n],
            "day": np.arange(n) * 30 - 7,
            "assay": (["scrna", "bulk_rna"] * n)[:n],
            "car.reads_per_million": np.linspace(0, 500, n),
            "car.detected": [i % 3 != 0 for i in range(n)],
        }
    )
    figure = Figure(figsize=(12, 8.5))
    axes = figure.subplots(2, 2)[0, 0]
    _car_axes(axes, biopsies)
    FigureCanvasAgg(figure).draw()
    renderer = figure.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in axes.get_xticklabels()]
    assert len(boxes) == n
    for first, second in itertools.pairwise(boxes):
        assert not first.overlaps(second), (first, second)
