# Paired pseudobulk differential expression and pathway enrichment (carmscope.expression.de*,
# methods in docs/expression.md): per assay and cell type the paired DESeq2 test (pydeseq2)
# of baseline vs first post-infusion sample and the decoupler ulm enrichment of its Wald
# statistics; per assay a summary.
#
# Needs from common.smk: SAMPLES, PATIENTS. The pseudobulk counts per cell type of each scRNA
# sample are written by rule expression_scrna (from its QC-passed, annotated cells), so the
# embedding's settings do not re-run the DE. Settings come from the config's `expression.de`
# section and `genesets`; inputs and outputs from wiring.de (de_rules.outputs(SAMPLES) lists
# the files for `rule all`).

from wiring import de as de_rules  # noqa: E402
from carmscope.expression.de import DifferentialExpressionError  # noqa: E402

try:
    DE_CELL_TYPE_PATTERN = de_rules.cell_type_pattern(config)
except DifferentialExpressionError as error:
    raise WorkflowError(str(error)) from None


localrules:
    expression_de_summary,


rule expression_de:
    input:
        unpack(lambda wildcards: de_rules.profile_inputs(SAMPLES, wildcards.assay)),
        gmt=config["genesets"]["gmt"] + config["expression"]["de"]["gmt"],
        signatures=config["genesets"]["signatures"],
    output:
        **de_rules.profile_tables(),
        volcano=report(
            de_rules.VOLCANO,
            caption="../report/de_volcano.rst",
            category="5. Differential expression",
            subcategory="{assay}",
            labels={"assay": "{assay}", "cell type": "{cell_type}"},
        ),
    log:
        de_rules.LOGS["expression_de"],
    wildcard_constraints:
        assay="scrna|bulk_rna",
        cell_type=DE_CELL_TYPE_PATTERN,
    conda:
        "../../envs/expression.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: attempt
        * (1500 + 20 * len(de_rules.samples_of(SAMPLES, wildcards.assay))),
        runtime=lambda wildcards, attempt: attempt
        * (10 + len(de_rules.samples_of(SAMPLES, wildcards.assay)) // 4),
    params:
        samples=lambda wildcards: de_rules.sample_records(SAMPLES, wildcards.assay),
        patients=lambda wildcards: (
            PATIENTS[list(config["expression"]["de"]["group_columns"])]
            .reset_index()
            .to_dict("records")
        ),
        settings={
            key: config["expression"]["de"][key]
            for key in ("min_cells", "min_pairs", "min_count", "alpha", "shrink", "group_columns")
        },
        min_set_size=config["expression"]["de"]["min_set_size"],
    script:
        "../scripts/expression_de.py"


rule expression_de_summary:
    input:
        unpack(lambda wildcards: de_rules.summary_inputs(config, wildcards.assay)),
    output:
        summary=de_rules.SUMMARY,
        heatmap=report(
            de_rules.SUMMARY_FIGURES["heatmap"],
            caption="../report/de_enrichment_heatmap.rst",
            category="5. Differential expression",
            subcategory="{assay}",
            labels={"assay": "{assay}", "figure": "enrichment heat map"},
        ),
        de_genes=report(
            de_rules.SUMMARY_FIGURES["de_genes"],
            caption="../report/de_genes.rst",
            category="5. Differential expression",
            subcategory="{assay}",
            labels={"assay": "{assay}", "figure": "DE genes per cell type"},
        ),
    log:
        de_rules.LOGS["expression_de_summary"],
    wildcard_constraints:
        assay="scrna|bulk_rna",
    conda:
        "../../envs/expression.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=5),
        runtime=scaled(5, per_mb=0.01),
    params:
        cell_types=lambda wildcards: de_rules.cell_types(config, wildcards.assay),
        alpha=config["expression"]["de"]["alpha"],
    script:
        "../scripts/expression_de_summary.py"
