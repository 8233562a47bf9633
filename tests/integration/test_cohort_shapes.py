"""Every cohort shape runs: the tiny synthetic cohort cut into the shapes real trials have.

One mixed cohort holds a patient of each unusual shape (counts-only biopsies with plasma but no
tumour VCF, plasma only, bulk RNA only, one reads-only biopsy and no post-infusion sample) beside
a patient with every file (a copy of CARM-002's data under new IDs) and a patient some of whose
files are damaged (a copy of CARM-003's: input inspection finds them unusable, so those samples
are left out and the run goes on), and runs the whole workflow; its per-patient table marks each
figure that cannot be evaluated with its reason, and the complete patient's figures equal those
of a run of that patient alone (ctDNA with the panel-of-normals background, which the shaped
runs use: it does not depend on the cohort).
Cohorts made of one shape alone (counts only, reads only, bulk only, plasma only) run to the
result tables, as each once crashed a step that assumed another shape.
"""

import csv
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from carmscope.synthetic.design import PRESETS, plasma_normals
from tests.integration.test_workflow import snakemake, write_config

pytestmark = pytest.mark.integration

COMPLETE, COPIED = "CARM-005", "CARM-002"
"""The mixed cohort's complete patient, and the tiny patient whose data it reuses."""
DAMAGED, DAMAGED_FROM = "CARM-006", "CARM-003"
"""The mixed cohort's patient with unusable files, and the tiny patient whose data it reuses."""
DAMAGED_FILES = {
    # sample of DAMAGED_FROM: (column, damage)
    "D8_sc": ("counts", "cut"),  # a Cell Ranger HDF5 cut short: the post-infusion biopsy
    "screening_bulk": ("counts", "bad_count"),  # the baseline bulk RNA
    "D57_cf": ("reads", "cut"),  # the last plasma BAM
}
"""(A blood draw left out: tests/integration/test_blood.py.)"""


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, tool):
    """The tiny synthetic cohort's data and tables, written once by the generator."""
    folder = tmp_path_factory.mktemp("shapes") / "cohort"
    subprocess.run(
        [tool("carmscope-synthetic"), "generate", "--preset", "tiny", "--out", str(folder)],
        check=True,
        capture_output=True,
    )
    return folder


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)


def shaped_run(repo, tool, cohort, workdir, patients, samples, targets=()):
    """Write the cut tables into ``cohort`` (paths stay relative to it), a config into
    ``workdir``, and run the workflow there. ``patients``/``samples`` map rows to a row, a list
    of rows or None (left out). ctDNA runs with the tiny cohort's panel of normals."""
    workdir.mkdir()
    tables = {}
    for name, edit in (("patients", patients), ("samples", samples)):
        rows = []
        for row in read_rows(cohort / f"{name}.tsv"):
            edited = edit(row)
            rows += [e for e in (edited if isinstance(edited, list) else [edited]) if e]
        tables[name] = cohort / f"{workdir.name}_{name}.tsv"
        write_rows(tables[name], rows)
    write_config(
        workdir,
        repo,
        patients=str(tables["patients"]),
        samples=str(tables["samples"]),
        synthetic={"outdir": str(workdir / "no_synthetic"), "preset": "tiny"},
        ctdna={
            "reference": str(cohort / "reference/genome.fa"),
            "panel_of_normals": [str(cohort / path) for path in plasma_normals(PRESETS["tiny"])],
        },
    )
    result = snakemake(repo, tool, workdir, *targets)
    assert result.returncode == 0, result.stderr[-5000:]
    return pd.read_csv(
        workdir / "results/tables/patients.tsv", sep="\t", keep_default_na=False, dtype=str
    ).set_index("patient_id")


def complete_copy(row):
    """COPIED's row as COMPLETE's: the same files under new patient and sample IDs."""
    copy = row | {"patient_id": COMPLETE}
    if "sample_id" in row:
        copy["sample_id"] = row["sample_id"].replace(COPIED, COMPLETE)
    return copy


def complete_samples(row):
    """COMPLETE's biopsies and plasma (tcr and blood: their own tests)."""
    if row["patient_id"] != COPIED or row["assay"] not in ("scrna", "bulk_rna", "cfdna"):
        return None
    return complete_copy(row)


