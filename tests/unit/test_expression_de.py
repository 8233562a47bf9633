"""Paired pseudobulk differential expression and pathway enrichment (carmscope.expression.de*)."""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse, stats

from carmscope.celltypes import CELL_TYPES
from carmscope.expression import de
from carmscope.expression.de_step import DEOutputs, run_cell_type, run_summary
from carmscope.expression.enrichment import ulm_enrichment
from carmscope.expression.pseudobulk import (
    ALL,
    PseudobulkError,
    bulk_profile,
    pseudobulk_by_cell_type,
    read_pseudobulk,
    write_pseudobulk,
)
from carmscope.expression.scoring import GeneSetCollection, GeneSetError


def _cells(n_cells: int = 400, n_genes: int = 50, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    matrix = sparse.random(
        n_cells,
        n_genes,
        density=0.2,
        format="csr",
        random_state=seed,
        data_rvs=lambda k: rng.integers(1, 30, k),
    ).astype(np.float32)
    labels = rng.choice([*CELL_TYPES[:5], "unassigned"], n_cells)
    obs = pd.DataFrame(
        {"cell_type": labels, "sample": "S1"}, index=[f"cell{i}" for i in range(n_cells)]
    )
    adata = ad.AnnData(X=matrix.copy(), obs=obs)
    adata.var_names = [f"G{i}" for i in range(n_genes)]
    adata.layers["counts"] = matrix
    return adata


# --- pseudobulk -------------------------------------------------------------------------------


def test_pseudobulk_matches_decoupler_and_sums_all_cells():
    import decoupler as dc

    adata = _cells()
    counts, n_cells = pseudobulk_by_cell_type(adata)
    reference = dc.pp.pseudobulk(adata, "sample", "cell_type", layer="counts")
    for cell_type in CELL_TYPES[:5]:
        expected = reference[f"S1_{cell_type}"]
        assert np.array_equal(counts[cell_type].to_numpy(), expected.X.ravel())
        assert n_cells[cell_type] == int(expected.obs["psbulk_cells"].iloc[0])
    # unassigned cells join `all` only; types without cells are zero columns
    dense = adata.layers["counts"].toarray()
    assert np.array_equal(counts[ALL].to_numpy(), dense.sum(axis=0))
    assert n_cells[ALL] == adata.n_obs
    assert n_cells["endothelium"] == 0 and counts["endothelium"].sum() == 0
    assert list(counts.columns) == [*CELL_TYPES, ALL]
    assert counts.dtypes.eq(np.int64).all()


def test_pseudobulk_round_trip(tmp_path):
    counts, n_cells = pseudobulk_by_cell_type(_cells())
    write_pseudobulk(counts, n_cells, tmp_path / "pb.tsv", tmp_path / "cells.tsv")
    back, back_cells = read_pseudobulk(tmp_path / "pb.tsv", tmp_path / "cells.tsv")
    pd.testing.assert_frame_equal(back, counts, check_names=False)
    assert back_cells.to_dict() == n_cells.to_dict()


def test_pseudobulk_rejects_normalised_values_and_unknown_labels():
    adata = _cells()
    adata.layers["counts"] = adata.layers["counts"] * 0.37
    with pytest.raises(PseudobulkError, match="not counts"):
        pseudobulk_by_cell_type(adata)
    adata = _cells()
    adata.obs["cell_type"] = adata.obs["cell_type"].replace("nk", "NK cells")
    with pytest.raises(PseudobulkError, match="NK cells"):
        pseudobulk_by_cell_type(adata)


def test_bulk_profile_rounds_expected_counts(tmp_path):
    path = tmp_path / "bulk.tsv"
    path.write_text("gene\tcount\nA\t10.4\nB\t3.6\nC\t0\n")
    counts, n_cells = bulk_profile(path)
    assert counts[ALL].tolist() == [10, 4, 0]
    assert np.isnan(n_cells[ALL])


# --- design -----------------------------------------------------------------------------------


def _samples() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P1", "P1", "P2", "P3", "P3"],
            "day": [-14, -2, 8, 29, -5, -3, -3],
            "hours": [np.nan] * 5 + [np.nan, 36.0],
        },
        index=["P1_scr", "P1_pre", "P1_D8", "P1_D29", "P2_pre", "P3_a", "P3_b"],
    )


