"""Snakemake adapter: signature scores of one bulk RNA-seq sample."""

import sys

from carmscope.expression.io import read_bulk_counts
from carmscope.expression.scoring import load_collections, score_bulk_sample, scores_to_metrics
from carmscope.verdict import leave_out

sys.stderr = open(snakemake.log[0], "w")
if leave_out(snakemake.input.verdict, snakemake.output):
    sys.exit(0)  # left out by input inspection: every output carries the reason

sample_id = snakemake.wildcards.sample
collections = load_collections(list(snakemake.input.gmt), [snakemake.input.signatures])
scores = score_bulk_sample(read_bulk_counts(snakemake.input.counts), collections)
metrics = scores_to_metrics(scores)
scores.insert(0, "sample_id", sample_id)
scores.to_csv(snakemake.output.scores, sep="\t", index=False)
metrics.insert(0, "sample_id", sample_id)
metrics.to_csv(snakemake.output.metrics, sep="\t", index=False)
