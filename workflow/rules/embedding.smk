# Embeddings of the scRNA biopsies (carmscope.expression.embedding; docs/expression.md,
# section 7): per sample HVG, PCA, neighbour graph, Leiden and UMAP with the per-cell CAR calls
# in `obs` (the final cells.h5ad) plus its UMAP and marker dot plot; per patient the samples
# integrated (Harmony over samples) and shown side by side, baseline first.
#
# Needs from common.smk: SAMPLES, scaled. Sheet logic: wiring.embedding.
# Settings: config `expression.embedding` (defaults in the schema).


from wiring import embedding as embedding_rules

EMBEDDING_OUTPUTS = embedding_rules.outputs(SAMPLES)


rule expression_embedding:
    input:
        h5ad=rules.expression_scrna.output.h5ad,
        car=lambda wildcards: embedding_rules.car_table(SAMPLES, wildcards.sample),
        markers=config["expression"]["markers"],
    output:
        h5ad=embedding_rules.CELLS,
        umap=report(
            embedding_rules.SAMPLE_FIGURES["umap"],
            caption="../report/biopsy_umap.rst",
            category="5. Biopsy cells",
            subcategory="UMAP by cell type",
            labels={"sample": "{sample}", "figure": "UMAP"},
        ),
        dotplot=report(
            embedding_rules.SAMPLE_FIGURES["dotplot"],
            caption="../report/marker_dotplot.rst",
            category="5. Biopsy cells",
            subcategory="marker dot plot",
            labels={"sample": "{sample}", "figure": "markers"},
        ),
    log:
        embedding_rules.LOGS["expression_embedding"],
    conda:
        "../../envs/expression.yaml"
    threads: 1
    resources:
        mem_mb=scaled(3000, per_mb=40),
        runtime=scaled(20, per_mb=0.05),
    params:
        embedding=config["expression"]["embedding"],
        min_umis=config["expression"]["car_min_umis"],
    script:
        "../scripts/expression_embedding.py"


rule expression_patient_embedding:
    input:
        h5ad=lambda wildcards: expand(
            embedding_rules.CELLS,
            sample=embedding_rules.patient_samples(SAMPLES, wildcards.patient),
        ),
    output:
        h5ad=embedding_rules.PATIENT_OBJECT,
        umaps=report(
            embedding_rules.PATIENT_FIGURE,
            caption="../report/patient_umaps.rst",
            category="2. Patients",
            subcategory="baseline vs post UMAP",
            labels={"patient": "{patient}", "figure": "UMAP"},
        ),
    log:
        embedding_rules.LOGS["expression_patient_embedding"],
    conda:
        "../../envs/expression.yaml"
    threads: 1
    resources:
        mem_mb=scaled(4000, per_mb=40),
        runtime=scaled(30, per_mb=0.05),
    params:
        samples=lambda wildcards: embedding_rules.patient_samples(SAMPLES, wildcards.patient),
        labels=lambda wildcards: embedding_rules.panel_labels(SAMPLES, wildcards.patient),
        embedding=config["expression"]["embedding"],
    script:
        "../scripts/expression_patient_embedding.py"
