"""How far pydeseq2 moves from itself, beside how far the vectorised inference moves from it.

pydeseq2's ``DefaultInference`` stops its L-BFGS-B fits at a gradient or objective-change
threshold, and a few genes sit on a threshold of DESeq2's own rules (dispersion outliers, the
``10 * min_disp`` trend filter), so its results are reproducible only to some precision. This
fits one paired model ``~ patient + time`` three times on the same counts and prints the
largest differences between them:

* pydeseq2 (``DefaultInference``);
* pydeseq2 with the size factors multiplied by ``1 + 1e-13 * r`` (``r`` from -1 to 1 over the
  samples): a change far below anything the data can mean;
* ``carmscope.expression.de_inference.VectorisedInference``.

Data: ``--data r-agreement`` (the counts and design of the R DESeq2 agreement test:
``tests/unit/test_expression_de.py``, 7 pairs, 2,000 simulated genes) or a profile name of the
14-patient benchmark cohort (``benchmarks/de.py``'s ``cohort_profiles``), e.g. ``all``.
The numbers justify the tolerances of ``tests/unit/test_expression_de_inference.py``
(docs/expression.md, section 8).

Usage::

    .venv/bin/python benchmarks/de_reproducibility.py --data r-agreement
    .venv/bin/python benchmarks/de_reproducibility.py --data all
"""

from __future__ import annotations

import argparse
import sys
import warnings

from harness import REPO  # first: binds to the cores

# isort: split
import numpy as np
import pandas as pd


def _data(name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from carmscope.expression import de

    if name == "r-agreement":
        sys.path.insert(0, str(REPO))
        from tests.unit.test_expression_de_inference import _r_agreement_data

        return _r_agreement_data()
    from de import cohort_profiles

    profiles, n_cells, samples, patients = cohort_profiles(14)
    design = de.paired_design(samples, patients, ())
    used, _notes = de.usable_pairs(design, n_cells, name, de.DESettings().min_cells)
    counts = de.count_matrix(profiles, used, name)
    return de.filter_genes(counts, de.DESettings().min_count, used["patient_id"].nunique()), used


def _fit(counts, design, inference: str, perturbation: float):
    from pydeseq2.ds import DeseqStats

    from carmscope.expression.de_model import _fitting, make_inference, paired_dataset

    with _fitting(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dds = paired_dataset(counts, design, make_inference(inference))
        # DeseqDataSet.deseq2()'s steps, with the size factors changed in between
        dds.fit_size_factors()
        dds.obs["size_factors"] *= 1 + perturbation * np.linspace(-1, 1, dds.n_obs)
        dds.fit_genewise_dispersions()
        dds.fit_dispersion_trend()
        dds.fit_dispersion_prior()
        dds.fit_MAP_dispersions()
        dds.fit_LFC()
        dds.calculate_cooks()
        if dds.refit_cooks:
            dds.refit()
        stats = DeseqStats(
            dds, contrast=["time", "post", "baseline"], inference=make_inference(inference)
        )
        stats.quiet = True
        stats.summary()
    return dds.var["dispersions"], stats.results_df


def _differences(first, second) -> str:
    (dispersions_a, a), (dispersions_b, b) = first, second
    dispersion = (dispersions_a - dispersions_b).abs() / dispersions_a
    calls = int(((a["padj"] < 0.05) != (b["padj"] < 0.05)).sum())
    return (
        f"dispersion rel. max {dispersion.max():.1e} (99th percentile "
        f"{dispersion.quantile(0.99):.1e}), log2FoldChange abs. max "
        f"{(a['log2FoldChange'] - b['log2FoldChange']).abs().max():.1e}, stat abs. max "
        f"{(a['stat'] - b['stat']).abs().max():.1e}, pvalue rel. max "
        f"{((a['pvalue'] - b['pvalue']).abs() / a['pvalue']).max():.1e}, "
        f"{calls} gene(s) called differently at padj < 0.05"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="r-agreement", help="r-agreement or a profile name")
    args = parser.parse_args()
    counts, design = _data(args.data)
    print(f"{args.data}: {counts.shape[0]} genes x {counts.shape[1]} samples")
    reference = _fit(counts, design, "pydeseq2", 0.0)
    perturbed = _fit(counts, design, "pydeseq2", 1e-13)
    ours = _fit(counts, design, "vectorised", 0.0)
    print(
        f"pydeseq2 vs pydeseq2 (size factors x (1 + 1e-13 r)): {_differences(reference, perturbed)}"
    )
    print(f"pydeseq2 vs vectorised: {_differences(reference, ours)}")


if __name__ == "__main__":
    main()
