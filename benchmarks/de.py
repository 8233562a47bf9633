"""Paired pseudobulk DE and enrichment: time and peak memory; pseudobulk beside decoupler's.

Subcommands:

* ``pseudobulk``: one 50,000-cell post-infusion biopsy of the default preset's design
  (``cells_per_biopsy=50000``, simulated in memory with its true cell types; QC-failed cells
  left out), then in one process, alternating, ``repeats`` times each:
  ``carmscope.expression.pseudobulk.pseudobulk_by_cell_type`` (13 cell types and ``all``) and
  ``decoupler.pp.pseudobulk(adata, "sample", "cell_type", layer="counts")`` (13 cell types, no
  ``all``). Prints the median wall time of each and the ratio (goal: ours <= 2x decoupler's).
* ``de --patients N``: pseudobulk count profiles of N patients x 2 samples (baseline, first
  post-infusion) x every cell type and ``all`` of the synthetic cohort's design, drawn as
  negative binomial counts around the generator's mean profiles (cells of the type x UMIs per
  cell x the type's expression proportions, a per-patient log-normal gene effect of sd 0.2,
  dispersion 0.05), then the step of ``workflow/scripts/expression_de.py`` for every profile:
  ``de_cell_type`` (pydeseq2, apeglm shrinkage, the her2_ihc and dosing interactions) and
  ``ulm_enrichment`` over the hallmark sets and immune signatures. Prints wall and CPU time
  and the process's peak RSS (``ru_maxrss``); run one cohort size per process.
  ``--profiles a,b`` tests only those profiles (each profile's time is printed, so the whole
  step's time is their sum over the 14 profiles); ``--genes N`` keeps N evenly spaced genes
  (pydeseq2's work is per gene, so two sizes give the cost per gene); ``--group-columns ''``
  leaves out the interaction models. ``--inference pydeseq2,vectorised`` (the default) runs the
  step once with pydeseq2's own ``DefaultInference`` and once with
  ``carmscope.expression.de_inference.VectorisedInference``, in this one process on the same
  profiles, and prints the CPU ratio and how far the two agree (largest log2 fold change and
  p-value differences, and whether the genes called up/down at padj < 0.05 are the same).
* ``normalisation --patients N``: the paired test of each of ``--profiles`` (default
  macrophage_m2, cd8_t, fibroblast; no shrinkage, no interactions) twice on the same counts,
  with DESeq2's median-of-ratios size factors over all genes (the step's) and over the genes
  the generator did not raise only (DESeq2's ``controlGenes``, through pydeseq2's
  ``fit_size_factors(control_genes=...)``), against the truth
  (``carmscope.synthetic.expression.raised_genes``): genes called up and down at padj < 0.05,
  the false discovery proportion, and the median log2 fold change of the unraised genes.

The process is bound to 2 cores, which caps every thread pool (``harness.py``),
and the DE fits to one BLAS thread (``carmscope.expression.de_model``); pydeseq2 gets
``--n-cpus`` processes (default 1, the workflow's ``threads: 1``). The load average of the
machine is printed before and after.

Usage::

    .venv/bin/python benchmarks/de.py pseudobulk
    .venv/bin/python benchmarks/de.py de --patients 14
    .venv/bin/python benchmarks/de.py de --patients 100
    .venv/bin/python benchmarks/de.py normalisation --patients 100
"""

from __future__ import annotations

import argparse
import statistics
import time

from harness import (
    GMT,
    REPO,
    SIGNATURES,
    load_average,
    own_peak_rss_mib,
)  # first: binds to the cores

# isort: split
import numpy as np
import pandas as pd


def _simulation(**overrides):
    from carmscope.synthetic.cohort import prepare
    from carmscope.synthetic.design import params_from_config

    return prepare(
        params_from_config({"preset": "default", **overrides}),
        "/tmp/carmscope-bench/de",
        construct_fasta=REPO / "resources/car/anti_her2_car.fa",
        segments_tsv=REPO / "resources/car/anti_her2_car.segments.tsv",
        gmt_paths=[GMT],
        signatures_tsv=SIGNATURES,
    )