def test_paired_design_uses_the_vocabulary_baseline_and_first_post_sample():
    patients = pd.DataFrame({"her2_ihc": ["3+", "2+", "3+"]}, index=["P1", "P2", "P3"])
    design = de.paired_design(_samples(), patients, ["her2_ihc"])
    # P1: last pre-infusion and first post; P2: no post sample; P3: hours override the day
    assert design["sample_id"].tolist() == ["P1_pre", "P1_D8", "P3_a", "P3_b"]
    assert design["time"].tolist() == [de.BASELINE, de.POST] * 2
    assert design["group"].tolist() == ["3+"] * 4
    assert list(design.columns) == [*de.DESIGN_COLUMNS, "her2_ihc"]


def test_missing_group_column_names_the_config_key():
    with pytest.raises(de.DifferentialExpressionError, match=r"expression\.de\.group_columns"):
        de.paired_design(_samples(), pd.DataFrame(index=["P1"]), ["dosing"])


def test_cell_type_not_in_the_annotation_names_the_config_key():
    assert de.check_cell_types(None) == [*CELL_TYPES, ALL]
    assert de.check_cell_types(["cd8_t", "all"]) == ["cd8_t", "all"]
    with pytest.raises(de.DifferentialExpressionError) as error:
        de.check_cell_types(["cd8_t", "macrophages"])
    assert "expression.de.cell_types" in str(error.value)
    assert "'macrophages'" in str(error.value)


# --- the test on simulated pseudobulk counts -------------------------------------------------


def _nb(rng, mean, dispersion):
    shape = 1.0 / dispersion
    return rng.poisson(rng.gamma(shape, mean / shape))


def simulated_pairs(n_pairs=6, n_genes=300, n_up=30, n_down=10, lfc=1.5, seed=1):
    """Paired NB counts: patient effects, size factors, ``n_up``/``n_down`` changed genes."""
    rng = np.random.default_rng(seed)
    base = np.exp(rng.normal(4.0, 1.2, n_genes))
    changed = np.zeros(n_genes)
    changed[:n_up] = lfc
    changed[n_up : n_up + n_down] = -lfc
    columns, rows = {}, []
    for p in range(n_pairs):
        patient = np.exp(rng.normal(0, 0.4, n_genes))
        for time in (de.BASELINE, de.POST):
            size = rng.uniform(0.6, 1.6)
            mean = size * base * patient * (2.0**changed if time == de.POST else 1.0)
            sample_id = f"P{p}_{time}"
            columns[sample_id] = _nb(rng, mean, 0.05)
            rows.append({"sample_id": sample_id, "patient_id": f"P{p}", "time": time, "group": ""})
    genes = [f"G{i:03d}" for i in range(n_genes)]
    counts = pd.DataFrame(columns, index=pd.Index(genes, name="gene"))
    return counts, pd.DataFrame(rows), set(genes[: n_up + n_down])


def test_deseq2_paired_finds_the_changed_genes():
    counts, design, changed = simulated_pairs()
    results = de.deseq2_paired(counts, design)
    assert list(results.columns) == list(de.RESULT_COLUMNS)
    assert results["gene"].tolist() == counts.index.tolist()
    hits = set(results.loc[results["padj"] < 0.05, "gene"])
    assert len(hits & changed) >= 0.9 * len(changed)
    assert len(hits - changed) <= 0.1 * max(len(hits), 1)
    up = results.set_index("gene").loc[[f"G{i:03d}" for i in range(30)]]
    assert (up["log2FoldChange"] > 0.8).all()
    # apeglm shrinkage pulls estimates towards 0 and never flips a confident sign
    assert (results["log2FoldChange_shrunk"].abs() <= results["log2FoldChange"].abs() + 1e-6).all()
    assert (np.sign(up["log2FoldChange_shrunk"]) == 1).all()


def _profiles_from(counts: pd.DataFrame, cells: int = 50):
    profiles = {s: counts[[s]].rename(columns={s: "cd8_t"}) for s in counts.columns}
    n_cells = {s: pd.Series({"cd8_t": cells}) for s in counts.columns}
    return profiles, n_cells


