"""The ``tables`` config section as :class:`~carmscope.tables.patients.TableSettings`, checked
against the patients sheet and the gene sets (docs/outputs.md).

The section arrives complete (the workflow fills it from ``config/schemas/config.schema.yaml``,
where every default lives).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from carmscope.genesets import read_gmt
from carmscope.tables.patients import TableSettings


class TablesConfigError(ValueError):
    """The ``tables`` config section does not fit the sheets or the gene sets."""


def table_settings(
    section: Mapping, gmt: Sequence[str], patients: pd.DataFrame, patients_sheet: str
) -> TableSettings:
    """The ``tables`` section as :class:`TableSettings`, checked against the patients sheet and
    the GMT files (``inflammation_sets: null`` takes every set of them).

    Parameters
    ----------
    section
        The config's ``tables`` section, every key present.
    gmt
        The GMT files of ``genesets.gmt``.
    patients
        The validated patients sheet (its columns are the possible ``strata``).
    patients_sheet
        The sheet's path, for messages.

    Raises
    ------
    TablesConfigError
        A set not in the GMT files, or a stratum that is not a column of the sheet.
    """
    available = {}
    for path in gmt:
        available |= dict.fromkeys(read_gmt(path))
    sets = section["inflammation_sets"]
    if sets is None:
        sets = list(available)
    unknown = [name for name in sets if name not in available]
    if unknown:
        raise TablesConfigError(
            f"config tables.inflammation_sets: {', '.join(unknown)} not in the gene sets of "
            f"genesets.gmt ({', '.join(gmt)}); available: {', '.join(available)}"
        )
    strata = section["strata"]
    missing = [column for column in strata if column not in patients.columns]
    if missing:
        raise TablesConfigError(
            f"config tables.strata: {', '.join(missing)} is not a column of the patients "
            f"sheet {patients_sheet} (columns: {', '.join(patients.columns)})"
        )
    return TableSettings(
        biopsy_assays=tuple(section["biopsy_assays"]),
        cd8_fraction_metric=section["cd8_fraction_metric"],
        cd8_score_metric=section["cd8_score_metric"],
        inflammation_sets=tuple(sets),
        inflammation_statistic=section["inflammation_statistic"],
        cd8_up_min_delta=float(section["cd8_up_min_delta"]),
        inflammation_up_min_delta=float(section["inflammation_up_min_delta"]),
        min_qc_cells=int(section["min_qc_cells"]),
        strata=tuple(strata),
    )
