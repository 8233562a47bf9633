# Input inspection: open every input file and check its contents before analyses use it.
# One job per sample, but a patient's blood draws (car_pcr, cytokines: small tables read only
# by cohort steps) are one job per patient. On a cluster the inspections run 24 to a SLURM
# job (group "inspect"); the gather runs on the submit host (docs/cluster.md). Paths:
# workflow/lib/wiring/inspection.py.

from wiring import inspection as inspection_rules  # noqa: E402


localrules:
    gather_input_inspection,


rule inspect_inputs:
    input:
        unpack(lambda wildcards: sample_input_files(wildcards.sample)),
    output:
        inspection_rules.SAMPLE,
    log:
        "logs/inspect_inputs/{sample}.log",
    wildcard_constraints:
        # blood draws: rule inspect_blood_draws
        sample=one_of_ids(inspection_rules.sample_ids(SAMPLES)),
    # first among the ready jobs: its verdicts gate the analyses (Snakemake's greedy
    # scheduler otherwise starts jobs with the largest inputs first)
    priority: 1
    group:
        "inspect"
    conda:
        "../../envs/inputs.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=0.2),
        runtime=scaled(5, per_mb=0.002),
    params:
        assay=lambda wildcards: sample_field(wildcards, "assay"),
        genome=config["expression"]["genome"],
        strict=config["strict"],
    script:
        "../scripts/inspect_inputs.py"


rule inspect_blood_draws:
    input:
        lambda wildcards: list(
            dict.fromkeys(inspection_rules.patient_draws(SAMPLES, wildcards.patient)["counts"])
        ),
    output:
        inspection_rules.BLOOD_DRAWS,
    log:
        "logs/inspect_blood_draws/{patient}.log",
    wildcard_constraints:
        patient=one_of_ids(inspection_rules.draw_patients(SAMPLES)),
    # tiny inputs: without the priority the greedy scheduler, which starts jobs with the
    # largest inputs first, left these to the end of the demo run, one after another
    priority: 1
    group:
        "inspect"
    conda:
        "../../envs/inputs.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=0.2),
        runtime=scaled(5, per_mb=0.002),
    params:
        draws=lambda wildcards: (
            inspection_rules.patient_draws(SAMPLES, wildcards.patient)[["assay", "counts"]]
            .reset_index()
            .to_dict("records")
        ),
        strict=config["strict"],
    script:
        "../scripts/inspect_blood_draws.py"


rule gather_input_inspection:
    input:
        inspection_rules.verdict_files(SAMPLES),
    output:
        inspection_rules.INVENTORY,
    log:
        "logs/gather_input_inspection.log",
    conda:
        "../../envs/inputs.yaml"
    threads: 1
    resources:
        mem_mb=scaled(500, per_mb=5),
        runtime=scaled(5, per_mb=0.01),
    params:
        samples=list(SAMPLES.index),
    script:
        "../scripts/gather_input_inspection.py"
