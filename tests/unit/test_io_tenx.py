"""The shared count-matrix reader on real 10x files, through inspection, the expression reader,
the CAR-feature reader and the annotation check (files: tests/data/tenx/README.md)."""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata
import h5py
import numpy as np
import pandas as pd
import pysam
import pytest
from scipy import sparse

from carmscope.car.matrix_feature import read_matrix_cells
from carmscope.expression.annotation import (
    MarkerCoverageError,
    check_marker_coverage,
    read_markers,
)
from carmscope.expression.io import ExpressionInputError, read_counts
from carmscope.inputs import InputContentError, inspect_sample, write_inventory_row
from carmscope.io.tenx import describe_matrix, gene_name_type, read_feature_counts
from carmscope.io.text import open_text

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "tenx"
MARKERS = REPO / "resources" / "markers" / "cell_type_markers.tsv"
LEGACY_H5 = DATA / "scanpy/1.2.0/filtered_gene_bc_matrices_h5.h5"
LEGACY_MTX = DATA / "scanpy/1.2.0/filtered_gene_bc_matrices/hg19_chr21"
TWO_GENOMES = DATA / "scanpy/1.2.0/multiple_genomes.h5"
V3_H5 = DATA / "scanpy/3.0.0/filtered_feature_bc_matrix.h5"
V3_MTX = DATA / "scanpy/3.0.0/filtered_feature_bc_matrix"
ENSEMBL_NAMES = DATA / "scanpy/visium_1.0.0/filtered_feature_bc_matrix.h5"
MOUSE_PROBES = DATA / "scanpy/visium_2.1.0/raw_probe_bc_matrix.h5"
FULL_V3 = DATA / "scirpy/GSM4339772_C144_filtered_feature_bc_matrix.h5"

# (file, format, version, genome, cells, genes, total counts, gene-name type)
REAL = [
    (LEGACY_H5, "10x_h5", "legacy", "hg19_chr21", 12, 343, 12, "symbol"),
    (LEGACY_MTX, "10x_mtx", "v2", "", 12, 343, "", "symbol"),
    (V3_H5, "10x_h5", "v3", "GRCh38_chr21", 1107, 507, 41549, "symbol"),
    (V3_MTX, "10x_mtx", "v3", "", 1107, 507, "", "symbol"),
    (ENSEMBL_NAMES, "10x_h5", "v3", "GRCh38", 100, 100, 932, "ensembl_id"),
    (MOUSE_PROBES, "10x_h5", "v3", "mm10", 4987, 1000, 3372, "probe_id"),
    (FULL_V3, "10x_h5", "v3", "GRCh38_nCoV", 3716, 33539, 13315819, "symbol"),
]
IDS = [str(row[0].relative_to(DATA)) for row in REAL]


@pytest.mark.parametrize(
    ("path", "fmt", "version", "genome", "cells", "genes", "total", "names"), REAL, ids=IDS
)
def test_real_matrix_through_inspection(path, fmt, version, genome, cells, genes, total, names):
    row = inspect_sample("S1", "scrna", str(path), "")
    assert row == {
        "sample_id": "S1",
        "assay": "scrna",
        "counts_format": fmt,
        "n_cells": cells,
        "n_features": genes,
        "total_counts": total,
        "counts_version": version,
        "genome": genome,
        "gene_name_type": names,
        "raw_counts": True,
        "usable": True,
        "problem": "",
    }


@pytest.mark.parametrize(
    ("path", "fmt", "version", "genome", "cells", "genes", "total", "names"), REAL, ids=IDS
)
def test_real_matrix_through_the_expression_reader(
    path, fmt, version, genome, cells, genes, total, names
):
    adata = read_counts(path)
    assert adata.shape == (cells, genes)
    assert adata.X.dtype == np.float32 and sparse.issparse(adata.X)
    if total != "":
        assert int(adata.X.sum()) == total
    assert adata.var_names.is_unique and adata.obs_names.is_unique


def test_mtx_and_h5_of_the_same_run_agree():
    for h5, mtx in ((LEGACY_H5, LEGACY_MTX), (V3_H5, V3_MTX)):
        a, b = read_counts(h5), read_counts(mtx)
        assert list(a.obs_names) == list(b.obs_names)
        assert list(a.var["gene_ids"]) == list(b.var["gene_ids"])
        assert (a.X != b.X).nnz == 0
    assert int(read_counts(V3_MTX).X.sum()) == 41549


def test_legacy_h5_is_accepted_by_inspection_as_by_the_expression_reader():
    # Before: "not a Cell Ranger v3 matrix: no 'matrix' group (v2 files are not read)".
    row = inspect_sample("S1", "scrna", str(LEGACY_H5), "")
    assert (row["counts_format"], row["counts_version"], row["n_cells"]) == ("10x_h5", "legacy", 12)
    assert read_counts(LEGACY_H5).shape == (12, 343)


