# ctDNA: tumour-informed tracking of each patient's variants in plasma (carmscope.ctdna;
# methods in docs/ctdna.md). Two background modes (config ctdna.background; paths from
# workflow/lib/wiring/ctdna.py):
# - cohort (default): every cohort variant is counted in every plasma sample (not only the
#   patient's own): the other patients' plasma at a site gives its background error rate;
#   adding a patient re-counts every plasma sample.
# - normals: each plasma sample is counted at its own patient's panel only, and every
#   panel-of-normals BAM at each patient's panel; the normals alone give the background, so
#   adding a patient adds only that patient's jobs (and re-runs ctdna_calls and the plots).
#
#   ctdna_panel           (cohort) every patient's tumour VCF -> the cohort panel (REF checked
#                         against ctdna.reference when set) and each patient's own variants
#   ctdna_patient_panel   (normals) per patient with plasma: its VCF -> its own panel
#   ctdna_count_alleles   per plasma sample: BAM (or vendor VAF table) -> counts at the panel
#   ctdna_count_normals   every panel-of-normals BAM (config ctdna.panel_of_normals) at one
#                         panel -> counts per normal: one job (cohort) or one per patient
#                         (normals)
#   ctdna_calls           all counts -> background per site, calls per variant and sample,
#                         change from baseline per timepoint, flags per patient
#   ctdna_plots           spider and waterfall plots of the change from baseline
#
# Needs from common.smk: PATIENTS, SAMPLES, samples_of_assay(assay), WorkflowError. Settings
# come from the config's `ctdna` section; `rule all` takes CTDNA_OUTPUTS.
#
# On a cluster (docs/cluster.md): the allele counts run many samples to a SLURM job (group
# "ctdna_counts"); panel and plots on the submit host; ctdna_calls is a SLURM job, as its
# input (every cohort site in every plasma sample) grows with the square of the cohort.


localrules:
    ctdna_panel,
    ctdna_plots,


from carmscope.ctdna.settings import CtdnaConfigError, background_mode  # noqa: E402
from wiring import ctdna as ctdna_rules  # noqa: E402

CTDNA = config["ctdna"]
try:
    CTDNA_MODE = background_mode(CTDNA)
except CtdnaConfigError as error:
    raise WorkflowError(str(error)) from None
CTDNA_VARIANT_PATIENTS = [p for p in PATIENTS.index if PATIENTS.loc[p, "tumor_variants"]]
# plasma samples of patients without tumour variants are not tracked (their ctDNA is reported
# not evaluable in the result tables; config `strict: true` refuses such a cohort instead)
CTDNA_SAMPLES = [
    sample
    for sample in samples_of_assay(vocabulary.CFDNA)
    if SAMPLES.loc[sample, "patient_id"] in CTDNA_VARIANT_PATIENTS
]
# patients with plasma samples: in normals mode each gets its own panel
CTDNA_PANEL_PATIENTS = ctdna_rules.panel_patients(SAMPLES, CTDNA_SAMPLES)
# panel-of-normals BAMs by the name of their counts file: number and sanitised basename
CTDNA_NORMALS = ctdna_rules.normal_names(CTDNA["panel_of_normals"])
# CRAM plasma or normals cannot be decoded without the FASTA they were aligned to
if not CTDNA["reference"] and (
    _crams := ctdna_rules.crams(SAMPLES, CTDNA_SAMPLES, CTDNA["panel_of_normals"])
):
    raise WorkflowError(ctdna_rules.missing_reference(_crams))
# the ctDNA result files, for `rule all` (none when the cohort has no plasma samples)
CTDNA_OUTPUTS = ctdna_rules.outputs() if CTDNA_SAMPLES else []


rule ctdna_panel:
    input:
        vcfs=[PATIENTS.loc[p, "tumor_variants"] for p in CTDNA_VARIANT_PATIENTS],
        reference=[CTDNA["reference"]] if CTDNA["reference"] else [],
    output:
        panel=ctdna_rules.COHORT_PANEL,
        tumour_variants=ctdna_rules.TUMOUR_VARIANTS,
    log:
        "logs/ctdna_panel.log",
    conda:
        "../../envs/ctdna.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=0.05),
        runtime=scaled(5, per_mb=0.002),
    params:
        patients=CTDNA_VARIANT_PATIENTS,
        reference=lambda wildcards, input: input.reference[0] if input.reference else None,
        pass_only=CTDNA["pass_only"],
    script:
        "../scripts/ctdna_panel.py"


rule ctdna_patient_panel:
    input:
        vcf=lambda wildcards: PATIENTS.loc[wildcards.patient, "tumor_variants"],
        reference=[CTDNA["reference"]] if CTDNA["reference"] else [],
    output:
        panel=ctdna_rules.PATIENT_PANEL,
    log:
        "logs/ctdna_patient_panel/{patient}.log",
    wildcard_constraints:
        # normals mode only: each patient with plasma samples
        patient=one_of_ids(CTDNA_PANEL_PATIENTS if CTDNA_MODE == "normals" else []),
    # on SLURM with its patient's allele counts: one connected component of the group
    group:
        "ctdna_counts"
    conda:
        "../../envs/ctdna.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=0.05),
        runtime=scaled(5, per_mb=0.002),
    params:
        patient=lambda wildcards: wildcards.patient,
        reference=lambda wildcards, input: input.reference[0] if input.reference else None,
        pass_only=CTDNA["pass_only"],
    script:
        "../scripts/ctdna_patient_panel.py"


