# ctDNA: tumour-informed tracking of each patient's variants in plasma (carmscope.ctdna;
# methods in docs/ctdna.md). Every cohort variant is counted in every plasma sample (not only
# the patient's own): the other patients' plasma at a site gives its background error rate.
#
#   ctdna_panel           every patient's tumour VCF -> the cohort panel (REF checked against
#                         ctdna.reference when set) and each patient's own variants
#   ctdna_count_alleles   per plasma sample: BAM (or vendor VAF table) -> counts at the panel
#   ctdna_count_normals   per panel-of-normals BAM (config ctdna.panel_of_normals) -> counts
#   ctdna_calls           all counts -> background per site, calls per variant and sample,
#                         change from baseline per timepoint, flags per patient
#   ctdna_plots           spider and waterfall plots of the change from baseline
#
# Needs from common.smk: PATIENTS, SAMPLES, samples_of_assay(assay). Settings come from the
# config's `ctdna` section; `rule all` takes CTDNA_OUTPUTS.

CTDNA = config["ctdna"]
CTDNA_SAMPLES = samples_of_assay("cfdna")
CTDNA_VARIANT_PATIENTS = [p for p in PATIENTS.index if PATIENTS.loc[p, "tumor_variants"]]
# panel-of-normals BAMs by the name of their counts file: number and sanitised basename
CTDNA_NORMALS = {
    f"{number}_"
    + "".join(
        c if c.isalnum() or c in "._-" else "_" for c in os.path.basename(path).removesuffix(".bam")
    ): path
    for number, path in enumerate(CTDNA["panel_of_normals"], start=1)
}
# the ctDNA result files, for `rule all` (none when the cohort has no plasma samples)
CTDNA_TABLES = ["variants", "samples", "timepoints", "patients", "background"]
CTDNA_OUTPUTS = (
    expand("results/ctdna/{name}.tsv", name=CTDNA_TABLES)
    + expand("results/ctdna/{name}.{ext}", name=["spider", "waterfall"], ext=["svg", "png"])
    if CTDNA_SAMPLES
    else []
)


rule ctdna_panel:
    input:
        vcfs=[PATIENTS.loc[p, "tumor_variants"] for p in CTDNA_VARIANT_PATIENTS],
        reference=[CTDNA["reference"]] if CTDNA["reference"] else [],
    output:
        panel="results/ctdna/panel.tsv",
        tumour_variants="results/ctdna/tumour_variants.tsv",
    log:
        "logs/ctdna_panel.log",
    conda:
        "../../envs/ctdna.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        patients=CTDNA_VARIANT_PATIENTS,
        reference=lambda wildcards, input: input.reference[0] if input.reference else None,
        pass_only=CTDNA["pass_only"],
    script:
        "../scripts/ctdna_panel.py"


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
        panel="results/ctdna/panel.tsv",
    output:
        "results/ctdna/counts/{sample}.tsv",
    log:
        "logs/ctdna_count_alleles/{sample}.log",
    wildcard_constraints:
        sample="|".join(s.replace(".", r"\.") for s in CTDNA_SAMPLES) or "(?!)",
    conda:
        "../../envs/ctdna.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, input, attempt: attempt * (10 + int(input.size_mb / 200)),
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


rule ctdna_count_normals:
    input:
        bam=lambda wildcards: CTDNA_NORMALS[wildcards.normal],
        panel="results/ctdna/panel.tsv",
    output:
        "results/ctdna/normals/{normal}.tsv",
    log:
        "logs/ctdna_count_normals/{normal}.log",
    wildcard_constraints:
        normal="|".join(n.replace(".", r"\.") for n in CTDNA_NORMALS) or "(?!)",
    conda:
        "../../envs/ctdna.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, input, attempt: attempt * (10 + int(input.size_mb / 200)),
    params:
        sample=lambda wildcards: {
            "sample_id": f"panel_of_normals/{wildcards.normal}",
            "patient_id": "",
            "timepoint": "",
            "day": None,
        },
        filters=CTDNA["filters"],
    script:
        "../scripts/ctdna_count_alleles.py"


rule ctdna_calls:
    input:
        tumour_variants="results/ctdna/tumour_variants.tsv",
        counts=expand("results/ctdna/counts/{sample}.tsv", sample=CTDNA_SAMPLES),
        normals=expand("results/ctdna/normals/{normal}.tsv", normal=CTDNA_NORMALS),
    output:
        variants="results/ctdna/variants.tsv",
        samples="results/ctdna/samples.tsv",
        timepoints="results/ctdna/timepoints.tsv",
        patients="results/ctdna/patients.tsv",
        background="results/ctdna/background.tsv",
    log:
        "logs/ctdna_calls.log",
    conda:
        "../../envs/ctdna.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 2000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        samples=CTDNA_SAMPLES,
        patients=list(PATIENTS.index),
        variant_patients=CTDNA_VARIANT_PATIENTS,
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
        timepoints="results/ctdna/timepoints.tsv",
        patients="results/ctdna/patients.tsv",
    output:
        spider_svg="results/ctdna/spider.svg",
        spider_png="results/ctdna/spider.png",
        waterfall_svg="results/ctdna/waterfall.svg",
        waterfall_png="results/ctdna/waterfall.png",
    log:
        "logs/ctdna_plots.log",
    conda:
        "../../envs/ctdna.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 1000 * attempt,
        runtime=lambda wildcards, attempt: 10 * attempt,
    params:
        fall_fraction=CTDNA["fall_fraction"],
    script:
        "../scripts/ctdna_plots.py"
