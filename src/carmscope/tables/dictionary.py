"""The data dictionary of the result tables: every column, its unit, meaning and method.

Why one long module: it is a table of definitions (one entry per result column), read and
reviewed as one list; splitting it would scatter the columns of one table across files.

:data:`COLUMNS` is the one source: ``docs/outputs.md`` is rendered from it
(:func:`render_markdown`, checked by a test) and the Excel workbook carries it as a sheet.
A column name may be a pattern (``<SET>_delta``): ``<...>`` stands for any text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import pandas as pd

from carmscope.vocabulary import BLOOD, TUMOUR


@dataclass(frozen=True)
class Column:
    """One documented column (or family of columns, when ``name`` holds ``<...>``)."""

    table: str
    name: str
    unit: str
    description: str
    method: str = ""
    catch_all: bool = False
    """Stands for columns named by the user (the sheet's clinical columns): never matched."""

    @property
    def pattern(self) -> re.Pattern[str]:
        return _compile(self.name)


@cache
def _compile(name: str) -> re.Pattern[str]:
    parts = re.split(r"<[^>]+>", name)
    return re.compile(".+".join(re.escape(part) for part in parts) + r"\Z")


TABLES = {
    "patients": "results/tables/patients.tsv: one row per patient, in patients-sheet order",
    "samples": "results/tables/samples.tsv: one row per sample, in samples-sheet order",
    "cohort_summary": (
        "results/tables/cohort_summary.tsv: proportions and paired tests, overall and by stratum"
    ),
}

_EXPR = "docs/expression.md"
_CAR = "docs/car_detection.md"
_CTDNA = "docs/ctdna.md"
_BLOOD = "docs/blood.md"
_NCA = f"Non-compartmental analysis of the blood CAR series (car_blood_measure); {_BLOOD}."
_TCR = "docs/tcr.md"
_BOOL = "True/False"
_PAIR = "Baseline/post pair of the patient (see Biopsy pair); post - baseline for deltas."

P = "patients"
S = "samples"
C = "cohort_summary"


def _tcr_tissue_columns(tissue: str) -> tuple[Column, ...]:
    t = f"tcr_{tissue}"
    return (
        Column("patients", f"{t}_clonality_baseline", "0-1", f"Clonality (1 - Pielou evenness) of the baseline {tissue} repertoire.", _TCR),  # noqa: E501
        Column("patients", f"{t}_clonality_post", "0-1", f"Clonality of the first post-infusion {tissue} repertoire.", _TCR),  # noqa: E501
        Column("patients", f"{t}_clonality_delta", "0-1", "Post - baseline clonality.", _TCR),
        Column("patients", f"{t}_expanded_clones", "count", f"Clones expanded in the first post-infusion {tissue} repertoire (one-sided Fisher, BH q <= tcr.fdr, fold >= tcr.min_fold).", f"{_TCR}; DeWitt et al. 2015, Rytlewski et al. 2019."),  # noqa: E501
        Column("patients", f"{t}_new_clones", "count", "Expanded clones absent at baseline and detectable at its depth (Poisson, tcr.detect_alpha).", _TCR),  # noqa: E501
        Column("patients", f"{t}_overlap", "0-1", "Morisita-Horn overlap of the baseline and first post-infusion repertoires.", f"{_TCR}; Horn 1966."),  # noqa: E501
        Column("patients", f"{t}_reason", "text", f"Why the {tissue} TCR figures are empty (not evaluable)."),  # noqa: E501
    )  # fmt: skip


COLUMNS: tuple[Column, ...] = (
    # --- patients -----------------------------------------------------------------------------
    Column(P, "patient_id", "ID", "Patient ID from the patients sheet."),
    Column(P, "indication", "text", "Tumour type (patients sheet)."),
    Column(P, "her2_ihc", "score", "HER2 immunohistochemistry score: 0, 1+, 2+, 3+ (sheet)."),
    Column(P, "dosing", "text", "Dosing arm, e.g. fractionated or single (sheet)."),
    Column(P, "best_response", "RECIST", "Best overall response CR/PR/SD/PD/NE (sheet)."),
    Column(
        P,
        "<clinical column>",
        "as in sheet",
        "Any further patients-sheet column is carried through unchanged (file paths such as "
        "tumor_variants are left out).",
        catch_all=True,
    ),
    Column(P, "biopsy_assay", "scrna/bulk_rna", "Assay of the biopsy pair.", _PAIR),
    Column(P, "biopsy_baseline_sample", "ID", "Pre-infusion biopsy of the pair.", _PAIR),
    Column(P, "biopsy_post_sample", "ID", "First post-infusion biopsy of the pair.", _PAIR),
    Column(
        P,
        "car_detected",
        _BOOL,
        "CAR transcripts called in at least one post-infusion biopsy (any assay).",
        f"One-sided Poisson test against the pre-infusion biopsy and a floor; {_CAR}.",
    ),
    Column(P, "car_post_biopsies", "count", "Post-infusion biopsies scanned for CAR reads."),
    Column(P, "car_post_biopsies_detected", "count", "Of those, biopsies with CAR detected."),
    Column(P, "car_sample_id", "ID", "Biopsy the CAR figures below come from (the pair's post)."),
    Column(
        P,
        "car_reads_per_million",
        "reads per 10^6 reads",
        "CAR reads per million reads of the file.",
        f"Construct-specific k-mer scan; {_CAR}.",
    ),
    Column(
        P,
        "car_positive_cell_fraction",
        "fraction 0-1",
        "CAR+ cells (>= min_umis_per_cell CAR UMIs) / cells of the count matrix (scRNA).",
        _CAR,
    ),
    Column(
        P,
        "car_macrophage_share",
        "fraction 0-1",
        "Share of the CAR+ cells annotated as macrophages (M1 or M2); empty with no CAR+ cell.",
        f"Cell annotation, {_EXPR}.",
    ),
    Column(P, "car_reason", "text", "Why a CAR column is empty ('' when none is)."),
    Column(
        P,
        "cd8_fraction_baseline",
        "fraction 0-1",
        "CD8+ T cells / QC-passed cells in the baseline biopsy (scRNA).",
        f"Marker-based annotation (UCell-style rank scores); {_EXPR}.",
    ),
    Column(P, "cd8_fraction_post", "fraction 0-1", "The same in the post-infusion biopsy.", _EXPR),
    Column(P, "cd8_fraction_delta", "fraction", "Post - baseline CD8 fraction.", _PAIR),
    Column(
        P,
        "cd8_score_baseline",
        "log2 CPM",
        "CD8 T-cell signature score (configured metric, default all/CD8_T_cells/mean_log2cpm) "
        "of the baseline biopsy.",
        f"Mean log2(CPM+1) of the signature genes in the (pseudo)bulk profile; {_EXPR}.",
    ),
    Column(P, "cd8_score_post", "log2 CPM", "The same in the post-infusion biopsy.", _EXPR),
    Column(P, "cd8_score_delta", "log2 fold", "Post - baseline CD8 score.", _PAIR),
    Column(
        P,
        "cd8_up",
        _BOOL,
        "CD8 infiltration increased: delta > tables.cd8_up_min_delta (default 0), of the "
        "fraction when there is one, else of the score.",
    ),
    Column(P, "cd8_up_basis", "fraction/score", "Which delta cd8_up used."),
    Column(P, "cd8_reason", "text", "Why a CD8 column is empty."),
    Column(
        P,
        "<SET>_baseline",
        "log2 CPM",
        "Score of inflammation gene set SET (the configured GMT sets) in the baseline biopsy.",
        f"Mean log2(CPM+1) of the set's genes (tables.inflammation_statistic); {_EXPR}; "
        "MSigDB Hallmark sets (Liberzon 2015).",
    ),
    Column(P, "<SET>_post", "log2 CPM", "The same in the post-infusion biopsy.", _EXPR),
    Column(P, "<SET>_delta", "log2 fold", "Post - baseline score of SET.", _PAIR),
    Column(
        P,
        "inflammation_delta_mean",
        "log2 fold",
        "Mean of the inflammation sets' deltas (empty unless every set has a delta).",
    ),
    Column(
        P,
        "inflammation_up",
        _BOOL,
        "Inflammatory signalling up: inflammation_delta_mean > "
        "tables.inflammation_up_min_delta (default 0).",
    ),
    Column(P, "inflammation_reason", "text", "Why an inflammation column is empty."),
    Column(
        P,
        "ctdna_baseline_mean_vaf",
        "fraction 0-1",
        "Mean VAF of the patient's tumour variants in the baseline plasma sample (last one "
        "with day <= 0 that has coverage).",
        f"Tumour-informed allele counting; {_CTDNA}.",
    ),
    Column(P, "ctdna_nadir_mean_vaf", "fraction 0-1", "Lowest post-infusion mean VAF.", _CTDNA),
    Column(P, "ctdna_nadir_day", "day", "Day of the nadir (infusion day 1 convention of sheet)."),
    Column(
        P, "ctdna_nadir_change_pct", "%", "Change of mean VAF from baseline at the nadir.", _CTDNA
    ),
    Column(P, "ctdna_latest_day", "day", "Day of the latest plasma sample."),
    Column(P, "ctdna_latest_change_pct", "%", "Change from baseline at the latest sample."),
    Column(
        P,
        "ctdna_any_fall",
        _BOOL,
        "Some post-infusion sample is a significant fall (<= 50% of baseline mean VAF and a "
        "one-sided Fisher exact test p < 0.01, or non-detection at a sufficient limit).",
        _CTDNA,
    ),
    Column(
        P,
        "ctdna_molecular_response",
        _BOOL,
        "A fall confirmed by the next sample (or the last sample is a fall).",
        f"{_CTDNA}; Raja et al. 2018.",
    ),
    Column(P, "ctdna_transient_decrease", _BOOL, "A fall followed later by a rebound.", _CTDNA),
    Column(
        P, "ctdna_clearance", _BOOL, "Detected at baseline, not detected after infusion.", _CTDNA
    ),
    Column(
        P,
        "ctdna_progression",
        _BOOL,
        "Latest mean VAF >= 1.5 x baseline and significantly above it.",
        _CTDNA,
    ),
    Column(P, "ctdna_reason", "text", "Why the ctDNA flags are empty (not evaluable)."),
    Column(
        P,
        "qc_flags",
        "list",
        "';'-separated warnings: few_cells:<sample> (< tables.min_qc_cells QC-passed cells), "
        "half_cells_failed_qc:<sample>, car_call_without_baseline:<sample> (floor-only CAR "
        "call), ctdna_no_coverage:<sample>, ctdna_no_evaluable_variants:<sample>.",
    ),
    Column(
        P,
        "car_blood_measure",
        "qpcr/bulk_rna/scrna",
        "Blood CAR measure of the car_blood_* columns: qPCR, else PBMC bulk RNA, else PBMC "
        "scRNA; empty without blood CAR samples (results/blood/kinetics.tsv has every measure).",
    ),
    Column(P, "car_blood_unit", "text", "Unit of car_blood_cmax (e.g. copies/ug gDNA)."),
    Column(P, "car_blood_cmax", "car_blood_unit", "Largest observed CAR level in blood.", _NCA),
    Column(P, "car_blood_tmax_h", "hours", "Time of car_blood_cmax from first infusion.", _NCA),
    Column(
        P,
        "car_blood_auc",
        "car_blood_unit x hours",
        "Area under the CAR level curve from 0 to Tlast.",
        f"Linear up / log down trapezoids; {_BLOOD}.",
    ),
    Column(
        P,
        "car_blood_tlast_h",
        "hours",
        "Last time with CAR above the LLOQ (persistence).",
        _NCA,
    ),
    Column(
        P,
        "car_blood_half_life_h",
        "hours",
        "Terminal half-life of CAR in blood; empty where the tail cannot support it.",
        f"Log-linear fit over >= 3 points after Tmax chosen by adjusted R^2 (PKNCA); {_BLOOD}.",
    ),
    Column(
        P,
        "car_blood_reason",
        "text",
        "Why a car_blood_* figure is empty ('' when none is): no blood samples, a single one, "
        "no quantifiable value after infusion, or why the half-life is not evaluable.",
    ),
    Column(
        P,
        "cytokine_<ANALYTE>_peak_fold",
        "fold (NPX: difference)",
        "Peak after infusion / baseline (last pre-infusion value) of a serum cytokine.",
        f"Values below LLOQ as blood.blq_fraction x LLOQ; {_BLOOD}.",
    ),
    Column(
        P,
        "cytokine_<ANALYTE>_tmax_h",
        "hours",
        "Time of the cytokine's peak after infusion.",
        _BLOOD,
    ),
    # --- patients: T cell receptors (docs/tcr.md) ---
    *_tcr_tissue_columns(TUMOUR),
    *_tcr_tissue_columns(BLOOD),
    Column(
        P,
        "tcr_expansion",
        "True/False",
        "The tumour comparison has an expanded clone; when the tumour is not evaluable, the blood comparison decides.",  # noqa: E501
        _TCR,
    ),
    Column(
        P, "tcr_expansion_reason", "text", "Why tcr_expansion is empty (neither tissue evaluable)."
    ),
    Column(
        P,
        "tcr_tumour_expanded_in_blood",
        "count",
        "Clones expanded in the tumour (any post sample) found in any blood repertoire.",
        _TCR,
    ),
    Column(
        P,
        "tcr_tumour_expanded_in_blood_first_sample",
        "ID",
        "Earliest blood sample holding one of them.",
    ),
    Column(
        P,
        "tcr_expanded_cd8_fraction",
        "fraction 0-1",
        "Among the post-infusion vdj cells whose clone is expanded in the tumour, the fraction annotated CD8 T.",  # noqa: E501
        _TCR,
    ),
    Column(
        P,
        "tcr_expanded_cd8_exhaustion",
        "log-normalised expression",
        "Mean exhaustion (PDCD1, HAVCR2, LAG3, TIGIT, TOX, CTLA4) of the post-infusion vdj CD8 T "
        "cells of tumour-expanded clones.",
        _TCR,
    ),
    Column(
        P,
        "tcr_other_cd8_exhaustion",
        "log-normalised expression",
        "Mean exhaustion of the other post-infusion vdj CD8 T cells (for comparison).",
        _TCR,
    ),
    Column(
        P, "tcr_expanded_cd8_fraction_reason", "text", "Why tcr_expanded_cd8_fraction is empty."
    ),
    # --- samples ------------------------------------------------------------------------------
    Column(S, "sample_id", "ID", "Sample ID from the samples sheet."),
    Column(S, "patient_id", "ID", "Patient of the sample."),
    Column(S, "timepoint", "text", "Timepoint label (sheet)."),
    Column(S, "day", "day", "Study day (<= 0 pre-infusion, > 0 post-infusion)."),
    Column(S, "assay", "text", "scrna, bulk_rna or cfdna."),
    Column(S, "input.counts_format", "text", "Count-matrix format found (10x_h5, mtx, tsv...)."),
    Column(S, "input.n_cells", "count", "Columns (cells or samples) of the count matrix."),
    Column(S, "input.n_features", "count", "Rows (genes) of the count matrix."),
    Column(S, "input.total_counts", "UMIs/reads", "Sum of the count matrix."),
    Column(S, "input.reads_format", "text", "Read-file format (bam, cram, sam, fastq)."),
    Column(S, "input.reads_sort_order", "text", "SO of the BAM/CRAM header (else from records)."),
    Column(S, "input.reads_indexed", _BOOL, "An index (.bai/.csi/.crai) lies beside the file."),
    Column(S, "input.reads_contigs", "count", "Reference sequences in the read-file header."),
    Column(
        S,
        "input.reads_host_loci_contigs",
        "count",
        "Header contigs holding the CAR host loci (1/chr1, 2/chr2) or a construct; 0 is flagged.",
    ),
    Column(
        S, "input.reads_with_cell_barcode", "fraction 0-1", "Sampled reads with a CB tag (10x)."
    ),
    Column(S, "input.n_variants", "count", "Tumour-variant records of the patient's VCF."),
    Column(S, "input.counts_version", "text", "10x HDF5 v3 or legacy (1.2/2), MTX v3 or v2."),
    Column(S, "input.genome", "text", "Genome(s) of the matrix's features, where it says."),
    Column(
        S,
        "input.gene_name_type",
        "text",
        "Feature names: symbol, mixed_case_symbol (mouse-style), ensembl_id or probe_id.",
    ),
    Column(S, "input.raw_counts", _BOOL, "Every value a non-negative integer (empty: not read)."),
    Column(
        S,
        "input.barcode_overlap",
        "fraction 0-1",
        "Sampled CB-tagged reads whose barcode is a cell of the matrix (10x).",
    ),
    Column(S, "input.usable", _BOOL, "Input inspection found the sample's files usable."),
    Column(S, "input.problem", "text", "Why not: the file and what is wrong (one line)."),
    Column(S, "qc.cells_before", "count", "Cells of the matrix before QC (scRNA).", _EXPR),
    Column(S, "qc.cells_after", "count", "Cells passing QC.", _EXPR),
    Column(S, "qc.cells_removed", "count", "Cells removed by QC.", _EXPR),
    Column(S, "qc.failed_<threshold>", "count", "Cells failing one QC threshold.", _EXPR),
    Column(S, "qc.n_mito_genes", "count", "Genes matching the mitochondrial prefix.", _EXPR),
    Column(S, "qc.threshold_<threshold>", "as set", "The QC threshold applied (config).", _EXPR),
    Column(
        S,
        "qc.annotation_reason",
        "text",
        "Why cell types are not evaluable (a cell type without marker genes in the matrix).",
        _EXPR,
    ),
    Column(
        S,
        "qc.scores_reason",
        "text",
        "Why signature scores are not evaluable (a gene set without genes in the matrix).",
        _EXPR,
    ),
    Column(S, "car.construct", "ID", "CAR construct scanned for.", _CAR),
    Column(S, "car.reads_format", "text", "Format of the scanned reads.", _CAR),
    Column(S, "car.scan_mode", "text", "full or targeted scan.", _CAR),
    Column(S, "car.total_reads", "reads", "Primary reads of the file.", _CAR),
    Column(S, "car.scanned_reads", "reads", "Reads the scan looked at.", _CAR),
    Column(S, "car.reads", "reads", "CAR reads (construct-specific k-mers).", _CAR),
    Column(S, "car.reads_per_million", "reads per 10^6", "CAR reads per million reads.", _CAR),
    Column(S, "car.reads_antisense", "reads", "CAR reads on the construct's reverse strand.", _CAR),
    Column(S, "car.umis", "UMIs", "Distinct (CB, UB) with a CAR read (scRNA).", _CAR),
    Column(S, "car.reads_without_barcode", "reads", "CAR reads without a CB tag.", _CAR),
    Column(S, "car.reads_without_umi", "reads", "CAR reads with CB but no UB.", _CAR),
    Column(S, "car.cells", "count", "Cells of the count matrix.", _CAR),
    Column(S, "car.positive_cells", "count", "CAR+ cells.", _CAR),
    Column(S, "car.positive_fraction", "fraction 0-1", "CAR+ cells / cells.", _CAR),
    Column(S, "car.umis_in_cells", "UMIs", "CAR UMIs in cells of the matrix.", _CAR),
    Column(S, "car.umis_outside_cells", "UMIs", "CAR UMIs of barcodes not in the matrix.", _CAR),
    Column(S, "car.reads_outside_cells", "reads", "CAR reads of barcodes not in the matrix.", _CAR),
    Column(S, "car.matrix_features", "names", "CAR feature(s) found in the count matrix.", _CAR),
    Column(S, "car.feature_umis", "UMIs", "UMIs of the matrix CAR feature.", _CAR),
    Column(S, "car.feature_positive_cells", "count", "Cells with the matrix CAR feature.", _CAR),
    Column(S, "car.segments_covered", "names", "';'-separated construct segments seen.", _CAR),
    Column(S, "car.junctions_covered", "names", "';'-separated segment junctions seen.", _CAR),
    Column(S, "car.ambiguous_reads", "reads", "Reads tied between two constructs.", _CAR),
    Column(S, "car.background_sample", "ID", "Pre-infusion biopsy tested against.", _CAR),
    Column(S, "car.background_car_reads", "reads", "Its CAR reads.", _CAR),
    Column(S, "car.background_total_reads", "reads", "Its reads.", _CAR),
    Column(S, "car.floor_per_million", "per 10^6", "Background floor.", _CAR),
    Column(S, "car.background_per_million", "per 10^6", "Background rate used.", _CAR),
    Column(S, "car.expected_background_reads", "reads", "Background rate x total_reads.", _CAR),
    Column(S, "car.p_value", "probability", "One-sided Poisson p-value of the CAR call.", _CAR),
    Column(S, "car.detected", _BOOL, "CAR detected (p < alpha and reads >= min_reads).", _CAR),
    Column(
        S,
        "car_cells.<cell type>",
        "count",
        "CAR+ cells annotated as this cell type (scRNA with reads).",
        _EXPR,
    ),
    Column(
        S,
        "expr.<metric>",
        "per metric",
        "Every expression metric of the sample, its name with '/' written as '.': "
        "<compartment>.<set>.mean_log2cpm (log2 CPM), .singscore (rank score), "
        "all.cytolytic_activity.rooney_cyt (geometric mean GZMA/PRF1, TPM-like), "
        "fraction_of_cells.<type> and fraction_of_immune.<type> (fractions), n_cells, "
        "m2_share_of_macrophages, treg_share_of_cd4, tumour_epithelium.ERBB2.* (ERBB2).",
        f"{_EXPR} (each metric's method and reference).",
    ),
    Column(S, "ctdna.source", "text", "bam or vendor (VAF table).", _CTDNA),
    Column(S, "ctdna.n_variants", "count", "Tumour variants of the patient.", _CTDNA),
    Column(S, "ctdna.n_used", "count", "Variants used (evaluable, not noisy).", _CTDNA),
    Column(S, "ctdna.n_covered", "count", "Used variants with depth > 0.", _CTDNA),
    Column(S, "ctdna.alt_count", "reads", "ALT reads over the used variants.", _CTDNA),
    Column(S, "ctdna.depth", "reads", "Depth over the used variants.", _CTDNA),
    Column(S, "ctdna.expected_alt", "reads", "ALT reads expected from background.", _CTDNA),
    Column(S, "ctdna.mean_vaf", "fraction 0-1", "Mean VAF of the used variants.", _CTDNA),
    Column(S, "ctdna.pooled_vaf", "fraction 0-1", "Total ALT / total depth.", _CTDNA),
    Column(S, "ctdna.tumour_fraction", "fraction 0-1", "min(1, 2 x mean VAF).", _CTDNA),
    Column(S, "ctdna.p_value", "probability", "Poisson test of ALT reads vs background.", _CTDNA),
    Column(S, "ctdna.detected", _BOOL, "ctDNA detected (p <= alpha).", _CTDNA),
    Column(S, "ctdna.critical_alt", "reads", "Fewest ALT reads that are detected.", _CTDNA),
    Column(S, "ctdna.detection_limit_vaf", "fraction 0-1", "VAF detected with 95% power.", _CTDNA),
    Column(S, "ctdna.detection_method", "text", "poisson or vendor-reported.", _CTDNA),
    Column(S, "ctdna.call_status", "text", "detected, not_detected, no_coverage...", _CTDNA),
    Column(S, "ctdna.is_baseline", _BOOL, "The patient's ctDNA baseline sample.", _CTDNA),
    Column(S, "ctdna.post_infusion", _BOOL, "Day > 0.", _CTDNA),
    Column(S, "ctdna.ratio_to_baseline", "ratio", "Mean VAF / baseline mean VAF.", _CTDNA),
    Column(S, "ctdna.change_pct", "%", "Change of mean VAF from baseline.", _CTDNA),
    Column(S, "ctdna.p_fall", "probability", "One-sided Fisher p of a fall vs baseline.", _CTDNA),
    Column(S, "ctdna.p_rise", "probability", "One-sided Fisher p of a rise vs baseline.", _CTDNA),
    Column(S, "ctdna.change_tested", _BOOL, "Counts allowed the Fisher tests.", _CTDNA),
    Column(S, "ctdna.fall", _BOOL, "A significant fall (see ctdna_any_fall).", _CTDNA),
    Column(S, "ctdna.above", _BOOL, "Mean VAF > 0.5 x baseline.", _CTDNA),
    # --- cohort summary -----------------------------------------------------------------------
    Column(C, "stratum", "text", "all, or the patients column stratified by (tables.strata)."),
    Column(C, "group", "text", "all, or the stratum's value (e.g. 3+, fractionated)."),
    Column(
        C,
        "endpoint",
        "text",
        "A patients-table flag (proportion: car_detected, cd8_up, inflammation_up, "
        "ctdna_any_fall, ctdna_molecular_response, ctdna_transient_decrease, ctdna_clearance, "
        "ctdna_progression; car_post_biopsies_detected counts biopsies; crs_any, CRS of any "
        "grade among graded patients) or delta (paired test) or car_blood_* (median and range).",
    ),
    Column(C, "kind", "text", "proportion, paired_test or median_range."),
    Column(C, "n_patients", "count", "Patients in the stratum group."),
    Column(C, "n_evaluable", "count", "With a value (biopsies for car_post_biopsies_detected)."),
    Column(C, "n_positive", "count", "Evaluable with the flag True."),
    Column(C, "fraction", "fraction 0-1", "n_positive / n_evaluable."),
    Column(
        C,
        "ci_low",
        "fraction 0-1",
        "Lower bound of the exact two-sided 95% interval.",
        "Clopper and Pearson 1934.",
    ),
    Column(C, "ci_high", "fraction 0-1", "Upper bound.", "Clopper and Pearson 1934."),
    Column(C, "n_pairs", "count", "Patients with a delta."),
    Column(C, "median_delta", "as endpoint", "Median post - baseline."),
    Column(
        C,
        "statistic",
        "rank sum",
        "min(W+, W-) of the Wilcoxon signed-rank test.",
        "Wilcoxon 1945; exact p-values, zero deltas dropped.",
    ),
    Column(C, "p_value", "probability", "Two-sided exact signed-rank p-value.", "Wilcoxon 1945."),
    Column(
        C,
        "q_value",
        "probability",
        "Benjamini-Hochberg adjusted p over the paired tests of the stratum group.",
        "Benjamini and Hochberg 1995.",
    ),
    Column(
        C,
        "rank_biserial",
        "-1 to 1",
        "Matched-pairs rank-biserial correlation (W+ - W-) / (W+ + W-).",
        "Kerby 2014.",
    ),
    Column(C, "method", "text", "The method behind the row."),
    Column(
        C,
        "median",
        "as the endpoint",
        "Median of a blood kinetic figure (kind median_range: car_blood_* endpoints).",
        _BLOOD,
    ),
    Column(C, "min", "as the endpoint", "Smallest value (kind median_range)."),
    Column(C, "max", "as the endpoint", "Largest value (kind median_range)."),
)


def describe(table: str, column: str) -> Column | None:
    """The dictionary entry of a column: the exact name first, else the first matching pattern."""
    entries = [entry for entry in COLUMNS if entry.table == table]
    for entry in entries:
        if entry.name == column:
            return entry
    for entry in entries:
        if "<" in entry.name and not entry.catch_all and entry.pattern.match(column):
            return entry
    return None


def undocumented(table: str, columns: list[str], clinical: Iterable[str] = ()) -> list[str]:
    """Columns of ``table`` the dictionary does not describe; ``clinical`` names the user's
    own patients-sheet columns, which the catch-all entry covers."""
    known = set(clinical) if table == "patients" else set()
    return [column for column in columns if column not in known and describe(table, column) is None]


def dictionary_frame() -> pd.DataFrame:
    """The dictionary as a table (the workbook's ``dictionary`` sheet)."""
    return pd.DataFrame(
        [(c.table, c.name, c.unit, c.description, c.method) for c in COLUMNS],
        columns=["table", "column", "unit", "description", "method"],
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


PREAMBLE = """\
# Result tables: data dictionary

<!-- Rendered from src/carmscope/tables/dictionary.py by
     `.venv/bin/python -m carmscope.tables dictionary > docs/outputs.md`; edit the module. -->

The `result_tables` step gathers every analysis into `results/tables/`:

| file | content |
|---|---|
| `patients.tsv` | one row per patient: CAR, CD8, inflammation and ctDNA answers, QC flags |
| `samples.tsv` | one row per sample: every per-sample figure of every step |
| `cohort_summary.tsv` | proportions with exact intervals and paired tests, by stratum |
| `carmscope_results.xlsx` | the three tables and this dictionary as sheets (for Excel) |

Conventions: tab-separated, `.` as decimal mark; **missing values are empty cells, never
zero**, and each patients-table block has a `*_reason` column saying why; booleans are
`True`/`False`; days follow the samples sheet (day <= 0 pre-infusion, day > 0 post-infusion).
Numbers (`carmscope.tables.formatting`): integral values as integers (`1500`), p- and q-values
(unit `probability`) in scientific notation with three significant digits (`4.44e-02`), every
other number to six significant digits (`0.044352`; below 1e-4 in scientific notation). A text
beginning with `=`, `+`, `-`, `@`, a tab or a carriage return is written with a leading `'`
(OWASP's defence against spreadsheet formula injection). The workbook holds the same values
as the TSVs, with fitted column widths, frozen header row and ID column, and each column's
description from this dictionary as a comment on its header; same tables, same bytes.

`results/qc/multiqc/*_mqc.tsv`: the per-sample QC (input inspection, cells passing QC, CAR
reads, ctDNA depth) as MultiQC custom content: `multiqc results/` shows them as carmscope
sections.

**Samples left out.** A sample whose input files inspection found unusable
(`results/qc/inputs.tsv`: `usable` `False`, the `problem`) is left out of every analysis: its
per-sample outputs under `results/` hold one line, `# carmscope: left out by input inspection:`
and the reason (figures: an image saying "not evaluable"), the cohort steps leave it out, its
patient's `qc_flags` say `unusable_input:<sample>`, and a figure it would have decided is empty
with `<sample> left out: unusable input` in its `*_reason`.

**Biopsy pair.** A patient's CD8, inflammation and per-biopsy CAR figures come from one pair
of biopsies of one assay: the first assay of `tables.biopsy_assays` (default scRNA, then bulk
RNA) in which the patient has a baseline biopsy (last with day <= 0) and a post-infusion
biopsy (first with day > 0), the same pair as the expression stage's paired tests. `samples.tsv`
holds the figures of every other biopsy.

**Adding patients.** The per-sample steps of existing patients do not re-run when patients are
added (the tables, summary, workbook and report are cohort aggregates and do). With
`ctdna.background: cohort` the per-site ctDNA background is pooled over the cohort's plasma, so
every plasma sample is counted again and existing patients' ctDNA p-values can change; with
`ctdna.background: normals` they cannot (see docs/ctdna.md).
"""

REFERENCES = """\
## References

- Benjamini Y, Hochberg Y. Controlling the false discovery rate. J R Stat Soc B 1995;57:289-300.
- Clopper CJ, Pearson ES. The use of confidence or fiducial limits illustrated in the case of
  the binomial. Biometrika 1934;26:404-413.
- Kerby DS. The simple difference formula: an approach to teaching nonparametric correlation.
  Compr Psychol 2014;3:11.IT.3.1.
- Liberzon A et al. The Molecular Signatures Database hallmark gene set collection. Cell Syst
  2015;1:417-425.
- Raja R et al. Early reduction in ctDNA predicts survival in patients with lung and bladder
  cancer treated with durvalumab. Clin Cancer Res 2018;24:6212-6222.
- Reiss KA et al. CAR-macrophage therapy for HER2-overexpressing advanced solid tumors: a phase
  1 trial. Nat Med 2025.
- Wilcoxon F. Individual comparisons by ranking methods. Biometrics Bull 1945;1:80-83.

Methods of each step, with their own references: docs/car_detection.md, docs/expression.md,
docs/ctdna.md.
"""


def render_markdown() -> str:
    """``docs/outputs.md``: the preamble, one table per result table, then the references."""
    preamble, references = PREAMBLE, REFERENCES
    lines = [preamble.rstrip(), ""]
    for table, title in TABLES.items():
        lines += [
            f"## {title}",
            "",
            "| column | unit | description | method |",
            "|---|---|---|---|",
        ]
        for c in (c for c in COLUMNS if c.table == table):
            cells = (f"`{c.name}`", c.unit, c.description, c.method)
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        lines.append("")
    lines += [references.rstrip(), ""]
    return "\n".join(lines)
