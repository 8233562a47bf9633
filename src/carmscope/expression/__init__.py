"""Expression analysis of biopsies: read counts, QC, cell-type annotation, signature scores,
composition and baseline-versus-post-infusion comparisons.

Modules
-------
:mod:`~carmscope.expression.io`
    Readers of 10x HDF5, 10x MTX folders, h5ad files and bulk count tables.
:mod:`~carmscope.expression.qc`
    Per-cell QC metrics, threshold filtering and library-size normalisation.
:mod:`~carmscope.expression.annotation`
    Marker-based per-cell type assignment.
:mod:`~carmscope.expression.scoring`
    Single-sample gene-set scores on (pseudo)bulk profiles.
:mod:`~carmscope.expression.composition`
    Cell-type fractions, exhaustion, ERBB2 in tumour cells, CAR+ cells by cell type.
:mod:`~carmscope.expression.paired`
    Per-patient baseline/post values and the cohort's paired tests.
:mod:`~carmscope.expression.pseudobulk`
    Pseudobulk counts per cell type of a scRNA sample (and bulk samples as one profile).
:mod:`~carmscope.expression.de`
    Paired pseudobulk differential expression (pydeseq2), baseline vs post-infusion.
:mod:`~carmscope.expression.enrichment`
    Pathway enrichment of a DE contrast (decoupler ``ulm`` on the Wald statistics).
:mod:`~carmscope.expression.de_step`, :mod:`~carmscope.expression.de_plots`
    The DE step on files (tables, summary) and its figures.

Every function works on AnnData objects or pandas tables, keeps sparse matrices sparse and knows
nothing of Snakemake. The methods, thresholds and references are in ``docs/expression.md``.
"""
