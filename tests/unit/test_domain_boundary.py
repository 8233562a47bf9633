"""src/carmscope is domain code: it imports nothing of Snakemake or of the workflow's wiring and
names no workflow path (``results/``, ``logs/``); those live in workflow/ (README, Layout)."""

import ast
import re

import pytest

from tests.conftest import REPO

MODULES = sorted((REPO / "src/carmscope").rglob("*.py"))


def code_strings(tree: ast.AST) -> list[str]:
    """String constants of a module that are not docstrings (f-string parts included)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(REPO)) for p in MODULES])
def test_domain_module_knows_no_workflow(path):
    tree = ast.parse(path.read_text())
    imported = [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] in ("snakemake", "wiring")]
    # a path, not prose that names one (the data dictionary describes results/tables/*.tsv)
    paths = [s for s in code_strings(tree) if re.fullmatch(r"(results|logs)/\S*", s)]
    assert paths == [], f"{path.name} names workflow paths: {paths}"
