"""Per-patient variant panels: what a plasma sample is counted at in ``normals`` mode.

In the ``normals`` background mode (docs/ctdna.md) each plasma sample is counted only at its
own patient's variants, so the panel of a patient is derived from that patient's VCF alone and
does not change when patients are added.
"""

from __future__ import annotations

import pandas as pd

from carmscope.ctdna.variants import VARIANT_COLUMNS, VARIANT_KEY

PANEL_COLUMNS = [*VARIANT_COLUMNS, "patients"]
"""Columns of a panel file (cohort or per patient): the variant, whether it can be counted and
the patient(s) carrying it (comma-separated)."""


def patient_panel(variants: pd.DataFrame, patient_id: str) -> pd.DataFrame:
    """One patient's panel from its own tumour variants.

    Parameters
    ----------
    variants
        :func:`~carmscope.ctdna.variants.read_tumour_variants` output of the patient's VCF.
    patient_id
        The patient (written to ``patients``).

    Returns
    -------
    pandas.DataFrame
        :data:`PANEL_COLUMNS`, one row per variant in VCF order; a variant listed twice keeps
        its evaluable copy (as the cohort panel does).
    """
    table = variants.sort_values("evaluable", ascending=False, kind="stable")
    table = table.drop_duplicates(VARIANT_KEY).sort_index()
    return table[VARIANT_COLUMNS].assign(patients=patient_id).reset_index(drop=True)
