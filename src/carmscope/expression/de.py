"""Paired pseudobulk differential expression, baseline versus post-infusion, per cell type.

Pairs
    Per patient and assay, the baseline sample (:func:`carmscope.vocabulary.baseline`: the last
    pre-infusion sample) and the first post-infusion sample
    (:func:`carmscope.vocabulary.first_post_infusion`). Patients without both are left out.
    For one cell type a pair is used when both of its profiles have at least ``min_cells``
    cells; a cell type with fewer than ``min_pairs`` usable pairs is not tested and the reason
    is reported.
Gene filter
    A gene is tested when it has at least ``min_count`` counts in at least as many samples as
    there are pairs (the size of the smaller time group): the pre-filter of the DESeq2 vignette,
    ``rowSums(counts >= 10) >= smallestGroupSize``.
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
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from carmscope import vocabulary
from carmscope.celltypes import CELL_TYPES
from carmscope.expression.pseudobulk import ALL

BASELINE, POST = "baseline", "post"
"""Levels of ``time`` in the design (``baseline`` is the reference)."""
DESIGN_COLUMNS = ("sample_id", "patient_id", "time", "group")
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
CONFIG_KEY = "expression.de.cell_types"
MODEL_ERRORS = (ValueError, ArithmeticError, np.linalg.LinAlgError, RuntimeError)
"""Failures of a pydeseq2 fit that make one contrast not tested instead of stopping the step."""


class DifferentialExpressionError(ValueError):
    """A setting or input the analysis cannot use; the message names the key or file."""


@dataclass(frozen=True)
class DESettings:
    """Thresholds of the analysis (config section ``expression.de``)."""

    min_cells: int = 10
    min_pairs: int = 3
    min_count: int = 10
    alpha: float = 0.05
    shrink: bool = True
    group_columns: tuple[str, ...] = ()

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> DESettings:
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        if "group_columns" in known:
            known["group_columns"] = tuple(known["group_columns"])
        return cls(**known)


@dataclass
class DEResult:
    """Everything one cell type's test writes.

    Attributes
    ----------
    cell_type
        The profile tested (a cell type or ``all``).
    counts
        Genes x samples actually modelled (after the gene filter), ``gene`` as index.
    design
        One row per sample of the pairs used (:data:`DESIGN_COLUMNS` plus group columns).
    results
        :data:`RESULT_COLUMNS`, one row per tested gene; empty when not tested.
    interaction
        :data:`INTERACTION_COLUMNS`; empty when no group column could be tested.
    tested
        Whether the test ran.
    reason
        Why not (or notes: patients left out, groups not tested).
    """

    cell_type: str
    counts: pd.DataFrame
    design: pd.DataFrame
    results: pd.DataFrame
    interaction: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=list(INTERACTION_COLUMNS))
    )
    tested: bool = False
    reason: str = ""
    n_genes_before_filter: int = 0


def check_cell_types(names: Sequence[str] | None, key: str = CONFIG_KEY) -> list[str]:
    """The cell types to test: ``names``, or every annotated type and ``all`` when None.

    Raises
    ------
    DifferentialExpressionError
        A name the annotation never produces (the config key is named).
    """
    allowed = [*CELL_TYPES, ALL]
    if names is None:
        return allowed
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise DifferentialExpressionError(
            f"config {key}: {', '.join(map(repr, unknown))} is not a cell type the annotation "
            f"produces; use some of {', '.join(allowed)}"
        )
    return list(dict.fromkeys(names))


# --- pairs and matrices -----------------------------------------------------------------------


def paired_design(
    samples: pd.DataFrame,
    patients: pd.DataFrame | None = None,
    group_columns: Sequence[str] = (),
) -> pd.DataFrame:
    """Baseline and first post-infusion sample of every patient that has both.

    Parameters
    ----------
    samples
        One assay's samples, indexed by sample ID in file order, with ``patient_id`` and
        ``hours`` or ``day``.
    patients
        Indexed by patient ID, with the ``group_columns``.
    group_columns
        Patient columns copied into the design; the first one is also ``group``.

    Returns
    -------
    pandas.DataFrame
        :data:`DESIGN_COLUMNS` then ``group_columns``; baseline then post of each patient,
        patients in first-seen order.

    Raises
    ------
    DifferentialExpressionError
        A group column missing from the patients table.
    """
    for column in group_columns:
        if patients is None or column not in patients.columns:
            raise DifferentialExpressionError(
                f"config expression.de.group_columns: the patients table has no column {column!r}"
            )
    rows = []
    for patient_id, group in samples.groupby("patient_id", sort=False):
        before, after = vocabulary.baseline(group), vocabulary.first_post_infusion(group)
        if before is None or after is None:
            continue
        extra = {
            column: "" if pd.isna(value := patients.loc[patient_id, column]) else str(value)
            for column in group_columns
        }
        group_value = extra[group_columns[0]] if group_columns else ""
        for sample_id, time in ((before, BASELINE), (after, POST)):
            rows.append(
                {
                    "sample_id": sample_id,
                    "patient_id": str(patient_id),
                    "time": time,
                    "group": group_value,
                    **extra,
                }
            )
    return pd.DataFrame(rows, columns=[*DESIGN_COLUMNS, *group_columns])


def usable_pairs(
    design: pd.DataFrame,
    n_cells: Mapping[str, pd.Series],
    cell_type: str,
    min_cells: int,
) -> tuple[pd.DataFrame, list[str]]:
    """The pairs whose two profiles of ``cell_type`` have at least ``min_cells`` cells.

    Parameters
    ----------
    design
        :func:`paired_design`.
    n_cells
        Sample ID -> cells per profile (NaN for bulk samples: always usable).
    cell_type
        Profile name.
    min_cells
        Fewest cells of a usable profile.

    Returns
    -------
    design, notes
        The design of the usable pairs, and one note per patient left out.
    """
    keep, notes = [], []
    for patient_id, rows in design.groupby("patient_id", sort=False):
        problems = []
        for sample_id in rows["sample_id"]:
            cells = n_cells[sample_id].get(cell_type, 0.0)
            if not pd.isna(cells) and cells < min_cells:
                problems.append(f"{int(cells)} cell(s) in {sample_id}")
        if problems:
            notes.append(f"{patient_id}: {', '.join(problems)} (< {min_cells})")
        else:
            keep.append(patient_id)
    return design[design["patient_id"].isin(keep)].reset_index(drop=True), notes


def count_matrix(
    profiles: Mapping[str, pd.DataFrame], design: pd.DataFrame, cell_type: str
) -> pd.DataFrame:
    """Genes x samples of one profile over the design's samples (genes in the first sample's
    order; a gene absent from a sample counts 0).

    Raises
    ------
    DifferentialExpressionError
        A sample has no such profile.
    """
    columns = {}
    for sample_id in design["sample_id"]:
        table = profiles[sample_id]
        if cell_type not in table.columns:
            raise DifferentialExpressionError(
                f"sample {sample_id} has no {cell_type!r} pseudobulk profile"
            )
        columns[sample_id] = table[cell_type]
    matrix = pd.DataFrame(columns).fillna(0).astype(np.int64)
    matrix.index.name = "gene"
    return matrix


def filter_genes(counts: pd.DataFrame, min_count: int, min_samples: int) -> pd.DataFrame:
    """Genes with at least ``min_count`` counts in at least ``min_samples`` samples."""
    return counts[(counts >= min_count).sum(axis=1) >= min_samples]


# --- the model --------------------------------------------------------------------------------


def _metadata(design: pd.DataFrame) -> pd.DataFrame:
    metadata = pd.DataFrame(
        {
            "patient": pd.Categorical(design["patient_id"]),
            "time": pd.Categorical(design["time"], categories=[BASELINE, POST]),
        },
        index=pd.Index(design["sample_id"].astype(str), name="sample_id"),
    )
    return metadata


def deseq2_paired(
    counts: pd.DataFrame,
    design: pd.DataFrame,
    *,
    alpha: float = 0.05,
    shrink: bool = True,
    n_cpus: int = 1,
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

    Returns
    -------
    pandas.DataFrame
        :data:`RESULT_COLUMNS`, genes in ``counts`` order.
    """
    from pydeseq2.dds import DeseqDataSet
    from pydeseq2.ds import DeseqStats

    metadata = _metadata(design)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dds = DeseqDataSet(
            counts=counts.T.loc[metadata.index],
            metadata=metadata,
            design="~ patient + time",
            refit_cooks=True,
            n_cpus=n_cpus,
            quiet=True,
        )
        dds.deseq2()
        stats = DeseqStats(
            dds, contrast=["time", POST, BASELINE], alpha=alpha, n_cpus=n_cpus, quiet=True
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dds = DeseqDataSet(
            counts=counts.T.loc[design_matrix.index],
            metadata=_metadata(chosen),
            design=design_matrix,
            refit_cooks=True,
            n_cpus=n_cpus,
            quiet=True,
        )
        dds.deseq2()
        for value in others:
            contrast = (design_matrix.columns == f"time[post]:group[{value}]").astype(float)
            stats = DeseqStats(dds, contrast=contrast, alpha=alpha, n_cpus=n_cpus, quiet=True)
            stats.summary()
            table = stats.results_df.rename_axis("gene").reset_index()
            table.insert(0, "reference", reference)
            table.insert(0, "group", value)
            table.insert(0, "group_column", group_column)
            tables.append(table[list(INTERACTION_COLUMNS)])
    return pd.concat(tables, ignore_index=True), note


# --- one cell type ----------------------------------------------------------------------------


def de_cell_type(
    profiles: Mapping[str, pd.DataFrame],
    n_cells: Mapping[str, pd.Series],
    design: pd.DataFrame,
    cell_type: str,
    settings: DESettings = DESettings(),
    n_cpus: int = 1,
) -> DEResult:
    """Paired test of one profile over the cohort (and its optional interactions).

    Parameters
    ----------
    profiles
        Sample ID -> genes x profiles count table (:mod:`carmscope.expression.pseudobulk`).
    n_cells
        Sample ID -> cells per profile.
    design
        :func:`paired_design` of the assay.
    cell_type
        Profile to test.
    settings
        Thresholds.
    n_cpus
        Processes pydeseq2 may use.

    Returns
    -------
    DEResult
        ``tested`` False with the reason when there are too few pairs or no gene passes the
        filter.
    """
    used, notes = usable_pairs(design, n_cells, cell_type, settings.min_cells)
    n_pairs = used["patient_id"].nunique()
    counts = count_matrix(profiles, used, cell_type)
    result = DEResult(
        cell_type=cell_type,
        counts=counts,
        design=used,
        results=pd.DataFrame(columns=list(RESULT_COLUMNS)),
        n_genes_before_filter=len(counts),
    )
    if n_pairs < settings.min_pairs:
        result.reason = "; ".join(
            [
                f"not tested: {n_pairs} pair(s) with >= {settings.min_cells} cells in both "
                f"samples (< {settings.min_pairs})",
                *notes,
            ]
        )
        return result
    kept = filter_genes(counts, settings.min_count, n_pairs)
    result.counts = kept
    if kept.empty:
        result.reason = (
            f"not tested: no gene has >= {settings.min_count} counts in >= {n_pairs} samples"
        )
        return result
    try:
        result.results = deseq2_paired(
            kept, used, alpha=settings.alpha, shrink=settings.shrink, n_cpus=n_cpus
        )
    except MODEL_ERRORS as error:  # e.g. a design that is not of full rank
        result.reason = "; ".join([f"not tested: the DESeq2 fit failed ({error})", *notes])
        return result
    result.tested = True
    interactions = []
    for column in settings.group_columns:
        try:
            table, note = deseq2_interaction(
                kept,
                used,
                column,
                min_pairs=settings.min_pairs,
                alpha=settings.alpha,
                n_cpus=n_cpus,
            )
        except MODEL_ERRORS as error:
            table, note = None, f"{column}: not tested, the DESeq2 fit failed ({error})"
        if table is not None:
            interactions.append(table)
        if note:
            notes.append(note)
    if interactions:
        result.interaction = pd.concat(interactions, ignore_index=True)
    result.reason = "; ".join(notes)
    return result


def count_significant(results: pd.DataFrame, alpha: float) -> tuple[int, int]:
    """Genes up and down (unshrunken log2 fold change sign) at ``padj < alpha``."""
    significant = results["padj"].astype(float) < alpha
    lfc = results["log2FoldChange"].astype(float)
    return int((significant & (lfc > 0)).sum()), int((significant & (lfc < 0)).sum())