def test_multi_genome_legacy_file_names_the_config_key():
    message = (
        f"{TWO_GENOMES}: a legacy (Cell Ranger 1.2/2) file with genomes "
        "['another_genome', 'hg19_chr21']: give the genome (config key expression.genome)"
    )
    with pytest.raises(InputContentError) as error:
        inspect_sample("S1", "scrna", str(TWO_GENOMES), "", strict=True)
    assert str(error.value) == message
    row = inspect_sample("S1", "scrna", str(TWO_GENOMES), "")
    assert (row["usable"], row["problem"]) == (False, message)
    with pytest.raises(ExpressionInputError, match=r"config key expression\.genome"):
        read_counts(TWO_GENOMES)
    row = inspect_sample("S1", "scrna", str(TWO_GENOMES), "", genome="hg19_chr21")
    assert (row["genome"], row["n_cells"], row["total_counts"]) == ("hg19_chr21", 12, 12)
    assert read_counts(TWO_GENOMES, genome="another_genome").shape == (12, 343)
    with pytest.raises(InputContentError, match=r"no genome 'mm10'; the file has \['another"):
        inspect_sample("S1", "scrna", str(TWO_GENOMES), "", genome="mm10", strict=True)


def test_genome_key_is_in_the_schema_and_the_config_readme():
    import yaml

    schema = yaml.safe_load((REPO / "config/schemas/config.schema.yaml").read_text())
    genome = schema["properties"]["expression"]["properties"]["genome"]
    assert genome["default"] is None and genome["type"] == ["string", "null"]
    assert "| `genome` | null |" in (REPO / "config/README.md").read_text()
    for rule_file in ("inputs.smk", "expression.smk", "car.smk"):
        text = (REPO / "workflow/rules" / rule_file).read_text()
        assert 'genome=config["expression"]["genome"]' in text, rule_file


def test_car_feature_reader_reads_legacy_files_like_the_expression_reader():
    cells = read_matrix_cells(LEGACY_H5, ["RRP1B", "ATP5J", "CAR_anti_HER2"])
    adata = read_counts(LEGACY_H5)
    assert cells.barcodes == list(adata.obs_names)
    assert sorted(cells.features) == ["ATP5J", "RRP1B"]
    for name in ("RRP1B", "ATP5J"):
        expected = np.asarray(adata[:, name].X.todense()).ravel().astype(np.int64)
        assert cells.features[name].tolist() == expected.tolist() and expected.sum() == 1
    barcodes, counts = read_feature_counts(TWO_GENOMES, ["RRP1B"], genome="hg19_chr21")
    assert len(barcodes) == 12 and int(counts["RRP1B"].sum()) == 1


@pytest.mark.parametrize(
    ("path", "names", "examples"),
    [
        (V3_H5, "symbol", "'CH507-9B2.2', 'CH507-9B2.1', 'CH507-9B2.8'"),
        (ENSEMBL_NAMES, "ensembl_id", "'ENSG00000243485', 'ENSG00000237613', 'ENSG00000186092'"),
        (MOUSE_PROBES, "probe_id", "'Itgb2l|2ef1e7b', 'Btn1a1|49a22c6', 'Timp1|9dd7d08'"),
    ],
    ids=["gene subset", "Ensembl IDs", "mouse probe set"],
)
def test_annotation_not_evaluable_on_matrices_without_the_markers(path, names, examples):
    markers = read_markers(MARKERS)
    adata = read_counts(path)
    with pytest.raises(MarkerCoverageError) as error:
        check_marker_coverage(markers, adata.var_names, sample_id="S1", counts_file=str(path))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        f"sample S1 ({path}): cell-type annotation not evaluable: no marker gene of "
        "tumour_epithelium, cd8_t, cd4_t, treg, nk, b, plasma, macrophage_m1, macrophage_m2, "
        "monocyte, dc, fibroblast, endothelium in the matrix "
        f"(its feature names look like {names}: {examples}); marker genes found per cell type: "
        "tumour_epithelium 0/8, cd8_t 0/8, cd4_t 0/8,"
    )
    assert message.endswith(
        "give human gene symbols as the features file's second column (map gene IDs to "
        "symbols) or a marker table (expression.markers) of the matrix's genes"
    )


