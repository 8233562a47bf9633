# T cell receptor repertoires (carmscope.tcr; methods in docs/tcr.md): new and expanded clones
# after infusion, per patient and tissue.
#
#   tcr_clones    per repertoire sample (tcr samples, scRNA samples with vdj): productive TRB
#                 clones; with vdj their cells' annotated types
#   tcr_changes   per patient and tissue: every post-infusion sample vs the baseline
#                 (one-sided Fisher, BH, new clones by Poisson detectability)
#   tcr_summary   per-sample diversity and per-patient figures
#   tcr_plots     per-patient scatter + clonality over time; the cohort panel
#
# Needs from common.smk: SAMPLES, PATIENTS, scaled, one_of_ids, tcr_sample_records(samples),
# tcr_clone_inputs(wildcards). Settings come from the
# config's `tcr` section; `rule all` takes TCR_OUTPUTS.


localrules:
    tcr_summary,
    tcr_plots,


from carmscope.tcr.patients import compared_samples, repertoire_sample_ids  # noqa: E402

TCR = config["tcr"]
TCR_SAMPLES = repertoire_sample_ids(SAMPLES)
TCR_VDJ_SAMPLES = [s for s in TCR_SAMPLES if SAMPLES.loc[s, "assay"] == vocabulary.SCRNA]
TCR_COMPARED = compared_samples(SAMPLES)
TCR_COMPARISONS = list(TCR_COMPARED)
TCR_SETTINGS = {key: TCR[key] for key in ("min_count", "fdr", "min_fold", "detect_alpha")}
TCR_OUTPUTS = (
    [
        "results/tcr/samples.tsv",
        "results/tcr/patients.tsv",
        "results/tcr/cohort.png",
        "results/tcr/patients",
    ]
    + [f"results/tcr/changes/{p}_{t}.tsv" for p, t in TCR_COMPARISONS]
    if TCR_SAMPLES
    else []
)


rule tcr_clones:
    input:
        unpack(tcr_clone_inputs),
    output:
        clones="results/tcr/{sample}/clones.tsv",
        summary="results/tcr/{sample}/summary.tsv",
        cells="results/tcr/{sample}/cells.tsv.gz",
    log:
        "logs/tcr_clones/{sample}.log",
    wildcard_constraints:
        sample=one_of_ids(TCR_SAMPLES),
    group:
        "tcr_samples"
    conda:
        "../../envs/tcr.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=10),
        runtime=scaled(5, per_mb=0.02),
    script:
        "../scripts/tcr_clones.py"


rule tcr_changes:
    input:
        clones=lambda wildcards: [
            f"results/tcr/{s}/clones.tsv"
            for s in TCR_COMPARED[(wildcards.patient, wildcards.tissue)]
        ],
    output:
        "results/tcr/changes/{patient}_{tissue}.tsv",
    log:
        "logs/tcr_changes/{patient}_{tissue}.log",
    wildcard_constraints:
        patient=one_of_ids(sorted({p for p, _ in TCR_COMPARISONS})),
        tissue="tumour|blood",
    group:
        "tcr_samples"
    conda:
        "../../envs/tcr.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=10),
        runtime=scaled(5, per_mb=0.02),
    params:
        samples=lambda wildcards: tcr_sample_records(
            TCR_COMPARED[(wildcards.patient, wildcards.tissue)]
        ),
        settings=TCR_SETTINGS,
    script:
        "../scripts/tcr_changes.py"


rule tcr_summary:
    input:
        clones=expand("results/tcr/{sample}/clones.tsv", sample=TCR_SAMPLES),
        summaries=expand("results/tcr/{sample}/summary.tsv", sample=TCR_SAMPLES),
        changes=[f"results/tcr/changes/{p}_{t}.tsv" for p, t in TCR_COMPARISONS],
        cells=expand("results/tcr/{sample}/cells.tsv.gz", sample=TCR_VDJ_SAMPLES),
    output:
        samples="results/tcr/samples.tsv",
        patients="results/tcr/patients.tsv",
    log:
        "logs/tcr_summary.log",
    conda:
        "../../envs/tcr.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=5),
        runtime=scaled(5, per_mb=0.02),
    params:
        samples=tcr_sample_records(SAMPLES.index),
        repertoires=TCR_SAMPLES,
        comparisons=[list(pair) for pair in TCR_COMPARISONS],
        vdj_samples=TCR_VDJ_SAMPLES,
        rarefaction_depth=TCR["rarefaction_depth"],
        patients=list(PATIENTS.index),
    script:
        "../scripts/tcr_summary.py"


rule tcr_plots:
    input:
        samples="results/tcr/samples.tsv",
        patients="results/tcr/patients.tsv",
        changes=[f"results/tcr/changes/{p}_{t}.tsv" for p, t in TCR_COMPARISONS],
    output:
        cohort=report(
            "results/tcr/cohort.png",
            caption="../report/tcr_cohort.rst",
            category="4. T cell receptors",
            labels={"figure": "cohort"},
        ),
        patients=report(
            directory("results/tcr/patients"),
            patterns=["{patient}.png"],
            caption="../report/tcr_patient.rst",
            category="4. T cell receptors",
            labels={"patient": "{patient}"},
        ),
    log:
        "logs/tcr_plots.log",
    conda:
        "../../envs/tcr.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=2),
        runtime=scaled(5, per_mb=0.05),
    params:
        comparisons=[list(pair) for pair in TCR_COMPARISONS],
        days=[{"sample_id": s, "day": int(SAMPLES.loc[s, "day"])} for s in TCR_SAMPLES],
    script:
        "../scripts/tcr_plots.py"
