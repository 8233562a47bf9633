"""Per-job resources as functions of input size and attempt (workflow/lib/wiring/resources.py)."""

from types import SimpleNamespace

import pytest
from wiring.resources import amount, scaled


def job_input(size_mb):
    return SimpleNamespace(size_mb=size_mb)


def test_base_plus_per_mb_times_attempt():
    mem = scaled(1000, per_mb=2)
    assert mem(None, job_input(0), 1) == 1000
    assert mem(None, job_input(500), 1) == 2000
    assert mem(None, job_input(500), 2) == 4000
    assert mem(None, job_input(500), 3) == 6000


def test_rounds_up_to_whole_units_and_is_at_least_one():
    runtime = scaled(5, per_mb=0.002)
    assert runtime(None, job_input(1), 1) == 6  # 5.002 minutes
    assert scaled(0)(None, job_input(0), 1) == 1


def test_grows_with_attempt_so_a_killed_job_comes_back_bigger():
    for function in (scaled(2000, per_mb=10), scaled(10)):
        values = [function(None, job_input(123.4), attempt) for attempt in (1, 2, 3)]
        assert values[0] < values[1] < values[2]


def test_cap_after_the_attempt_factor():
    mem = scaled(3000, per_mb=40, cap=20000)
    assert mem(None, job_input(100), 1) == 7000
    assert mem(None, job_input(100), 3) == 20000


def test_snakemake_sees_the_arguments_it_passes():
    """Snakemake passes only the arguments a resource function names."""
    from snakemake.common import get_input_function_aux_params

    function = scaled(1000)
    params = get_input_function_aux_params(
        function, {"input": job_input(1), "attempt": 2, "threads": 4, "output": None}
    )
    assert set(params) == {"input", "attempt"}


@pytest.mark.parametrize("args", [(-1, 0, 10, 1, None), (1, -1, 10, 1, None), (1, 0, 10, 0, None)])
def test_rejects_negative_amounts_and_attempt_zero(args):
    with pytest.raises(ValueError):
        amount(*args)
    if args[3] >= 1:
        with pytest.raises(ValueError):
            scaled(args[0], per_mb=args[1])
