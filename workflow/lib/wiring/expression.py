"""Paths of the expression rules (``workflow/rules/expression.smk``), for them and for the rules
and functions that read their outputs (``docs/expression.md``)."""

from __future__ import annotations

RESULTS = "results/expression"


def sample_file(assay: str, sample: str, name: str) -> str:
    """One output of one sample (``sample`` may be the wildcard ``{sample}``)."""
    return f"{RESULTS}/{assay}/{sample}/{name}"


def assay_file(assay: str, name: str) -> str:
    """One cohort output of an assay (``assay`` may be the wildcard ``{assay}``)."""
    return f"{RESULTS}/{assay}/{name}"
