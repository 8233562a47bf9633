# Per-sample QC as MultiQC custom content (carmscope.tables.multiqc; docs/outputs.md): run
# `multiqc results/` after the pipeline and the report has carmscope's sections (input
# inspection, cells passing QC, CAR reads, ctDNA depth).
#
# Needs from common.smk: scaled; from tables.smk: tables_rules.

from carmscope.tables import multiqc as multiqc_tables

MULTIQC_OUTPUTS = [
    f"results/qc/multiqc/{multiqc_tables.file_name(section)}" for section in multiqc_tables.SECTIONS
]


rule multiqc_tables:
    input:
        samples=tables_rules.TABLE_FILES["samples"],
    output:
        MULTIQC_OUTPUTS,
    log:
        "logs/multiqc_tables.log",
    localrule: True
    conda:
        "../../envs/expression.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=5),
        runtime=scaled(5, per_mb=0.01),
    script:
        "../scripts/multiqc_tables.py"