def test_annotation_coverage_of_a_full_real_matrix_and_mapping_ids_to_symbols(tmp_path):
    markers = read_markers(MARKERS)
    full = read_counts(FULL_V3)
    coverage = check_marker_coverage(markers, full.var_names)
    assert (coverage["n_found"] == coverage["n_markers"]).all()
    # The documented way on for Ensembl IDs as names: an MTX folder whose features file's
    # second column holds the symbols (here mapped through the full matrix's own features).
    folder = tmp_path / "mapped"
    folder.mkdir()
    ids = list(full.var["gene_ids"])
    symbols = dict(zip(ids, full.var_names, strict=True))
    subset = read_counts(ENSEMBL_NAMES)
    mapped = [symbols.get(gene_id, gene_id) for gene_id in subset.var["gene_ids"]]
    pd.DataFrame({0: subset.var["gene_ids"], 1: mapped, 2: "Gene Expression"}).to_csv(
        folder / "features.tsv", sep="\t", header=False, index=False
    )
    pd.Series(subset.obs_names).to_csv(folder / "barcodes.tsv", header=False, index=False)
    from scipy import io as spio

    spio.mmwrite(folder / "matrix.mtx", sparse.coo_matrix(subset.X.T.astype(np.int64)))
    assert gene_name_type(read_counts(folder).var_names) == "symbol"
    assert list(read_counts(folder).var_names[:3]) == ["MIR1302-2HG", "FAM138A", "OR4F5"]


def test_normalised_h5ad_is_refused_by_inspection(tmp_path):
    adata = read_counts(V3_H5)
    adata.X = adata.X.copy()
    adata.X.data = np.log1p(adata.X.data / 3.0) - 0.5
    path = tmp_path / "normalised.h5ad"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        anndata.AnnData(adata.X, obs=adata.obs, var=adata.var).write_h5ad(path)
    # Before: inspection reported total_counts as a (negative) sum of normalised values.
    with pytest.raises(InputContentError) as error:
        inspect_sample("S1", "scrna", str(path), "", strict=True)
    assert inspect_sample("S1", "scrna", str(path), "")["problem"] == str(error.value)
    assert str(error.value) == (
        f"{path}: X holds values that are not raw counts (negative or non-integer: normalised "
        "or log-transformed?); give UMI counts, in X or in a layer 'counts'"
    )
    with_layer = tmp_path / "with_counts_layer.h5ad"
    counts = read_counts(V3_H5)
    anndata.AnnData(adata.X, obs=adata.obs, var=adata.var, layers={"counts": counts.X}).write_h5ad(
        with_layer
    )
    row = inspect_sample("S1", "scrna", str(with_layer), "")
    assert (row["total_counts"], row["raw_counts"]) == (41549, True)
    assert describe_matrix(with_layer).counts_source == "layers['counts']"


def _tenx_bam(path: Path, barcodes: list[str], n_reads: int = 50) -> str:
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr21", "LN": 10_000}]}
    with pysam.AlignmentFile(str(path), "wb", header=header) as bam:
        for i in range(n_reads):
            read = pysam.AlignedSegment(bam.header)
            read.query_name = f"r{i}"
            read.query_sequence = "ACGT" * 10
            read.query_qualities = pysam.qualitystring_to_array("I" * 40)
            read.reference_id, read.reference_start = 0, 10 * i
            read.cigarstring, read.mapping_quality = "40M", 60
            read.set_tags([("CB", barcodes[i % len(barcodes)]), ("UB", "ACGTACGTAC")])
            bam.write(read)
    pysam.index(str(path))
    return str(path)


def test_barcode_overlap_between_bam_and_matrix(tmp_path):
    cells = list(read_counts(V3_H5).obs_names)
    matching = _tenx_bam(tmp_path / "same.bam", [*cells[:3], "TTTTTTTTTTTTTTTT-1"])
    row = inspect_sample("S1", "scrna", str(V3_H5), matching)
    assert row["barcode_overlap"] == 0.76  # 38 of 50 reads: 3 of every 4 barcodes are cells
    assert list(row)[-3:] == ["barcode_overlap", "usable", "problem"]
    assert row["reads_with_cell_barcode"] == 1.0
    other = _tenx_bam(tmp_path / "other.bam", ["AAAAAAAAAAAAAAAA-1", "CCCCCCCCCCCCCCCC-1"])
    assert inspect_sample("S1", "scrna", str(V3_H5), other)["usable"] is False
    with pytest.raises(InputContentError) as error:
        inspect_sample("S1", "scrna", str(V3_H5), other, strict=True)
    assert str(error.value) == (
        f"{other}: none of the 50 cell barcodes in its first 20000 reads is a cell of the count "
        f"matrix {V3_H5} (read barcode 'AAAAAAAAAAAAAAAA-1', matrix barcode {cells[0]!r}): give "
        "the BAM and the matrix of the same Cell Ranger run"
    )


def test_open_text_reads_plain_and_gzipped_files(tmp_path):
    with open_text(V3_MTX / "barcodes.tsv.gz") as handle:
        first = handle.readline().strip()
    with open_text(LEGACY_MTX / "barcodes.tsv") as handle:
        legacy = handle.readline().strip()
    assert first == str(read_counts(V3_H5).obs_names[0])
    assert legacy == str(read_counts(LEGACY_H5).obs_names[0])


