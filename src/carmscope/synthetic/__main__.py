"""Command line of the synthetic cohort generator.

Examples
--------
Write the tiny cohort's data, truth and tables into one folder::

    carmscope-synthetic generate --preset tiny --out /tmp/tiny

Write only the tables (for the workflow, whose synthetic rules then write the data)::

    carmscope-synthetic tables --preset default --set n_patients=100 \\
        --data-dir resources/synthetic_cohort/scale100 --out config/scale100
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from carmscope.synthetic.design import PRESETS, CohortParams, design_cohort, params_from_config
from carmscope.synthetic.tables import write_tables

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_RESOURCES = {
    "construct": REPO_ROOT / "resources/car/anti_her2_car.fa",
    "segments": REPO_ROOT / "resources/car/anti_her2_car.segments.tsv",
    "gmt": REPO_ROOT / "resources/genesets/hallmark_inflammation.v7.0.gmt",
    "signatures": REPO_ROOT / "resources/genesets/immune_signatures.tsv",
}


def _overrides(pairs: list[str]) -> dict[str, object]:
    """``key=value`` pairs (values parsed as JSON when they can be) into a dict."""
    fields = {field.name for field in dataclasses.fields(CohortParams)}
    values: dict[str, object] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in fields:
            raise SystemExit(
                f"--set {pair!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(fields))}"
            )
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values


def _params(args: argparse.Namespace) -> CohortParams:
    return params_from_config({"preset": args.preset, **_overrides(args.set)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="carmscope-synthetic", description="Synthetic CAR-M trial cohort with ground truth."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("generate", "write data files, truth and tables"),
        ("tables", "write only patients.tsv and samples.tsv"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--preset", choices=sorted(PRESETS), default="default")
        command.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter"
        )
        command.add_argument("--out", required=True, help="folder for the tables")
    commands.choices["generate"].add_argument("--threads", type=int, default=1)
    for key, path in DEFAULT_RESOURCES.items():
        commands.choices["generate"].add_argument(f"--{key}", default=str(path))
    commands.choices["tables"].add_argument(
        "--data-dir", required=True, help="folder the data files are (or will be) in"
    )
    args = parser.parse_args(argv)
    params = _params(args)
    if args.command == "tables":
        write_tables(design_cohort(params), args.out, args.data_dir)
        return 0
    from carmscope.synthetic.cohort import generate_cohort, prepare

    simulation = prepare(
        params,
        args.out,
        construct_fasta=args.construct,
        segments_tsv=args.segments,
        gmt_paths=[args.gmt],
        signatures_tsv=args.signatures,
    )
    generate_cohort(simulation, threads=args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