def pseudobulk_benchmark(repeats: int) -> None:
    import anndata as ad
    import decoupler as dc

    from carmscope.expression.pseudobulk import pseudobulk_by_cell_type
    from carmscope.synthetic.expression import simulate_biopsy

    simulation = _simulation(cells_per_biopsy=50_000)
    patient = simulation.patients["CARM-001"]
    sample = next(s for s in patient.samples if s.assay == "scrna" and s.day > 0)
    started = time.perf_counter()
    biopsy = simulate_biopsy(
        sample, patient, simulation.params, simulation.genes, simulation.inflammatory_genes
    )
    good = ~biopsy.cells["low_quality"].to_numpy()
    counts = biopsy.matrix[good].astype(np.float32)
    obs = biopsy.cells.loc[good, ["cell_type"]].assign(sample=sample.sample_id)
    adata = ad.AnnData(X=counts.copy(), obs=obs)
    adata.var_names = biopsy.genes["gene_symbol"].to_numpy()
    adata.var_names_make_unique()
    adata.layers["counts"] = counts
    print(
        f"simulated {adata.n_obs} cells x {adata.n_vars} genes, {counts.nnz:,} non-zero "
        f"({time.perf_counter() - started:.1f} s)"
    )
    ours, theirs = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        table, _cells = pseudobulk_by_cell_type(adata)
        ours.append(time.perf_counter() - started)
        started = time.perf_counter()
        reference = dc.pp.pseudobulk(adata, "sample", "cell_type", layer="counts")
        theirs.append(time.perf_counter() - started)
    for name in reference.obs_names:
        cell_type = name.removeprefix(f"{sample.sample_id}_")
        assert np.array_equal(reference[name].X.ravel(), table[cell_type].to_numpy())
    print(f"pseudobulk_by_cell_type: {', '.join(f'{t:.2f}' for t in ours)} s")
    print(f"decoupler.pp.pseudobulk: {', '.join(f'{t:.2f}' for t in theirs)} s")
    print(
        f"median {statistics.median(ours):.2f} s vs {statistics.median(theirs):.2f} s: "
        f"ratio {statistics.median(ours) / statistics.median(theirs):.2f} (goal <= 2); "
        "same sums for every cell type"
    )


