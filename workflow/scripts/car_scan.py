"""Snakemake adapter: CAR reads, cells and coverage of one biopsy (carmscope.car.sample)."""

import sys

from carmscope.car.evidence import EvidenceSettings
from carmscope.car.sample import analyse_sample, load_index, write_sample_outputs
from carmscope.car.scan import ScanSettings
from carmscope.verdict import leave_out

sys.stderr = open(snakemake.log[0], "w")
if leave_out(snakemake.input.verdict, snakemake.output):
    sys.exit(0)  # left out by input inspection: every output carries the reason

params = snakemake.params
index = load_index(snakemake.input.construct, snakemake.input.segments, snakemake.input.kmers)
settings = ScanSettings(
    evidence=EvidenceSettings(params.min_kmers, params.max_mismatch_fraction),
    threads=snakemake.threads,
    cell_tag=params.cell_tag,
    umi_tag=params.umi_tag,
    targeted=params.targeted,
    targeted_bed=snakemake.input.get("targeted_bed") or None,
    construct_contigs=tuple(params.construct_contigs),
    reference=snakemake.input.get("reference") or None,
)
analysis = analyse_sample(
    snakemake.wildcards.sample,
    params.assay,
    snakemake.input.reads,
    index,
    settings,
    counts=snakemake.input.get("counts") or None,
    matrix_features=params.matrix_features,
    min_umis=params.min_umis,
    genome=params.get("genome"),
)
write_sample_outputs(
    analysis,
    evidence=snakemake.output.evidence,
    coverage=snakemake.output.coverage,
    regions=snakemake.output.regions,
    plot=snakemake.output.plot,
    cells=snakemake.output.get("cells"),
)
