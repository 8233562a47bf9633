"""Shared fixtures: paths of the repository and its tools."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def tool():
    """Path of a command-line tool installed in the test environment."""

    def path(name: str) -> str:
        return str(BIN / name)

    return path


def generate_tiny_cohort(out: Path, threads: int = 1, **overrides) -> Path:
    """Write the tiny synthetic cohort (optionally with parameter overrides) into ``out``."""
    from carmscope.synthetic.cohort import generate_cohort, prepare
    from carmscope.synthetic.design import params_from_config

    simulation = prepare(
        params_from_config({"preset": "tiny", **overrides}),
        out,
        construct_fasta=REPO / "resources/car/anti_her2_car.fa",
        segments_tsv=REPO / "resources/car/anti_her2_car.segments.tsv",
        gmt_paths=[REPO / "resources/genesets/hallmark_inflammation.v7.0.gmt"],
        signatures_tsv=REPO / "resources/genesets/immune_signatures.tsv",
    )
    generate_cohort(simulation, threads=threads)
    return out


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """The tiny synthetic cohort, written once per test session (read-only for tests)."""
    return generate_tiny_cohort(tmp_path_factory.mktemp("tiny_cohort"))
