"""Embeddings of annotated scRNA cells: highly variable genes, PCA, neighbour graph, Leiden
clusters and UMAP (scanpy), per sample and per patient (samples integrated with Harmony).

The embedding is for looking at the cells; nothing downstream depends on it. Cell types come
from the marker scores of :mod:`carmscope.expression.annotation`, computed per cell before
any embedding, so a change of these settings changes no label, score or composition.

Steps (scanpy's standard workflow; Wolf et al. 2018, Luecken & Theis 2019):

1. ``scanpy.pp.highly_variable_genes`` (``flavor="seurat"``, on the log-normalised ``X``):
   the ``n_top_genes`` most dispersed genes (fewer when the matrix has fewer genes);
2. ``scanpy.pp.pca`` on those genes (``n_pcs`` components, at most cells - 1 and genes - 1;
   ARPACK, seeded);
3. per patient only, when it has more than one sample and ``batch_correction`` is
   ``"harmony"``: Harmony (Korsunsky et al. 2019, ``harmonypy``) on the PCs with the sample as
   batch, so that baseline and post-infusion cells of the same type meet on the map;
4. the k-NN graph (``n_neighbors``; at most cells - 1) with UMAP's connectivities as
   ``scanpy.pp.neighbors(method="umap")`` stores them, computed by
   :func:`carmscope.expression.connectivity.umap_neighbors` (exact k-NN; the fuzzy
   simplicial set in NumPy, which spares each process umap-learn's JIT compilation),
   ``scanpy.tl.leiden``
   (Traag et al. 2019; igraph implementation, ``leiden_resolution``, two iterations) and
   ``scanpy.tl.umap`` (McInnes et al. 2018; ``umap_min_dist``), all with ``random_state``.

A matrix given as ``.h5ad`` that already has ``obsm["X_umap"]`` keeps its embedding (and its
clusters): the user's map is the one they know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import anndata
import numpy as np
import pandas as pd

from carmscope.expression.connectivity import umap_neighbors

UMAP_KEY = "X_umap"
CLUSTER_KEY = "leiden"
UNS_KEY = "embedding"
CAR_OBS_COLUMNS = ("car_reads", "car_umis", "car_positive")
MIN_CELLS = 10
"""Fewest cells for an embedding: below this a neighbour graph means little."""
BATCH_CORRECTIONS = ("harmony", "none")


@dataclass(frozen=True)
class EmbeddingSettings:
    """Parameters of the embedding (config section ``expression.embedding``).

    Attributes
    ----------
    n_top_genes
        Highly variable genes the PCA is computed on.
    n_pcs
        Principal components (the neighbour graph's space).
    n_neighbors
        Neighbours per cell in the graph.
    leiden_resolution
        Resolution of the Leiden clustering (higher: more clusters).
    umap_min_dist
        UMAP's ``min_dist`` (how tightly points pack).
    random_state
        Seed of PCA, Harmony, Leiden and UMAP.
    batch_correction
        ``"harmony"`` or ``"none"``: correction of a patient's samples before the graph.
    """

    n_top_genes: int = 2000
    n_pcs: int = 30
    n_neighbors: int = 15
    leiden_resolution: float = 1.0
    umap_min_dist: float = 0.5
    random_state: int = 0
    batch_correction: str = "harmony"

    def __post_init__(self) -> None:
        if self.batch_correction not in BATCH_CORRECTIONS:
            raise ValueError(
                f"batch_correction must be one of {', '.join(BATCH_CORRECTIONS)}, "
                f"not {self.batch_correction!r}"
            )
        for name in ("n_top_genes", "n_pcs", "n_neighbors"):
            if int(getattr(self, name)) < 2:
                raise ValueError(f"{name} must be at least 2, not {getattr(self, name)}")

    @classmethod
    def from_mapping(cls, values: Mapping | None) -> EmbeddingSettings:
        """Settings from a config mapping (missing keys take the defaults above)."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown embedding setting(s): {', '.join(unknown)}")
        return cls(**values)


def has_embedding(adata: anndata.AnnData) -> bool:
    """Whether ``adata`` already carries a UMAP (``obsm["X_umap"]``, one row per cell)."""
    return UMAP_KEY in adata.obsm and adata.obsm[UMAP_KEY].shape[0] == adata.n_obs


