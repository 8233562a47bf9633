"""The patient table's tcr_* block: copied from the tcr stage, empty with the stage's reasons
without it."""

import numpy as np
import pandas as pd

from carmscope.tables.dictionary import undocumented
from carmscope.tables.steps import StepOutputs
from carmscope.tables.tcr import COLUMN_ORDER, tcr_block


def _outputs(tcr_patients: pd.DataFrame) -> StepOutputs:
    empty = pd.DataFrame(index=pd.Index([], name="patient_id"))
    return StepOutputs(patients=empty, samples=empty, tcr_patients=tcr_patients)


def test_block_without_repertoire_is_empty_with_reasons():
    block = tcr_block(_outputs(pd.DataFrame(columns=["patient_id"])), "P1")
    assert list(block) == list(COLUMN_ORDER)
    assert block["tcr_expansion"] is pd.NA
    # the tcr stage's own wording, so a patient's reasons do not depend on whether the cohort
    # has any repertoire (and the stage ran)
    assert (
        block["tcr_expansion_reason"] == "tumour: no tumour repertoire; blood: no blood repertoire"
    )
    assert block["tcr_expanded_cd8_fraction_reason"] == "tumour not evaluable"
    assert block["tcr_tumour_reason"] == "no tumour repertoire"
    assert np.isnan(block["tcr_tumour_clonality_delta"])


def test_block_copies_the_stage_row():
    row = {c: "" for c in COLUMN_ORDER} | {
        "patient_id": "P1",
        "tcr_expansion": "True",
        "tcr_tumour_expanded_clones": 7,
        "tcr_tumour_clonality_delta": 0.12,
    }
    block = tcr_block(_outputs(pd.DataFrame([row])), "P1")
    assert block["tcr_expansion"] is True
    assert block["tcr_tumour_expanded_clones"] == 7
    assert block["tcr_tumour_clonality_delta"] == 0.12
    not_evaluable = row | {"tcr_expansion": "", "tcr_expansion_reason": "tumour: x; blood: y"}
    assert tcr_block(_outputs(pd.DataFrame([not_evaluable])), "P1")["tcr_expansion"] is pd.NA


def test_every_tcr_column_is_documented():
    assert undocumented("patients", list(COLUMN_ORDER)) == []
