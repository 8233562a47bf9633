"""The input inspection's verdict on one sample, as the analyses read it.

Input inspection (:mod:`carmscope.inputs`) opens every file of a sample before any analysis
and records in the sample's inventory row whether the files are usable and, if not, the
one-line problem. Each per-sample analysis reads that row first (its rule takes it as an
input, so inspection always runs first) and stops with the inspection's own message instead of
meeting the same problem again as a traceback deep inside a reader. Only the standard library
is imported here: every per-sample job loads this module.
"""

from __future__ import annotations

import csv
import os


class UnusableInputError(ValueError):
    """Inspection found a file of this sample unusable; the message is inspection's."""


def read_verdict(inventory_row: str | os.PathLike) -> tuple[str, bool, str]:
    """``(sample_id, usable, problem)`` from a sample's inventory row
    (``results/qc/inputs/{sample}.tsv``; a row without verdict columns counts as usable)."""
    with open(inventory_row, newline="") as handle:
        row = next(csv.DictReader(handle, delimiter="\t"))
    return row["sample_id"], row.get("usable", "True") != "False", row.get("problem", "")


def require_usable(inventory_row: str | os.PathLike) -> None:
    """Raise :class:`UnusableInputError` when inspection found the sample's inputs unusable."""
    sample_id, usable, problem = read_verdict(inventory_row)
    if not usable:
        raise UnusableInputError(
            f"sample {sample_id} is left out of the analyses: {problem} "
            "(input inspection, results/qc/inputs.tsv)"
        )