def test_cell_type_with_too_few_pairs_is_reported_not_tested():
    counts, design, _ = simulated_pairs(n_pairs=4, n_genes=40)
    profiles, n_cells = _profiles_from(counts)
    n_cells["P0_post"]["cd8_t"] = 4
    n_cells["P1_baseline"]["cd8_t"] = 9
    settings = de.DESettings(min_pairs=3, min_cells=10)
    result = de.de_cell_type(profiles, n_cells, design, "cd8_t", settings)
    assert not result.tested and result.results.empty
    assert "2 pair(s)" in result.reason and "(< 3)" in result.reason
    assert "P0: 4 cell(s) in P0_post (< 10)" in result.reason
    assert result.design["patient_id"].unique().tolist() == ["P2", "P3"]


def test_gene_filter_keeps_genes_counted_in_as_many_samples_as_pairs():
    counts = pd.DataFrame(
        {"a": [10, 9, 0], "b": [10, 50, 0], "c": [0, 50, 100], "d": [0, 0, 0]},
        index=["G1", "G2", "G3"],
    )
    assert de.filter_genes(counts, 10, 2).index.tolist() == ["G1", "G2"]


def test_interaction_tests_the_group_difference_where_enough_pairs():
    counts, design, _ = simulated_pairs(n_pairs=8, n_genes=200, n_up=20, n_down=0, lfc=0.0)
    rng = np.random.default_rng(3)
    # group B: genes G000-G019 go up 3-fold after infusion; group A: no change
    design["her2_ihc"] = np.where(design["patient_id"].isin(["P4", "P5", "P6", "P7"]), "B", "A")
    post_b = (design["time"] == de.POST) & (design["her2_ihc"] == "B")
    for sample_id in design.loc[post_b, "sample_id"]:
        counts.loc[counts.index[:20], sample_id] = _nb(
            rng, counts.loc[counts.index[:20], sample_id].to_numpy() * 3.0 + 1, 0.01
        )
    table, note = de.deseq2_interaction(counts, design, "her2_ihc", min_pairs=3)
    assert note == ""
    assert set(table["group"]) == {"B"} and set(table["reference"]) == {"A"}
    hits = set(table.loc[table["padj"] < 0.05, "gene"])
    assert len(hits & set(counts.index[:20])) >= 12
    assert len(hits - set(counts.index[:20])) <= 3
    # a value with too few pairs is left out, and with one value left nothing is tested
    design.loc[design["patient_id"].isin(["P5", "P6", "P7"]), "her2_ihc"] = "C"
    table, note = de.deseq2_interaction(counts, design, "her2_ihc", min_pairs=4)
    assert table.empty and "not tested" in note and "A: 4, B: 1, C: 3" in note


# --- enrichment -------------------------------------------------------------------------------


def _collection(sets, name="sets"):
    return GeneSetCollection(name, f"{name}.gmt", "gmt", sets)


def test_ulm_scores_up_and_down_sets_with_bh_per_contrast():
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(500)]
    values = pd.Series(rng.normal(0, 1, 500), index=genes)
    values.iloc[:20] += 4
    values.iloc[20:40] -= 4
    collections = [
        _collection(
            {
                "UP_SET": genes[:20],
                "DOWN_SET": genes[20:40],
                "NULL_SET": genes[100:130],
                "TINY": [*genes[:1], "NOT_A_GENE"],
            }
        )
    ]
    table = ulm_enrichment(values, collections, min_set_size=2).set_index("set")
    assert table.loc["UP_SET", "direction"] == "up" and table.loc["UP_SET", "padj"] < 1e-6
    assert table.loc["DOWN_SET", "direction"] == "down" and table.loc["DOWN_SET", "padj"] < 1e-6
    assert table.loc["NULL_SET", "padj"] > 0.05
    assert table.loc["TINY", "status"].startswith("not tested")
    assert np.isnan(table.loc["TINY", "score"])
    # exact BH even for p-values far below machine epsilon (decoupler rounds those to 0)
    assert table.loc["UP_SET", "padj"] > 0
    tested = table[table["status"] == "ok"]
    expected = stats.false_discovery_control(tested["pvalue"].to_numpy(), method="bh")
    np.testing.assert_allclose(tested["padj"].to_numpy(), expected, rtol=1e-6)
    # the score is the t-value of the membership slope (ordinary least squares)
    member = np.isin(genes, genes[:20]).astype(float)
    fit = stats.linregress(member, values.to_numpy())
    assert table.loc["UP_SET", "score"] == pytest.approx(fit.slope / fit.stderr, rel=1e-6)
    assert table.loc["UP_SET", "leading_genes"].split(";")[0] == values.iloc[:20].idxmax()


