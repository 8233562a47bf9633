"""Cohort tables of the blood stage: kinetics per patient, patient columns, summaries, CRS.

* :func:`kinetics_table`: NCA (:func:`carmscope.blood.nca.kinetics`) of every patient and CAR
  measure (``kinetics.tsv``).
* :func:`patient_columns`: the ``car_blood_*`` and ``cytokine_{analyte}_*`` columns of
  ``patients.tsv`` (qPCR preferred, else bulk RNA, else scRNA).
* :func:`kinetic_summary`: median and range of each kinetic figure overall and by stratum
  (dosing arm, HER2 group).
* :func:`crs_associations`: CRS (any grade vs none, ASTCT) against each cytokine's peak fold
  and against CAR Cmax by the exact Wilcoxon rank-sum test (Mann-Whitney U, SciPy's
  ``mannwhitneyu(method="exact")``; exact for small groups without ties).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from carmscope.blood import nca
from carmscope.blood.series import MEASURES

KINETICS_COLUMNS: tuple[str, ...] = (
    "patient_id",
    "measure",
    "unit",
    "cmax",
    "tmax_h",
    "clast",
    "tlast_h",
    "auc_0_tlast",
    "half_life_h",
    "half_life_points",
    "half_life_adj_r2",
    "last_sample_h",
    "reason",
)
"""Columns of ``kinetics.tsv``, one row per patient and CAR measure."""
KINETIC_FIGURES: tuple[str, ...] = ("cmax", "tmax_h", "tlast_h", "auc_0_tlast", "half_life_h")
PATIENT_KINETIC_COLUMNS = {
    "car_blood_cmax": "cmax",
    "car_blood_tmax_h": "tmax_h",
    "car_blood_auc": "auc_0_tlast",
    "car_blood_tlast_h": "tlast_h",
    "car_blood_half_life_h": "half_life_h",
    "car_blood_unit": "unit",
}
SUMMARY_COLUMNS = ("stratum", "group", "measure", "figure", "n", "median", "min", "max")
ASSOCIATION_COLUMNS = (
    "endpoint",
    "n_crs",
    "n_no_crs",
    "median_crs",
    "median_no_crs",
    "u_statistic",
    "p_value",
    "method",
    "reason",
)
RANK_SUM_METHOD = "exact Wilcoxon rank-sum (Mann-Whitney U), two-sided"


@dataclass(frozen=True)
class BloodSettings:
    """The ``blood`` config section.

    Attributes
    ----------
    car_analyte
        Analyte of the CAR transgene in ``car_pcr`` tables.
    blq_fraction
        Cytokine values below LLOQ become this fraction of the LLOQ.
    half_life_min_points
        Fewest points of the terminal fit.
    adj_r2_factor
        Tolerance on the best adjusted R^2 of the terminal fit.
    half_life_min_adj_r2
        Smallest adjusted R^2 of an accepted terminal fit.
    """

    car_analyte: str = "CAR"
    blq_fraction: float = 0.5
    half_life_min_points: int = nca.MIN_HALF_LIFE_POINTS
    adj_r2_factor: float = nca.ADJ_R2_FACTOR
    half_life_min_adj_r2: float = nca.MIN_ADJ_R2


def kinetics_table(
    series: pd.DataFrame, patients: Sequence[str], settings: BloodSettings = BloodSettings()
) -> pd.DataFrame:
    """NCA of every patient and CAR measure.

    Parameters
    ----------
    series
        CAR series (:data:`~carmscope.blood.series.SERIES_COLUMNS`) of every measure.
    patients
        Every patient in sheet order. One without any blood CAR sample gets one row with an
        empty measure and the reason "no blood samples".
    """
    rows = []
    for patient in patients:
        own = series[series["patient_id"] == patient]
        measures = [m for m in MEASURES if (own["measure"] == m).any()]
        if not measures:
            rows.append({"patient_id": patient, "measure": "", "reason": "no blood samples"})
        for measure in measures:
            values = own[own["measure"] == measure]
            result = nca.kinetics(
                values["hours"].to_numpy(float),
                values["value"].to_numpy(float),
                values["blq"].to_numpy(bool),
                settings.half_life_min_points,
                settings.adj_r2_factor,
                settings.half_life_min_adj_r2,
            )
            units = list(dict.fromkeys(values["unit"]))
            row = {"patient_id": patient, "measure": measure, "unit": units[0]}
            row.update({k: v for k, v in result.as_dict().items() if k in KINETICS_COLUMNS})
            if len(units) > 1:
                row.update(dict.fromkeys(KINETIC_FIGURES, math.nan))
                row["reason"] = f"mixed units ({', '.join(units)})"
            rows.append(row)
    table = pd.DataFrame(rows, columns=list(KINETICS_COLUMNS))
    table["half_life_points"] = table["half_life_points"].fillna(0).astype(int)
    table["reason"] = table["reason"].fillna("")
    return table


def preferred_measure(kinetics: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: qPCR, else bulk RNA, else scRNA (the first measure it has)."""
    rank = kinetics["measure"].map({m: i for i, m in enumerate(MEASURES)}).fillna(len(MEASURES))
    ordered = kinetics.assign(_rank=rank).sort_values(["_rank"], kind="stable")
    return ordered.drop_duplicates("patient_id").drop(columns="_rank").set_index("patient_id")


