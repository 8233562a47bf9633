"""What the DE rules (``workflow/rules/de.smk``) need: profiles tested, inputs, outputs.

Plain functions of the config and the samples sheet, so the rule file holds only rules and these
can be tested. Paths follow ``docs/expression.md`` (section 7).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from carmscope.expression.de import check_cell_types
from carmscope.expression.pseudobulk import ALL
from carmscope.vocabulary import BULK_RNA, RNA_ASSAYS, SCRNA
from wiring import expression, inspection

TABLES = ("counts", "design", "results", "interaction", "enrichment", "status")
"""Tables every tested profile writes (besides its volcano plot)."""
PROFILE = expression.assay_file("{assay}", "de/{cell_type}")
"""Folder of one tested profile (wildcards ``assay``, ``cell_type``)."""
TABLE = PROFILE + "/{table}.tsv"
VOLCANO = PROFILE + "/volcano.png"
SUMMARY = expression.assay_file("{assay}", "de/summary.tsv")
SUMMARY_FIGURES = {
    "heatmap": expression.assay_file("{assay}", "de/enrichment_heatmap.png"),
    "de_genes": expression.assay_file("{assay}", "de/de_genes.png"),
}
LOGS = {
    "expression_de": "logs/expression_de/{assay}/{cell_type}.log",
    "expression_de_summary": "logs/expression_de_summary/{assay}.log",
}


def profile_tables() -> dict[str, str]:
    """The tables of one tested profile by name, with the rule's wildcards."""
    return {t: TABLE.format(assay="{assay}", cell_type="{cell_type}", table=t) for t in TABLES}


def samples_of(samples: pd.DataFrame, assay: str) -> list[str]:
    """IDs of the samples of one assay that have a count matrix, in sheet order (a biopsy with
    reads only goes through the CAR scan alone; pairs are chosen among these samples)."""
    chosen = samples["assay"] == assay
    if "counts" in samples.columns:
        chosen &= samples["counts"].fillna("").astype(str) != ""
    return list(samples.index[chosen])


def cell_types(config: Mapping, assay: str) -> list[str]:
    """Profiles tested for one assay: ``expression.de.cell_types`` (scRNA) or ``all`` (bulk).

    Raises
    ------
    carmscope.expression.de.DifferentialExpressionError
        A configured name the annotation never produces (the key is named).
    """
    if assay == SCRNA:
        return check_cell_types(config["expression"]["de"]["cell_types"])
    return [ALL]


def cell_type_pattern(config: Mapping) -> str:
    """Wildcard constraint of ``cell_type``: every profile any assay tests."""
    names = [*cell_types(config, SCRNA), *cell_types(config, BULK_RNA)]
    return "|".join(dict.fromkeys(names))


def profile_inputs(samples: pd.DataFrame, assay: str) -> dict[str, list[str]]:
    """Per sample of the assay: its pseudobulk tables (scRNA) or its bulk count table."""
    chosen = samples_of(samples, assay)
    # inspection's verdicts, in the same order: samples it found unusable are left out
    verdicts = [inspection.SAMPLE.format(sample=s) for s in chosen]
    if assay == SCRNA:
        return {
            "counts": [expression.sample_file(SCRNA, s, "pseudobulk.tsv") for s in chosen],
            "cells": [expression.sample_file(SCRNA, s, "pseudobulk_cells.tsv") for s in chosen],
            "verdicts": verdicts,
        }
    return {"counts": [str(samples.loc[s, "counts"]) for s in chosen], "verdicts": verdicts}


def sample_records(samples: pd.DataFrame, assay: str) -> list[dict]:
    """The assay's samples for the DE job's params: ``sample_id``, ``patient_id``, time."""
    columns = [c for c in ("patient_id", "day", "hours") if c in samples.columns]
    return samples.loc[samples_of(samples, assay), columns].reset_index().to_dict("records")


def summary_inputs(config: Mapping, assay: str) -> dict[str, list[str]]:
    """Every table of every tested profile of the assay, by table."""
    return {
        table: [
            TABLE.format(assay=assay, cell_type=cell_type, table=table)
            for cell_type in cell_types(config, assay)
        ]
        for table in TABLES
    }


def outputs(samples: pd.DataFrame) -> list[str]:
    """The summary of every RNA assay with samples (the per-profile files follow from it)."""
    return [SUMMARY.format(assay=assay) for assay in RNA_ASSAYS if samples_of(samples, assay)]
