# Input inspection: open every input file and check its contents before analyses use it.


rule inspect_inputs:
    input:
        unpack(lambda wildcards: sample_input_files(wildcards.sample)),
    output:
        "results/qc/inputs/{sample}.tsv",
    log:
        "logs/inspect_inputs/{sample}.log",
    conda:
        "../../envs/inputs.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        assay=lambda wildcards: sample_field(wildcards, "assay"),
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
    script:
        "../scripts/gather_tables.py"
