# carmscope: correlative analysis of CAR-macrophage cell-therapy trials.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/inputs.smk"
include: "workflow/rules/expression.smk"
include: "workflow/rules/ctdna.smk"
include: "workflow/rules/car.smk"
include: "workflow/rules/tables.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        final_outputs(),
