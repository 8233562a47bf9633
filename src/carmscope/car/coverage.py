"""Coverage of a construct by the CAR reads of a sample: per position, segment and junction.

A CAR read covers the construct interval it lies on, ungapped, at its placement
(:class:`carmscope.car.evidence.Placement`), host-derived parts included: a junction read
spanning the scFv and the CD8a hinge covers both. A segment is *covered* when at least one CAR
read overlaps it; a junction when at least one CAR read has bases on both sides of it.

Tables
------
:func:`coverage_table`: one row per construct position (``sample_id``, ``construct``,
``position`` 1-based, ``base``, ``segment``, ``specific``, ``depth``).
:func:`region_table`: one row per segment and per junction (``sample_id``, ``construct``,
``region``, ``kind`` segment/junction, ``start``, ``end`` (1-based, inclusive; a junction's are
the last base before and the first after it), ``specific``, ``reads``, ``mean_depth``,
``covered_fraction``, ``covered``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from carmscope.construct import Construct

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

# NumPy, pandas and matplotlib are imported inside the functions that build tables and plots:
# the scan only accumulates (plain integers), so `python -m carmscope.car scan` starts without
# them (docs/car_detection.md, "Benchmark").

JUNCTION_SEPARATOR = "|"


def junction_name(left: str, right: str) -> str:
    """Name of the junction between two adjacent segments, e.g. ``VH|CD8A_hinge_TM``."""
    return f"{left}{JUNCTION_SEPARATOR}{right}"


class CoverageAccumulator:
    """Depth and read counts of one construct, added to one read at a time.

    The counts are plain Python integers (a construct has a few thousand positions and a dozen
    segments, and a sample a few thousand CAR reads); :meth:`depth` returns an array.
    """

    def __init__(self, construct: Construct) -> None:
        self.construct = construct
        self._changes = [0] * (construct.length + 1)
        self._segment_spans = [(s.start - 1, s.end) for s in construct.segments]
        self._boundaries = [right.start - 1 for _, right in self.junctions]
        self.segment_reads = [0] * len(construct.segments)
        self.junction_reads = [0] * len(self._boundaries)

    @property
    def junctions(self) -> list[tuple]:
        """Adjacent segment pairs, 5' to 3'."""
        return list(itertools.pairwise(self.construct.segments))

    def add(self, start: int, end: int) -> None:
        """Count a read covering construct positions ``start..end-1`` (0-based)."""
        if end <= start:
            return
        self._changes[start] += 1
        self._changes[end] -= 1
        for i, (segment_start, segment_end) in enumerate(self._segment_spans):
            if segment_start < end and segment_end > start:
                self.segment_reads[i] += 1
        for i, boundary in enumerate(self._boundaries):
            if start < boundary < end:
                self.junction_reads[i] += 1

    def merge(self, other: CoverageAccumulator) -> None:
        """Add another accumulator of the same construct (e.g. of another thread)."""
        self._changes = [a + b for a, b in zip(self._changes, other._changes, strict=True)]
        self.segment_reads = [
            a + b for a, b in zip(self.segment_reads, other.segment_reads, strict=True)
        ]
        self.junction_reads = [
            a + b for a, b in zip(self.junction_reads, other.junction_reads, strict=True)
        ]

    def depth(self) -> np.ndarray:
        """CAR reads covering each construct position (``int64`` array)."""
        import numpy as np

        return np.cumsum(np.array(self._changes, dtype=np.int64))[:-1]

    def covered_segments(self) -> list[str]:
        """Names of the segments at least one CAR read overlaps."""
        pairs = zip(self.construct.segments, self.segment_reads, strict=True)
        return [segment.name for segment, reads in pairs if reads > 0]

    def covered_junctions(self) -> list[str]:
        """Names of the junctions at least one CAR read spans."""
        return [
            junction_name(left.name, right.name)
            for (left, right), n in zip(self.junctions, self.junction_reads, strict=True)
            if n > 0
        ]


def coverage_table(sample_id: str, accumulators: Mapping[str, CoverageAccumulator]):
    """Per-position depth of every construct (see the module docstring for columns)."""
    import numpy as np
    import pandas as pd

    tables = []
    for name, accumulator in accumulators.items():
        construct = accumulator.construct
        segment = np.empty(construct.length, dtype=object)
        specific = np.zeros(construct.length, dtype=bool)
        for s in construct.segments:
            segment[s.start - 1 : s.end] = s.name
            specific[s.start - 1 : s.end] = s.specific
        tables.append(
            pd.DataFrame(
                {
                    "sample_id": sample_id,
                    "construct": name,
                    "position": np.arange(1, construct.length + 1),
                    "base": list(construct.sequence),
                    "segment": segment,
                    "specific": specific,
                    "depth": accumulator.depth(),
                }
            )
        )
    return pd.concat(tables, ignore_index=True)


def region_table(sample_id: str, accumulators: Mapping[str, CoverageAccumulator]):
    """Reads, depth and coverage of every segment and junction (see the module docstring)."""
    import pandas as pd

    rows = []
    for name, accumulator in accumulators.items():
        depth = accumulator.depth()
        for segment, reads in zip(
            accumulator.construct.segments, accumulator.segment_reads, strict=True
        ):
            window = depth[segment.start - 1 : segment.end]
            rows.append(
                (
                    *(name, segment.name, "segment", segment.start, segment.end),
                    *(segment.specific, int(reads), float(window.mean())),
                    float((window > 0).mean()),
                )
            )
        for (left, right), reads in zip(
            accumulator.junctions, accumulator.junction_reads, strict=True
        ):
            window = depth[left.end - 1 : right.start]
            rows.append(
                (
                    *(name, junction_name(left.name, right.name), "junction"),
                    *(left.end, right.start, True, int(reads)),
                    *(float(window.mean()), float(reads > 0)),
                )
            )
    columns = ["construct", "region", "kind", "start", "end", "specific", "reads"]
    table = pd.DataFrame(rows, columns=[*columns, "mean_depth", "covered_fraction"])
    table.insert(0, "sample_id", sample_id)
    table["covered"] = table["reads"] > 0
    return table


SPECIFIC_COLOUR = "#d95f02"
HOST_COLOUR = "#bdbdbd"


def plot_coverage(coverage, regions, path: str | Path, title: str = "") -> None:
    """Depth along each construct, segments drawn below and junctions marked.

    Parameters
    ----------
    coverage, regions
        Tables of :func:`coverage_table` and :func:`region_table` (one sample).
    path
        Output image (format from the suffix, e.g. ``.png`` or ``.pdf``).
    title
        Figure title (e.g. the sample ID).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from carmscope.reproducible import save_figure

    constructs = list(dict.fromkeys(coverage["construct"]))
    figure, axes = plt.subplots(
        len(constructs), 1, figsize=(10, 2.8 * len(constructs)), squeeze=False
    )
    for axis, name in zip(axes[:, 0], constructs, strict=True):
        _plot_construct(axis, coverage[coverage["construct"] == name], regions, name)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    save_figure(figure, path, dpi=120)
    plt.close(figure)


