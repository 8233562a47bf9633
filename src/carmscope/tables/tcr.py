"""The T cell receptor block of the per-patient table (columns documented in dictionary.py).

The figures come from the ``tcr`` stage's per-patient table (``results/tcr/patients.tsv``,
:mod:`carmscope.tcr.patients`); a patient without any repertoire gets empty figures with the
reasons the stage gives a patient without repertoires (:func:`carmscope.tcr.patients.patient_row`),
whether or not the cohort has any.
"""

from __future__ import annotations

import pandas as pd

from carmscope.tables.steps import StepOutputs, as_bool, as_float, as_int, as_text
from carmscope.tcr.patients import patient_row
from carmscope.vocabulary import TISSUES

FIGURES = ("clonality_baseline", "clonality_post", "clonality_delta", "overlap")
COUNTS = ("expanded_clones", "new_clones")
TCR_BOOLEAN_COLUMNS = ("tcr_expansion",)
TCR_INTEGER_COLUMNS = (
    *(f"tcr_{t}_{c}" for t in TISSUES for c in COUNTS),
    "tcr_tumour_expanded_in_blood",
)
TCR_FLOAT_COLUMNS = (
    *(f"tcr_{t}_{f}" for t in TISSUES for f in FIGURES),
    "tcr_expanded_cd8_fraction",
    "tcr_expanded_cd8_exhaustion",
    "tcr_other_cd8_exhaustion",
)
TCR_TEXT_COLUMNS = (
    *(f"tcr_{t}_reason" for t in TISSUES),
    "tcr_expansion_reason",
    "tcr_tumour_expanded_in_blood_first_sample",
    "tcr_expanded_cd8_fraction_reason",
)


COLUMN_ORDER = (
    *(
        f"tcr_{t}_{c}"
        for t in TISSUES
        for c in (
            "clonality_baseline",
            "clonality_post",
            "clonality_delta",
            "expanded_clones",
            "new_clones",
            "overlap",
            "reason",
        )
    ),
    "tcr_expansion",
    "tcr_expansion_reason",
    "tcr_tumour_expanded_in_blood",
    "tcr_tumour_expanded_in_blood_first_sample",
    "tcr_expanded_cd8_fraction",
    "tcr_expanded_cd8_exhaustion",
    "tcr_other_cd8_exhaustion",
    "tcr_expanded_cd8_fraction_reason",
)
"""The patient table's TCR columns, in order (each tissue's block, then the answers)."""


def tcr_block(outputs: StepOutputs, patient: str) -> dict[str, object]:
    """The patient's ``tcr_*`` columns in :data:`COLUMN_ORDER`."""
    block = _tcr_values(outputs, patient)
    return {column: block[column] for column in COLUMN_ORDER}


def _tcr_values(outputs: StepOutputs, patient: str) -> dict[str, object]:
    """The patient's ``tcr_*`` columns (empty with reasons when it has no repertoire)."""
    table = outputs.tcr_patients
    rows = table[table["patient_id"].astype(str) == patient] if len(table) else table
    if not len(rows):
        # the stage's own row for a patient without repertoires (or a cohort without any,
        # where the stage does not run): the same reasons either way
        rows = pd.DataFrame([patient_row(patient, outputs.samples, {}, {}, {}, {})])
    row = rows.iloc[0]
    block = {c: as_float(row.get(c)) for c in TCR_FLOAT_COLUMNS}
    block |= {c: as_int(row.get(c)) for c in TCR_INTEGER_COLUMNS}
    block |= {c: as_text(row.get(c)) for c in TCR_TEXT_COLUMNS}
    evaluable = not block["tcr_expansion_reason"]
    block["tcr_expansion"] = as_bool(row.get("tcr_expansion")) if evaluable else pd.NA
    return block


def with_tcr_types(table: pd.DataFrame) -> pd.DataFrame:
    """The patient table with the TCR columns' nullable types."""
    table[list(TCR_BOOLEAN_COLUMNS)] = table[list(TCR_BOOLEAN_COLUMNS)].astype("boolean")
    table[list(TCR_INTEGER_COLUMNS)] = table[list(TCR_INTEGER_COLUMNS)].astype("Int64")
    return table