# --- the step on files ------------------------------------------------------------------------


def _write_profiles(tmp_path, counts: pd.DataFrame):
    counts_paths, cells_paths = [], []
    for sample_id in counts.columns:
        table = pd.DataFrame({"cd8_t": counts[sample_id], ALL: counts[sample_id] * 2})
        n_cells = pd.Series({"cd8_t": 40, ALL: 400}, name="n_cells")
        counts_path, cells_path = tmp_path / f"{sample_id}.tsv", tmp_path / f"{sample_id}.c.tsv"
        write_pseudobulk(table, n_cells, counts_path, cells_path)
        counts_paths.append(counts_path)
        cells_paths.append(cells_path)
    return counts_paths, cells_paths


def _outputs(folder) -> DEOutputs:
    folder.mkdir(parents=True, exist_ok=True)
    names = {name: folder / f"{name}.tsv" for name in DEOutputs.__annotations__}
    names["volcano"] = folder / "volcano.png"
    return DEOutputs(**names)


def test_step_writes_every_table_and_the_summary(tmp_path):
    counts, design, changed = simulated_pairs(n_pairs=5, n_genes=200)
    counts_paths, cells_paths = _write_profiles(tmp_path, counts)
    samples = pd.DataFrame(
        {
            "patient_id": design["patient_id"].to_numpy(),
            "day": np.where(design["time"] == de.POST, 8, -7),
        },
        index=design["sample_id"].to_numpy(),
    )
    patients = pd.DataFrame(
        {"her2_ihc": ["3+", "3+", "2+", "2+", "2+"]}, index=[f"P{i}" for i in range(5)]
    )
    gmt = tmp_path / "sets.gmt"
    gmt.write_text(
        "CHANGED\tx\t" + "\t".join(sorted(changed)) + "\nOTHER\tx\tG100\tG101\tG102\tG150\n"
    )
    signatures = tmp_path / "signatures.tsv"
    signatures.write_text("signature\tgene\nSIG\tG001\nSIG\tG002\nSIG\tG190\n")
    settings = de.DESettings(group_columns=("her2_ihc",), min_pairs=2)
    outputs = {}
    for cell_type in ("cd8_t", "b", "few"):
        outputs[cell_type] = _outputs(tmp_path / cell_type)
        run_cell_type(
            cell_type=cell_type if cell_type == "cd8_t" else ALL,
            samples=samples,
            patients=patients,
            counts_paths=counts_paths,
            cells_paths=cells_paths,
            gmt_paths=[gmt],
            signature_paths=[signatures],
            settings=settings if cell_type != "few" else de.DESettings(min_pairs=6),
            min_set_size=2,
            outputs=outputs[cell_type],
        )
    results = pd.read_csv(outputs["cd8_t"].results, sep="\t")
    assert list(results.columns) == list(de.RESULT_COLUMNS)
    written = pd.read_csv(outputs["cd8_t"].counts, sep="\t")
    assert written.columns[0] == "gene" and len(written.columns) == 11
    design_written = pd.read_csv(outputs["cd8_t"].design, sep="\t", dtype=str)
    assert list(design_written.columns[:4]) == list(de.DESIGN_COLUMNS)
    enrichment = pd.read_csv(outputs["cd8_t"].enrichment, sep="\t").set_index("set")
    assert enrichment.loc["CHANGED", "direction"] == "up"
    assert enrichment.loc["CHANGED", "padj"] < 0.05
    assert enrichment.loc["CHANGED", "source"] == "sets"
    assert enrichment.loc["SIG", "source"] == "signatures"
    interaction = pd.read_csv(outputs["cd8_t"].interaction, sep="\t")
    assert set(interaction["group_column"]) == {"her2_ihc"}
    assert outputs["cd8_t"].volcano.stat().st_size > 0

    profiles = ("cd8_t", "b", "few")
    summary = run_summary(
        cell_types=["cd8_t", "all", "not_enough"],
        designs=[outputs[c].design for c in profiles],
        results=[outputs[c].results for c in profiles],
        enrichments=[outputs[c].enrichment for c in profiles],
        interactions=[outputs[c].interaction for c in profiles],
        statuses=[outputs[c].status for c in profiles],
        alpha=0.05,
        summary_path=tmp_path / "summary.tsv",
        heatmap_path=tmp_path / "heatmap.png",
        counts_plot_path=tmp_path / "de_genes.png",
    )
    row = summary.set_index("cell_type").loc["cd8_t"]
    assert row["tested"] and row["n_pairs"] == 5 and row["genes_up"] >= 25
    assert "CHANGED (up)" in row["top_sets"]
    untested = summary.set_index("cell_type").loc["not_enough"]
    assert not untested["tested"] and "5 pair(s)" in untested["reason"]
    assert pd.isna(untested["genes_up"])
    assert pd.read_csv(outputs["few"].results, sep="\t").empty
    assert (tmp_path / "heatmap.png").stat().st_size > 0