def _plot_construct(axis, coverage, regions, name: str) -> None:
    """One construct's depth, segment bar and junction marks on ``axis``."""
    depth = coverage["depth"].to_numpy()
    top = max(int(depth.max(initial=0)), 1)
    axis.fill_between(coverage["position"], depth, step="mid", color="#1b9e77", alpha=0.8)
    own = regions[regions["construct"] == name]
    bar = -0.12 * top
    for row in own[own["kind"] == "segment"].itertuples():
        colour = SPECIFIC_COLOUR if row.specific else HOST_COLOUR
        axis.add_patch(
            _rectangle((row.start - 0.5, 1.5 * bar), row.end - row.start + 1, -bar, colour)
        )
        axis.text((row.start + row.end) / 2, 2.2 * bar, row.region, ha="center", fontsize=7)
    for row in own[own["kind"] == "junction"].itertuples():
        axis.axvline(row.end - 0.5, color="black" if row.covered else "#e7298a", lw=0.8, ls=":")
    axis.set_xlim(0.5, len(depth) + 0.5)
    axis.set_ylim(2.8 * bar, 1.1 * top)
    axis.set_yticks([tick for tick in axis.get_yticks() if 0 <= tick <= 1.1 * top])
    axis.set_ylabel("CAR reads")
    axis.set_xlabel(
        f"{name} position (orange: construct-specific; dotted: junctions, pink if no read spans it)"
    )


def _rectangle(corner: tuple[float, float], width: float, height: float, colour: str):
    from matplotlib.patches import Rectangle

    return Rectangle(corner, width, height, color=colour, lw=0)
