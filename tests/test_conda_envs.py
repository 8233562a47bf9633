"""Each rule's conda environment holds what its script imports, at the pins of requirements.lock.

Pure parsing, no environment is built: every rule of ``workflow/rules/*.smk`` is read for its
``conda:`` file and ``script:``; the script's imports are collected with :mod:`ast`, following
``carmscope`` modules transitively (imports inside functions included: a lazy import is still
an import the job may run); each third-party top-level module is mapped to its distribution
and looked up in the environment file, whose pin must equal the lock's.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import cache
from importlib import metadata
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
RULES = REPO / "workflow" / "rules"
FIRST_PARTY = "carmscope"

IMPORT_TO_DISTRIBUTION = {
    "yaml": "pyyaml",
    "sklearn": "scikit-learn",
    "PIL": "pillow",
    "skimage": "scikit-image",
    "Bio": "biopython",
    "h5py": "h5py",
    "openpyxl": "openpyxl",
}
"""Import names whose distribution is named otherwise (the rest come from installed metadata)."""
PROVIDED = frozenset({"snakemake"})
"""Modules the runner provides (the ``snakemake`` object of a script)."""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def rule_envs() -> list[tuple[str, str, Path, Path]]:
    """(rule file, rule, env file, script) for every rule with both a ``conda:`` and a
    ``script:``; ``use rule ... with:`` rules inherit their parent's and are not repeated."""
    found = []
    for smk in sorted(RULES.glob("*.smk")):
        lines = smk.read_text().splitlines()
        rule, values = None, {}
        for number, line in enumerate(lines):
            header = re.match(r"\s*rule (\w+):", line)
            if header or re.match(r"\s*use rule ", line):
                if rule and {"conda", "script"} <= set(values):
                    found.append((smk.name, rule, values["conda"], values["script"]))
                rule, values = (header.group(1) if header else None), {}
                continue
            directive = re.match(r"\s*(conda|script):\s*$", line)
            if rule and directive:
                value = re.match(r'\s*"([^"]+)"', lines[number + 1])
                assert value, f"{smk.name}:{number + 2}: {directive.group(1)} is not a literal"
                values[directive.group(1)] = (smk.parent / value.group(1)).resolve()
        if rule and {"conda", "script"} <= set(values):
            found.append((smk.name, rule, values["conda"], values["script"]))
    return found


def _module_file(name: str) -> Path | None:
    """The source file of a first-party module (package ``__init__`` for packages)."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None  # a compiled extension such as carmscope.car._native


def _optional_imports(tree: ast.AST) -> set[int]:
    """Ids of import nodes inside ``try:`` blocks that catch ImportError (optional packages)."""
    optional = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(handler.type, ast.Name)
            and handler.type.id in ("ImportError", "ModuleNotFoundError")
            for handler in node.handlers
        ):
            optional.update(id(inner) for statement in node.body for inner in ast.walk(statement))
    return optional


def _imports(path: Path, package: str) -> set[str]:
    """Absolute names of every module imported anywhere in a file (relative ones resolved),
    except optional ones (imported in a ``try:`` that catches ImportError)."""
    names = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    optional = _optional_imports(tree)
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, node.module] if node.module else parts)
            else:
                base = node.module
            names.add(base)
            # `from carmscope.x import y` may import the submodule carmscope.x.y
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


@cache
def third_party_imports(script: Path) -> frozenset[str]:
    """Top-level third-party modules a script imports, directly or through carmscope."""
    seen: set[str] = set()
    third: set[str] = set()
    todo = [(script, "")]
    while todo:
        path, package = todo.pop()
        for name in _imports(path, package):
            top = name.split(".")[0]
            if top != FIRST_PARTY:
                if top not in sys.stdlib_module_names and top not in PROVIDED:
                    third.add(top)
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # packages' __init__ run on the way
                module = ".".join(parts[:depth])
                file = _module_file(module)
                if module in seen or file is None:
                    continue
                seen.add(module)
                own_package = module if file.name == "__init__.py" else module.rpartition(".")[0]
                todo.append((file, own_package))
    # `from carmscope.x import name` adds a candidate submodule "carmscope.x.name" that may be
    # a function: those resolve to no file and are skipped above.
    return frozenset(third)


@cache
def distribution_of(module: str) -> str:
    if module in IMPORT_TO_DISTRIBUTION:
        return IMPORT_TO_DISTRIBUTION[module]
    distributions = metadata.packages_distributions().get(module)
    return _normalise(distributions[0]) if distributions else _normalise(module)


@cache
def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[_normalise(name)] = version.strip()
    return pins


def env_packages(env_file: Path) -> dict[str, str]:
    """Distribution to pinned version ('' when unpinned) of a conda environment file."""
    packages = {}
    for entry in yaml.safe_load(env_file.read_text())["dependencies"]:
        specs = entry["pip"] if isinstance(entry, dict) else [entry]
        for spec in specs:
            name, _, version = (
                re.split(r"(==|=)", spec, maxsplit=1) if "=" in spec else (spec, "", "")
            )
            packages[_normalise(name)] = version
    return packages


RULE_ENVS = rule_envs()


def test_every_rule_with_a_script_was_found():
    rules = {rule for _, rule, _, _ in RULE_ENVS}
    assert {"inspect_inputs", "expression_scrna", "car_scan_scrna", "result_tables"} <= rules
    assert all(env.is_file() and script.is_file() for _, _, env, script in RULE_ENVS)


@pytest.mark.parametrize(
    ("rule_file", "rule", "env_file", "script"), RULE_ENVS, ids=[r[1] for r in RULE_ENVS]
)
def test_conda_env_holds_what_the_rule_imports(rule_file, rule, env_file, script):
    env = env_packages(env_file)
    pins = lock_pins()
    problems = []
    for module in sorted(third_party_imports(script)):
        distribution = distribution_of(module)
        if distribution not in env:
            problems.append(f"{module} ({distribution}) is not in {env_file.name}")
        elif env[distribution] != pins.get(distribution):
            problems.append(
                f"{distribution}=={env[distribution]} in {env_file.name} but "
                f"{pins.get(distribution)} in requirements.lock"
            )
    assert problems == [], f"{rule_file}: rule {rule} ({script.name}): " + "; ".join(problems)


def test_the_walk_follows_carmscope_and_lazy_imports(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import sys\nfrom carmscope.expression.io import read_counts\n")
    modules = third_party_imports(script)
    # expression.io -> io.tenx -> io.tenx_mtx imports scanpy inside read_10x_mtx
    assert {"numpy", "pandas", "h5py", "anndata", "scanpy", "scipy"} <= modules
    assert "sys" not in modules and FIRST_PARTY not in modules
    assert distribution_of("yaml") == "pyyaml" and distribution_of("sklearn") == "scikit-learn"
