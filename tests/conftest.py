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