def test_h5_without_any_matrix_layout_names_both(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as handle:
        handle.create_group("GRCh38")
    with pytest.raises(InputContentError) as error:
        inspect_sample("S1", "scrna", str(path), "", strict=True)
    assert str(error.value) == (
        f"{path}: not a 10x (Cell Ranger) HDF5 matrix: no 'matrix' group (Cell Ranger 3+) and "
        "no genome group with barcodes, data, indices, indptr and shape (Cell Ranger 1.2/2)"
    )


def test_sample_without_the_markers_is_not_evaluable_for_annotation():
    from carmscope.expression.annotation import annotate_if_evaluable
    from carmscope.expression.composition import cell_type_table

    adata = read_counts(ENSEMBL_NAMES)
    reason = annotate_if_evaluable(
        adata, read_markers(MARKERS), sample_id="S1", counts_file=str(ENSEMBL_NAMES)
    )
    assert reason.startswith(f"sample S1 ({ENSEMBL_NAMES}): cell-type annotation not evaluable")
    assert set(adata.obs["cell_type"]) == {""} and adata.obs["cell_type_score"].isna().all()
    table = cell_type_table(adata.obs.iloc[:0])
    assert (table["n_cells"] == 0).all() and table["fraction_of_cells"].isna().all()
    full = read_counts(FULL_V3)[:200].copy()
    assert annotate_if_evaluable(full, read_markers(MARKERS), max_rank=1500) == ""
    assert full.obs["cell_type"].astype(str).ne("").all()


def test_expression_job_on_ensembl_names_writes_not_evaluable_outputs(tmp_path, monkeypatch):
    """The scRNA job's script on a real matrix without symbols: outputs, no traceback."""
    import runpy
    import sys
    from types import SimpleNamespace

    class Files(list):
        def __getattr__(self, name):
            return self._names[name]

    def files(**named):
        listed = Files(named.values())
        listed._names = named
        return listed

    genesets = REPO / "resources" / "genesets"
    out = {
        name: str(tmp_path / file)
        for name, file in {
            "h5ad": "cells.h5ad",
            "cells": "cells.tsv.gz",
            "qc": "qc.tsv",
            "composition": "composition.tsv",
            "scores": "scores.tsv",
            "metrics": "metrics.tsv",
            "pseudobulk": "pseudobulk.tsv",
            "pseudobulk_cells": "pseudobulk_cells.tsv",
        }.items()
    }
    verdict = tmp_path / "verdict.tsv"
    write_inventory_row(inspect_sample("S1", "scrna", str(ENSEMBL_NAMES), ""), verdict)
    snakemake = SimpleNamespace(
        input=files(
            verdict=str(verdict),
            counts=str(ENSEMBL_NAMES),
            markers=str(MARKERS),
            gmt=[str(genesets / "hallmark_inflammation.v7.0.gmt")],
            signatures=str(genesets / "immune_signatures.tsv"),
        ),
        output=files(**out),
        log=[str(tmp_path / "job.log")],
        wildcards=SimpleNamespace(sample="S1"),
        params=SimpleNamespace(
            qc={"min_genes": 1, "min_counts": 1, "max_mito_fraction": 1.0},
            annotation={},
            min_cells=10,
            genome=None,
        ),
    )
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    runpy.run_path(
        str(REPO / "workflow/scripts/expression_scrna.py"), init_globals={"snakemake": snakemake}
    )
    sys.stderr.close()
    qc = pd.read_csv(out["qc"], sep="\t")
    assert (
        qc["annotation_reason"]
        .iloc[0]
        .startswith(f"sample S1 ({ENSEMBL_NAMES}): cell-type annotation not evaluable")
    )
    assert qc["scores_reason"].iloc[0].endswith("are both gene symbols of the same species?")
    metrics = pd.read_csv(out["metrics"], sep="\t")
    assert not metrics["metric"].str.startswith("fraction_of").any()
    assert pd.read_csv(out["composition"], sep="\t")["fraction_of_cells"].isna().all()
    # the DE step's profiles: every cell in `all`, none in a cell type
    cells = pd.read_csv(out["pseudobulk_cells"], sep="\t", index_col=0).squeeze("columns")
    assert cells["all"] == qc["cells_after"].iloc[0] > 0 and cells.drop("all").eq(0).all()
    log = Path(snakemake.log[0]).read_text()
    assert "Traceback" not in log and "not evaluable" in log


def test_h5_matrix_group_missing_a_part(tmp_path):
    path = tmp_path / "partial.h5"
    with h5py.File(path, "w") as handle:
        handle.create_group("matrix")["shape"] = np.array([3, 2], dtype=np.int32)
    with pytest.raises(InputContentError, match=r"partial\.h5: cannot be read as a 10x \(Cell"):
        inspect_sample("S1", "scrna", str(path), "", strict=True)
