"""Per-cell CAR table of a scRNA sample, joined to the cells of its count matrix.

One row per barcode: every cell of the count matrix (most with no CAR read) and every other
barcode with CAR reads (``in_count_matrix`` false: background or ambient barcodes, or cells the
matrix filtered out; reported, not hidden). Columns (:data:`CELL_COLUMNS`):

``sample_id``, ``barcode``; ``in_count_matrix``; ``car_reads`` and ``car_umis`` (all
constructs: distinct UMIs with at least one CAR read); ``car_positive`` (in the count matrix
and ``car_umis >= min_umis``); ``constructs`` (``name:umis`` of each construct with reads in the
barcode, ``;``-separated); ``feature_umis`` (the CAR feature of the count matrix, empty if it
has none).

:func:`add_cell_types` joins a (barcode -> cell type) annotation: CAR-M should be
macrophages, and CAR reads in other cells stay visible as such.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from carmscope.car.matrix_feature import MatrixCells
from carmscope.car.tally import ConstructTally

CELL_COLUMNS = (
    "sample_id",
    "barcode",
    "in_count_matrix",
    "car_reads",
    "car_umis",
    "car_positive",
    "constructs",
    "feature_umis",
)
NOT_ANNOTATED = "not_annotated"
"""Cell type of a count-matrix cell the annotation left out (e.g. removed by QC)."""
OUTSIDE_MATRIX = "outside_count_matrix"
"""Cell type of a CAR barcode that is not a cell of the count matrix."""


def _barcode_figures(
    names: list[str], tallies: list[ConstructTally]
) -> dict[str, tuple[int, set[tuple[str, str]], list[str]]]:
    """Per barcode: CAR reads, (construct, UMI) pairs and ``name:umis`` labels."""
    figures: dict[str, tuple[int, set, list[str]]] = {}
    for name, tally in zip(names, tallies, strict=True):
        for barcode, cell in tally.cells.items():
            reads, umis, labels = figures.setdefault(barcode, (0, set(), []))
            umis |= cell.umis
            labels.append(f"{name}:{len(cell.umis)}")
            figures[barcode] = (reads + cell.reads, umis, labels)
    return figures


def cell_table(
    sample_id: str,
    names: list[str],
    tallies: list[ConstructTally],
    matrix: MatrixCells | None,
    min_umis: int = 1,
) -> pd.DataFrame:
    """The per-cell CAR table of one sample (columns: :data:`CELL_COLUMNS`).

    Parameters
    ----------
    sample_id
        The sample.
    names, tallies
        Construct names and their tallies from the scan.
    matrix
        Cells of the count matrix and its CAR feature, or None without a count matrix.
    min_umis
        CAR UMIs for a cell to be CAR+.
    """
    figures = _barcode_figures(names, tallies)
    in_matrix = list(matrix.barcodes) if matrix is not None else []
    known = set(in_matrix)
    barcodes = in_matrix + sorted(set(figures) - known)
    empty = (0, set(), [])
    reads = np.array([figures.get(b, empty)[0] for b in barcodes], dtype=np.int64)
    umis = np.array([len(figures.get(b, empty)[1]) for b in barcodes], dtype=np.int64)
    inside = np.array([b in known for b in barcodes], dtype=bool)
    feature = matrix.feature_umis if matrix is not None else None
    feature_column = pd.array([pd.NA] * len(barcodes), dtype="Int64")
    if feature is not None:
        feature_column[: len(in_matrix)] = feature
    return pd.DataFrame(
        {
            "sample_id": sample_id,
            "barcode": barcodes,
            "in_count_matrix": inside,
            "car_reads": reads,
            "car_umis": umis,
            "car_positive": inside & (umis >= min_umis),
            "constructs": [";".join(figures.get(b, empty)[2]) for b in barcodes],
            "feature_umis": feature_column,
        },
        columns=list(CELL_COLUMNS),
    )


def construct_cell_figures(
    tally: ConstructTally, matrix: MatrixCells | None, min_umis: int = 1
) -> dict[str, object]:
    """Sample-level per-cell figures of one construct.

    Returns
    -------
    dict
        ``cells`` (count-matrix cells), ``car_positive_cells``, ``car_positive_fraction``,
        ``car_umis_in_cells``, ``car_umis_outside_cells`` and ``car_reads_outside_cells``
        (barcodes not in the count matrix); NA where there is no count matrix.
    """
    if matrix is None:
        return dict.fromkeys(
            (
                "cells",
                "car_positive_cells",
                "car_positive_fraction",
                "car_umis_in_cells",
                "car_umis_outside_cells",
                "car_reads_outside_cells",
            ),
            pd.NA,
        )
    known = set(matrix.barcodes)
    inside = {b: c for b, c in tally.cells.items() if b in known}
    outside = [c for b, c in tally.cells.items() if b not in known]
    positive = sum(len(cell.umis) >= min_umis for cell in inside.values())
    n_cells = len(matrix.barcodes)
    return {
        "cells": n_cells,
        "car_positive_cells": positive,
        "car_positive_fraction": positive / n_cells if n_cells else pd.NA,
        "car_umis_in_cells": sum(len(cell.umis) for cell in inside.values()),
        "car_umis_outside_cells": sum(len(cell.umis) for cell in outside),
        "car_reads_outside_cells": sum(cell.reads for cell in outside),
    }


def add_cell_types(
    cells: pd.DataFrame, annotation: pd.DataFrame, *, key: str = "cell_type"
) -> pd.DataFrame:
    """The per-cell CAR table with each barcode's cell type.

    Parameters
    ----------
    cells
        Per-cell CAR table (:func:`cell_table`).
    annotation
        Table with columns ``barcode`` and ``key`` (e.g. the expression annotation).
    key
        Column of ``annotation`` holding the cell type.

    Returns
    -------
    pandas.DataFrame
        ``cells`` with a ``cell_type`` column: the annotation's label,
        :data:`NOT_ANNOTATED` for count-matrix cells the annotation lacks and
        :data:`OUTSIDE_MATRIX` for other barcodes.

    Raises
    ------
    ValueError
        When ``annotation`` lacks a column or lists a barcode twice.
    """
    missing = [column for column in ("barcode", key) if column not in annotation.columns]
    if missing:
        raise ValueError(f"cell annotation lacks column(s) {missing}")
    if annotation["barcode"].duplicated().any():
        duplicate = annotation["barcode"][annotation["barcode"].duplicated()].iloc[0]
        raise ValueError(f"cell annotation lists barcode {duplicate!r} twice")
    labels = annotation.set_index("barcode")[key].astype(str)
    cell_type = cells["barcode"].map(labels)
    fallback = np.where(cells["in_count_matrix"], NOT_ANNOTATED, OUTSIDE_MATRIX)
    return cells.assign(cell_type=cell_type.where(cell_type.notna(), fallback))


def car_cells_by_type(cells: pd.DataFrame, types: Iterable[str] | None = None) -> pd.DataFrame:
    """CAR+ barcodes and their CAR UMIs per cell type (after :func:`add_cell_types`).

    Barcodes with CAR UMIs outside the count matrix are counted under
    :data:`OUTSIDE_MATRIX`, so no CAR read disappears from the tally.
    """
    carrying = cells[cells["car_umis"] > 0]
    table = (
        carrying.groupby("cell_type")
        .agg(car_barcodes=("barcode", "size"), car_umis=("car_umis", "sum"))
        .reset_index()
    )
    if types is not None:
        order = {name: i for i, name in enumerate(types)}
        table = table.sort_values(
            "cell_type", key=lambda s: s.map(order).fillna(len(order)), kind="stable"
        )
    return table.reset_index(drop=True)
