"""``python -m carmscope.tables dictionary``: print docs/outputs.md from the dictionary."""

from __future__ import annotations

import argparse
import sys

from carmscope.tables.dictionary import render_markdown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m carmscope.tables", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("dictionary", help="print the data dictionary as Markdown")
    parser.parse_args(argv)
    sys.stdout.write(render_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
