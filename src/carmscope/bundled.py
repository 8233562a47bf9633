"""Files the workflow ships (CAR construct, gene sets, markers) found from any working folder.

The bundled config names them relative to the repository (``resources/car/anti_her2_car.fa``).
Run from a checkout, that is the working folder; deployed with ``snakedeploy`` or used as a
``module`` in another Snakefile, the working folder is the user's and has no ``resources/``.
:func:`resolve_bundled` points such a path at the workflow's own copy, and only when the
working folder has no file of that name (a user's own file always wins).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

BUNDLED_KEYS: tuple[tuple[str, str], ...] = (
    ("car", "construct"),
    ("car", "segments"),
    ("car", "host_transcripts"),
    ("genesets", "gmt"),
    ("genesets", "signatures"),
    ("expression", "markers"),
)
"""Config keys (section, key) that may name a bundled file; ``genesets.gmt`` is a list."""


def _resolved(value: str, root: Path, workdir: Path) -> str:
    if not value or os.path.isabs(value) or (workdir / value).exists():
        return value
    bundled = root / value
    return str(bundled) if bundled.exists() else value


def resolve_bundled(
    config: MutableMapping, workflow_root: str | os.PathLike, workdir: str | os.PathLike = "."
) -> list[str]:
    """Point relative paths of :data:`BUNDLED_KEYS` that do not exist in ``workdir`` but do
    under ``workflow_root`` at the latter, in place.

    Parameters
    ----------
    config
        The validated config (defaults filled).
    workflow_root
        The repository the workflow runs from (the folder of its Snakefile).
    workdir
        The working folder relative paths are read from.

    Returns
    -------
    list of str
        ``section.key`` of every value changed.
    """
    root, here = Path(workflow_root), Path(workdir)
    if root.resolve() == here.resolve():
        return []
    changed = []
    for section, key in BUNDLED_KEYS:
        values = config.get(section) or {}
        value = values.get(key)
        if isinstance(value, str):
            new = _resolved(value, root, here)
        elif isinstance(value, list):
            new = [_resolved(v, root, here) if isinstance(v, str) else v for v in value]
        else:
            continue
        if new != value:
            values[key] = new
            changed.append(f"{section}.{key}")
    return changed