def patient_columns(
    kinetics: pd.DataFrame, cytokines: pd.DataFrame, patients: Sequence[str]
) -> pd.DataFrame:
    """The blood columns of ``patients.tsv``, indexed by patient in sheet order.

    ``car_blood_measure``, :data:`PATIENT_KINETIC_COLUMNS` and ``car_blood_reason`` (why a
    figure is empty, '' when none is) from the preferred measure, and
    ``cytokine_{analyte}_peak_fold`` and ``cytokine_{analyte}_tmax_h`` for every analyte.
    """
    chosen = preferred_measure(kinetics).reindex(list(patients))
    table = pd.DataFrame(index=pd.Index(list(patients), name="patient_id"))
    table["car_blood_measure"] = chosen["measure"].fillna("")
    for column, source in PATIENT_KINETIC_COLUMNS.items():
        table[column] = chosen[source]
    table["car_blood_unit"] = table["car_blood_unit"].fillna("")
    table["car_blood_reason"] = chosen["reason"].fillna("no blood samples")
    named = cytokines[cytokines["analyte"].astype(str) != ""]
    for analyte in dict.fromkeys(named["analyte"]):
        rows = named[named["analyte"] == analyte].set_index("patient_id")
        for figure in ("peak_fold", "tmax_h"):
            table[f"cytokine_{analyte}_{figure}"] = rows[figure].reindex(table.index)
    return table


def kinetic_summary(
    kinetics: pd.DataFrame, patients: pd.DataFrame, strata: Sequence[str]
) -> pd.DataFrame:
    """Median and range of each kinetic figure, overall and by each stratum column's values.

    Parameters
    ----------
    kinetics
        :func:`kinetics_table`.
    patients
        The patients sheet indexed by ``patient_id`` (for the strata columns).
    strata
        Columns of ``patients`` to group by (e.g. ``dosing``, ``her2_ihc``).
    """
    from carmscope.tables.summary import strata_blocks

    joined = kinetics.join(patients[list(strata)], on="patient_id")
    rows = []
    for stratum, group, block in strata_blocks(joined, strata):
        for measure in [m for m in MEASURES if (block["measure"] == m).any()]:
            own = block[block["measure"] == measure]
            for figure in KINETIC_FIGURES:
                values = pd.to_numeric(own[figure], errors="coerce").dropna()
                stats_row = (
                    (values.median(), values.min(), values.max())
                    if len(values)
                    else (math.nan,) * 3
                )
                rows.append(
                    dict(
                        zip(
                            SUMMARY_COLUMNS,
                            (stratum, group, measure, figure, len(values), *stats_row),
                            strict=True,
                        )
                    )
                )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def crs_any(grades: pd.Series) -> pd.Series:
    """CRS of any grade (True), none (False), or not assessed (NA), from ``crs_grade``."""
    numbers = pd.to_numeric(grades.replace("", None), errors="coerce")
    return (numbers > 0).astype("boolean").where(numbers.notna())


def rank_sum(crs: np.ndarray, none: np.ndarray) -> tuple[float, float, str]:
    """Exact two-sided Wilcoxon rank-sum test of two groups: U, p and '' or why not tested."""
    if len(crs) == 0 or len(none) == 0:
        return math.nan, math.nan, "needs patients with and without CRS"
    result = stats.mannwhitneyu(crs, none, alternative="two-sided", method="exact")
    return float(result.statistic), float(result.pvalue), ""


def crs_associations(patient_table: pd.DataFrame, crs_grade: pd.Series) -> pd.DataFrame:
    """CRS (any vs none) against each cytokine's peak fold and the CAR Cmax.

    Parameters
    ----------
    patient_table
        :func:`patient_columns` (indexed by patient).
    crs_grade
        ``crs_grade`` of the patients sheet, indexed by patient ('' when not assessed).
    """
    crs = crs_any(crs_grade.reindex(patient_table.index).fillna(""))
    endpoints = [c for c in patient_table.columns if c.endswith("_peak_fold")]
    endpoints.append("car_blood_cmax")
    rows = []
    for endpoint in endpoints:
        values = pd.to_numeric(patient_table[endpoint], errors="coerce")
        usable = values.notna() & crs.notna()
        with_crs = values[usable & (crs == True)].to_numpy(float)  # noqa: E712 (nullable)
        without = values[usable & (crs == False)].to_numpy(float)  # noqa: E712
        u, p, reason = rank_sum(with_crs, without)
        rows.append(
            {
                "endpoint": endpoint,
                "n_crs": len(with_crs),
                "n_no_crs": len(without),
                "median_crs": float(np.median(with_crs)) if len(with_crs) else math.nan,
                "median_no_crs": float(np.median(without)) if len(without) else math.nan,
                "u_statistic": u,
                "p_value": p,
                "method": RANK_SUM_METHOD,
                "reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=list(ASSOCIATION_COLUMNS))
