"""The config schema's defaults, filled as the workflow fills them (for tests of code that takes
a complete config section)."""

import copy
from pathlib import Path

from snakemake.utils import validate

SCHEMA = Path(__file__).resolve().parents[1] / "config/schemas/config.schema.yaml"


def with_defaults(config: dict | None = None) -> dict:
    """``config`` (``patients`` and ``samples`` added when absent) with every default of
    ``config/schemas/config.schema.yaml`` filled in, as ``validate(..., set_default=True)`` in
    ``workflow/rules/common.smk`` does."""
    filled = {"patients": "patients.tsv", "samples": "samples.tsv", **copy.deepcopy(config or {})}
    validate(filled, str(SCHEMA), set_default=True)
    return filled