def damage(cohort: Path, path: str, how: str) -> str:
    """A damaged copy of a cohort file, beside the others (``path`` relative to ``cohort``)."""
    copy = Path("damaged") / Path(path).name
    (cohort / copy.parent).mkdir(exist_ok=True)
    data = (cohort / path).read_bytes()
    if how == "cut":  # an interrupted copy
        (cohort / copy).write_bytes(data[: len(data) // 2])
    else:  # a count that is not a number, on the last line
        lines = data.decode().rstrip("\n").split("\n")
        header, fields = lines[0].split("\t"), lines[-1].split("\t")
        fields[header.index("count")] = "many"
        (cohort / copy).write_text("\n".join([*lines[:-1], "\t".join(fields)]) + "\n")
    return str(copy)


def damaged_samples(cohort: Path):
    """DAMAGED's rows: DAMAGED_FROM's biopsies and plasma, some files damaged."""

    def edit(row):
        if row["assay"] not in ("scrna", "bulk_rna", "cfdna"):
            return None
        copy = row | {"patient_id": DAMAGED}
        copy["sample_id"] = row["sample_id"].replace(DAMAGED_FROM, DAMAGED)
        suffix = row["sample_id"].removeprefix(f"{DAMAGED_FROM}_")
        if suffix in DAMAGED_FILES:
            column, how = DAMAGED_FILES[suffix]
            copy[column] = damage(cohort, row[column], how)
        return copy

    return edit


def mixed_samples(cohort: Path):
    """CARM-001 counts-only scRNA (+ plasma), CARM-002 plasma only, CARM-003 bulk RNA only
    (+ plasma), CARM-004 one reads-only scRNA biopsy before infusion and nothing after,
    COMPLETE with every biopsy and plasma file, and DAMAGED."""
    damaged = damaged_samples(cohort)

    def edit(row):
        patient, assay = row["patient_id"], row["assay"]
        copies = []
        if patient == DAMAGED_FROM:
            copies.append(damaged(row))
        if assay not in ("scrna", "bulk_rna", "cfdna"):
            return copies  # the shapes of the biopsy and plasma stages (tcr, blood: their tests)
        if patient == COPIED:
            copies.append(complete_samples(row))
        return [edited for edited in (mixed_sample(row), *copies) if edited]

    return edit


def mixed_sample(row):
    patient, assay = row["patient_id"], row["assay"]
    if patient == "CARM-001" and assay == "scrna":
        return row | {"reads": ""}
    if patient in ("CARM-002", "CARM-003") and assay == "scrna":
        return None
    if patient == "CARM-004":
        return row | {"counts": ""} if int(row["day"]) <= 0 else None
    return row


def mixed_patients(row):
    if row["patient_id"] == COPIED:
        return [row, complete_copy(row)]
    if row["patient_id"] == DAMAGED_FROM:
        return [row, row | {"patient_id": DAMAGED}]
    return row | {"tumor_variants": ""} if row["patient_id"] == "CARM-001" else row


def complete_patient(row):
    return complete_copy(row) if row["patient_id"] == COPIED else None


@pytest.fixture(scope="module")
def mixed(repo, tool, cohort, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mixed") / "mixed"
    return shaped_run(repo, tool, cohort, workdir, mixed_patients, mixed_samples(cohort))


@pytest.fixture(scope="module")
def complete_alone(repo, tool, cohort, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("complete") / "complete"
    return shaped_run(
        repo,
        tool,
        cohort,
        workdir,
        complete_patient,
        complete_samples,
        ["results/tables/patients.tsv"],
    )


def test_mixed_cohort_marks_each_unevaluable_figure_with_its_reason(mixed):
    assert list(mixed.index) == ["CARM-001", "CARM-002", COMPLETE, "CARM-003", DAMAGED, "CARM-004"]
    # counts only: expression evaluable, CAR detection needs reads; no VCF: ctDNA not tracked
    assert mixed.loc["CARM-001", "biopsy_assay"] == "scrna"
    assert mixed.loc["CARM-001", "cd8_fraction_delta"] != ""
    assert mixed.loc["CARM-001", "ctdna_reason"].startswith("no tumor_variants VCF")
    assert mixed.loc["CARM-001", "car_detected"] == ""
    # plasma only: no biopsy figure, ctDNA evaluated
    assert mixed.loc["CARM-002", "biopsy_assay"] == ""
    assert mixed.loc["CARM-002", "cd8_reason"] != ""
    assert mixed.loc["CARM-002", "ctdna_baseline_mean_vaf"] != ""
    # bulk only: no cell fractions, a CD8 score
    assert mixed.loc["CARM-003", "biopsy_assay"] == "bulk_rna"
    assert mixed.loc["CARM-003", "cd8_reason"] == "bulk RNA: no cell fractions"
    assert mixed.loc["CARM-003", "cd8_score_delta"] != ""
    # one pre-infusion biopsy with reads only: nothing to compare
    assert mixed.loc["CARM-004", "cd8_fraction_delta"] == ""
    assert mixed.loc["CARM-004", "cd8_reason"] != ""
    assert mixed.loc["CARM-004", "ctdna_reason"].startswith("no plasma samples")


def test_complete_patient_figures_do_not_depend_on_the_unusual_patients(mixed, complete_alone):
    alone = complete_alone.loc[COMPLETE]
    beside = mixed.loc[COMPLETE, alone.index]
    # every figure is there: CAR, CD8 fraction and score, inflammation and ctDNA
    for column in ("car_detected", "cd8_fraction_delta", "ctdna_baseline_mean_vaf"):
        assert alone[column] != "", column
    differing = {column: (beside[column], alone[column]) for column in alone.index}
    differing = {column: pair for column, pair in differing.items() if pair[0] != pair[1]}
    assert not differing


@pytest.mark.parametrize(
    ("shape", "samples"),
    [
        ("counts_only", lambda r: r | {"reads": ""} if r["assay"] == "scrna" else None),
        ("reads_only", lambda r: r | {"counts": ""} if r["assay"] == "scrna" else None),
        ("bulk_only", lambda r: r if r["assay"] == "bulk_rna" else None),
        ("plasma_only", lambda r: r if r["assay"] == "cfdna" else None),
    ],
)
def test_single_shape_cohorts_reach_the_result_tables(
    repo, tool, cohort, tmp_path_factory, shape, samples
):
    def one_patient(row):
        wanted = "CARM-003" if shape == "bulk_only" else "CARM-002"
        return samples(row) if row["patient_id"] == wanted else None

    def its_patient(row):
        return row if row["patient_id"] in ("CARM-002", "CARM-003") else None

    workdir = tmp_path_factory.mktemp(shape) / shape
    table = shaped_run(
        repo, tool, cohort, workdir, its_patient, one_patient, ["results/tables/patients.tsv"]
    )
    patient = "CARM-003" if shape == "bulk_only" else "CARM-002"
    assert table.loc[patient, "qc_flags"] is not None
    if shape == "counts_only":
        assert table.loc[patient, "cd8_fraction_delta"] != ""
    if shape == "reads_only":
        assert table.loc[patient, "car_detected"] in ("True", "False")
        assert table.loc[patient, "cd8_reason"] != ""
    if shape == "bulk_only":
        assert table.loc[patient, "cd8_score_delta"] != ""
    if shape == "plasma_only":
        assert table.loc[patient, "ctdna_baseline_mean_vaf"] != ""


def test_unusable_files_leave_their_samples_out_and_the_cohort_runs(mixed):
    """The run above finished without --keep-going although four of DAMAGED's files are
    unusable: those samples are left out, flagged, and the figures they decide say so."""
    flags = mixed.loc[DAMAGED, "qc_flags"].split(";")
    for suffix in DAMAGED_FILES:
        assert f"unusable_input:{DAMAGED}_{suffix}" in flags
    # the post-infusion scRNA biopsy is left out: no CD8 change, no per-cell CAR figures (the
    # CAR call itself comes from the post-infusion bulk RNA biopsy, which is usable)
    left_out = f"{DAMAGED}_D8_sc left out: unusable input (input_problem in samples.tsv)"
    assert mixed.loc[DAMAGED, "cd8_fraction_delta"] == ""
    assert mixed.loc[DAMAGED, "cd8_reason"] == left_out
    assert mixed.loc[DAMAGED, "inflammation_reason"] == left_out
    assert left_out in mixed.loc[DAMAGED, "car_reason"]
    assert mixed.loc[DAMAGED, "car_positive_cell_fraction"] == ""
    assert mixed.loc[DAMAGED, "tcr_tumour_reason"] == "no post-infusion tumour repertoire"
    # ctDNA from the plasma samples left: the baseline is there
    assert mixed.loc[DAMAGED, "ctdna_baseline_mean_vaf"] != ""
    # the patient whose data it copies is untouched by the damage
    assert not any(
        f.startswith("unusable_input") for f in mixed.loc[DAMAGED_FROM, "qc_flags"].split(";")
    )
