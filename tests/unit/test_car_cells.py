"""The per-cell CAR table and its join with cell types (carmscope.car.cells)."""

import numpy as np
import pandas as pd
import pytest

from carmscope.car.cells import (
    CELL_COLUMNS,
    NOT_ANNOTATED,
    OUTSIDE_MATRIX,
    add_cell_types,
    car_cells_by_type,
    cell_table,
    construct_cell_figures,
)
from carmscope.car.coverage import CoverageAccumulator
from carmscope.car.matrix_feature import MatrixCells
from carmscope.car.tally import CellTally, ConstructTally
from carmscope.construct import read_construct


def tally(cells: dict[str, tuple[int, set[str]]]) -> ConstructTally:
    result = ConstructTally(CoverageAccumulator(read_construct()))
    result.cells = {
        barcode: CellTally(reads, set(umis)) for barcode, (reads, umis) in cells.items()
    }
    return result


@pytest.fixture
def matrix():
    return MatrixCells(["A-1", "B-1", "C-1"], {"CAR_anti_HER2": np.array([2, 0, 1])})


def test_cells_of_the_matrix_and_other_car_barcodes_are_listed(matrix):
    her2 = tally({"A-1": (3, {"u1", "u2"}), "Z-1": (1, {"u9"})})
    other = tally({"A-1": (1, {"u1"}), "B-1": (1, set())})
    table = cell_table("s1", ["her2", "other"], [her2, other], matrix)
    assert list(table.columns) == list(CELL_COLUMNS)
    rows = table.set_index("barcode")
    assert list(rows.index) == ["A-1", "B-1", "C-1", "Z-1"]
    assert rows.loc["A-1", "car_reads"] == 4 and rows.loc["A-1", "car_umis"] == 2
    assert rows.loc["A-1", "constructs"] == "her2:2;other:1"
    assert rows.loc["B-1", "car_reads"] == 1 and rows.loc["B-1", "car_umis"] == 0
    assert not rows.loc["Z-1", "in_count_matrix"] and not rows.loc["Z-1", "car_positive"]
    assert list(rows["car_positive"]) == [True, False, False, False]
    assert rows.loc["A-1", "feature_umis"] == 2 and pd.isna(rows.loc["Z-1", "feature_umis"])


def test_without_a_matrix_only_car_barcodes_are_listed():
    table = cell_table("s1", ["her2"], [tally({"A-1": (1, {"u"})})], None)
    assert list(table["barcode"]) == ["A-1"]
    assert not table["car_positive"].any() and table["feature_umis"].isna().all()


def test_sample_figures_split_cells_from_other_barcodes(matrix):
    figures = construct_cell_figures(
        tally({"A-1": (3, {"u1", "u2"}), "C-1": (1, {"u3"}), "Z-1": (2, {"u9"})}), matrix, 2
    )
    assert figures == {
        "cells": 3,
        "car_positive_cells": 1,
        "car_positive_fraction": 1 / 3,
        "car_umis_in_cells": 3,
        "car_umis_outside_cells": 1,
        "car_reads_outside_cells": 2,
    }


def test_cell_types_are_joined_and_nothing_is_hidden(matrix):
    table = cell_table(
        "s1", ["her2"], [tally({"A-1": (2, {"u"}), "B-1": (1, {"v"}), "Z-1": (1, {"w"})})], matrix
    )
    annotation = pd.DataFrame({"barcode": ["A-1", "C-1"], "cell_type": ["macrophage_m1", "cd8_t"]})
    typed = add_cell_types(table, annotation).set_index("barcode")["cell_type"]
    assert typed.to_dict() == {
        "A-1": "macrophage_m1",
        "B-1": NOT_ANNOTATED,
        "C-1": "cd8_t",
        "Z-1": OUTSIDE_MATRIX,
    }
    by_type = car_cells_by_type(add_cell_types(table, annotation)).set_index("cell_type")
    assert by_type["car_umis"].sum() == 3
    assert set(by_type.index) == {"macrophage_m1", NOT_ANNOTATED, OUTSIDE_MATRIX}


def test_bad_annotations_are_refused(matrix):
    table = cell_table("s1", ["her2"], [tally({})], matrix)
    with pytest.raises(ValueError, match="lacks"):
        add_cell_types(table, pd.DataFrame({"barcode": ["A-1"]}))
    with pytest.raises(ValueError, match="twice"):
        add_cell_types(table, pd.DataFrame({"barcode": ["A-1", "A-1"], "cell_type": ["b", "b"]}))