def test_gmt_without_any_gene_of_the_data_names_the_file(tmp_path):
    counts, design, _ = simulated_pairs(n_pairs=3, n_genes=30)
    counts_paths, cells_paths = _write_profiles(tmp_path, counts)
    samples = pd.DataFrame(
        {
            "patient_id": design["patient_id"].to_numpy(),
            "day": np.where(design["time"] == de.POST, 8, -7),
        },
        index=design["sample_id"].to_numpy(),
    )
    mouse = tmp_path / "mouse_sets.gmt"
    mouse.write_text("MOUSE_SET\tx\tCxcl9\tCxcl10\tIfng\n")
    signatures = tmp_path / "signatures.tsv"
    signatures.write_text("signature\tgene\nSIG\tG001\n")
    with pytest.raises(GeneSetError, match=re.escape(str(mouse))):
        run_cell_type(
            cell_type="cd8_t",
            samples=samples,
            patients=pd.DataFrame(index=["P0", "P1", "P2"]),
            counts_paths=counts_paths,
            cells_paths=cells_paths,
            gmt_paths=[mouse],
            signature_paths=[signatures],
            settings=de.DESettings(),
            min_set_size=2,
            outputs=_outputs(tmp_path / "out"),
        )


# --- R DESeq2 as the oracle -------------------------------------------------------------------

R_SCRIPT = r"""
args <- commandArgs(trailingOnly = TRUE)
suppressMessages(library(DESeq2))
counts <- as.matrix(read.delim(args[1], row.names = 1, check.names = FALSE))
coldata <- read.delim(args[2], stringsAsFactors = FALSE)
rownames(coldata) <- coldata$sample_id
coldata <- coldata[colnames(counts), ]
coldata$patient <- factor(coldata$patient_id)
coldata$time <- factor(coldata$time, levels = c("baseline", "post"))
dds <- DESeqDataSetFromMatrix(counts, coldata, ~ patient + time)
dds <- DESeq(dds, quiet = TRUE)
res <- results(dds, name = "time_post_vs_baseline", alpha = 0.05)
write.table(data.frame(gene = rownames(res), as.data.frame(res)), args[3], sep = "\t",
            quote = FALSE, row.names = FALSE)
"""


def _deseq2_missing() -> str:
    import shutil
    import subprocess

    if shutil.which("Rscript") is None:
        return "Rscript is not installed (apt-get install r-bioc-deseq2)"
    check = subprocess.run(
        ["Rscript", "-e", "suppressMessages(library(DESeq2))"], capture_output=True, text=True
    )
    if check.returncode != 0:
        return "R package DESeq2 is not installed (apt-get install r-bioc-deseq2)"
    return ""


