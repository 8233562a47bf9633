"""The trial's vocabulary: one baseline rule and one time axis for every stage."""

import pandas as pd
import pytest

from carmscope import vocabulary as v


def samples(rows):
    """A samples table (sample_id, day, hours) in file order."""
    return pd.DataFrame(rows, columns=["sample_id", "day", "hours"]).set_index("sample_id")


def test_hours_fall_back_to_day():
    table = samples([("a", -14, ""), ("b", 8, "190.5"), ("c", 1, None)])
    assert list(v.sample_hours(table)) == [-336.0, 190.5, 24.0]
    assert list(v.sample_hours(table.drop(columns="hours"))) == [-336.0, 192.0, 24.0]


def test_baseline_is_the_last_pre_infusion_sample_in_time_order():
    table = samples([("late", -1, ""), ("early", -14, ""), ("post", 8, ""), ("zero", 0, "")])
    assert v.baseline(table) == "zero"
    assert v.post_infusion(table) == ["post"]
    assert v.first_post_infusion(table) == "post"


def test_ties_go_to_the_later_sample_in_the_file():
    table = samples([("first", 0, ""), ("second", 0, ""), ("p1", 8, ""), ("p2", 8, "")])
    assert v.baseline(table) == "second"
    assert v.post_infusion(table) == ["p1", "p2"]


def test_hours_decide_pre_and_post_within_day_zero():
    table = samples([("pre", 0, "-2"), ("post", 0, "6")])
    assert v.baseline(table) == "pre"
    assert v.post_infusion(table) == ["post"]


def test_no_baseline_or_post():
    assert v.baseline(samples([("p", 3, "")])) is None
    assert v.first_post_infusion(samples([("b", -3, "")])) is None
    assert v.baseline(samples([])) is None


@pytest.mark.parametrize(("times", "expected"), [([5, -1, -1, 0.0], 3), ([1, 2], None), ([], None)])
def test_baseline_position(times, expected):
    assert v.baseline_position(times) == expected


def test_one_definition_of_the_assays():
    from carmscope import sheets

    assert sheets.ASSAYS is v.ASSAYS
    assert {v.SCRNA, v.BULK_RNA} == v.BIOPSY_ASSAYS
    assert set(v.DEFAULT_TISSUE) == set(v.ASSAYS) - {v.TCR}
