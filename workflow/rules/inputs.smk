# Input inspection: open every input file and check its contents before analyses use it.
# On a cluster the per-sample inspections run 24 to a SLURM job (group "inspect"); the gather
# runs on the submit host (docs/cluster.md).


localrules:
    gather_input_inspection,


rule inspect_inputs:
    input:
        unpack(lambda wildcards: sample_input_files(wildcards.sample)),
    output:
        "results/qc/inputs/{sample}.tsv",
    log:
        "logs/inspect_inputs/{sample}.log",
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


rule gather_input_inspection:
    input:
        expand("results/qc/inputs/{sample}.tsv", sample=SAMPLES.index),
    output:
        "results/qc/inputs.tsv",
    log:
        "logs/gather_input_inspection.log",
    conda:
        "../../envs/inputs.yaml"
    threads: 1
    resources:
        mem_mb=scaled(500, per_mb=5),
        runtime=scaled(5, per_mb=0.01),
    script:
        "../scripts/gather_tables.py"
