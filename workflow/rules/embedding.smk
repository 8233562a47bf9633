# Embeddings of the scRNA biopsies (carmscope.expression.embedding; docs/expression.md,
# section 7): per sample HVG, PCA, neighbour graph, Leiden and UMAP with the per-cell CAR calls
# in `obs` (the final cells.h5ad) plus its UMAP and marker dot plot; per patient the samples
# integrated (Harmony over samples) and shown side by side, baseline first.
#
# Needs from common.smk: SAMPLES, samples_of_assay, car_cells_table, scaled.
# Settings: config `expression.embedding` (defaults in the schema).


def embedding_car_table(wildcards):
    """The sample's per-cell CAR table, or nothing when it has no reads to scan."""
    return [car_cells_table(wildcards)] if SAMPLES.loc[wildcards.sample, "reads"] else []


def scrna_patient_samples(patient):
    """A patient's scRNA samples in time order (day, then sheet order)."""
    rows = SAMPLES.loc[samples_of_assay("scrna")]
    rows = rows[rows["patient_id"] == patient]
    return list(rows.sort_values("day", kind="stable").index)


def scrna_patients():
    """Patients with at least one scRNA sample, in sheet order."""
    return list(dict.fromkeys(SAMPLES.loc[samples_of_assay("scrna"), "patient_id"]))


def embedding_panel_labels(patient):
    """Panel titles: sample, timepoint, day (baseline and post-infusion marked)."""
    labels = []
    for sample in scrna_patient_samples(patient):
        row = SAMPLES.loc[sample]
        phase = "pre-infusion" if int(row["day"]) <= 0 else "post-infusion"
        labels.append(f"{row['timepoint']} (day {row['day']}, {phase})")
    return labels


EMBEDDING_OUTPUTS = [
    f"results/expression/scrna/{sample}/cells.h5ad" for sample in samples_of_assay("scrna")
] + [f"results/expression/scrna/patients/{patient}.h5ad" for patient in scrna_patients()]


rule expression_embedding:
    input:
        h5ad="results/expression/scrna/{sample}/annotated.h5ad",
        car=embedding_car_table,
        markers=config["expression"]["markers"],
    output:
        h5ad="results/expression/scrna/{sample}/cells.h5ad",
        umap=report(
            "results/report/biopsies/{sample}_umap.png",
            caption="../report/biopsy_umap.rst",
            category="3. Biopsy cells",
            subcategory="UMAP by cell type",
            labels={"sample": "{sample}", "figure": "UMAP"},
        ),
        dotplot=report(
            "results/report/biopsies/{sample}_markers.png",
            caption="../report/marker_dotplot.rst",
            category="3. Biopsy cells",
            subcategory="marker dot plot",
            labels={"sample": "{sample}", "figure": "markers"},
        ),
    log:
        "logs/expression_embedding/{sample}.log",
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
            "results/expression/scrna/{sample}/cells.h5ad",
            sample=scrna_patient_samples(wildcards.patient),
        ),
    output:
        h5ad="results/expression/scrna/patients/{patient}.h5ad",
        umaps=report(
            "results/report/patients_umap/{patient}.png",
            caption="../report/patient_umaps.rst",
            category="2. Patients",
            subcategory="baseline vs post UMAP",
            labels={"patient": "{patient}", "figure": "UMAP"},
        ),
    log:
        "logs/expression_patient_embedding/{patient}.log",
    conda:
        "../../envs/expression.yaml"
    threads: 1
    resources:
        mem_mb=scaled(4000, per_mb=40),
        runtime=scaled(30, per_mb=0.05),
    params:
        samples=lambda wildcards: scrna_patient_samples(wildcards.patient),
        labels=lambda wildcards: embedding_panel_labels(wildcards.patient),
        embedding=config["expression"]["embedding"],
    script:
        "../scripts/expression_patient_embedding.py"
