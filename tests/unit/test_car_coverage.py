"""Coverage along the construct (carmscope.car.coverage)."""

import numpy as np

from carmscope.car.coverage import CoverageAccumulator, coverage_table, plot_coverage, region_table
from carmscope.construct import read_construct


def test_depth_segments_and_junctions():
    car = read_construct()
    accumulator = CoverageAccumulator(car)
    accumulator.add(40, 131)  # leader into VL: spans leader|VL
    accumulator.add(200, 291)  # inside VL
    other = CoverageAccumulator(car)
    other.add(950, 1041)  # hinge into zeta
    accumulator.merge(other)
    depth = accumulator.depth()
    assert depth.size == car.length
    assert depth[39] == 0 and depth[40] == 1 and depth[130] == 1 and depth[131] == 0
    assert depth.sum() == 3 * 91
    assert accumulator.covered_segments() == [
        "CD8A_leader",
        "trastuzumab_VL",
        "CD8A_hinge_TM",
        "CD247_zeta_ICD",
    ]
    assert accumulator.covered_junctions() == [
        "CD8A_leader|trastuzumab_VL",
        "CD8A_hinge_TM|CD247_zeta_ICD",
    ]


def test_tables_and_plot(tmp_path):
    car = read_construct()
    accumulator = CoverageAccumulator(car)
    for start in range(0, 1200, 50):
        accumulator.add(start, start + 91)
    coverage = coverage_table("s1", {car.name: accumulator})
    regions = region_table("s1", {car.name: accumulator})
    assert len(coverage) == car.length
    assert coverage["depth"].to_numpy().tolist() == accumulator.depth().tolist()
    assert coverage.loc[coverage["position"] == 64, "segment"].item() == "trastuzumab_VL"
    segments = regions[regions["kind"] == "segment"]
    junctions = regions[regions["kind"] == "junction"]
    assert len(segments) == 6 and len(junctions) == 5
    assert junctions["specific"].all() and junctions["covered"].all()
    vl = segments.set_index("region").loc["trastuzumab_VL"]
    assert (vl["start"], vl["end"], vl["covered_fraction"]) == (64, 384, 1.0)
    assert np.isclose(vl["mean_depth"], accumulator.depth()[63:384].mean())
    plot = tmp_path / "coverage.png"
    plot_coverage(coverage, regions, plot, title="s1")
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_empty_coverage_plots(tmp_path):
    car = read_construct()
    accumulator = CoverageAccumulator(car)
    regions = region_table("s1", {car.name: accumulator})
    assert not regions["covered"].any()
    plot_coverage(coverage_table("s1", {car.name: accumulator}), regions, tmp_path / "c.pdf")
    assert (tmp_path / "c.pdf").stat().st_size > 0
