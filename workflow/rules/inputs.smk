# Input inspection: open every input file and check its contents before analyses use it.
# On a cluster the per-sample inspections run 24 to a SLURM job (group "inspect"); the gather
# runs on the submit host (docs/cluster.md). Paths: workflow/lib/wiring/inspection.py.

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
        expand(inspection_rules.SAMPLE, sample=SAMPLES.index),
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
    script:
        "../scripts/gather_tables.py"
