"""The ``tcr`` stage's steps as plain functions of files (called by ``workflow/scripts/tcr_*``).

- :func:`sample_step`: one repertoire (and, for a scRNA sample's ``vdj``, its annotated cells)
  -> the clone table, a one-row summary and the cells table;
- :func:`changes_step`: one patient's compared samples of one tissue -> the change table;
- :func:`summary_step`: every sample's clones and summary, every change table -> the per-sample
  diversity table and the per-patient figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from carmscope.io.tables import read_stage_table
from carmscope.tcr.cells import (
    annotate_cells,
    cell_type_counts,
    clone_exhaustion,
    exhaustion_scores,
)
from carmscope.tcr.compare import CHANGE_TEXT_COLUMNS, ChangeSettings
from carmscope.tcr.diversity import DIVERSITY_COLUMNS, diversity
from carmscope.tcr.io import read_clones, read_repertoire
from carmscope.tcr.patients import (
    PATIENT_BOOLEAN_COLUMNS,
    PATIENT_INTEGER_COLUMNS,
    compared_samples,
    patient_row,
    tissue_changes,
)
from carmscope.vocabulary import TISSUES

SAMPLE_TABLE_COLUMNS = (
    "sample_id",
    "patient_id",
    "tissue",
    "format",
    "unit",
    *DIVERSITY_COLUMNS,
    "nonproductive",
)


def sample_step(repertoire_path: str, cells_path: str | None = None, h5ad_path: str | None = None):
    """Read one repertoire; with ``cells_path`` (the expression stage's ``cells.tsv.gz``) join
    its cells to their cell types and add ``cells_{type}`` columns to the clone table; with
    ``h5ad_path`` (its ``cells.h5ad``) also each cell's exhaustion and each clone's
    ``mean_exhaustion``.

    Returns
    -------
    tuple
        ``(clones, summary, cells)``: the clone table, a dict (``format``, ``unit``,
        ``templates``, ``nonproductive``) and the annotated cells (empty table for bulk).
    """
    repertoire = read_repertoire(repertoire_path)
    clones = repertoire.clones
    cells = pd.DataFrame(columns=["barcode", "clone_id", "cell_type"])
    if cells_path:
        types = read_stage_table(cells_path, ["cell_type"])[["barcode", "cell_type"]]
        cells = annotate_cells(repertoire, types, cells_path)
        clones = clones.merge(cell_type_counts(cells), on="clone_id", how="left")
        extra = [c for c in clones.columns if c.startswith("cells_")]
        clones[extra] = clones[extra].fillna(0).astype(int)
        if h5ad_path:
            import anndata

            scores = exhaustion_scores(anndata.read_h5ad(h5ad_path, backed="r").to_memory())
            cells["exhaustion"] = cells["barcode"].map(scores).to_numpy(dtype=float)
            clones = clones.merge(clone_exhaustion(cells), on="clone_id", how="left")
    summary = {
        "format": repertoire.format,
        "unit": repertoire.unit,
        "templates": repertoire.total,
        "nonproductive": repertoire.nonproductive,
    }
    return clones, summary, cells


def changes_step(
    samples: pd.DataFrame, clone_files: Mapping[str, str], settings: ChangeSettings
) -> pd.DataFrame:
    """The change table of one patient and tissue (``samples``: its compared samples)."""
    clones = {sample: read_clones(path) for sample, path in clone_files.items()}
    return tissue_changes(samples, clones, settings)


def _depths(samples: pd.DataFrame, totals: Mapping[str, int], units: Mapping[str, str], depth):
    """Rarefaction depth per sample: ``depth`` when set, else the smallest total among the
    patient's repertoires of the same unit (so a patient's figures do not depend on others)."""
    if depth:
        return dict.fromkeys(totals, int(depth))
    groups: dict[tuple[str, str], int] = {}
    for sample, total in totals.items():
        key = (str(samples.loc[sample, "patient_id"]), units[sample])
        groups[key] = min(groups.get(key, total), total)
    return {s: groups[(str(samples.loc[s, "patient_id"]), units[s])] for s in totals}


def summary_step(
    samples: pd.DataFrame,
    clone_files: Mapping[str, str],
    summaries: Mapping[str, str],
    change_files: Mapping[tuple[str, str], str],
    cell_files: Mapping[str, str],
    rarefaction_depth: int | None = None,
    patients: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The per-sample diversity table and the per-patient figures.

    Parameters
    ----------
    samples
        The samples sheet (indexed by ``sample_id``).
    clone_files, summaries
        Per repertoire sample: its ``clones.tsv`` and ``summary.tsv``.
    change_files
        Per (patient, tissue) compared: its change table.
    cell_files
        Per scRNA sample with ``vdj``: its annotated cells (``cells.tsv.gz``).
    rarefaction_depth
        Common depth of the rarefied richness (None: the patient's smallest repertoire).
    patients
        Every patient of the cohort (those without a repertoire get a row of reasons).
    """
    clones = {sample: read_clones(path) for sample, path in clone_files.items()}
    info = {s: read_stage_table(p, ["format", "unit"]).iloc[0] for s, p in summaries.items()}
    totals = {s: int(clones[s]["count"].sum()) for s in clones}
    depths = _depths(samples, totals, {s: str(info[s]["unit"]) for s in clones}, rarefaction_depth)
    rows = []
    for sample in clones:
        rows.append(
            {
                "sample_id": sample,
                "patient_id": samples.loc[sample, "patient_id"],
                "tissue": samples.loc[sample, "tissue"],
                "format": info[sample]["format"],
                "unit": info[sample]["unit"],
                **diversity(clones[sample]["count"].to_numpy(), depths[sample]),
                "nonproductive": int(info[sample]["nonproductive"]),
            }
        )
    sample_table = pd.DataFrame(rows, columns=list(SAMPLE_TABLE_COLUMNS))
    # samples without a clone table (left out by input inspection) are not compared
    compared = {
        key: kept
        for key, chosen in compared_samples(samples).items()
        if (kept := [sample for sample in chosen if sample in clones])
    }
    changes = {
        key: read_stage_table(path, CHANGE_TEXT_COLUMNS) for key, path in change_files.items()
    }
    cells = {s: read_stage_table(p, all_text=True) for s, p in cell_files.items()}
    patient_rows = []
    for patient in patients or list(dict.fromkeys(samples["patient_id"].astype(str))):
        mine = {t: compared[(patient, t)] for t in TISSUES if (patient, t) in compared}
        mine_changes = {t: changes[(patient, t)] for t in mine if (patient, t) in changes}
        mine_cells = {s: c for s, c in cells.items() if samples.loc[s, "patient_id"] == patient}
        patient_rows.append(patient_row(patient, samples, mine, clones, mine_changes, mine_cells))
    table = pd.DataFrame(patient_rows)
    table[list(PATIENT_BOOLEAN_COLUMNS)] = table[list(PATIENT_BOOLEAN_COLUMNS)].astype("boolean")
    table[list(PATIENT_INTEGER_COLUMNS)] = table[list(PATIENT_INTEGER_COLUMNS)].astype("Int64")
    return sample_table, table


def write_tsv(table: pd.DataFrame, path: str) -> None:
    """A result table as TSV (missing values empty)."""
    table.to_csv(path, sep="\t", index=False, na_rep="")
