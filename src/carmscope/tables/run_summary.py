"""The run summary printed when the workflow finishes: which per-patient figures could not be
evaluated, for whom, and why.

Every figure group of ``results/tables/patients.tsv`` has a ``{group}_reason`` column that is
empty when the figure was evaluated and says why not otherwise (the README's principle: missing
or unusable data make a figure not evaluable, they never stop the cohort). This module turns
those columns into a few readable lines; nothing here knows about Snakemake.
"""

from __future__ import annotations

import os

import pandas as pd

from carmscope.io.tables import read_stage_table

REASON_SUFFIX = "_reason"


def not_evaluable(patients: pd.DataFrame) -> dict[str, dict[str, str]]:
    """The reasons of every not-evaluable figure, by figure group then patient.

    Parameters
    ----------
    patients
        The per-patient result table (read as strings), indexed by ``patient_id``.

    Returns
    -------
    dict
        ``{group: {patient_id: reason}}`` for each ``{group}_reason`` column, in column order,
        holding only the patients whose reason is not empty.
    """
    groups: dict[str, dict[str, str]] = {}
    for column in patients.columns:
        if not column.endswith(REASON_SUFFIX):
            continue
        reasons = patients[column].fillna("").astype(str).str.strip()
        groups[column.removesuffix(REASON_SUFFIX)] = {
            str(patient): reason for patient, reason in reasons.items() if reason
        }
    return groups


def run_summary(
    patients_table: str | os.PathLike[str],
    max_listed: int = 10,
    inventory: str | os.PathLike[str] | None = None,
) -> str:
    """A short text for the end of a run: the samples input inspection left out (from
    ``inventory``, ``results/qc/inputs.tsv``, when given) with their problem, then per figure
    group how many patients have a reason (their figure is not evaluable, or rests on part of
    the data), and each reason (at most ``max_listed`` listed per group and for left-out
    samples).

    Returns an empty string when the table does not exist (the run did not reach it).
    """
    if not os.path.exists(patients_table):
        return ""
    patients = read_stage_table(patients_table, all_text=True).set_index("patient_id")
    total = len(patients)
    lines = [f"carmscope: {total} patient(s) in {os.fspath(patients_table)}"]
    left_out = _left_out_samples(inventory) if inventory and os.path.exists(inventory) else {}
    if left_out:
        lines.append(f"  {len(left_out)} sample(s) left out by input inspection ({inventory}):")
        for sample, problem in list(left_out.items())[:max_listed]:
            lines.append(f"    {sample}: {problem}")
        if len(left_out) > max_listed:
            lines.append(f"    ... and {len(left_out) - max_listed} more (see the table)")
    for group, reasons in not_evaluable(patients).items():
        lines.append(
            f"  {group}: {len(reasons)} of {total} with a reason (not evaluable or partial)"
        )
        for patient, reason in list(reasons.items())[:max_listed]:
            lines.append(f"    {patient}: {reason}")
        if len(reasons) > max_listed:
            lines.append(f"    ... and {len(reasons) - max_listed} more (see the table)")
    return "\n".join(lines)


def _left_out_samples(inventory: str | os.PathLike[str]) -> dict[str, str]:
    """Sample to problem, for the inventory's rows with ``usable`` False."""
    table = read_stage_table(inventory, all_text=True)
    if "usable" not in table.columns:
        return {}
    unusable = table[table["usable"] == "False"]
    return dict(zip(unusable["sample_id"], unusable["problem"], strict=True))


def mark_stale(note: str | os.PathLike[str], when: str = "") -> None:
    """Say, beside the result tables, that the last run failed, so tables left from an earlier
    run are not taken for this one's (a ``--keep-going`` run with failures keeps them).

    ``note``: the file to write beside the tables (the workflow's is ``STALE_NOTE`` of
    ``workflow/lib/wiring/tables.py``); written when a run fails, removed when one succeeds."""
    folder = os.path.dirname(os.fspath(note))
    if folder and not os.path.isdir(folder):
        return  # no tables yet: nothing to mark
    with open(note, "w") as handle:
        handle.write(
            f"The last run of the workflow{f' ({when})' if when else ''} failed: the tables in "
            "this folder may come from an earlier run and miss samples or patients. See the "
            "run's log; this note goes away when a run succeeds.\n"
        )


def clear_stale(note: str | os.PathLike[str]) -> None:
    """Remove the note of :func:`mark_stale` after a successful run."""
    if os.path.exists(note):
        os.remove(note)