def test_same_counts_and_design_as_r_deseq2(tmp_path):
    """The peer implementation as oracle (about 20 s with R; CI installs r-bioc-deseq2)."""
    import subprocess

    missing = _deseq2_missing()
    if missing:
        pytest.skip(missing)
    counts, design, _ = simulated_pairs(n_pairs=7, n_genes=2000, n_up=150, n_down=100, lfc=1.0)
    counts = de.filter_genes(counts, 10, 7)
    counts.to_csv(tmp_path / "counts.tsv", sep="\t")
    design.to_csv(tmp_path / "design.tsv", sep="\t", index=False)
    (tmp_path / "deseq2.R").write_text(R_SCRIPT)
    subprocess.run(
        [
            "Rscript",
            str(tmp_path / "deseq2.R"),
            str(tmp_path / "counts.tsv"),
            str(tmp_path / "design.tsv"),
            str(tmp_path / "r.tsv"),
        ],
        check=True,
    )
    expected = pd.read_csv(tmp_path / "r.tsv", sep="\t").set_index("gene")
    ours = de.deseq2_paired(counts, design, shrink=False).set_index("gene")
    both = ours.join(expected, rsuffix="_r")
    rho = stats.spearmanr(both["log2FoldChange"], both["log2FoldChange_r"]).statistic
    assert rho >= 0.99
    ours_hits = set(both.index[both["padj"] < 0.05])
    r_hits = set(both.index[both["padj_r"] < 0.05])
    assert len(r_hits) > 100
    assert len(ours_hits & r_hits) / len(ours_hits | r_hits) >= 0.9


# --- workflow wiring --------------------------------------------------------------------------


def test_de_rules_inputs_outputs_and_config_errors():
    from wiring import de as de_rules

    samples = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P1", "P1"],
            "day": [-7, 8, 8, 9],
            "assay": ["scrna", "scrna", "bulk_rna", "scrna"],
            "counts": ["a.h5", "b.h5", "/data/P1_D8.tsv", ""],  # S3: reads only
        },
        index=pd.Index(["S1", "S2", "B1", "S3"], name="sample_id"),
    )
    config = {"expression": {"de": {"cell_types": ["cd8_t", "all"]}}}
    assert de_rules.cell_types(config, "scrna") == ["cd8_t", "all"]
    assert de_rules.cell_types(config, "bulk_rna") == ["all"]
    assert de_rules.cell_type_pattern(config) == "cd8_t|all"
    inputs = de_rules.profile_inputs(samples, "scrna")
    assert inputs["cells"] == [
        "results/expression/scrna/S1/pseudobulk_cells.tsv",
        "results/expression/scrna/S2/pseudobulk_cells.tsv",
    ]
    # with each sample's inspection verdict: samples found unusable are left out of the fit
    assert inputs["verdicts"] == ["results/qc/inputs/S1.tsv", "results/qc/inputs/S2.tsv"]
    assert de_rules.profile_inputs(samples, "bulk_rna") == {
        "counts": ["/data/P1_D8.tsv"],
        "verdicts": ["results/qc/inputs/B1.tsv"],
    }
    assert de_rules.summary_inputs(config, "scrna")["results"] == [
        "results/expression/scrna/de/cd8_t/results.tsv",
        "results/expression/scrna/de/all/results.tsv",
    ]
    assert de_rules.outputs(samples) == [
        "results/expression/scrna/de/summary.tsv",
        "results/expression/bulk_rna/de/summary.tsv",
    ]
    # the rule's outputs: one table per name, in the profile's folder, with its wildcards
    tables = de_rules.profile_tables()
    assert list(tables) == list(de_rules.TABLES)
    assert tables["status"] == "results/expression/{assay}/de/{cell_type}/status.tsv"
    assert de_rules.sample_records(samples, "bulk_rna") == [
        {"sample_id": "B1", "patient_id": "P1", "day": 8}
    ]
    bad = {"expression": {"de": {"cell_types": ["cd8_t", "CD8 T cells"]}}}
    with pytest.raises(de.DifferentialExpressionError, match=r"expression\.de\.cell_types"):
        de_rules.cell_types(bad, "scrna")


def test_a_failed_fit_makes_the_cell_type_not_tested(monkeypatch):
    counts, design, _ = simulated_pairs(n_pairs=3, n_genes=40)
    profiles, n_cells = _profiles_from(counts)

    def singular(*args, **kwargs):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(de, "deseq2_paired", singular)
    result = de.de_cell_type(profiles, n_cells, design, "cd8_t")
    assert not result.tested and "the DESeq2 fit failed (Singular matrix)" in result.reason
