"""Command line of the CAR scan (used by the benchmark; the workflow calls the library).

Example
-------
Scan a 10x BAM with two threads and print the CAR reads and UMIs of each construct::

    python -m carmscope.car scan possorted_genome_bam.bam --threads 2 --per-cell

Only the scan's own modules are imported (no pandas), so start-up stays short.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

from carmscope.car.evidence import DEFAULT_MAX_MISMATCH_FRACTION, DEFAULT_MIN_KMERS
from carmscope.car.kmers import DEFAULT_K
from carmscope.construct import DEFAULT_FASTA, DEFAULT_SEGMENTS

OUTPUT_COLUMNS = ("construct", "total_reads", "scanned_reads", "car_reads", "car_umis")


def _help_formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's help formatter, its width found as ``shutil.get_terminal_size`` finds it.

    Without a width argparse imports shutil (and with it bz2 and lzma) for every parser and
    argument: 7 ms of the scan command's start-up, measured with hyperfine.
    """
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
        columns = columns or os.get_terminal_size(sys.__stdout__.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = 80
    return argparse.HelpFormatter(prog, width=columns - 2)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m carmscope.car", description=__doc__, formatter_class=_help_formatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    scan = commands.add_parser(
        "scan", help="count the CAR reads of one reads file", formatter_class=_help_formatter
    )
    scan.add_argument("reads", help="BAM, CRAM, SAM or FASTQ(.gz)")
    scan.add_argument("--construct", default=str(DEFAULT_FASTA))
    scan.add_argument("--segments", default=str(DEFAULT_SEGMENTS))
    scan.add_argument("--host-transcripts", default=None)
    scan.add_argument("--k", type=int, default=DEFAULT_K)
    scan.add_argument("--min-kmers", type=int, default=DEFAULT_MIN_KMERS)
    scan.add_argument("--max-mismatch-fraction", type=float, default=DEFAULT_MAX_MISMATCH_FRACTION)
    scan.add_argument("--threads", type=int, default=1)
    scan.add_argument("--engine", choices=("native", "pysam"), default="native")
    scan.add_argument("--per-cell", action="store_true", help="count UMIs per cell (CB/UB)")
    scan.add_argument("--targeted", action="store_true", help="scan only reads that can be CAR")
    scan.add_argument("--bed", default=None, help="host loci whose soft-clipped reads to scan")
    scan.add_argument("--reference", default=None, help="reference FASTA of a CRAM file")
    return parser


def main(argv: list[str] | None = None) -> int:
    # A short-lived command whose objects hold no reference cycles: the cyclic garbage
    # collector's passes over the scan's many small objects cost about 1.5% of its CPU (perf).
    gc.disable()
    args = _parser().parse_args(argv)
    from carmscope.car.bam import ReadsError
    from carmscope.car.evidence import EvidenceSettings
    from carmscope.car.kmers import build_index
    from carmscope.car.scan import ScanSettings, scan_reads
    from carmscope.construct import ConstructError, read_constructs

    try:
        constructs = read_constructs(args.construct, args.segments)
        index = build_index(constructs, args.k, args.host_transcripts)
        settings = ScanSettings(
            evidence=EvidenceSettings(args.min_kmers, args.max_mismatch_fraction),
            threads=args.threads,
            per_cell=args.per_cell,
            targeted=args.targeted,
            targeted_bed=args.bed,
            reference=args.reference,
            engine=args.engine,
        )
        result = scan_reads(args.reads, index, settings)
    except (ConstructError, ReadsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print("\t".join(OUTPUT_COLUMNS))
    for name, tally in zip(result.construct_names, result.tally.constructs, strict=True):
        values = (name, result.total_reads, result.scanned_reads, tally.reads, tally.umis)
        print("\t".join(map(str, values)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
