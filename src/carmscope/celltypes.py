"""The cell-type vocabulary shared by the synthetic cohort, annotation and scoring.

Labels are machine-friendly names of the populations a CAR-M biopsy analysis reports;
``unassigned`` is for cells the annotation cannot place with confidence.
"""

CELL_TYPES: tuple[str, ...] = (
    "tumour_epithelium",
    "cd8_t",
    "cd4_t",
    "treg",
    "nk",
    "b",
    "plasma",
    "macrophage_m1",
    "macrophage_m2",
    "monocyte",
    "dc",
    "fibroblast",
    "endothelium",
)
"""Every simulated and annotated population, in reporting order."""

UNASSIGNED = "unassigned"

IMMUNE_CELL_TYPES: frozenset[str] = frozenset(
    {
        "cd8_t",
        "cd4_t",
        "treg",
        "nk",
        "b",
        "plasma",
        "macrophage_m1",
        "macrophage_m2",
        "monocyte",
        "dc",
    }
)
"""Populations that count as immune cells (the denominator of immune fractions)."""

MACROPHAGE_TYPES: frozenset[str] = frozenset({"macrophage_m1", "macrophage_m2"})
"""Macrophage populations: where CAR-M cells are expected to land."""

T_CELL_TYPES: frozenset[str] = frozenset({"cd8_t", "cd4_t", "treg"})
