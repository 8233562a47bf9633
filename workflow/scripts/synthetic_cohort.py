"""Snakemake adapter: one part of the synthetic cohort (carmscope.synthetic.cohort).

``params.part``: ``reference`` (the shared references), ``patient`` (one patient's files, its
truth to ``output.truth``), ``normal`` (one plasma normal) or ``truth`` (the truth tables from
the patients' truths, ``input.truths``).
"""

import sys

from carmscope.synthetic import cohort
from carmscope.synthetic.design import params_from_config

sys.stderr = open(snakemake.log[0], "w")

simulation = cohort.prepare(
    params_from_config(snakemake.params.cohort),
    snakemake.params.data_dir,
    construct_fasta=snakemake.input.construct,
    segments_tsv=snakemake.input.segments,
    gmt_paths=list(snakemake.input.gmt),
    signatures_tsv=snakemake.input.signatures,
)
part = snakemake.params.part
if part == "reference":
    cohort.generate_reference(simulation)
elif part == "patient":
    truth = cohort.generate_patient(simulation, snakemake.wildcards.patient)
    cohort.write_patient_truth(snakemake.output.truth, truth)
elif part == "normal":
    cohort.generate_normal(simulation, snakemake.wildcards.normal)
elif part == "truth":
    cohort.gather_truth(simulation, map(cohort.read_patient_truth, snakemake.input.truths))
else:
    raise ValueError(f"unknown part of the synthetic cohort: {part!r}")
