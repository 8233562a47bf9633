# The synthetic CAR-M trial cohort: written when the input tables point into its folder
# (carmscope.synthetic.cohort; SYNTHETIC from common.smk says which files, by job):
#
#   synthetic_reference      the shared references (reference/genome.fa + .fai,
#                            reference/host_transcripts.fa)
#   synthetic_patient_<...>  per patient whose files the tables use: its samples' files, its VCF
#                            and its truth (truth/per_patient/{patient}.json.gz). A rule's
#                            outputs are fixed patterns and patients differ in their samples, so
#                            there is one such rule per sample set, named by it (e.g.
#                            synthetic_patient_scrna2_cfdna4), each for its own patients
#   synthetic_normal         per plasma normal that ctdna.panel_of_normals names in the folder
#   synthetic_truth          every patient's truth -> the truth tables (truth/*.tsv, ...)
#
# Every job builds the design, reference and variant panel again from the parameters (well
# under a second for 500 patients) and draws each sample's data from streams keyed by its ID,
# so the files are byte-identical to those `carmscope-synthetic generate` writes in one go.
# The per-patient and normal jobs are SLURM jobs (a plasma BAM covers the whole cohort's panel
# unless plasma_panel is "patient"); the references and the truth tables are light, and local.

from carmscope.synthetic.design import (  # noqa: E402
    PLASMA_DAYS,
    plasma_normal_path,
    plasma_reads,
    synthetic_job_resources,
)
from carmscope.synthetic.tables import (  # noqa: E402
    PATIENT_TRUTH,
    REFERENCE_FILES,
    TRUTH_FILES,
    data_dir_of,
)

if SYNTHETIC:

    # memory and time grow with the plasma BAMs' reads (the whole panel in each, by default)
    SYNTHETIC_PATIENT_JOB = synthetic_job_resources(
        plasma_reads(SYNTHETIC_PARAMS, SYNTHETIC_DESIGN), len(PLASMA_DAYS)
    )
    SYNTHETIC_NORMAL_JOB = synthetic_job_resources(
        plasma_reads(SYNTHETIC_PARAMS, SYNTHETIC_DESIGN, whole_panel=True), 1
    )
    SYNTHETIC_INPUTS = {
        "construct": config["car"]["construct"],
        "segments": config["car"]["segments"],
        "gmt": config["genesets"]["gmt"],
        "signatures": config["genesets"]["signatures"],
    }

    rule synthetic_reference:
        input:
            **SYNTHETIC_INPUTS,
        output:
            SYNTHETIC.reference,
        log:
            "logs/synthetic/reference.log",
        localrule: True
        conda:
            "../../envs/synthetic.yaml"
        threads: 1
        resources:
            mem_mb=scaled(1000),
            runtime=scaled(5),
        params:
            part="reference",
            cohort=config["synthetic"],
            data_dir=lambda wildcards, output: data_dir_of(output[0], REFERENCE_FILES[0]),
        script:
            "../scripts/synthetic_cohort.py"

    for _shape in SYNTHETIC.patient_shapes():

        rule:
            name:
                _shape.name
            input:
                **SYNTHETIC_INPUTS,
            output:
                files=_shape.outputs[:-1],
                truth=_shape.outputs[-1],
            log:
                "logs/synthetic/patients/{patient}.log",
            wildcard_constraints:
                patient=one_of_ids(_shape.patients),
            conda:
                "../../envs/synthetic.yaml"
            threads: 1
            resources:
                mem_mb=scaled(SYNTHETIC_PATIENT_JOB["mem_mb"]),
                runtime=scaled(SYNTHETIC_PATIENT_JOB["runtime"]),
            params:
                part="patient",
                cohort=config["synthetic"],
                data_dir=lambda wildcards, output: data_dir_of(output.truth, PATIENT_TRUTH),
            script:
                "../scripts/synthetic_cohort.py"

    rule synthetic_normal:
        input:
            **SYNTHETIC_INPUTS,
        output:
            bam=SYNTHETIC.path(plasma_normal_path("{normal}")),
            bai=SYNTHETIC.path(plasma_normal_path("{normal}") + ".bai"),
        log:
            "logs/synthetic/normals/{normal}.log",
        wildcard_constraints:
            normal=one_of_ids(SYNTHETIC.normals),
        conda:
            "../../envs/synthetic.yaml"
        threads: 1
        resources:
            mem_mb=scaled(SYNTHETIC_NORMAL_JOB["mem_mb"]),
            runtime=scaled(SYNTHETIC_NORMAL_JOB["runtime"]),
        params:
            part="normal",
            cohort=config["synthetic"],
            data_dir=lambda wildcards, output: data_dir_of(
                output.bam, plasma_normal_path(wildcards.normal)
            ),
        script:
            "../scripts/synthetic_cohort.py"

    rule synthetic_truth:
        input:
            **SYNTHETIC_INPUTS,
            truths=[SYNTHETIC.patient_truth(patient) for patient in SYNTHETIC.patients],
        output:
            SYNTHETIC.truth,
        log:
            "logs/synthetic/truth.log",
        localrule: True
        conda:
            "../../envs/synthetic.yaml"
        threads: 1
        resources:
            mem_mb=scaled(1000, per_mb=20),
            runtime=scaled(5, per_mb=0.05),
        params:
            part="truth",
            cohort=config["synthetic"],
            data_dir=lambda wildcards, output: data_dir_of(output[0], TRUTH_FILES[0]),
        script:
            "../scripts/synthetic_cohort.py"
