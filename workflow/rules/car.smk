# CAR transcript detection in biopsy reads (carmscope.car; methods in docs/car_detection.md):
# the specific k-mer index of the configured constructs, then per biopsy with reads (scRNA
# and bulk RNA) the CAR reads, UMIs per cell and coverage along the construct, then the
# per-sample calls against the floor and the patient's pre-infusion biopsy.
#
# Needs from common.smk: SAMPLES and SHEETS. Helpers: workflow/lib/wiring/car.py
# (car_rules.outputs(SAMPLES) lists every file of the stage for `rule all`); the config's
# `car` section comes filled with the schema's defaults.

from wiring import car as car_rules

CAR = config["car"]
if _not_built := car_rules.kernels_not_built():
    raise WorkflowError(_not_built)


# The cohort's calls run on the submit host on a cluster (docs/cluster.md).
localrules:
    car_calls,


rule car_index:
    input:
        unpack(lambda wildcards: car_rules.index_inputs(CAR)),
    output:
        car_rules.INDEX,
    log:
        "logs/car_index.log",
    conda:
        "../../envs/car.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000, per_mb=10),
        runtime=scaled(30, per_mb=0.1),
    params:
        k=CAR["kmer_size"],
    script:
        "../scripts/car_index.py"


rule car_scan_scrna:
    input:
        unpack(lambda wildcards: car_rules.scan_inputs(SAMPLES, wildcards.sample, CAR)),
        # inspection runs first; an unusable input stops here with its message
        verdict=inspection_rules.SAMPLE,
        kmers=car_rules.INDEX,
        construct=CAR["construct"],
        segments=CAR["segments"],
    output:
        evidence=car_rules.scan_file(vocabulary.SCRNA, "{sample}", "evidence.tsv"),
        cells=car_rules.scan_file(vocabulary.SCRNA, "{sample}", "cells.tsv.gz"),
        coverage=car_rules.scan_file(vocabulary.SCRNA, "{sample}", "coverage.tsv.gz"),
        regions=car_rules.scan_file(vocabulary.SCRNA, "{sample}", "regions.tsv"),
        plot=report(
            car_rules.scan_file(vocabulary.SCRNA, "{sample}", "coverage.png"),
            caption="../report/car_coverage.rst",
            category="4. CAR evidence",
            subcategory=vocabulary.SCRNA,
            labels={"sample": "{sample}"},
        ),
    log:
        "logs/car_scan_scrna/{sample}.log",
    conda:
        "../../envs/car.yaml"
    threads: car_rules.scan_threads(CAR["threads"], LOCAL_CORES)
    resources:
        mem_mb=scaled(3000, per_mb=0.05),
        runtime=lambda wildcards, input, attempt: car_rules.scan_runtime(input.size_mb, attempt),
    params:
        assay=vocabulary.SCRNA,
        min_kmers=CAR["min_specific_kmers"],
        max_mismatch_fraction=CAR["max_mismatch_fraction"],
        min_umis=CAR["min_umis_per_cell"],
        cell_tag=CAR["cell_barcode_tag"],
        umi_tag=CAR["umi_tag"],
        matrix_features=CAR["matrix_features"],
        targeted=CAR["targeted"]["enabled"],
        construct_contigs=CAR["targeted"]["construct_contigs"],
        genome=config["expression"]["genome"],
    script:
        "../scripts/car_scan.py"


use rule car_scan_scrna as car_scan_bulk with:
    output:
        evidence=car_rules.scan_file(vocabulary.BULK_RNA, "{sample}", "evidence.tsv"),
        coverage=car_rules.scan_file(vocabulary.BULK_RNA, "{sample}", "coverage.tsv.gz"),
        regions=car_rules.scan_file(vocabulary.BULK_RNA, "{sample}", "regions.tsv"),
        plot=report(
            car_rules.scan_file(vocabulary.BULK_RNA, "{sample}", "coverage.png"),
            caption="../report/car_coverage.rst",
            category="4. CAR evidence",
            subcategory=vocabulary.BULK_RNA,
            labels={"sample": "{sample}"},
        ),
    log:
        "logs/car_scan_bulk/{sample}.log",
    params:
        assay=vocabulary.BULK_RNA,


rule car_calls:
    input:
        car_rules.evidence_files(SAMPLES),
    output:
        car_rules.SUMMARY,
    log:
        "logs/car_calls.log",
    conda:
        "../../envs/car.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=5),
        runtime=scaled(5, per_mb=0.01),
    params:
        samples=car_rules.sample_table(SAMPLES),
        baselines=car_rules.baselines(SHEETS),
        alpha=CAR["alpha"],
        floor_per_million=CAR["floor_per_million"],
        min_reads=CAR["min_reads"],
    script:
        "../scripts/car_calls.py"
