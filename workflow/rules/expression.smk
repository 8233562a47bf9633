# Expression analysis of biopsies (carmscope.expression; methods in docs/expression.md):
# per scRNA sample QC, annotation, signature scores, composition and the pseudobulk counts
# of the DE step; per bulk sample scores;
# per assay the baseline-vs-post pairs and the cohort's Wilcoxon signed-rank tests.
#
# Needs from common.smk: SAMPLES, PATIENTS, expression_samples(assay), sample_field(wildcards,
# column) and car_cells_table(wildcards) (the per-cell CAR table of a scRNA sample: TSV with
# columns barcode, car_umis). Settings come from the config's `expression` section.
# On a cluster (docs/cluster.md): bulk scores and CAR-by-cell-type tables run many samples to
# a SLURM job (groups), the cohort's paired tests on the submit host. Paths:
# workflow/lib/wiring/expression.py.

from wiring import expression as expression_rules  # noqa: E402


localrules:
    expression_paired,


rule expression_scrna:
    input:
        counts=lambda wildcards: sample_field(wildcards, "counts"),
        # inspection runs first; an unusable input stops here with its message
        verdict=inspection_rules.SAMPLE,
        markers=config["expression"]["markers"],
        gmt=config["genesets"]["gmt"],
        signatures=config["genesets"]["signatures"],
    output:
        # the final cells.h5ad (with embedding and CAR calls) is rule expression_embedding's
        h5ad=temp(expression_rules.sample_file(vocabulary.SCRNA, "{sample}", "annotated.h5ad")),
        cells=expression_rules.sample_file(vocabulary.SCRNA, "{sample}", "cells.tsv.gz"),
        qc=expression_rules.sample_file(vocabulary.SCRNA, "{sample}", "qc.tsv"),
        composition=expression_rules.sample_file(vocabulary.SCRNA, "{sample}", "composition.tsv"),
        scores=expression_rules.sample_file(vocabulary.SCRNA, "{sample}", "scores.tsv"),
        metrics=expression_rules.sample_file(vocabulary.SCRNA, "{sample}", "metrics.tsv"),
        # the DE step's pseudobulk counts per cell type (docs/expression.md, section 8)
        pseudobulk=expression_rules.sample_file(vocabulary.SCRNA, "{sample}", "pseudobulk.tsv"),
        pseudobulk_cells=expression_rules.sample_file(
            vocabulary.SCRNA, "{sample}", "pseudobulk_cells.tsv"
        ),
    log:
        "logs/expression_scrna/{sample}.log",
    conda:
        "../../envs/expression.yaml"
    threads: 1
    resources:
        mem_mb=scaled(3000, per_mb=40),
        runtime=scaled(30, per_mb=0.05),
    params:
        qc=config["expression"]["qc"],
        annotation=config["expression"]["annotation"],
        min_cells=config["expression"]["min_cells"],
        genome=config["expression"]["genome"],
    script:
        "../scripts/expression_scrna.py"


rule expression_bulk:
    input:
        counts=lambda wildcards: sample_field(wildcards, "counts"),
        # inspection runs first; an unusable input stops here with its message
        verdict=inspection_rules.SAMPLE,
        gmt=config["genesets"]["gmt"],
        signatures=config["genesets"]["signatures"],
    output:
        scores=expression_rules.sample_file(vocabulary.BULK_RNA, "{sample}", "scores.tsv"),
        metrics=expression_rules.sample_file(vocabulary.BULK_RNA, "{sample}", "metrics.tsv"),
    log:
        "logs/expression_bulk/{sample}.log",
    group:
        "bulk_scores"
    conda:
        "../../envs/expression.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000, per_mb=10),
        runtime=scaled(10, per_mb=0.05),
    script:
        "../scripts/expression_bulk.py"


rule expression_car_cells:
    input:
        cells=rules.expression_scrna.output.cells,
        car=car_cells_table,
    output:
        expression_rules.sample_file(vocabulary.SCRNA, "{sample}", "car_by_cell_type.tsv"),
    log:
        "logs/expression_car_cells/{sample}.log",
    group:
        "car_cell_types"
    conda:
        "../../envs/expression.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=10),
        runtime=scaled(5, per_mb=0.05),
    params:
        min_umis=config["expression"]["car_min_umis"],
    script:
        "../scripts/expression_car.py"


rule expression_paired:
    input:
        metrics=lambda wildcards: expand(
            expression_rules.sample_file("{assay}", "{sample}", "metrics.tsv"),
            assay=wildcards.assay,
            sample=expression_samples(wildcards.assay),
        ),
    output:
        metrics=expression_rules.assay_file("{assay}", "metrics.tsv"),
        paired=expression_rules.assay_file("{assay}", "paired_values.tsv"),
        tests=expression_rules.assay_file("{assay}", "paired_tests.tsv"),
    log:
        "logs/expression_paired/{assay}.log",
    wildcard_constraints:
        assay="scrna|bulk_rna",
    conda:
        "../../envs/expression.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=5),
        runtime=scaled(5, per_mb=0.01),
    params:
        samples=lambda wildcards: (
            SAMPLES.loc[
                expression_samples(wildcards.assay), ["patient_id", "day", "assay", "tissue"]
            ]
            .reset_index()
            .to_dict("records")
        ),
        patients=lambda wildcards: (
            PATIENTS[[config["expression"]["group_column"]]].reset_index().to_dict("records")
        ),
        group_column=config["expression"]["group_column"],
    script:
        "../scripts/expression_paired.py"
