# carmscope: correlative analysis of CAR-macrophage cell-therapy trials.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/expression.smk"
include: "workflow/rules/de.smk"
include: "workflow/rules/ctdna.smk"
include: "workflow/rules/car.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/blood.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        final_outputs(),


# The end of a run says which per-patient figures are not evaluable, and why (README); a
# failed run leaves a note beside the result tables that they may be from an earlier run.
onsuccess:
    from carmscope.tables.run_summary import clear_stale, run_summary

    clear_stale()
    summary = run_summary("results/tables/patients.tsv")
    if summary:
        print(summary, file=sys.stderr)


onerror:
    from carmscope.tables.run_summary import mark_stale

    mark_stale()