def cohort_simulation(n_patients: int):
    """The synthetic cohort of ``n_patients`` whose design the DE benchmarks draw counts from."""
    # a larger cfDNA reference so that 100 patients' variant panels fit (not used here)
    return _simulation(n_patients=n_patients, reference_contigs=max(3, n_patients // 4))


def cohort_profiles(n_patients: int, seed: int = 7, simulation=None):
    """Pseudobulk counts of every scRNA sample and profile of an ``n_patients`` cohort (of
    ``simulation`` when given, else :func:`cohort_simulation`)."""
    from carmscope.celltypes import CELL_TYPES
    from carmscope.expression.pseudobulk import ALL
    from carmscope.synthetic.expression import _composition_vector, _profiles

    simulation = simulation or cohort_simulation(n_patients)
    params = simulation.params
    rng = np.random.default_rng(seed)
    genes = simulation.genes["gene_symbol"].to_numpy()
    profiles, n_cells, rows = {}, {}, []
    for patient in simulation.patients.values():
        patient_effect = np.exp(rng.normal(0.0, 0.2, genes.size))
        for sample in patient.samples:
            if sample.assay != "scrna":
                continue
            # the generator's mean expression proportions of every cell type in this sample
            nuclear = _profiles(
                sample, patient, params, simulation.genes, simulation.inflammatory_genes
            ).nuclear[: len(CELL_TYPES)]
            cells = np.rint(_composition_vector(sample) * params.cells_per_biopsy * 0.94)
            mean = cells[:, None] * params.median_umis_per_cell * nuclear * patient_effect
            shape = 1.0 / 0.05
            drawn = rng.poisson(rng.gamma(shape, mean / shape)).astype(np.int64)
            table = pd.DataFrame(drawn.T, index=pd.Index(genes, name="gene"), columns=CELL_TYPES)
            table[ALL] = table.sum(axis=1)
            table = table.groupby(level=0).sum()
            profiles[sample.sample_id] = table
            n_cells[sample.sample_id] = pd.Series(
                [*cells.astype(np.int64), int(cells.sum())], index=[*CELL_TYPES, ALL]
            )
            rows.append(
                {"sample_id": sample.sample_id, "patient_id": patient.patient_id, "day": sample.day}
            )
    patients = pd.DataFrame(
        {
            "her2_ihc": [p.her2_ihc for p in simulation.patients.values()],
            "dosing": [p.dosing for p in simulation.patients.values()],
        },
        index=list(simulation.patients),
    )
    return profiles, n_cells, pd.DataFrame(rows).set_index("sample_id"), patients


def de_benchmark(
    n_patients: int,
    profiles_chosen: list[str] | None = None,
    n_cpus: int = 1,
    n_genes: int | None = None,
    group_columns: tuple[str, ...] = ("her2_ihc", "dosing"),
    inferences: tuple[str, ...] = ("pydeseq2", "vectorised"),
) -> None:
    from carmscope.expression.de import DESettings, count_significant, de_cell_type, paired_design
    from carmscope.expression.enrichment import ulm_enrichment
    from carmscope.expression.pseudobulk import PROFILE_NAMES
    from carmscope.expression.scoring import load_collections

    profiles, n_cells, samples, patients = cohort_profiles(n_patients)
    if n_genes is not None:  # evenly spaced genes: pydeseq2's work is per gene
        universe = next(iter(profiles.values())).index
        kept = universe[np.linspace(0, len(universe) - 1, n_genes).round().astype(int)]
        profiles = {sample: table.loc[kept] for sample, table in profiles.items()}
    settings = DESettings(group_columns=group_columns)
    collections = load_collections([GMT], [SIGNATURES])
    design = paired_design(samples, patients, settings.group_columns)
    chosen = profiles_chosen or list(PROFILE_NAMES)
    print(
        f"{n_patients} patients, {len(design)} samples, "
        f"{len(next(iter(profiles.values())))} genes, group columns: {list(group_columns)}, "
        f"profiles: {', '.join(chosen)}"
    )
    cpu_by_inference, results_by_inference = {}, {}
    for inference in inferences:
        print(f"inference: {inference}")
        print(load_average(), flush=True)
        wall, cpu = time.perf_counter(), time.process_time()
        results_by_inference[inference] = {}
        for cell_type in chosen:
            started, cpu_started = time.perf_counter(), time.process_time()
            result = de_cell_type(
                profiles, n_cells, design, cell_type, settings, n_cpus=n_cpus, inference=inference
            )
            enrichment = ulm_enrichment(result.results.set_index("gene")["stat"], collections)
            results_by_inference[inference][cell_type] = result
            up, down = count_significant(result.results, 0.05)
            sets_up = int(((enrichment["padj"] < 0.05) & (enrichment["direction"] == "up")).sum())
            print(
                f"  {cell_type:18s} {len(result.results):5d} genes, {up:4d} up, {down:4d} down, "
                f"{sets_up} sets up, {time.perf_counter() - started:6.1f} s wall, "
                f"{time.process_time() - cpu_started:6.1f} s CPU",
                flush=True,
            )
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        cpu_by_inference[inference] = cpu
        print(f"total: {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {own_peak_rss_mib():.0f} MiB")
    print(load_average())
    if len(inferences) == 2:
        first, second = inferences
        print(
            f"CPU {first} / {second}: {cpu_by_inference[first]:.1f} s / "
            f"{cpu_by_inference[second]:.1f} s = "
            f"{cpu_by_inference[first] / cpu_by_inference[second]:.2f}x"
        )
        for cell_type in chosen:
            print(f"  {cell_type:18s} {agreement(results_by_inference, inferences, cell_type)}")


NORMALISATION_PROFILES = ("macrophage_m2", "cd8_t", "fibroblast")


def normalisation_check(n_patients: int, profiles_chosen: list[str] | None = None) -> None:
    """Calls against the truth with size factors from all genes and from the unraised ones."""
    import pydeseq2.dds

    from carmscope.expression.de import DESettings, de_cell_type, paired_design
    from carmscope.synthetic.expression import raised_genes

    truth = cohort_simulation(n_patients)
    profiles, n_cells, samples, _patients = cohort_profiles(n_patients, simulation=truth)
    design = paired_design(samples)
    universe = next(iter(profiles.values())).index
    fit_size_factors = pydeseq2.dds.DeseqDataSet.fit_size_factors
    control: set[str] = set()

    def with_control_genes(self, fit_type="ratio", control_genes=None):
        """The step's fit, its size factors from ``control`` when that is not empty."""
        if control:
            control_genes = [gene for gene in self.var_names if gene in control]
        return fit_size_factors(self, fit_type=fit_type, control_genes=control_genes)

    pydeseq2.dds.DeseqDataSet.fit_size_factors = with_control_genes
    print(f"{n_patients} patients, {len(design)} samples, {len(universe)} genes")
    print(
        "| profile | size factors from | genes tested | raised | up (not raised) | down | "
        "false discoveries | median LFC, unraised |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    try:
        for cell_type in profiles_chosen or NORMALISATION_PROFILES:
            raised = raised_genes(cell_type, truth.inflammatory_genes)
            for label, genes in (("all genes", set()), ("unraised genes", set(universe) - raised)):
                control.clear()
                control.update(genes)
                result = de_cell_type(
                    profiles, n_cells, design, cell_type, DESettings(shrink=False)
                )
                table = result.results.dropna(subset=["padj"])
                is_raised = table["gene"].isin(raised).to_numpy()
                called = (table["padj"] < 0.05).to_numpy()
                up = called & (table["log2FoldChange"] > 0).to_numpy()
                false = called & ~is_raised
                median = table.loc[~is_raised, "log2FoldChange"].median()
                print(
                    f"| {cell_type} | {label} | {len(table):,} | {int(is_raised.sum())} | "
                    f"{int(up.sum())} ({int((up & ~is_raised).sum())}) | "
                    f"{int((called & ~up).sum())} | {int(false.sum())} of {int(called.sum())} "
                    f"({false.sum() / max(called.sum(), 1):.1%}) | {median:+.3f} |",
                    flush=True,
                )
    finally:
        pydeseq2.dds.DeseqDataSet.fit_size_factors = fit_size_factors


def agreement(results_by_inference, inferences, cell_type) -> str:
    """Largest differences between two inferences' tables and whether the calls are the same."""
    tables = []
    for inference in inferences:
        result = results_by_inference[inference][cell_type]
        tables.append([result.results.set_index("gene")])
        if result.interaction is not None:
            tables[-1].append(result.interaction.set_index(["group_column", "group", "gene"]))
    parts = []
    for name, one, two in zip(("paired", "interaction"), *tables, strict=False):
        lfc = (one["log2FoldChange"] - two["log2FoldChange"]).abs().max()
        pvalue = ((one["pvalue"] - two["pvalue"]).abs() / one["pvalue"]).max()
        same = all(
            set(one.index[(one["padj"] < 0.05) & (sign * one["log2FoldChange"] > 0)])
            == set(two.index[(two["padj"] < 0.05) & (sign * two["log2FoldChange"] > 0)])
            for sign in (1, -1)
        )
        parts.append(
            f"{name}: max |dLFC| {lfc:.1e}, max rel dp {pvalue:.1e}, "
            f"{'same' if same else 'DIFFERENT'} calls"
        )
    return "; ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    pseudobulk = commands.add_parser("pseudobulk")
    pseudobulk.add_argument("--repeats", type=int, default=3)
    de = commands.add_parser("de")
    de.add_argument("--patients", type=int, default=14)
    de.add_argument(
        "--profiles", default="", help="comma-separated profiles to test (default: all 14)"
    )
    de.add_argument("--n-cpus", type=int, default=1, help="pydeseq2's processes")
    de.add_argument("--genes", type=int, default=None, help="only this many genes (evenly spaced)")
    de.add_argument("--group-columns", default="her2_ihc,dosing", help="interactions ('' for none)")
    de.add_argument(
        "--inference",
        default="pydeseq2,vectorised",
        help="comma-separated inferences to run one after the other (pydeseq2, vectorised)",
    )
    normalisation = commands.add_parser("normalisation")
    normalisation.add_argument("--patients", type=int, default=100)
    normalisation.add_argument(
        "--profiles",
        default="",
        help="comma-separated profiles (default: " + ", ".join(NORMALISATION_PROFILES) + ")",
    )
    args = parser.parse_args()
    if args.command == "pseudobulk":
        pseudobulk_benchmark(args.repeats)
    elif args.command == "normalisation":
        normalisation_check(args.patients, [p for p in args.profiles.split(",") if p] or None)
    else:
        de_benchmark(
            args.patients,
            [p for p in args.profiles.split(",") if p] or None,
            args.n_cpus,
            args.genes,
            tuple(c for c in args.group_columns.split(",") if c),
            tuple(i for i in args.inference.split(",") if i),
        )


if __name__ == "__main__":
    main()
