"""Snakemake adapter: QC, annotation, scores, composition and pseudobulk of one scRNA sample."""

import sys

import pandas as pd

from carmscope.expression.annotation import annotate_if_evaluable, read_markers
from carmscope.expression.composition import cell_type_table, composition_metrics
from carmscope.expression.io import read_counts
from carmscope.expression.pseudobulk import pseudobulk_by_cell_type, write_pseudobulk
from carmscope.expression.qc import QCThresholds, filter_cells, normalize_log1p
from carmscope.expression.scoring import (
    SCORE_COLUMNS,
    GeneSetError,
    load_collections,
    score_scrna_sample,
    scores_to_metrics,
)
from carmscope.reproducible import write_tsv
from carmscope.verdict import leave_out

sys.stderr = open(snakemake.log[0], "w")
if leave_out(snakemake.input.verdict, snakemake.output):
    sys.exit(0)  # left out by input inspection: every output carries the reason

sample_id = snakemake.wildcards.sample
adata = read_counts(snakemake.input.counts, genome=snakemake.params.genome)
# copy=False: the QC-passed cells are compacted in place and take over the count matrix; only
# the per-cell QC table (obs) of the unfiltered cells is kept, for cells.tsv.gz
cells, summary = filter_cells(
    adata, QCThresholds.from_mapping(snakemake.params.qc), sample_id=sample_id, copy=False
)
qc_table = adata.obs
del adata
print(f"QC: {summary}", file=sys.stderr)
normalize_log1p(cells)
# a matrix without the marker genes: cell types not evaluable, the reason in qc.tsv
reason = annotate_if_evaluable(
    cells,
    read_markers(snakemake.input.markers),
    sample_id=sample_id,
    counts_file=snakemake.input.counts,
    **snakemake.params.annotation,
)
if reason:
    summary["annotation_reason"] = reason
print(reason or cells.obs["cell_type"].value_counts().to_string(), file=sys.stderr)

collections = load_collections(list(snakemake.input.gmt), [snakemake.input.signatures])
try:
    scores = score_scrna_sample(cells, collections, min_cells=snakemake.params.min_cells)
except GeneSetError as error:  # no gene of a set in the matrix: scores not evaluable
    summary["scores_reason"] = str(error)
    print(error, file=sys.stderr)
    scores = pd.DataFrame(columns=list(SCORE_COLUMNS))
composition = [] if reason else [composition_metrics(cells, min_cells=snakemake.params.min_cells)]
metrics = pd.concat([scores_to_metrics(scores), *composition], ignore_index=True)

per_cell = qc_table.join(
    cells.obs[["cell_type", "cell_type_score", "cell_type_confidence"]].astype({"cell_type": str})
)
per_cell["cell_type"] = per_cell["cell_type"].fillna("")
per_cell.index.name = "barcode"
write_tsv(per_cell, snakemake.output.cells)
pd.DataFrame([summary]).to_csv(snakemake.output.qc, sep="\t", index=False)
cell_type_table(cells.obs.iloc[:0] if reason else cells.obs).assign(sample_id=sample_id).to_csv(
    snakemake.output.composition, sep="\t", index=False
)
scores.insert(0, "sample_id", sample_id)
scores.to_csv(snakemake.output.scores, sep="\t", index=False)
metrics.insert(0, "sample_id", sample_id)
metrics.to_csv(snakemake.output.metrics, sep="\t", index=False)
counts, n_cells = pseudobulk_by_cell_type(cells)  # the DE step's profiles
write_pseudobulk(counts, n_cells, snakemake.output.pseudobulk, snakemake.output.pseudobulk_cells)
cells.write_h5ad(snakemake.output.h5ad)  # temporary: expression_embedding compresses
