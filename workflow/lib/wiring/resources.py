"""Per-job resources of the workflow's rules (docs/cluster.md: Resources).

Every rule asks for memory (``mem_mb``, MB) and time (``runtime``, minutes) that grow with the
size of its input and with the attempt: ``attempt * (base + per_mb * input MB)``, rounded up,
at most ``cap`` if one is given. On a cluster a job killed for memory (OUT_OF_MEMORY) or time
(TIMEOUT) is resubmitted (``retries`` in profiles/slurm) with ``attempt`` 2, then 3, so it
comes back with twice, then three times, what it had. In a rule::

    from wiring.resources import scaled

    resources:
        mem_mb=scaled(1000, per_mb=2),     # 1 GB + 2 MB per MB of input, times attempt
        runtime=scaled(10, per_mb=0.01),   # 10 min + 1 min per 100 MB of input, times attempt

Snakemake calls the returned function with the job's ``wildcards``, ``input`` and
``attempt`` (it passes what the signature names); ``input.size_mb`` is the total size of the
job's input files. Snakemake evaluates resources again when a job's input exists, before
the job is submitted.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any


def amount(base: float, per_mb: float, size_mb: float, attempt: int, cap: float | None) -> int:
    """``attempt * (base + per_mb * size_mb)``, rounded up, at most ``cap``; at least 1."""
    if attempt < 1:
        raise ValueError(f"attempt must be >= 1, not {attempt}")
    if base < 0 or per_mb < 0:
        raise ValueError("base and per_mb must not be negative")
    value = math.ceil(attempt * (base + per_mb * max(0.0, float(size_mb or 0.0))))
    if cap is not None:
        value = min(value, math.ceil(cap))
    return max(1, value)


def scaled(
    base: float, per_mb: float = 0.0, cap: float | None = None
) -> Callable[[Any, Any, int], int]:
    """A Snakemake resource function: ``attempt * (base + per_mb * input.size_mb)``.

    ``base`` is what a job with empty input needs (start-up, libraries, reference tables);
    ``per_mb`` what each MB of input adds; ``cap`` an upper bound (e.g. the memory of the
    largest node), applied after the attempt factor.
    """
    if base < 0 or per_mb < 0:
        raise ValueError("base and per_mb must not be negative")

    def resource(wildcards, input, attempt):
        return amount(base, per_mb, input_size_mb(input), attempt, cap)

    resource.__name__ = f"scaled_{base:g}_{per_mb:g}"
    resource.__doc__ = f"attempt * ({base:g} + {per_mb:g} * input MB)" + (
        f", at most {cap:g}" if cap is not None else ""
    )
    return resource


def input_size_mb(input) -> float:
    """Total size of a job's input in MB (Snakemake's ``input.size_mb``)."""
    return float(input.size_mb)
