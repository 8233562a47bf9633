"""The input tables of a synthetic cohort, and the files a workflow must generate for them.

The tables follow the pipeline's input contract exactly (``patients.tsv``, ``samples.tsv``);
their paths are relative to the folder the tables are written to, pointing into the folder the
cohort's data files are (or will be) written to.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from carmscope import sheets
from carmscope.synthetic.design import PatientDesign
from carmscope.vocabulary import BULK_RNA, CAR_PCR, CFDNA, CYTOKINES, SCRNA, TCR

PATIENT_COLUMNS = ("patient_id", "indication", "her2_ihc", "dosing", "best_response")
SAMPLE_COLUMNS = (*sheets.SAMPLE_COLUMNS, "vdj")
"""The sheet's required columns, then ``vdj`` (``hours`` and ``tissue`` come last)."""

TRUTH_FILES = (
    "truth/patients.tsv",
    "truth/samples.tsv",
    "truth/cells.tsv.gz",
    "truth/variants.tsv",
    "truth/inflammatory_genes.txt",
    "truth/blood_kinetics.tsv",
    "truth/blood_cytokines.tsv",
    "truth/tcr_clones.tsv",
    "truth/tcr_patients.tsv",
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
        row["crs_grade"] = patient.crs_grade
        rows.append(row)
    return pd.DataFrame(rows, columns=[*PATIENT_COLUMNS, "tumor_variants", "crs_grade"])


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
            row["vdj"] = _relative(data_dir, table_dir, sample.vdj)
            row["hours"] = "" if sample.hours is None else f"{sample.hours:g}"
            row["tissue"] = sample.tissue
            rows.append(row)
    return pd.DataFrame(rows, columns=[*SAMPLE_COLUMNS, "hours", "tissue"])


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


PATIENT_TRUTH = "truth/per_patient/{patient}.json.gz"
"""A patient's truth, written by the patient's job and gathered into ``TRUTH_FILES`` (a
workflow's intermediate: :func:`carmscope.synthetic.cohort.generate_cohort` does not write it)."""
ASSAY_LABELS = {
    SCRNA: "scrna",
    BULK_RNA: "bulk",
    CFDNA: "cfdna",
    CAR_PCR: "pcr",
    CYTOKINES: "cyt",
    TCR: "tcr",
}


def patient_files(patient: PatientDesign) -> list[str]:
    """The data files the generator writes for one patient (VCF and samples' files, with their
    indexes), relative to the data folder."""
    named = [patient.tumor_variants] + [
        path for sample in patient.samples for path in (sample.counts, sample.reads, sample.vdj)
    ]
    return [file for path in named if path for file in with_index_files(path)]


def data_files(patients: list[PatientDesign], normals: Sequence[str] = ()) -> list[str]:
    """Every file the generator writes for these patients, relative to the data folder.

    ``normals``: the tumour-free plasma normals' BAMs
    (:func:`carmscope.synthetic.design.plasma_normals`), listed with their indexes.
    """
    files = [*REFERENCE_FILES, *TRUTH_FILES]
    for path in normals:
        files.extend(with_index_files(path))
    for patient in patients:
        files.extend(patient_files(patient))
    return files


def _is_under(path: str, folder: str) -> bool:
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return os.path.commonpath([path, folder]) == folder


def data_dir_of(path: str, relative: str) -> str:
    """The cohort folder holding ``path``, a file that is ``relative`` inside it.

    E.g. ``data_dir_of("cohort/truth/patients.tsv", "truth/patients.tsv") == "cohort"``: how a
    job finds the folder from its output (which need not be where the workflow started).
    """
    depth = len(Path(relative).parts)
    return str(Path(path).parents[depth - 1])


def _spelled_as_in_tables(path: str) -> str:
    """``path`` as validated tables spell it: relative to the working directory when under it,
    else absolute (:mod:`carmscope.sheets`), so that a rule's output is the file a table names."""
    path = os.path.abspath(path)
    return os.path.relpath(path) if _is_under(path, os.getcwd()) else path


@dataclass(frozen=True)
class PatientShape:
    """Patients whose files differ only by their ID: one rule of the workflow writes them all."""

    name: str
    """Rule name: ``synthetic_patient_`` and the samples per assay, e.g.
    ``synthetic_patient_scrna2_cfdna4``."""
    outputs: tuple[str, ...]
    """The files a patient's job writes (data files, then its truth), with ``{patient}``."""
    patients: tuple[str, ...]


@dataclass(frozen=True)
class GeneratedFiles:
    """The files of a synthetic cohort that a workflow must write, by job.

    Paths are spelled as the tables spell them (relative to the working directory when under
    it). False when the tables use nothing of the cohort (real data).
    """

    data_dir: str
    patients: dict[str, tuple[str, ...]]
    """Patient ID to the data files its job writes (all of the patient's files, relative to
    ``data_dir``), for the patients whose files the tables use, in design order."""
    normals: dict[str, tuple[str, ...]]
    """Plasma-normal ID to its BAM and index (relative to ``data_dir``), for those used."""
    labels: dict[str, str] = field(default_factory=dict)
    """Patient ID to its samples per assay (``scrna2_cfdna4``), which names its rule."""

    def __bool__(self) -> bool:
        return bool(self.patients or self.normals)

    def path(self, relative: str) -> str:
        """A file of the cohort folder (``relative`` to it), spelled as the tables spell it."""
        return _spelled_as_in_tables(os.path.join(self.data_dir, relative))

    @property
    def reference(self) -> list[str]:
        """The shared references (one job)."""
        return [self.path(file) for file in REFERENCE_FILES]

    @property
    def truth(self) -> list[str]:
        """The truth tables (one job, gathering the patients' truths)."""
        return [self.path(file) for file in TRUTH_FILES]

    def patient_truth(self, patient_id: str) -> str:
        """A patient's truth file, written by the patient's job."""
        return self.path(PATIENT_TRUTH.format(patient=patient_id))

    def files(self) -> list[str]:
        """Every file the workflow writes for the cohort."""
        files = [*self.reference, *self.truth]
        for patient_id, patient_files in self.patients.items():
            files += [self.path(file) for file in patient_files]
            files.append(self.patient_truth(patient_id))
        for normal_files in self.normals.values():
            files += [self.path(file) for file in normal_files]
        return files

    def patient_shapes(self) -> list[PatientShape]:
        """The patients grouped by the files their jobs write, with ``{patient}`` for the ID.

        A workflow rule's outputs are fixed patterns, and patients differ in their samples
        (bulk RNA or not, 0, 3 or 4 plasma samples): one rule per shape, each for its patients.
        """
        shapes: dict[tuple[str, ...], list[str]] = {}
        for patient_id, patient_files in self.patients.items():
            relative = [file.replace(patient_id, "{patient}") for file in patient_files]
            relative.append(PATIENT_TRUTH)
            outputs = tuple(self.path(file) for file in relative)
            shapes.setdefault(outputs, []).append(patient_id)
        result: list[PatientShape] = []
        for outputs, patients in shapes.items():
            base = name = f"synthetic_patient_{self.labels.get(patients[0], 'samples')}"
            while name in {shape.name for shape in result}:  # same samples, other files
                name = f"{base}_{len(result) + 1}"
            result.append(PatientShape(name, outputs, tuple(patients)))
        return result


def _assay_label(patient: PatientDesign) -> str:
    counts = Counter(sample.assay for sample in patient.samples)
    return "_".join(
        f"{ASSAY_LABELS[assay]}{counts[assay]}" for assay in ASSAY_LABELS if counts[assay]
    )


def generated_files(
    sheets,
    data_dir: str,
    patients: list[PatientDesign],
    normals: Sequence[str] = (),
) -> GeneratedFiles:
    """The files under ``data_dir`` that a workflow must write for validated tables.

    A patient gets a job when the tables use one of its files under ``data_dir`` (its VCF or a
    sample's files); the job writes all of the patient's files and its truth. A plasma normal
    gets a job when ``normals`` names its BAM under ``data_dir``. With any job, the shared
    references and the truth tables (of the patients with a job) are written too.

    Parameters
    ----------
    sheets
        Validated tables (:class:`carmscope.sheets.Sheets`); paths already resolved.
    data_dir
        The synthetic cohort's data folder (relative to the working directory).
    patients
        The cohort's design (:func:`carmscope.synthetic.design.design_cohort`). Table rows of
        patients outside it get no job (:func:`design_mismatches` reports them).
    normals
        Panel-of-normals BAMs the workflow uses (config ``ctdna.panel_of_normals``, relative to
        the working directory).
    """
    used = {
        patient_id
        for patient_id, path in sheets.patients["tumor_variants"].items()
        if path and _is_under(path, data_dir)
    }
    for _, row in sheets.samples.iterrows():
        if any(row[column] and _is_under(row[column], data_dir) for column in ("counts", "reads")):
            used.add(row["patient_id"])
    jobs = [patient for patient in patients if patient.patient_id in used]
    return GeneratedFiles(
        data_dir=os.path.normpath(data_dir),
        patients={patient.patient_id: tuple(patient_files(patient)) for patient in jobs},
        normals={
            Path(path).name.removesuffix(".bam"): tuple(
                with_index_files(os.path.relpath(os.path.abspath(path), os.path.abspath(data_dir)))
            )
            for path in normals
            if _is_under(path, data_dir)
        },
        labels={patient.patient_id: _assay_label(patient) for patient in jobs},
    )


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
            if column in ("counts", "reads", "vdj"):
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
