# The synthetic CAR-M trial cohort: written when the input tables point into its folder.

if SYNTHETIC_FILES:

    rule synthetic_cohort:
        input:
            construct=config["car"]["construct"],
            segments=config["car"]["segments"],
            gmt=config["genesets"]["gmt"],
            signatures=config["genesets"]["signatures"],
        output:
            SYNTHETIC_FILES,
        params:
            cohort=config["synthetic"],
            data_dir=SYNTHETIC_DIR,
        log:
            "logs/synthetic_cohort.log",
        threads: 2
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt,
            runtime=60,
        conda:
            "../../envs/synthetic.yaml"
        script:
            "../scripts/synthetic_cohort.py"
