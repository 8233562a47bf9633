"""Pairs of a paired pseudobulk test and the count matrices they select.

Pairs
    Per patient and assay, the baseline sample (:func:`carmscope.vocabulary.baseline`: the last
    pre-infusion sample) and the first post-infusion sample
    (:func:`carmscope.vocabulary.first_post_infusion`). Patients without both are left out.
    For one cell type a pair is used when both of its profiles have at least ``min_cells``
    cells (:mod:`carmscope.expression.de` leaves a cell type with fewer than ``min_pairs``
    usable pairs untested, with the reason).
Gene filter
    A gene is tested when it has at least ``min_count`` counts in at least as many samples as
    there are pairs (the size of the smaller time group): the pre-filter of the DESeq2 vignette,
    ``rowSums(counts >= 10) >= smallestGroupSize``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from carmscope import vocabulary
from carmscope.celltypes import CELL_TYPES
from carmscope.expression.pseudobulk import ALL

BASELINE, POST = "baseline", "post"
"""Levels of ``time`` in the design (``baseline`` is the reference)."""
DESIGN_COLUMNS = ("sample_id", "patient_id", "time", "group")
CONFIG_KEY = "expression.de.cell_types"


class DifferentialExpressionError(ValueError):
    """A setting or input the analysis cannot use; the message names the key or file."""


def check_cell_types(names: Sequence[str] | None, key: str = CONFIG_KEY) -> list[str]:
    """The cell types to test: ``names``, or every annotated type and ``all`` when None.

    Raises
    ------
    DifferentialExpressionError
        A name the annotation never produces (the config key is named).
    """
    allowed = [*CELL_TYPES, ALL]
    if names is None:
        return allowed
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise DifferentialExpressionError(
            f"config {key}: {', '.join(map(repr, unknown))} is not a cell type the annotation "
            f"produces; use some of {', '.join(allowed)}"
        )
    return list(dict.fromkeys(names))


# --- pairs and matrices -----------------------------------------------------------------------


def paired_design(
    samples: pd.DataFrame,
    patients: pd.DataFrame | None = None,
    group_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """Baseline and first post-infusion sample of every patient that has both.

    Parameters
    ----------
    samples
        One assay's samples, indexed by sample ID in file order, with ``patient_id`` and
        ``hours`` or ``day``.
    patients
        Indexed by patient ID, with the ``group_columns``.
    group_columns
        Patient columns copied into the design; the first one is also ``group``.

    Returns
    -------
    pandas.DataFrame
        :data:`DESIGN_COLUMNS` then ``group_columns``; baseline then post of each patient,
        patients in first-seen order.

    Raises
    ------
    DifferentialExpressionError
        A group column missing from the patients table.
    """
    for column in group_columns:
        if patients is None or column not in patients.columns:
            raise DifferentialExpressionError(
                f"config expression.de.group_columns: the patients table has no column {column!r}"
            )
    rows = []
    for patient_id, group in samples.groupby("patient_id", sort=False):
        before, after = vocabulary.baseline(group), vocabulary.first_post_infusion(group)
        if before is None or after is None:
            continue
        extra = {
            column: "" if pd.isna(value := patients.loc[patient_id, column]) else str(value)
            for column in group_columns
        }
        group_value = extra[group_columns[0]] if group_columns else ""
        for sample_id, time in ((before, BASELINE), (after, POST)):
            rows.append(
                {
                    "sample_id": sample_id,
                    "patient_id": str(patient_id),
                    "time": time,
                    "group": group_value,
                    **extra,
                }
            )
    return pd.DataFrame(rows, columns=[*DESIGN_COLUMNS, *group_columns])


def usable_pairs(
    design: pd.DataFrame,
    n_cells: Mapping[str, pd.Series],
    cell_type: str,
    min_cells: int,
) -> tuple[pd.DataFrame, list[str]]:
    """The pairs whose two profiles of ``cell_type`` have at least ``min_cells`` cells.

    Parameters
    ----------
    design
        :func:`paired_design`.
    n_cells
        Sample ID -> cells per profile (NaN for bulk samples: always usable).
    cell_type
        Profile name.
    min_cells
        Fewest cells of a usable profile.

    Returns
    -------
    design, notes
        The design of the usable pairs, and one note per patient left out.
    """
    keep, notes = [], []
    for patient_id, rows in design.groupby("patient_id", sort=False):
        problems = []
        for sample_id in rows["sample_id"]:
            cells = n_cells[sample_id].get(cell_type, 0.0)
            if not pd.isna(cells) and cells < min_cells:
                problems.append(f"{int(cells)} cell(s) in {sample_id}")
        if problems:
            notes.append(f"{patient_id}: {', '.join(problems)} (< {min_cells})")
        else:
            keep.append(patient_id)
    return design[design["patient_id"].isin(keep)].reset_index(drop=True), notes


def count_matrix(
    profiles: Mapping[str, pd.DataFrame], design: pd.DataFrame, cell_type: str
) -> pd.DataFrame:
    """Genes x samples of one profile over the design's samples (genes in the first sample's
    order; a gene absent from a sample counts 0).

    Raises
    ------
    DifferentialExpressionError
        A sample has no such profile.
    """
    columns = {}
    for sample_id in design["sample_id"]:
        table = profiles[sample_id]
        if cell_type not in table.columns:
            raise DifferentialExpressionError(
                f"sample {sample_id} has no {cell_type!r} pseudobulk profile"
            )
        columns[sample_id] = table[cell_type]
    matrix = pd.DataFrame(columns).fillna(0).astype(np.int64)
    matrix.index.name = "gene"
    return matrix


def filter_genes(counts: pd.DataFrame, min_count: int, min_samples: int) -> pd.DataFrame:
    """Genes with at least ``min_count`` counts in at least ``min_samples`` samples."""
    return counts[(counts >= min_count).sum(axis=1) >= min_samples]
