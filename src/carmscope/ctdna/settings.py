"""The ``ctdna`` config section's checks that are part of the method (docs/ctdna.md,
"Background modes"): which background a run uses and what that mode needs.

The section arrives complete (the workflow fills it from ``config/schemas/config.schema.yaml``,
where every default lives).
"""

from __future__ import annotations

from collections.abc import Mapping

BACKGROUND_MODES = ("cohort", "normals")
#: The config value that picks a mode from the data: ``normals`` when ``panel_of_normals`` lists
#: any BAM (results stable when patients are added), else ``cohort`` (the only background there
#: is without normals). The default (docs/ctdna.md, "Background modes").
AUTO = "auto"


class CtdnaConfigError(ValueError):
    """The config's ``ctdna`` section is inconsistent (the message names the key)."""


def background_mode(section: Mapping) -> str:
    """The ``ctdna.background`` mode, checked against ``ctdna.panel_of_normals``; ``auto``
    resolves to ``normals`` when the panel lists a BAM, else ``cohort``.

    Parameters
    ----------
    section
        The config's ``ctdna`` section, with ``background`` and ``panel_of_normals``.

    Raises
    ------
    CtdnaConfigError
        An unknown mode, or ``normals`` without any ``panel_of_normals`` BAM.
    """
    mode = section["background"]
    if mode == AUTO:
        return "normals" if section["panel_of_normals"] else "cohort"
    if mode not in BACKGROUND_MODES:
        expected = ", ".join((AUTO, *BACKGROUND_MODES))
        raise CtdnaConfigError(f"config ctdna.background is {mode!r}; expected one of {expected}")
    if mode == "normals" and not section["panel_of_normals"]:
        raise CtdnaConfigError(
            "config ctdna.background is 'normals' but ctdna.panel_of_normals lists no BAM: "
            "give the BAMs of tumour-free plasma processed like the samples, or set "
            "ctdna.background: cohort (background from the other patients' plasma)"
        )
    return mode
