"""The workflow's own files, read by its tests and benchmarks (never by the rules).

:func:`rule_blocks` and :func:`local_rules` read the rule files as text (which rules run on the
submit host); :func:`localised_config` turns a bundled config into one for a work folder, and
:func:`synthetic_workdir_config` also writes a synthetic cohort's tables there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

RULE = re.compile(r"^(?P<indent>[ \t]*)(?:local)?rule (?P<name>\w+)(?: as \w+)?:", re.MULTILINE)
LOOP_RULE = re.compile(r"^(?P<indent>[ \t]*)rule:\n\s*name:\s*\n\s*(?P<name>.+)$", re.MULTILINE)
"""An anonymous ``rule:`` whose ``name:`` is an expression (rules made in a loop)."""
USE_RULE = re.compile(r"^[ \t]*use rule (?P<base>\w+) as (?P<name>\w+)", re.MULTILINE)


def rule_files(repo: Path) -> list[Path]:
    """The Snakefile and every ``workflow/rules/*.smk``."""
    return [repo / "Snakefile", *sorted((repo / "workflow/rules").glob("*.smk"))]


def rule_blocks(files: Iterable[Path]) -> dict[str, str]:
    """{rule name: source text of its block} (``use rule A as B`` blocks are A's block).

    Rules made in a loop (``rule:`` then ``name: <expression>``) are named ``<expression>``,
    e.g. ``<_shape.name>``: one block stands for every rule the loop makes.
    """
    files = list(files)
    blocks = {}
    for path in files:
        text = path.read_text()
        for pattern, name in ((RULE, "{}"), (LOOP_RULE, "<{}>")):
            for match in pattern.finditer(text):
                body = _block(text[match.end() :], len(match.group("indent")))
                blocks[name.format(match.group("name").strip())] = body
    for path in files:
        for match in USE_RULE.finditer(path.read_text()):
            blocks.setdefault(match.group("name"), blocks.get(match.group("base"), ""))
    return blocks


def _block(text: str, indent: int) -> str:
    """The lines after a rule's first line that are indented deeper than the rule (comments
    and blank lines included)."""
    body = []
    for line in text.splitlines()[1:]:
        code = line.strip() and not line.lstrip().startswith("#")
        if code and len(line) - len(line.lstrip()) <= indent:
            break
        body.append(line)
    return "\n".join(body)


def local_rules(files: Iterable[Path]) -> set[str]:
    """Names listed in ``localrules:`` statements (one a line, or comma-separated), and rules
    with the directive ``localrule: True``."""
    files = list(files)
    names = {
        name
        for name, block in rule_blocks(files).items()
        if re.search(r"^\s*localrule:\s*True", block, re.M)
    }
    for path in files:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if not line.startswith("localrules:"):
                continue
            names |= set(re.findall(r"\w+", line.removeprefix("localrules:")))
            for following in lines[number + 1 :]:
                if not following.startswith((" ", "\t")) or not following.strip():
                    break
                names |= set(re.findall(r"\w+", following))
    return names


def localised_config(config: dict, repo: Path, data_dir: str) -> dict:
    """A bundled config for a work folder: paths into its synthetic-cohort folder
    (``synthetic.outdir``) moved into ``data_dir``, other existing repository paths made
    absolute; every other value, and keys added later by other stages, carried along."""
    generated = config["synthetic"]["outdir"].rstrip("/") + "/"

    def localise(value):
        if isinstance(value, dict):
            return {key: localise(item) for key, item in value.items()}
        if isinstance(value, list):
            return [localise(item) for item in value]
        if isinstance(value, str) and value.startswith(generated):
            return f"{data_dir}/{value[len(generated) :]}"
        if isinstance(value, str) and "/" in value and (repo / value).exists():
            return str(repo / value)
        return value

    return localise(config)


def synthetic_workdir_config(
    workdir: Path,
    repo: Path,
    config_file: str,
    overrides: dict | None = None,
    data_dir: str = "cohort",
) -> dict:
    """Tables of a synthetic cohort in ``workdir/tables`` and a config for them (returned, for
    the caller to adjust and write as ``workdir/config.yaml``).

    The cohort is the bundled config's ``synthetic`` section (preset) with ``overrides``; its
    tables point at data files under ``data_dir``, which the workflow's ``synthetic_*`` rules
    write when ``data_dir`` is ``"cohort"`` (the config's ``synthetic.outdir``) and which must
    exist otherwise. The rest of the config is :func:`localised_config`: keys that other stages
    add later are carried along.
    """
    import yaml

    from carmscope.synthetic.design import design_cohort, params_from_config
    from carmscope.synthetic.tables import write_tables

    config = yaml.safe_load((repo / config_file).read_text())
    config = localised_config(config, repo, data_dir)
    synthetic = {**config["synthetic"], **(overrides or {}), "outdir": "cohort"}
    write_tables(
        design_cohort(params_from_config(synthetic)), workdir / "tables", workdir / data_dir
    )
    config.update(patients="tables/patients.tsv", samples="tables/samples.tsv", synthetic=synthetic)
    return config
