"""The input inspection's verdict on one sample, as the analyses read it.

Input inspection (:mod:`carmscope.inputs`) opens every file of a sample before any analysis
and records in the sample's inventory row whether the files are usable and, if not, the
one-line problem. Each per-sample analysis reads that row first (its rule takes it as an
input, so inspection always runs first) and never meets the same problem again as a traceback
deep inside a reader.

A sample found unusable is *left out*: its first analysis writes, in place of each output, a
left-out mark (a one-line text naming the reason; a figure saying "not evaluable" for image
outputs), the analyses that would read those outputs pass the mark on (:func:`carry_left_out`)
and the cohort steps leave the marked files out (:func:`kept`). The rest of the cohort runs;
the result tables flag the sample (``unusable_input:<sample>``) with the problem from
``results/qc/inputs.tsv``. With ``strict: true`` inspection itself stops the run instead.
Only the standard library is imported here (matplotlib only to draw a left-out figure): every
per-sample job loads this module.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TypeVar

LEFT_OUT_MARK = "# carmscope: left out by input inspection: "
"""How a left-out mark begins (the reason follows, on one line)."""
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")
"""Outputs marked with a "not evaluable" figure rather than the text mark."""
K = TypeVar("K")


def read_verdict(inventory_row: str | os.PathLike) -> tuple[str, bool, str]:
    """``(sample_id, usable, problem)`` from a sample's inventory row
    (``results/qc/inputs/{sample}.tsv``; a row without verdict columns counts as usable)."""
    return read_verdicts(inventory_row)[0]


def read_verdicts(inventory: str | os.PathLike) -> list[tuple[str, bool, str]]:
    """``(sample_id, usable, problem)`` of every row of an inventory file: a sample's row, or
    a patient's blood draws (``results/qc/inputs/blood/{patient}.tsv``)."""
    with open(inventory, newline="") as handle:
        return [
            (row["sample_id"], row.get("usable", "True") != "False", row.get("problem", ""))
            for row in csv.DictReader(handle, delimiter="\t")
        ]


def left_out(inventory_row: str | os.PathLike) -> str:
    """Why the sample is left out of the analyses ('' when inspection found it usable)."""
    sample_id, usable, problem = read_verdict(inventory_row)
    return "" if usable else left_out_message(sample_id, problem)


def left_out_message(sample_id: str, problem: str) -> str:
    """The one-line reason a sample is left out, from inspection's problem."""
    return (
        f"sample {sample_id} is left out of the analyses: {problem} "
        "(input inspection, results/qc/inputs.tsv)"
    )


def leave_out(inventory_row: str | os.PathLike, outputs: Iterable[str | os.PathLike]) -> str:
    """When inspection found the sample unusable, mark every output (:func:`write_left_out`),
    say why on stderr (the job's log) and return the reason; else return ''."""
    reason = left_out(inventory_row)
    if reason:
        write_left_out(outputs, reason)
        print(reason, file=sys.stderr)
    return reason


def write_left_out(outputs: Iterable[str | os.PathLike], reason: str) -> None:
    """Mark every output of a left-out sample's job: the text mark, or for figures an image
    saying the sample is not evaluable and why."""
    reason = " ".join(str(reason).split())
    for path in map(Path, outputs):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in FIGURE_SUFFIXES:
            _left_out_figure(path, reason)
        else:
            path.write_text(f"{LEFT_OUT_MARK}{reason}\n")


def left_out_reason(path: str | os.PathLike) -> str:
    """The reason of a left-out mark; '' for any other file (or a folder)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(LEFT_OUT_MARK))
            if head != LEFT_OUT_MARK.encode():
                return ""
            return handle.readline().decode(errors="replace").strip()
    except (IsADirectoryError, FileNotFoundError):
        return ""


def kept(paths: Iterable[str | os.PathLike] | str | os.PathLike) -> list[str]:
    """The paths that are not left-out marks, in order (a cohort step's inputs; one path
    counts as a list of one)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [str(path) for path in paths if not left_out_reason(path)]


def kept_by_key(paths: Mapping[K, str | os.PathLike]) -> dict[K, str]:
    """``paths`` (e.g. sample to file) without the left-out marks."""
    return {key: str(path) for key, path in paths.items() if not left_out_reason(path)}


def usable_mask(inventory_rows: Iterable[str | os.PathLike] | str | os.PathLike) -> list[bool]:
    """Per inventory row, in order: whether inspection found the sample usable (one path
    counts as a list of one)."""
    if isinstance(inventory_rows, (str, os.PathLike)):
        inventory_rows = [inventory_rows]
    return [read_verdict(row)[1] for row in inventory_rows]


def carry_left_out(
    inputs: Iterable[str | os.PathLike], outputs: Iterable[str | os.PathLike]
) -> str:
    """Pass a left-out mark on: when any input is one, mark every output with its reason and
    return the reason; else return ''."""
    for path in inputs:
        reason = left_out_reason(path)
        if reason:
            write_left_out(outputs, reason)
            print(reason, file=sys.stderr)
            return reason
    return ""


def _left_out_figure(path: Path, reason: str) -> None:
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from carmscope.reproducible import save_figure

    figure, axes = plt.subplots(figsize=(6, 2))
    axes.axis("off")
    axes.text(
        0.5,
        0.5,
        "not evaluable\n" + textwrap.fill(reason, 80),
        ha="center",
        va="center",
        fontsize=8,
        wrap=True,
    )
    save_figure(figure, path)
    plt.close(figure)
