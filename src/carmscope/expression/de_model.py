"""DESeq2's paired test and its group interaction through pydeseq2, one count matrix each.

Model (Love et al. 2014, through pydeseq2: Muzellec et al. 2023)
    Negative binomial GLM ``~ patient + time`` (time: ``baseline`` reference, ``post``), the
    patient term pairing the samples; median-of-ratios size factors, parametric dispersion
    trend with empirical Bayes shrinkage, Cooks-distance outlier refit (7 or more replicates)
    and filtering, Wald test of ``time post vs baseline``, independent filtering and
    Benjamini-Hochberg adjustment (Benjamini & Hochberg 1995) as in DESeq2's ``results()``.
    ``log2FoldChange`` is the maximum-likelihood estimate (as ``results()`` gives it) and
    ``log2FoldChange_shrunk`` pydeseq2's ``lfc_shrink``: the apeglm estimator (Zhu et al.
    2019; a Cauchy prior adapted to the data), for ranking and plotting effect sizes.
Interaction (optional)
    For a patient column (HER2 IHC, dosing arm) whose values each have ``min_pairs`` usable
    pairs, ``~ patient + time + time:group`` with one ``time:group`` coefficient per non-reference
    value (reference: the first value in sorted order): a Wald test of whether the post-infusion
    change differs between the groups. Group values with too few pairs are left out.
Threads
    pydeseq2's own inference fits one small GLM per gene and spreads the genes over ``n_cpus``
    joblib processes; the BLAS calls inside each fit are on matrices of a few dozen rows, where
    BLAS threads only add synchronisation. The fits therefore run with BLAS limited to one
    thread (``threadpoolctl``), and ``n_cpus`` (the rule's ``threads``) is the parallelism of
    the per-gene steps pydeseq2 keeps.
Inference
    By default the IRLS, dispersion and Wald fits run vectorised over genes
    (:class:`carmscope.expression.de_inference.VectorisedInference`: pydeseq2's models and
    optimum, several times less CPU; its hard genes are fitted by pydeseq2 itself);
    ``inference="pydeseq2"`` uses pydeseq2's own ``DefaultInference`` throughout.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd

from carmscope.expression.de_pairs import BASELINE, POST

RESULT_COLUMNS = (
    "gene",
    "baseMean",
    "log2FoldChange",
    "log2FoldChange_shrunk",
    "lfcSE",
    "stat",
    "pvalue",
    "padj",
)
INTERACTION_COLUMNS = (
    "group_column",
    "group",
    "reference",
    "gene",
    "baseMean",
    "log2FoldChange",
    "lfcSE",
    "stat",
    "pvalue",
    "padj",
)
TIME_COEFFICIENT = "time[T.post]"
"""Name of the post-vs-baseline coefficient in pydeseq2's design matrix."""
INFERENCES = ("vectorised", "pydeseq2")
"""``inference`` choices: :class:`VectorisedInference` or pydeseq2's ``DefaultInference``."""
MODEL_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError)
"""Failures of a pydeseq2 fit that make one contrast not tested instead of stopping the step."""


@contextmanager
def _fitting() -> Iterator[None]:
    """pydeseq2's fits: its UserWarnings silenced, BLAS and OpenMP limited to one thread.

    Measured (28 samples x 5,966 genes, one profile, no interactions; docs/expression.md): 33 s
    of CPU with one BLAS thread; with two, on a busy machine, 197 s without finishing, the
    second thread spinning on matrices too small to share.
    """
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", UserWarning)
        yield


def make_inference(inference: str = "vectorised", n_cpus: int = 1):
    """The pydeseq2 inference object named by ``inference`` (one of :data:`INFERENCES`)."""
    from pydeseq2.default_inference import DefaultInference

    from carmscope.expression.de_inference import VectorisedInference

    if inference not in INFERENCES:
        raise ValueError(f"inference must be one of {', '.join(INFERENCES)}, not {inference!r}")
    chosen = VectorisedInference if inference == "vectorised" else DefaultInference
    return chosen(n_cpus=n_cpus)


def _metadata(design: pd.DataFrame) -> pd.DataFrame:
    metadata = pd.DataFrame(
        {
            "patient": pd.Categorical(design["patient_id"]),
            "time": pd.Categorical(design["time"], categories=[BASELINE, POST]),
        },
        index=pd.Index(design["sample_id"].astype(str), name="sample_id"),
    )
    return metadata


def paired_dataset(counts: pd.DataFrame, design: pd.DataFrame, inference):
    """pydeseq2's ``DeseqDataSet`` of the paired model ``~ patient + time``, not yet fitted.

    ``inference`` is a pydeseq2 inference object (:func:`make_inference`).
    """
    from pydeseq2.dds import DeseqDataSet

    metadata = _metadata(design)
    return DeseqDataSet(
        counts=counts.T.loc[metadata.index],
        metadata=metadata,
        design="~ patient + time",
        refit_cooks=True,
        inference=inference,
        quiet=True,
    )


