"""The embedding steps on files: one scRNA sample (its ``cells.h5ad`` with embedding and CAR
calls, its UMAP and marker dot plot) and one patient (the integrated object and its
side-by-side UMAPs). Paths come from the caller; nothing here knows the workflow."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

import anndata
import pandas as pd

from carmscope.expression.annotation import read_markers
from carmscope.expression.embedding import (
    EmbeddingSettings,
    add_car_calls,
    embed_cells,
    integrate_samples,
    note_car_not_measured,
)
from carmscope.expression.embedding_plots import marker_dotplot, patient_umaps, sample_umap

PathLike = str | os.PathLike


def read_car_cells(path: PathLike) -> pd.DataFrame:
    """The per-cell CAR table of a sample (``cells.tsv.gz`` of CAR detection), barcodes as text."""
    return pd.read_csv(path, sep="\t", dtype={"barcode": str}, keep_default_na=False)


def embed_sample(
    annotated: PathLike,
    car_cells: PathLike | None,
    markers: PathLike,
    *,
    h5ad: PathLike,
    umap: PathLike,
    dotplot: PathLike,
    sample_id: str,
    settings: Mapping | EmbeddingSettings | None = None,
    min_umis: int = 1,
) -> anndata.AnnData:
    """Embed one sample's annotated cells, add its CAR calls, write the object and figures.

    Parameters
    ----------
    annotated
        ``.h5ad`` of the QC-passed, normalised, annotated cells.
    car_cells
        Per-cell CAR table, or None when the sample has no reads to scan (the object then
        records ``uns["car_calls"]["status"] = "not measured"``).
    markers
        Marker table (for the dot plot).
    h5ad, umap, dotplot
        Output paths.
    sample_id
        The sample (figure titles).
    settings
        Embedding parameters (mapping of :class:`EmbeddingSettings` fields).
    min_umis
        CAR UMIs that make a cell CAR+.
    """
    if not isinstance(settings, EmbeddingSettings):
        settings = EmbeddingSettings.from_mapping(settings)
    adata = anndata.read_h5ad(annotated)
    status = embed_cells(adata, settings)
    print(f"{sample_id}: embedding {status} ({adata.n_obs} cells)", file=sys.stderr)
    if car_cells is None:
        note_car_not_measured(adata, "the sample has no reads to scan for CAR transcripts")
    else:
        add_car_calls(adata, read_car_cells(car_cells), min_umis=min_umis)
        print(f"{sample_id}: {int(adata.obs['car_positive'].sum())} CAR+ cells", file=sys.stderr)
    adata.obs["cell_type"] = adata.obs["cell_type"].astype(str).astype("category")
    adata.write_h5ad(h5ad, compression="gzip")
    sample_umap(adata, umap, sample_id)
    marker_dotplot(adata, read_markers(markers), dotplot, f"{sample_id}: marker genes by cell type")
    return adata


def embed_patient(
    samples: Mapping[str, PathLike],
    labels: Sequence[str],
    *,
    h5ad: PathLike,
    figure: PathLike,
    patient_id: str,
    settings: Mapping | EmbeddingSettings | None = None,
) -> anndata.AnnData:
    """Integrate one patient's samples (time order), write the object and the side-by-side UMAPs.

    Parameters
    ----------
    samples
        Sample ID -> its ``cells.h5ad``, in time order (baseline first).
    labels
        Panel title per sample.
    h5ad, figure
        Output paths.
    patient_id
        The patient (figure title).
    settings
        Embedding parameters.
    """
    if not isinstance(settings, EmbeddingSettings):
        settings = EmbeddingSettings.from_mapping(settings)
    objects = {sample_id: anndata.read_h5ad(path) for sample_id, path in samples.items()}
    joint = integrate_samples(objects, settings)
    record = joint.uns.get("embedding", {})
    print(f"{patient_id}: {joint.n_obs} cells, embedding {record}", file=sys.stderr)
    joint.write_h5ad(h5ad, compression="gzip")
    patient_umaps(joint, list(samples), list(labels), figure, title=patient_id)
    return joint