def embed_cells(
    adata: anndata.AnnData,
    settings: EmbeddingSettings | None = None,
    *,
    batch_key: str | None = None,
    keep_existing: bool = True,
) -> str:
    """Add highly variable genes, PCA, neighbours, Leiden clusters and UMAP, in place.

    Parameters
    ----------
    adata
        Cells with log-normalised expression in ``X`` (sparse or dense).
    settings
        Parameters; the defaults of :class:`EmbeddingSettings` when None.
    batch_key
        ``obs`` column of the batch (the sample) for Harmony; None for one sample.
    keep_existing
        Keep an embedding the object already has (see :func:`has_embedding`).

    Returns
    -------
    str
        ``"computed"``, ``"kept"`` (an existing embedding) or ``"not computed"`` (fewer than
        :data:`MIN_CELLS` cells); the same in ``uns["embedding"]["status"]`` with the
        parameters used.
    """
    import scanpy as sc  # here: its import takes seconds

    settings = settings or EmbeddingSettings()
    record = {"settings": asdict(settings)}
    if keep_existing and has_embedding(adata):
        adata.uns[UNS_KEY] = record | {"status": "kept", "reason": "the input had X_umap"}
        return "kept"
    if adata.n_obs < MIN_CELLS:
        adata.uns[UNS_KEY] = record | {
            "status": "not computed",
            "reason": f"{adata.n_obs} cells (fewer than {MIN_CELLS})",
        }
        return "not computed"
    seed = int(settings.random_state)
    sc.pp.highly_variable_genes(
        adata, n_top_genes=min(int(settings.n_top_genes), adata.n_vars), flavor="seurat"
    )
    n_hvg = int(adata.var["highly_variable"].sum())
    n_comps = max(1, min(int(settings.n_pcs), adata.n_obs - 1, n_hvg - 1))
    sc.pp.pca(
        adata, n_comps=n_comps, mask_var="highly_variable", svd_solver="arpack", random_state=seed
    )
    representation = "X_pca"
    batches = 0 if batch_key is None else adata.obs[batch_key].nunique()
    corrected = settings.batch_correction == "harmony" and batches > 1
    if corrected:
        adata.obsm["X_pca_harmony"] = harmony(adata.obsm["X_pca"], adata.obs, batch_key, seed)
        representation = "X_pca_harmony"
    umap_neighbors(
        adata,
        min(int(settings.n_neighbors), adata.n_obs - 1),
        use_rep=representation,
        random_state=seed,
    )
    sc.tl.leiden(
        adata,
        resolution=float(settings.leiden_resolution),
        key_added=CLUSTER_KEY,
        random_state=seed,
        flavor="igraph",
        n_iterations=2,
        directed=False,
    )
    sc.tl.umap(adata, min_dist=float(settings.umap_min_dist), random_state=seed)
    adata.uns[UNS_KEY] = record | {
        "status": "computed",
        "n_pcs": n_comps,
        "n_highly_variable": n_hvg,
        "representation": representation,
        "batch_key": batch_key if corrected else "",
    }
    return "computed"


def harmony(pcs: np.ndarray, obs: pd.DataFrame, batch_key: str, seed: int) -> np.ndarray:
    """Harmony-corrected PCs (cells x components) with ``batch_key`` as the batch."""
    import harmonypy

    result = harmonypy.run_harmony(
        np.asarray(pcs, dtype=np.float64),
        obs[[batch_key]].astype(str),
        [batch_key],
        random_state=seed,
        verbose=False,
    )
    corrected = np.asarray(result.Z_corr)
    return corrected if corrected.shape[0] == pcs.shape[0] else corrected.T


def add_car_calls(adata: anndata.AnnData, car: pd.DataFrame, *, min_umis: int = 1) -> None:
    """Put the per-cell CAR calls in ``obs`` (``car_reads``, ``car_umis``, ``car_positive``).

    Parameters
    ----------
    adata
        Cells indexed by barcode as in the count matrix.
    car
        Per-cell CAR table of the sample (:mod:`carmscope.car.cells`): columns ``barcode``,
        ``car_reads``, ``car_umis``; cells it does not list have no CAR read.
    min_umis
        CAR UMIs that make a cell CAR+ (as in ``car_by_cell_type.tsv``).
    """
    missing = [c for c in ("barcode", "car_reads", "car_umis") if c not in car.columns]
    if missing:
        raise ValueError(f"CAR table lacks column(s) {missing}; found {list(car.columns)}")
    table = car.assign(barcode=car["barcode"].astype(str)).set_index("barcode")
    if table.index.duplicated().any():
        raise ValueError(
            f"CAR table lists barcode {table.index[table.index.duplicated()][0]!r} twice"
        )
    for column in ("car_reads", "car_umis"):
        values = pd.to_numeric(table[column], errors="coerce").reindex(adata.obs_names)
        adata.obs[column] = values.fillna(0).astype(np.int64).to_numpy()
    adata.obs["car_positive"] = adata.obs["car_umis"].to_numpy() >= int(min_umis)
    adata.uns["car_calls"] = {"status": "measured", "min_umis": int(min_umis)}


def note_car_not_measured(adata: anndata.AnnData, reason: str) -> None:
    """Record why the cells have no CAR calls (no reads to scan)."""
    adata.uns["car_calls"] = {"status": "not measured", "reason": reason}


def integrate_samples(
    samples: Mapping[str, anndata.AnnData],
    settings: EmbeddingSettings | None = None,
    *,
    batch_key: str = "sample_id",
) -> anndata.AnnData:
    """One object of a patient's samples, embedded together (Harmony over samples).

    Parameters
    ----------
    samples
        Sample ID -> its cells (log-normalised ``X``, ``obs`` with ``cell_type`` and, where
        measured, the CAR calls), in time order.
    settings
        Embedding parameters.
    batch_key
        ``obs`` column naming each cell's sample (added).

    Returns
    -------
    anndata.AnnData
        Cells of every sample (obs names ``{barcode}-{sample}``), genes common to all, the
        sample's own UMAP in ``obsm["X_umap_sample"]`` where it had one, the joint embedding
        in ``obsm["X_umap"]``.
    """
    parts = {}
    for sample_id, adata in samples.items():
        part = anndata.AnnData(
            X=adata.X, obs=adata.obs.copy(), var=pd.DataFrame(index=adata.var_names.copy())
        )
        if has_embedding(adata):
            part.obsm["X_umap_sample"] = np.asarray(adata.obsm[UMAP_KEY])
        part.obs = part.obs.drop(columns=[CLUSTER_KEY], errors="ignore")
        parts[sample_id] = part
    joint = anndata.concat(parts, join="inner", label=batch_key, index_unique="-")
    joint.obs[batch_key] = pd.Categorical(joint.obs[batch_key], categories=list(samples))
    if "cell_type" in joint.obs:
        joint.obs["cell_type"] = joint.obs["cell_type"].astype(str).astype("category")
    embed_cells(joint, settings, batch_key=batch_key, keep_existing=False)
    return joint
