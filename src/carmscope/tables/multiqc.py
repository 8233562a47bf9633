"""Per-sample QC as MultiQC custom-content tables (``*_mqc.tsv``), so a MultiQC report over
``results/`` (``multiqc results/``) shows carmscope's sections next to those of the other
tools of a facility's pipeline.

Each section is one TSV whose ``#`` header is MultiQC's custom-content configuration (YAML):
``id``, ``section_name``, ``description``, ``plot_type: table`` and per column a title, the
data dictionary's description and a number format. Its rows are the samples of the result
table ``samples.tsv`` that have a value in the section, its columns those of the section.
See https://docs.seqera.io/multiqc/custom_content.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import yaml

from carmscope.tables.dictionary import describe
from carmscope.tables.formatting import format_table


@dataclass(frozen=True)
class Section:
    """One MultiQC section: its ID, title, description and ``samples.tsv`` columns."""

    id: str
    name: str
    description: str
    columns: tuple[tuple[str, str], ...]
    """(``samples.tsv`` column, short title) pairs."""


SECTIONS: tuple[Section, ...] = (
    Section(
        "carmscope_inputs",
        "carmscope: input inspection",
        "What input inspection found in each sample's files (results/qc/inputs.tsv).",
        (
            ("input.n_cells", "Matrix cells"),
            ("input.n_features", "Matrix genes"),
            ("input.total_counts", "Matrix UMIs"),
            ("input.reads_with_cell_barcode", "Reads with CB"),
            ("input.n_variants", "Tumour variants"),
        ),
    ),
    Section(
        "carmscope_scrna_qc",
        "carmscope: cells passing QC",
        "Cells of each scRNA count matrix before and after QC (docs/expression.md).",
        (
            ("qc.cells_before", "Cells before QC"),
            ("qc.cells_after", "Cells passing QC"),
            ("qc.cells_removed", "Cells removed"),
        ),
    ),
    Section(
        "carmscope_car",
        "carmscope: CAR reads",
        "CAR transcript reads, UMIs and CAR+ cells per biopsy (docs/car_detection.md).",
        (
            ("car.scanned_reads", "Reads scanned"),
            ("car.reads", "CAR reads"),
            ("car.reads_per_million", "CAR reads / M"),
            ("car.umis", "CAR UMIs"),
            ("car.positive_cells", "CAR+ cells"),
            ("car.detected", "CAR detected"),
        ),
    ),
    Section(
        "carmscope_ctdna",
        "carmscope: ctDNA depth",
        "Tumour variants tracked in plasma, their depth and ALT reads (docs/ctdna.md).",
        (
            ("ctdna.n_used", "Variants used"),
            ("ctdna.n_covered", "Variants covered"),
            ("ctdna.depth", "Depth"),
            ("ctdna.alt_count", "ALT reads"),
            ("ctdna.mean_vaf", "Mean VAF"),
            ("ctdna.detected", "ctDNA detected"),
        ),
    ),
)


def file_name(section: Section) -> str:
    """The section's file name (MultiQC finds custom content by the ``_mqc.tsv`` suffix)."""
    return f"{section.id}_mqc.tsv"


def _header(section: Section, present: Sequence[str]) -> str:
    titles = dict(section.columns)
    headers = {}
    for column in present:
        entry = describe("samples", column)
        header = {"title": titles[column], "namespace": "carmscope"}
        if entry is not None:
            header["description"] = f"{entry.description} ({entry.unit})"
        headers[column] = header
    config = {
        "id": section.id,
        "section_name": section.name,
        "description": section.description,
        "plot_type": "table",
        "pconfig": {"id": f"{section.id}_table", "namespace": "carmscope"},
        "headers": headers,
    }
    text = yaml.safe_dump(config, sort_keys=False, width=1000)
    return "".join(f"# {line}\n" for line in text.splitlines())


def section_table(samples: pd.DataFrame, section: Section) -> pd.DataFrame:
    """The section's rows: ``Sample`` then its columns, samples with at least one value."""
    present = [column for column, _ in section.columns if column in samples.columns]
    table = samples[["sample_id", *present]].rename(columns={"sample_id": "Sample"})
    return table[table[present].notna().any(axis=1)] if present else table.iloc[:0]


def write_sections(samples: pd.DataFrame, folder: str | os.PathLike) -> list[str]:
    """Write every section's ``*_mqc.tsv`` into ``folder`` (created); returns the paths.

    Parameters
    ----------
    samples
        The per-sample result table (``results/tables/samples.tsv``, read with empty cells as
        missing).
    folder
        Output folder.
    """
    os.makedirs(folder, exist_ok=True)
    paths = []
    for section in SECTIONS:
        table = section_table(samples, section)
        path = os.path.join(folder, file_name(section))
        with open(path, "w") as handle:
            handle.write(_header(section, list(table.columns[1:])))
            format_table(table).to_csv(handle, sep="\t", index=False)
        paths.append(path)
    return paths
