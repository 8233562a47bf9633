# carmscope: correlative analysis of CAR-macrophage cell-therapy trials.
from snakemake.utils import min_version

min_version("9.0")


# config/config.yaml is the bundled demo (the synthetic CT-0508-like cohort, `make run`). It is
# read only when the command line brings no config of its own (a --configfile, or --config
# naming the tables): a user's config then stands alone, every key it leaves out taking the
# schema's default, and never inherits the demo's paths (config/README.md).
if not workflow.overwrite_configfiles and not {"patients", "samples"} & set(config):

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/expression.smk"
include: "workflow/rules/embedding.smk"
include: "workflow/rules/de.smk"
include: "workflow/rules/ctdna.smk"
include: "workflow/rules/car.smk"
include: "workflow/rules/tcr.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/blood.smk"
include: "workflow/rules/multiqc.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        final_outputs(),


# The end of a run says which per-patient figures are not evaluable, and why (README); a
# failed run leaves a note beside the result tables that they may be from an earlier run.
onsuccess:
    from carmscope.tables.run_summary import clear_stale, run_summary

    clear_stale(tables_rules.STALE_NOTE)
    summary = run_summary(
        tables_rules.TABLE_FILES["patients"], inventory=inspection_rules.INVENTORY
    )
    if summary:
        print(summary, file=sys.stderr)


onerror:
    from carmscope.tables.run_summary import mark_stale

    mark_stale(tables_rules.STALE_NOTE)
