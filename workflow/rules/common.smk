# Everything that is not a rule: config and table validation, wildcard constraints, input
# functions. The rest of the wiring (paths, resources, parse-time checks) is the `wiring`
# package in workflow/lib/, which only the workflow imports; the domain code lives in the
# `carmscope` package under src/.
import os
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# The carmscope package and the wiring, for the rule files; job scripts import carmscope
# through the workflow/scripts/carmscope link (Snakemake puts a script's folder on its path).
# The repository: this file's folder's grandparent (also when used as a module, where
# workflow.basedir is the including Snakefile's folder).
WORKFLOW_ROOT = Path(str(workflow.current_basedir)).parents[1]
for _folder in ("src", "workflow/lib"):
    if str(WORKFLOW_ROOT / _folder) not in sys.path:
        sys.path.insert(0, str(WORKFLOW_ROOT / _folder))

from carmscope.bundled import resolve_bundled  # noqa: E402
from wiring.resources import scaled  # noqa: E402
from carmscope.sheets import ID_PATTERN, SheetError, load_sheets, one_of_ids  # noqa: E402
from carmscope.synthetic.design import (  # noqa: E402
    design_cohort,
    params_from_config,
    plasma_normals,
)
from carmscope.synthetic.tables import design_mismatches, generated_files  # noqa: E402
from carmscope import vocabulary  # noqa: E402

validate(config, schema="../../config/schemas/config.schema.yaml", set_default=True)
# deployed (snakedeploy) or used as a module: bundled resources from the workflow's own folder
resolve_bundled(config, WORKFLOW_ROOT)

SYNTHETIC_DIR = os.path.normpath(config["synthetic"]["outdir"])

try:
    SHEETS = load_sheets(
        config["patients"],
        config["samples"],
        generated_dirs=[SYNTHETIC_DIR],
        strict=config["strict"],
    )
except SheetError as error:
    raise WorkflowError(str(error)) from None

PATIENTS = SHEETS.patients
SAMPLES = SHEETS.samples

# The synthetic cohort's files that the tables use, by job (workflow/rules/synthetic.smk): one
# job per patient whose files the tables use (all of its files and its truth), one per plasma
# normal that ctdna.panel_of_normals names under the cohort folder, the shared references and
# the truth tables. False (no synthetic job) when the tables use no file of the folder.
try:
    SYNTHETIC_PARAMS = params_from_config(config["synthetic"])
except ValueError as error:
    raise WorkflowError(f"config 'synthetic': {error}") from None
SYNTHETIC_DESIGN = design_cohort(SYNTHETIC_PARAMS)
SYNTHETIC = generated_files(
    SHEETS, SYNTHETIC_DIR, SYNTHETIC_DESIGN, config["ctdna"]["panel_of_normals"]
)
if SYNTHETIC:
    _mismatches = design_mismatches(
        SHEETS,
        SYNTHETIC_DIR,
        SYNTHETIC_DESIGN,
        config["ctdna"]["panel_of_normals"],
        plasma_normals(SYNTHETIC_PARAMS),
    )
    if _mismatches:
        raise WorkflowError(
            f"The tables ({config['patients']}, {config['samples']}) point into the synthetic "
            f"cohort folder {SYNTHETIC_DIR} but disagree with what the generator makes from "
            "config 'synthetic':\n  "
            + "\n  ".join(_mismatches[:20])
            + "\nRewrite the tables for these parameters with: .venv/bin/carmscope-synthetic "
            f"tables --preset {config['synthetic']['preset']} --data-dir {SYNTHETIC_DIR} "
            "--out <folder of the tables> (plus the same overrides as in the config)"
        )


# The cores of a local run (--cores; rules that take several threads use at most half, so
# one-thread jobs keep running beside them: wiring.car.scan_threads); None on a cluster
# executor and inside its jobs, where each job gets the CPUs it asks for.
LOCAL_CORES = workflow.cores if workflow.is_main_process and workflow.local_exec else None


wildcard_constraints:
    sample=ID_PATTERN.pattern,
    patient=ID_PATTERN.pattern,


def samples_of_assay(assay):
    """IDs of the samples of one assay, in table order."""
    return list(SAMPLES.index[SAMPLES["assay"] == assay])


def expression_samples(assay):
    """IDs of the biopsies of one assay that have a count matrix (expression runs on them; a
    biopsy with reads only goes through the CAR scan alone), in table order."""
    return [sample for sample in samples_of_assay(assay) if SAMPLES.loc[sample, "counts"]]


def sample_field(wildcards, column):
    return SAMPLES.loc[wildcards.sample, column]


def sample_input_files(sample):
    """The input files of one sample, by role; absent ones left out."""
    row = SAMPLES.loc[sample]
    files = {role: row[role] for role in ("counts", "reads") if row[role]}
    variants = PATIENTS.loc[row["patient_id"], "tumor_variants"]
    if row["assay"] == vocabulary.CFDNA and variants:
        files["tumor_variants"] = variants
    return files


def car_cells_table(wildcards):
    """Per-cell CAR table of a scRNA sample (barcode, car_umis), from CAR detection."""
    return car_rules.scan_file(vocabulary.SCRNA, wildcards.sample, "cells.tsv.gz")


def final_outputs():
    """Every file `rule all` asks for."""
    targets = [inspection_rules.INVENTORY]
    targets += [
        expression_rules.assay_file(assay, "paired_tests.tsv")
        for assay in vocabulary.RNA_ASSAYS
        if expression_samples(assay)
    ]
    targets += de_rules.outputs(SAMPLES)
    targets += CTDNA_OUTPUTS
    targets += EMBEDDING_OUTPUTS + MULTIQC_OUTPUTS
    targets += car_rules.outputs(SAMPLES)
    targets += blood_rules.outputs(SAMPLES)
    targets += TCR_OUTPUTS
    # the result tables read every per-sample table they need (car_by_cell_type.tsv, ...)
    targets += list(tables_rules.TABLE_FILES.values()) + list(tables_rules.FIGURE_FILES.values())
    # the rest of the synthetic cohort: its references and truth (analyses need neither)
    targets += SYNTHETIC.reference + SYNTHETIC.truth if SYNTHETIC else []
    return targets
