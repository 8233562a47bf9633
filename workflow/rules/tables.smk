# Result tables and report (docs/outputs.md): per patient, per sample, the cohort summary with
# its paired tests, the Excel workbook, and the report's figures.
#
#   result_tables    results/tables/{patients,samples,cohort_summary}.tsv + carmscope_results.xlsx
#   report_figures   results/report/cohort_overview.png + results/report/patients/{patient}.png
#
# Both are cohort aggregates of small tables: they run on the submit host (localrule) and
# re-run when any patient is added; the per-sample steps they read do not.
# Needs from common.smk: PATIENTS, SAMPLES, scaled, WorkflowError; from car.smk: car_rules.
# Helpers: workflow/lib/wiring/tables.py; the settings' checks: carmscope.tables.settings.

from carmscope.tables.settings import table_settings
from wiring import tables as tables_rules

try:
    TABLE_SETTINGS = table_settings(
        config["tables"], config["genesets"]["gmt"], PATIENTS, config["patients"]
    )
except (OSError, ValueError) as error:  # TablesConfigError, GMT format errors
    raise WorkflowError(str(error)) from None


rule result_tables:
    input:
        **tables_rules.table_inputs(
            SAMPLES, bool(car_rules.all_scanned(SAMPLES)), ctdna_tracked=bool(CTDNA_SAMPLES)
        ),
    output:
        patients=report(
            tables_rules.TABLE_FILES["patients"],
            caption="../report/patients.rst",
            category="1. Cohort",
            labels={"table": "per patient"},
        ),
        samples=report(
            tables_rules.TABLE_FILES["samples"],
            caption="../report/samples.rst",
            category="1. Cohort",
            labels={"table": "per sample"},
        ),
        summary=report(
            tables_rules.TABLE_FILES["summary"],
            caption="../report/cohort_summary.rst",
            category="1. Cohort",
            labels={"table": "cohort summary"},
        ),
        workbook=tables_rules.TABLE_FILES["workbook"],
    log:
        "logs/result_tables.log",
    localrule: True
    conda:
        "../../envs/expression.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=5),
        runtime=scaled(5, per_mb=0.01),
    params:
        patients=lambda wildcards: tables_rules.sheet_records(PATIENTS),
        samples=lambda wildcards: tables_rules.sheet_records(
            SAMPLES, ["patient_id", "timepoint", "day", "assay", "tissue"]
        ),
        settings=tables_rules.settings_params(TABLE_SETTINGS),
    script:
        "../scripts/result_tables.py"


rule report_figures:
    input:
        patients=tables_rules.TABLE_FILES["patients"],
        samples=tables_rules.TABLE_FILES["samples"],
        summary=tables_rules.TABLE_FILES["summary"],
    output:
        overview=report(
            tables_rules.FIGURE_FILES["overview"],
            caption="../report/cohort_overview.rst",
            category="1. Cohort",
            labels={"figure": "overview"},
        ),
        panels=report(
            directory(tables_rules.FIGURE_FILES["panels"]),
            patterns=["{patient}.png"],
            caption="../report/patient_panel.rst",
            category="2. Patients",
            labels={"patient": "{patient}"},
        ),
    log:
        "logs/report_figures.log",
    localrule: True
    conda:
        "../../envs/expression.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=5),
        runtime=scaled(5, per_mb=0.05),
    params:
        inflammation_sets=list(TABLE_SETTINGS.inflammation_sets),
        statistic=TABLE_SETTINGS.inflammation_statistic,
    script:
        "../scripts/report_figures.py"