rule ctdna_count_alleles:
    input:
        # a plasma sample's BAM (reads) or, from labs that get reports, its vendor VAF table
        unpack(
            lambda wildcards: (
                {"bam": SAMPLES.loc[wildcards.sample, "reads"]}
                if SAMPLES.loc[wildcards.sample, "reads"]
                else {"vendor": SAMPLES.loc[wildcards.sample, "counts"]}
            )
        ),
        # cohort mode: the cohort panel; normals mode: the sample's patient's own panel
        # inspection runs first; an unusable input stops here with its message
        verdict=inspection_rules.SAMPLE,
        panel=lambda wildcards: ctdna_rules.panel_of(
            CTDNA_MODE, SAMPLES.loc[wildcards.sample, "patient_id"]
        ),
        # a plasma CRAM is decoded with ctdna.reference (docs/alignment_files.md)
        reference=lambda wildcards: (
            [CTDNA["reference"]]
            if CTDNA["reference"]
            and SAMPLES.loc[wildcards.sample, "reads"].lower().endswith(".cram")
            else []
        ),
    output:
        ctdna_rules.SAMPLE_COUNTS,
    log:
        "logs/ctdna_count_alleles/{sample}.log",
    wildcard_constraints:
        sample=one_of_ids(CTDNA_SAMPLES),
    group:
        "ctdna_counts"
    conda:
        "../../envs/ctdna.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=0.05),
        runtime=scaled(10, per_mb=0.005),
    params:
        sample=lambda wildcards: {
            "sample_id": wildcards.sample,
            "patient_id": SAMPLES.loc[wildcards.sample, "patient_id"],
            "timepoint": SAMPLES.loc[wildcards.sample, "timepoint"],
            "day": int(SAMPLES.loc[wildcards.sample, "day"]),
        },
        filters=CTDNA["filters"],
    script:
        "../scripts/ctdna_count_alleles.py"


if CTDNA_NORMALS:

    rule ctdna_count_normals:
        input:
            # CRAM normals: their reference (ctdna.reference), to decode them
            **ctdna_rules.reference_input(CTDNA, list(CTDNA_NORMALS.values())),
            bams=list(CTDNA_NORMALS.values()),
            # cohort mode: the cohort panel (one job); normals mode: each patient's panel
            panel=lambda wildcards: ctdna_rules.panel_of(CTDNA_MODE, wildcards.get("patient")),
        output:
            ctdna_rules.normal_counts_outputs(CTDNA_MODE, CTDNA_NORMALS),
        log:
            ctdna_rules.normal_counts_log(CTDNA_MODE),
        wildcard_constraints:
            patient=one_of_ids(CTDNA_PANEL_PATIENTS),
        group:
            "ctdna_counts"
        conda:
            "../../envs/ctdna.yaml"
        threads: 1
        resources:
            mem_mb=scaled(1000, per_mb=0.05),
            runtime=scaled(10, per_mb=0.005),
        params:
            samples=[ctdna_rules.normal_sample(normal) for normal in CTDNA_NORMALS],
            filters=CTDNA["filters"],
        script:
            "../scripts/ctdna_count_normals.py"


rule ctdna_calls:
    input:
        tumour_variants=ctdna_rules.tumour_variant_files(CTDNA_MODE, CTDNA_PANEL_PATIENTS),
        counts=expand(ctdna_rules.SAMPLE_COUNTS, sample=CTDNA_SAMPLES),
        normals=ctdna_rules.normal_counts(CTDNA_MODE, CTDNA_NORMALS, CTDNA_PANEL_PATIENTS),
    output:
        **{name: ctdna_rules.table(name) for name in ctdna_rules.CALL_TABLES},
    log:
        "logs/ctdna_calls.log",
    conda:
        "../../envs/ctdna.yaml"
    threads: 1
    resources:
        mem_mb=scaled(2000, per_mb=3),
        runtime=scaled(10, per_mb=0.05),
    params:
        samples=CTDNA_SAMPLES,
        patients=list(PATIENTS.index),
        variant_patients=CTDNA_VARIANT_PATIENTS,
        background=CTDNA_MODE,
        normal_panels=ctdna_rules.normal_panel_patients(
            CTDNA_MODE, CTDNA_NORMALS, CTDNA_PANEL_PATIENTS
        ),
        floor=CTDNA["floor"],
        max_rate=CTDNA["max_rate"],
        alpha=CTDNA["alpha"],
        power=CTDNA["power"],
        fall_fraction=CTDNA["fall_fraction"],
        progression_rise=CTDNA["progression_rise"],
        change_alpha=CTDNA["change_alpha"],
    script:
        "../scripts/ctdna_calls.py"


rule ctdna_plots:
    input:
        timepoints=rules.ctdna_calls.output.timepoints,
        patients=rules.ctdna_calls.output.patients,
    output:
        spider_svg=ctdna_rules.plot("spider", "svg"),
        spider_png=report(
            ctdna_rules.plot("spider", "png"),
            caption="../report/ctdna_spider.rst",
            category="3. ctDNA",
            labels={"figure": "spider"},
        ),
        waterfall_svg=ctdna_rules.plot("waterfall", "svg"),
        waterfall_png=report(
            ctdna_rules.plot("waterfall", "png"),
            caption="../report/ctdna_waterfall.rst",
            category="3. ctDNA",
            labels={"figure": "waterfall"},
        ),
    log:
        "logs/ctdna_plots.log",
    conda:
        "../../envs/ctdna.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=1),
        runtime=scaled(5, per_mb=0.01),
    params:
        fall_fraction=CTDNA["fall_fraction"],
    script:
        "../scripts/ctdna_plots.py"
