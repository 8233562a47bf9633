"""The input tables of a synthetic cohort, and the files a workflow must generate for them.

The tables follow the pipeline's input contract exactly (``patients.tsv``, ``samples.tsv``);
their paths are relative to the folder the tables are written to, pointing into the folder the
cohort's data files are (or will be) written to.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from carmscope.synthetic.design import PatientDesign

PATIENT_COLUMNS = ("patient_id", "indication", "her2_ihc", "dosing", "best_response")
SAMPLE_COLUMNS = ("sample_id", "patient_id", "timepoint", "day", "assay", "counts", "reads")

TRUTH_FILES = (
    "truth/patients.tsv",
    "truth/samples.tsv",
    "truth/cells.tsv.gz",
    "truth/variants.tsv",
    "truth/inflammatory_genes.txt",
)
REFERENCE_FILES = (
    "reference/genome.fa",
    "reference/genome.fa.fai",
    "reference/host_transcripts.fa",
)
COMPANION_SUFFIXES = {".bam": ".bai", ".vcf.gz": ".tbi"}
"""Index files written beside data files (``x.bam`` -> ``x.bam.bai``)."""


def _relative(data_dir: str | os.PathLike, table_dir: str | os.PathLike, path: str) -> str:
    if not path:
        return ""
    return os.path.relpath(Path(data_dir) / path, table_dir)


def patients_table(
    patients: list[PatientDesign], table_dir: str | os.PathLike, data_dir: str | os.PathLike
) -> pd.DataFrame:
    """``patients.tsv`` of the cohort, paths relative to ``table_dir``."""
    rows = []
    for patient in patients:
        row = {column: getattr(patient, column) for column in PATIENT_COLUMNS}
        row["tumor_variants"] = _relative(data_dir, table_dir, patient.tumor_variants)
        rows.append(row)
    return pd.DataFrame(rows, columns=[*PATIENT_COLUMNS, "tumor_variants"])


def samples_table(
    patients: list[PatientDesign], table_dir: str | os.PathLike, data_dir: str | os.PathLike
) -> pd.DataFrame:
    """``samples.tsv`` of the cohort, paths relative to ``table_dir``."""
    rows = []
    for patient in patients:
        for sample in patient.samples:
            row = {column: getattr(sample, column) for column in SAMPLE_COLUMNS}
            row["counts"] = _relative(data_dir, table_dir, sample.counts)
            row["reads"] = _relative(data_dir, table_dir, sample.reads)
            rows.append(row)
    return pd.DataFrame(rows, columns=list(SAMPLE_COLUMNS))


def write_tables(
    patients: list[PatientDesign], table_dir: str | os.PathLike, data_dir: str | os.PathLike
) -> tuple[Path, Path]:
    """Write ``patients.tsv`` and ``samples.tsv`` into ``table_dir``; return their paths."""
    table_dir = Path(table_dir)
    table_dir.mkdir(parents=True, exist_ok=True)
    paths = (table_dir / "patients.tsv", table_dir / "samples.tsv")
    patients_table(patients, table_dir, data_dir).to_csv(paths[0], sep="\t", index=False)
    samples_table(patients, table_dir, data_dir).to_csv(paths[1], sep="\t", index=False)
    return paths


def with_index_files(path: str) -> list[str]:
    """``path`` and the index file written beside it, if its format has one."""
    return [path] + [
        path + index for suffix, index in COMPANION_SUFFIXES.items() if path.endswith(suffix)
    ]


def data_files(patients: list[PatientDesign], normals: Sequence[str] = ()) -> list[str]:
    """Every file the generator writes for these patients, relative to the data folder.

    ``normals``: the tumour-free plasma normals' BAMs
    (:func:`carmscope.synthetic.design.plasma_normals`), listed with their indexes.
    """
    files = [*REFERENCE_FILES, *TRUTH_FILES]
    for path in normals:
        files.extend(with_index_files(path))
    for patient in patients:
        named = [patient.tumor_variants] + [
            path for sample in patient.samples for path in (sample.counts, sample.reads)
        ]
        for path in filter(None, named):
            files.extend(with_index_files(path))
    return files


def _is_under(path: str, folder: str) -> bool:
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return os.path.commonpath([path, folder]) == folder


def generated_files(sheets, data_dir: str, normals: Sequence[str] = ()) -> list[str]:
    """Files under ``data_dir`` that validated tables use, with their index and truth files.

    These are the outputs the synthetic-cohort rule must write; empty when the tables use no
    file under ``data_dir`` (real data).

    Parameters
    ----------
    sheets
        Validated tables (:class:`carmscope.sheets.Sheets`); paths already resolved.
    data_dir
        The synthetic cohort's data folder (relative to the working directory).
    normals
        Panel-of-normals BAMs the workflow uses (config ``ctdna.panel_of_normals``, relative to
        the working directory); those under ``data_dir`` are generated too.
    """
    named = [
        *sheets.patients["tumor_variants"],
        *sheets.samples["counts"],
        *sheets.samples["reads"],
        *normals,
    ]
    used = [path for path in named if path and _is_under(path, data_dir)]
    if not used:
        return []
    files = [os.path.join(data_dir, path) for path in (*REFERENCE_FILES, *TRUTH_FILES)]
    for path in used:
        files.extend(with_index_files(path))
    return [os.path.normpath(path) for path in dict.fromkeys(files)]


def design_mismatches(
    sheets,
    data_dir: str,
    patients: list[PatientDesign],
    normals: Sequence[str] = (),
    designed_normals: Sequence[str] = (),
) -> list[str]:
    """Where validated tables disagree with the cohort the generator would write.

    Only rows whose files lie under ``data_dir`` are compared: the generator makes those files,
    so their sample and patient fields must be exactly the designed ones (else the truth would
    not describe the data). Likewise every panel-of-normals BAM in ``normals`` (config
    ``ctdna.panel_of_normals``) under ``data_dir`` must be one of ``designed_normals``
    (:func:`carmscope.synthetic.design.plasma_normals`, relative to ``data_dir``). Returns one
    message per disagreement.
    """
    designed_samples = samples_table(patients, data_dir, data_dir).set_index("sample_id")
    designed_patients = patients_table(patients, data_dir, data_dir).set_index("patient_id")
    problems = []
    for path in normals:
        if _is_under(path, data_dir) and not any(
            _same_path(path, os.path.join(data_dir, designed)) for designed in designed_normals
        ):
            problems.append(
                f"panel-of-normals BAM {path} is not in the synthetic cohort's design "
                f"(it has {len(designed_normals)} plasma normal(s): n_plasma_normals)"
            )
    for sample_id, row in sheets.samples.iterrows():
        if not any(row[c] and _is_under(row[c], data_dir) for c in ("counts", "reads")):
            continue
        if sample_id not in designed_samples.index:
            problems.append(f"sample {sample_id} is not in the synthetic cohort's design")
            continue
        designed = designed_samples.loc[sample_id]
        for column in SAMPLE_COLUMNS[1:]:
            expected = designed[column]
            if column in ("counts", "reads"):
                expected = os.path.join(data_dir, expected) if expected else ""
                same = _same_path(row[column], expected)
            else:
                same = str(row[column]) == str(expected)
            if not same:
                problems.append(
                    f"sample {sample_id}, column {column!r}: table has {row[column]!r}, "
                    f"the generator makes {expected!r}"
                )
    for patient_id in sheets.samples.loc[
        sheets.samples.index.isin(designed_samples.index), "patient_id"
    ].unique():
        if patient_id not in designed_patients.index:
            continue
        for column in PATIENT_COLUMNS[1:]:
            value, expected = (
                sheets.patients.loc[patient_id, column],
                designed_patients.loc[patient_id, column],
            )
            if str(value) != str(expected):
                problems.append(
                    f"patient {patient_id}, column {column!r}: table has {value!r}, "
                    f"the generator makes {expected!r}"
                )
    return problems


def _same_path(a: str, b: str) -> bool:
    if not a or not b:
        return a == b
    return os.path.abspath(a) == os.path.abspath(b)
