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
# Needs from common.smk: SAMPLES, PATIENTS, scaled, one_of_ids; from the wiring:
# expression_rules. Paths, inputs and settings: workflow/lib/wiring/tcr.py; `rule all` takes
# TCR_OUTPUTS.


localrules:
    tcr_summary,
    tcr_plots,


from wiring import tcr as tcr_rules  # noqa: E402

TCR = config["tcr"]
TCR_SAMPLES = tcr_rules.repertoire_samples(SAMPLES)
TCR_VDJ_SAMPLES = tcr_rules.vdj_samples(SAMPLES)
TCR_COMPARED = tcr_rules.comparisons(SAMPLES)
TCR_OUTPUTS = tcr_rules.outputs(SAMPLES)


rule tcr_clones:
    input:
        unpack(
            lambda wildcards: tcr_rules.clone_inputs(
                SAMPLES, wildcards.sample, expression_rules.sample_file
            )
        ),
    output:
        **{name: tcr_rules.sample_file("{sample}", name) for name in tcr_rules.SAMPLE_FILES},
    log:
        tcr_rules.LOGS["tcr_clones"],
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
            tcr_rules.sample_file(s, "clones")
            for s in TCR_COMPARED[(wildcards.patient, wildcards.tissue)]
        ],
    output:
        tcr_rules.CHANGES,
    log:
        tcr_rules.LOGS["tcr_changes"],
    wildcard_constraints:
        patient=one_of_ids(tcr_rules.compared_patients(SAMPLES)),
        tissue=tcr_rules.TISSUE_PATTERN,
    group:
        "tcr_samples"
    conda:
        "../../envs/tcr.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=10),
        runtime=scaled(5, per_mb=0.02),
    params:
        samples=lambda wildcards: tcr_rules.sample_records(
            SAMPLES, TCR_COMPARED[(wildcards.patient, wildcards.tissue)]
        ),
        settings=tcr_rules.settings(TCR),
    script:
        "../scripts/tcr_changes.py"


rule tcr_summary:
    input:
        clones=[tcr_rules.sample_file(s, "clones") for s in TCR_SAMPLES],
        summaries=[tcr_rules.sample_file(s, "summary") for s in TCR_SAMPLES],
        changes=tcr_rules.change_files(SAMPLES),
        cells=[tcr_rules.sample_file(s, "cells") for s in TCR_VDJ_SAMPLES],
    output:
        **tcr_rules.TABLE_FILES,
    log:
        tcr_rules.LOGS["tcr_summary"],
    conda:
        "../../envs/tcr.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=5),
        runtime=scaled(5, per_mb=0.02),
    params:
        samples=tcr_rules.sample_records(SAMPLES, SAMPLES.index),
        repertoires=TCR_SAMPLES,
        comparisons=[list(pair) for pair in TCR_COMPARED],
        vdj_samples=TCR_VDJ_SAMPLES,
        rarefaction_depth=TCR["rarefaction_depth"],
        patients=list(PATIENTS.index),
    script:
        "../scripts/tcr_summary.py"


rule tcr_plots:
    input:
        **tcr_rules.TABLE_FILES,
        changes=tcr_rules.change_files(SAMPLES),
    output:
        cohort=report(
            tcr_rules.COHORT_FIGURE,
            caption="../report/tcr_cohort.rst",
            category="4. T cell receptors",
            labels={"figure": "cohort"},
        ),
        patients=report(
            directory(tcr_rules.PATIENT_FIGURES),
            patterns=["{patient}.png"],
            caption="../report/tcr_patient.rst",
            category="4. T cell receptors",
            labels={"patient": "{patient}"},
        ),
    log:
        tcr_rules.LOGS["tcr_plots"],
    conda:
        "../../envs/tcr.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=2),
        runtime=scaled(5, per_mb=0.05),
    params:
        comparisons=[list(pair) for pair in TCR_COMPARED],
        days=tcr_rules.sample_days(SAMPLES),
    script:
        "../scripts/tcr_plots.py"