def deseq2_paired(
    counts: pd.DataFrame,
    design: pd.DataFrame,
    *,
    alpha: float = 0.05,
    shrink: bool = True,
    n_cpus: int = 1,
    inference: str = "vectorised",
) -> pd.DataFrame:
    """DESeq2's paired test ``~ patient + time`` through pydeseq2.

    Parameters
    ----------
    counts
        Genes x samples (integers), samples as in ``design["sample_id"]``.
    design
        Rows of :func:`paired_design` (``sample_id``, ``patient_id``, ``time``).
    alpha
        Target FDR of independent filtering (DESeq2's ``alpha``).
    shrink
        Also compute the apeglm-shrunken log2 fold change.
    n_cpus
        Processes pydeseq2 may use.
    inference
        One of :data:`INFERENCES` (see :func:`make_inference`).

    Returns
    -------
    pandas.DataFrame
        :data:`RESULT_COLUMNS`, genes in ``counts`` order.
    """
    from pydeseq2.ds import DeseqStats

    fits = make_inference(inference, n_cpus)
    with _fitting():
        dds = paired_dataset(counts, design, fits)
        dds.deseq2()
        stats = DeseqStats(
            dds, contrast=["time", POST, BASELINE], alpha=alpha, inference=fits, quiet=True
        )
        stats.summary()
        results = stats.results_df.copy()
        shrunk = np.full(len(results), np.nan)
        if shrink:
            stats.lfc_shrink(coeff=TIME_COEFFICIENT)
            shrunk = stats.results_df["log2FoldChange"].to_numpy()
    results["log2FoldChange_shrunk"] = shrunk
    results.index.name = "gene"
    return results.reset_index()[list(RESULT_COLUMNS)]


def deseq2_interaction(
    counts: pd.DataFrame,
    design: pd.DataFrame,
    group_column: str,
    *,
    min_pairs: int = 3,
    alpha: float = 0.05,
    n_cpus: int = 1,
    inference: str = "vectorised",
) -> tuple[pd.DataFrame, str]:
    """Does the post-infusion change differ between the values of a patient column?

    ``~ patient + time + time:group`` (design matrix built here: intercept, patient
    indicators, ``time[post]``, and ``time[post]:group[value]`` for each non-reference value).

    Returns
    -------
    table, note
        :data:`INTERACTION_COLUMNS` (empty when not testable), and a note saying which values
        were left out or why nothing was tested.
    """
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.ds import DeseqStats

    values = design.drop_duplicates("patient_id").groupby(group_column)["patient_id"].count()
    values = values[values.index != ""]
    enough = sorted(values[values >= min_pairs].index)
    dropped = sorted(set(values.index) - set(enough))
    note = (
        f"{group_column}: {', '.join(f'{v} ({values[v]} pair(s))' for v in dropped)} left out "
        f"(< {min_pairs} pairs)"
        if dropped
        else ""
    )
    empty = pd.DataFrame(columns=list(INTERACTION_COLUMNS))
    if len(enough) < 2:
        counted = ", ".join(f"{value}: {int(n)}" for value, n in values.items())
        return empty, (
            f"{group_column}: not tested, fewer than 2 values with >= {min_pairs} pairs "
            f"(pairs by value: {counted or 'none'})"
        )
    chosen = design[design[group_column].isin(enough)].reset_index(drop=True)
    reference, others = enough[0], enough[1:]
    patients = list(dict.fromkeys(chosen["patient_id"]))
    post = (chosen["time"] == POST).to_numpy(dtype=float)
    matrix = {"intercept": np.ones(len(chosen))}
    for patient_id in patients[1:]:
        matrix[f"patient[{patient_id}]"] = (chosen["patient_id"] == patient_id).to_numpy(float)
    matrix["time[post]"] = post
    for value in others:
        matrix[f"time[post]:group[{value}]"] = post * (chosen[group_column] == value).to_numpy(
            float
        )
    design_matrix = pd.DataFrame(matrix, index=chosen["sample_id"].astype(str))
    tables = []
    fits = make_inference(inference, n_cpus)
    with _fitting():
        dds = DeseqDataSet(
            counts=counts.T.loc[design_matrix.index],
            metadata=_metadata(chosen),
            design=design_matrix,
            refit_cooks=True,
            inference=fits,
            quiet=True,
        )
        dds.deseq2()
        for value in others:
            contrast = (design_matrix.columns == f"time[post]:group[{value}]").astype(float)
            stats = DeseqStats(dds, contrast=contrast, alpha=alpha, inference=fits, quiet=True)
            stats.summary()
            table = stats.results_df.rename_axis("gene").reset_index()
            table.insert(0, "reference", reference)
            table.insert(0, "group", value)
            table.insert(0, "group_column", group_column)
            tables.append(table[list(INTERACTION_COLUMNS)])
    return pd.concat(tables, ignore_index=True), note
