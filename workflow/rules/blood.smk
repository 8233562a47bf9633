# Blood (carmscope.blood; methods in docs/blood.md): CAR-M cellular kinetics by
# non-compartmental analysis of every blood CAR measure (qPCR tables, and the CAR stage's
# figures of PBMC RNA samples), and serum cytokines (baseline, peak, its time, peak fold),
# with cohort summaries and the CRS association.
#
#   blood_kinetics   car_pcr and cytokines tables (+ results/car/summary.tsv for PBMC RNA)
#                    -> results/blood/{kinetics,cytokines,series,patients,summary,
#                       crs_associations}.tsv
#   blood_plots      CAR level against hours per patient; cytokine heat map
#
# Needs from common.smk: PATIENTS, SAMPLES, scaled; from car.smk: car_rules; from tables.smk:
# TABLE_SETTINGS (strata). Paths and settings: workflow/lib/wiring/blood.py; `rule all` takes
# blood_rules.outputs(SAMPLES) (none without blood samples).


localrules:
    blood_kinetics,
    blood_plots,


from wiring import blood as blood_rules  # noqa: E402

BLOOD = blood_rules.settings(config["blood"])


rule blood_kinetics:
    input:
        **blood_rules.inputs(SAMPLES, car_rules.SUMMARY),
    output:
        kinetics=report(
            blood_rules.TABLE_FILES["kinetics"],
            caption="../report/blood_kinetics.rst",
            category="5. Blood",
            labels={"table": "CAR kinetics"},
        ),
        cytokines=report(
            blood_rules.TABLE_FILES["cytokines"],
            caption="../report/blood_cytokines.rst",
            category="5. Blood",
            labels={"table": "cytokines"},
        ),
        series=blood_rules.TABLE_FILES["series"],
        patients=blood_rules.TABLE_FILES["patients"],
        summary=blood_rules.TABLE_FILES["summary"],
        crs=blood_rules.TABLE_FILES["crs"],
    log:
        blood_rules.LOGS["blood_kinetics"],
    conda:
        "../../envs/blood.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=5),
        runtime=scaled(5, per_mb=0.01),
    params:
        samples=lambda wildcards: blood_rules.sample_records(SAMPLES),
        assays=lambda wildcards: dict(SAMPLES["assay"]),
        patients=lambda wildcards: tables_rules.sheet_records(PATIENTS),
        settings=BLOOD,
        strata=list(TABLE_SETTINGS.strata),
    script:
        "../scripts/blood_kinetics.py"


rule blood_plots:
    input:
        series=blood_rules.TABLE_FILES["series"],
        cytokines=blood_rules.TABLE_FILES["cytokines"],
    output:
        kinetics=report(
            blood_rules.FIGURE_FILES["kinetics"],
            caption="../report/blood_kinetics_plot.rst",
            category="5. Blood",
            labels={"figure": "CAR kinetics"},
        ),
        cytokines=report(
            blood_rules.FIGURE_FILES["cytokines"],
            caption="../report/blood_cytokine_heatmap.rst",
            category="5. Blood",
            labels={"figure": "cytokine heat map"},
        ),
    log:
        blood_rules.LOGS["blood_plots"],
    conda:
        "../../envs/blood.yaml"
    threads: 1
    resources:
        mem_mb=scaled(1000, per_mb=2),
        runtime=scaled(5, per_mb=0.01),
    params:
        patients=list(PATIENTS.index),
    script:
        "../scripts/blood_plots.py"
