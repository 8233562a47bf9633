"""The blood stage from the sample sheets to its tables, in one call.

:func:`blood_tables` reads every ``car_pcr`` and ``cytokines`` table, the CAR stage's summary
for PBMC RNA samples, and returns the stage's tables (:class:`BloodTables`);
:func:`write_blood_tables` writes them to the paths it is given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import pandas as pd

from carmscope.blood.cohort import (
    BloodSettings,
    crs_associations,
    kinetic_summary,
    kinetics_table,
    patient_columns,
)
from carmscope.blood.cytokines import cytokine_figures
from carmscope.blood.series import car_pcr_series, read_assay_tables, read_car_summary, rna_series
from carmscope.vocabulary import CYTOKINES


@dataclass(frozen=True)
class BloodTables:
    """The blood stage's tables.

    Attributes
    ----------
    kinetics
        NCA per patient and CAR measure (``kinetics.tsv``).
    cytokines
        Baseline, peak, its time and fold per patient and cytokine (``cytokines.tsv``).
    series
        Every CAR value with its time (for the kinetics figure).
    patients
        The blood columns of ``patients.tsv`` with ``crs_grade``, one row per patient.
    summary
        Median and range of each kinetic figure overall and by stratum.
    crs
        CRS (any vs none) against each cytokine's peak fold and the CAR Cmax.
    """

    kinetics: pd.DataFrame
    cytokines: pd.DataFrame
    series: pd.DataFrame
    patients: pd.DataFrame
    summary: pd.DataFrame
    crs: pd.DataFrame


def blood_tables(
    samples: pd.DataFrame,
    patients: pd.DataFrame,
    settings: BloodSettings,
    strata: Sequence[str] = ("dosing", "her2_ihc"),
    car_summary: str | os.PathLike | None = None,
    sample_assays: Mapping[str, str] | None = None,
) -> BloodTables:
    """The blood stage's tables of a cohort.

    Parameters
    ----------
    samples
        The samples sheet indexed by ``sample_id`` (``patient_id``, ``day``, ``hours``,
        ``assay``, ``tissue``, ``counts``).
    patients
        The patients sheet indexed by ``patient_id`` (strata columns; ``crs_grade`` if given).
    settings
        The ``blood`` config section.
    strata
        Patient columns to summarise the kinetics by.
    car_summary
        The CAR stage's summary, when the cohort has PBMC RNA samples.
    sample_assays
        Sample -> assay of the whole samples sheet, when ``samples`` holds only the blood
        samples (to name what a wrong ``sample_id`` in a table is).
    """
    series = car_pcr_series(samples, settings.car_analyte, sample_assays=sample_assays)
    if car_summary is not None:
        series = pd.concat([series, rna_series(samples, read_car_summary(car_summary))])
    order = [str(patient) for patient in patients.index]
    kinetics = kinetics_table(series.reset_index(drop=True), order, settings)
    cytokines = cytokine_figures(
        read_assay_tables(samples, CYTOKINES, sample_assays=sample_assays),
        order,
        settings.blq_fraction,
    )
    columns = patient_columns(kinetics, cytokines, order)
    grades = (
        patients["crs_grade"] if "crs_grade" in patients.columns else pd.Series("", patients.index)
    )
    columns.insert(0, "crs_grade", grades.reindex(columns.index).fillna("").astype(str))
    present = [column for column in strata if column in patients.columns]
    return BloodTables(
        kinetics=kinetics,
        cytokines=cytokines,
        series=series.reset_index(drop=True),
        patients=columns.reset_index(),
        summary=kinetic_summary(kinetics, patients, present),
        crs=crs_associations(columns, grades),
    )


def write_blood_tables(tables: BloodTables, paths: Mapping[str, str | os.PathLike]) -> None:
    """Write each table of ``tables`` named in ``paths`` as a TSV."""
    for field in fields(tables):
        if field.name in paths:
            getattr(tables, field.name).to_csv(paths[field.name], sep="\t", index=False)
