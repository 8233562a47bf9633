"""Synthetic reads as a sequencer reports them: bases, binned qualities, errors and names.

The pieces every synthetic read file shares (the 10x BAM of :mod:`carmscope.synthetic.tenx_bam`
and the bulk FASTQ of :mod:`carmscope.synthetic.bulk_fastq`): base codes of the source
sequences laid end to end (:class:`SourceSequences`), NovaSeq-binned base qualities,
substitution errors, Illumina-style read names and the :class:`ReadTruth` a writer fills in.

Everything is drawn from the generator passed in, so the same seed gives byte-identical files.
Writers stream: reads are planned as small integer arrays, and sequences are made per contig
(BAM) or per chunk (FASTQ) just before they are written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

CHUNK_READS = 65_536
ACGT_ASCII = np.frombuffer(b"ACGT", dtype=np.uint8)
_CODE = np.full(256, 4, dtype=np.uint8)
_CODE[np.frombuffer(b"ACGT", dtype=np.uint8)] = np.arange(4, dtype=np.uint8)
_QUALITY_CHARS = np.frombuffer(b"F:,#", dtype=np.uint8)
_QUALITY_CUMULATIVE = np.cumsum([0.90, 0.07, 0.025, 0.005])
"""NovaSeq-binned base qualities (Q37, Q25, Q11, Q2) and their frequencies."""


def other_base(base: str) -> str:
    """A base different from ``base`` (the next one in ACGT order)."""
    return "ACGT"[("ACGT".index(base) + 1) % 4]


@dataclass
class ReadTruth:
    """Truth about individual reads, filled in by a writer when passed one (tests, benchmarks).

    Attributes
    ----------
    car_reads
        Names of the reads that come from the CAR transcript.
    no_barcode_reads
        Names of the reads written without CB/UB (raw barcode not a cell).
    background_barcodes
        Barcodes (with ``-1``) of the background droplets, not in ``cells``.
    """

    car_reads: list[str] = field(default_factory=list)
    no_barcode_reads: list[str] = field(default_factory=list)
    background_barcodes: list[str] = field(default_factory=list)


# --- planning reads ---------------------------------------------------------------------------


def ascii_rows(ascii_matrix: np.ndarray) -> list[str]:
    """Rows of a 2-D ASCII code matrix as strings."""
    if ascii_matrix.size == 0:
        return [""] * ascii_matrix.shape[0]
    text = ascii_matrix.tobytes().decode("ascii")
    width = ascii_matrix.shape[1]
    return [text[i : i + width] for i in range(0, len(text), width)]


def draw_qualities(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """NovaSeq-binned quality characters (ASCII codes)."""
    bins = np.searchsorted(_QUALITY_CUMULATIVE, rng.random(shape) * _QUALITY_CUMULATIVE[-1])
    return _QUALITY_CHARS[np.minimum(bins, _QUALITY_CHARS.size - 1)]


def add_substitutions(codes: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Apply substitutions at ``rate`` to base codes (in place); returns the error mask."""
    errors = rng.random(codes.shape) < rate
    codes[errors] = (codes[errors] + rng.integers(1, 4, size=int(errors.sum()))) % 4
    return errors


@dataclass(frozen=True)
class SourceSequences:
    """Base codes of every source sequence (hosts, then the CAR) laid end to end."""

    codes: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, sequences: Iterable[str]) -> SourceSequences:
        sequences = list(sequences)
        joined = "".join(sequences).encode("ascii")
        lengths = np.array([0, *(len(s) for s in sequences)])
        offsets = np.cumsum(lengths)
        # the junk source starts at 0: its bases are replaced by _junk_codes
        return cls(_CODE[np.frombuffer(joined, dtype=np.uint8)], np.append(offsets[:-1], 0))

    def reads(self, source: np.ndarray, start: np.ndarray, read_length: int) -> np.ndarray:
        """Base codes (n x read_length) of reads from ``source`` at ``start``."""
        index = (self.offsets[source] + start)[:, None] + np.arange(read_length)[None, :]
        return self.codes[index]


def read_names(numbers: np.ndarray, flowcell: str) -> list[str]:
    """Illumina-style read names from read numbers (unique per number)."""
    lane = numbers % 4 + 1
    rest = numbers // 4
    tile = 1101 + rest // 1_000_000
    x = 1000 + (rest % 1000) * 31
    y = 1000 + (rest // 1000 % 1000) * 31
    return [
        f"A00508:8:{flowcell}:{a}:{b}:{c}:{d}"
        for a, b, c, d in zip(lane.tolist(), tile.tolist(), x.tolist(), y.tolist(), strict=True)
    ]
