# The synthetic CAR-M trial cohort: written when the input tables point into its folder.

if SYNTHETIC_FILES:

    rule synthetic_cohort:
        input:
            construct=config["car"]["construct"],
            segments=config["car"]["segments"],
            gmt=config["genesets"]["gmt"],
            signatures=config["genesets"]["signatures"],
        output:
            truth=os.path.join(SYNTHETIC_DIR, "truth/patients.tsv"),
            files=[f for f in SYNTHETIC_FILES if not f.endswith("truth/patients.tsv")],
        log:
            "logs/synthetic_cohort.log",
        conda:
            "../../envs/synthetic.yaml"
        threads: 2
        resources:
            mem_mb=scaled(4000),
            runtime=scaled(60),
        params:
            cohort=config["synthetic"],
            data_dir=lambda wildcards, output: os.path.dirname(os.path.dirname(output.truth)),
        script:
            "../scripts/synthetic_cohort.py"
