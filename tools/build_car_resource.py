"""Rebuild resources/car/anti_her2_car.{fa,segments.tsv} from resources/car/parts.

Developer script: the pipeline and the tests never run it; a unit test checks that the
committed resource equals a fresh assembly. Run from the repository root::

    .venv/bin/python tools/build_car_resource.py          # rewrite the resource
    .venv/bin/python tools/build_car_resource.py --check  # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAR_DIR = REPO / "resources" / "car"


def _import_construct():
    """``carmscope.construct`` and ``carmscope.construct_assembly``, from the source tree when
    the package is not installed."""
    if str(REPO / "src") not in sys.path:
        sys.path.insert(0, str(REPO / "src"))
    from carmscope import construct, construct_assembly

    return construct, construct_assembly


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=Path, default=CAR_DIR / "parts")
    parser.add_argument("--out", type=Path, default=CAR_DIR, help="folder to write into")
    parser.add_argument(
        "--check", action="store_true", help="compare with the files in --out, write nothing"
    )
    args = parser.parse_args(argv)
    construct, construct_assembly = _import_construct()
    car = construct_assembly.assemble_anti_her2_car(args.parts)
    names = ("anti_her2_car.fa", "anti_her2_car.segments.tsv")
    if not args.check:
        construct.write_constructs([car], *(args.out / name for name in names))
        print(f"wrote {car.name}: {car.length} bp, {len(car.segments)} segments to {args.out}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        construct.write_constructs([car], *(Path(tmp) / name for name in names))
        stale = [
            name
            for name in names
            if not (args.out / name).exists()
            or (args.out / name).read_bytes() != (Path(tmp) / name).read_bytes()
        ]
    for name in stale:
        print(f"{args.out / name} is out of date; run tools/build_car_resource.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
