"""Synthetic host transcripts: the 10x BAMs' contigs and the source of every non-CAR read.

:func:`host_transcripts` makes synthetic stand-ins for endogenous human transcripts. CD8A and
CD247 share *exactly* the CAR's native parts (CD8a leader and hinge/TM; CD3 zeta intracellular
domain); everything else in them, and the other genes (ACTB, B2M, ...), is random sequence.
What matters is the property real transcripts have: endogenous CD8A/CD247 reads overlap the
CAR's host-derived segments but never its specific segments or its junctions. This holds by
construction: the base next to each native part differs from the CAR's base across the
junction, and no host 25-mer (either strand) is a specific 25-mer of the CAR.

The module also holds the transcripts' basal expression (:func:`gene_weights`), which the 10x
and bulk read writers draw genes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from carmscope.construct import (
    CD8A_HINGE_TM,
    CD8A_LEADER,
    CD247_ZETA_ICD,
    Construct,
    format_fasta,
    read_construct,
    reverse_complement,
)
from carmscope.synthetic.design import rng_for
from carmscope.synthetic.reads import ACGT_ASCII, other_base

KMER = 25
"""Length of the k-mers checked for specificity (no specific CAR k-mer is in a host)."""


_MAX_ATTEMPTS = 100


# --- host transcripts -------------------------------------------------------------------------

_RANDOM = "random"
_SEGMENT = "segment"
_LITERAL = "literal"
HOST_LAYOUTS: dict[str, tuple[tuple[str, str | int], ...]] = {
    # (kind, random length | construct segment | literal DNA), 5' to 3'
    "CD8A": (
        (_RANDOM, 120),  # 5'UTR
        (_SEGMENT, CD8A_LEADER),
        (_RANDOM, 345),  # Ig-like V domain and stalk stand-in
        (_SEGMENT, CD8A_HINGE_TM),
        (_RANDOM, 84),  # cytoplasmic tail
        (_LITERAL, "TAA"),
        (_RANDOM, 700),  # 3'UTR
    ),
    "CD247": (
        (_RANDOM, 300),  # 5'UTR, leader, extracellular and transmembrane stand-in
        (_SEGMENT, CD247_ZETA_ICD),
        (_LITERAL, "TAA"),  # the native stop codon the CAR omits
        (_RANDOM, 800),  # 3'UTR
    ),
}
"""Transcripts that carry a native CAR part."""
OTHER_HOST_LENGTHS: dict[str, int] = {
    "ACTB": 1850,
    "B2M": 1050,
    "PTPRC": 2900,
    "CD68": 1700,
    "EPCAM": 1500,
    "ERBB2": 2950,
    "GAPDH": 1300,
    "CD3E": 1400,
    "LYZ": 1100,
    "COL1A2": 2900,
}
"""Random stand-ins for other genes, lengths roughly those of their mRNAs (capped at 3 kb)."""
ENDOGENOUS_CAR_GENES = ("CD8A", "CD247")

HOUSEKEEPING_WEIGHTS = {"ACTB": 6.0, "B2M": 5.0, "GAPDH": 4.0}
BASAL_WEIGHT = 0.1
"""Relative expression of every other gene, except CD8A/CD247, in every cell."""


def _random_dna(rng: np.random.Generator, length: int) -> str:
    return ACGT_ASCII[rng.integers(0, 4, length)].tobytes().decode("ascii")


def _junction_neighbours(construct: Construct, name: str) -> tuple[str | None, str | None]:
    """The CAR's bases just before and after segment ``name`` (None at an end)."""
    segment = construct.segment(name)
    before = construct.sequence[segment.start - 2] if segment.start > 1 else None
    after = construct.sequence[segment.end] if segment.end < construct.length else None
    return before, after


def _differ_at(piece: str, position: int, base: str | None) -> str:
    """``piece`` with its base at ``position`` changed if it equals ``base``."""
    if base is None or piece[position] != base:
        return piece
    chars = list(piece)
    chars[position] = other_base(base)
    return "".join(chars)


def _piece(kind: str, value: str | int, construct: Construct, rng: np.random.Generator) -> str:
    """Sequence of one layout piece: random, a construct segment, or literal DNA."""
    if kind == _RANDOM:
        return _random_dna(rng, int(value))
    if kind == _SEGMENT:
        return construct.segment_sequence(str(value))
    return str(value)


def _build_transcript(
    layout: tuple[tuple[str, str | int], ...], construct: Construct, rng: np.random.Generator
) -> str:
    """One host transcript: random pieces around native parts, junction bases differing."""
    pieces = [_piece(kind, value, construct, rng) for kind, value in layout]
    kinds = [kind for kind, _ in layout]
    for index, (kind, value) in enumerate(layout):
        if kind != _SEGMENT:
            continue
        before, after = _junction_neighbours(construct, str(value))
        if index > 0 and kinds[index - 1] == _RANDOM:
            pieces[index - 1] = _differ_at(pieces[index - 1], -1, before)
        if index + 1 < len(pieces) and kinds[index + 1] == _RANDOM:
            pieces[index + 1] = _differ_at(pieces[index + 1], 0, after)
    return "".join(pieces)


def _shares_kmer(sequence: str, kmers: set[str], k: int) -> bool:
    """Whether any ``k``-mer of ``sequence`` or its reverse complement is in ``kmers``."""
    return any(
        strand[i : i + k] in kmers
        for strand in (sequence, reverse_complement(sequence))
        for i in range(len(strand) - k + 1)
    )


def host_transcripts(seed: int, construct: Construct | None = None) -> dict[str, str]:
    """Synthetic stand-ins for endogenous transcripts, deterministic from ``seed``.

    Parameters
    ----------
    seed
        Cohort seed.
    construct
        The CAR whose native parts CD8A and CD247 carry (default: the shipped anti-HER2 CAR).

    Returns
    -------
    dict
        Transcript name to sequence: CD8A, CD247, then :data:`OTHER_HOST_LENGTHS`'s genes.
        No 25-mer of either strand is a specific 25-mer of the CAR (specific segment or
        junction); a transcript is redrawn until that holds.
    """
    construct = construct or read_construct()
    layouts = {
        **HOST_LAYOUTS,
        **{name: ((_RANDOM, length),) for name, length in OTHER_HOST_LENGTHS.items()},
    }
    forbidden = construct.specific_kmers(KMER)
    hosts = {}
    for name, layout in layouts.items():
        for attempt in range(_MAX_ATTEMPTS):
            sequence = _build_transcript(
                layout, construct, rng_for(seed, "host_transcript", name, attempt)
            )
            if not _shares_kmer(sequence, forbidden, KMER):
                break
        else:
            raise RuntimeError(f"no {name} stand-in free of specific {KMER}-mers")
        hosts[name] = sequence
    return hosts


def write_host_transcripts_fasta(path: str | Path, hosts: Mapping[str, str]) -> None:
    """Write host transcripts as FASTA, 60-column lines."""
    Path(path).write_text("".join(format_fasta(n, s) for n, s in hosts.items()), encoding="ascii")


def locate_host_segments(
    construct: Construct, hosts: Mapping[str, str]
) -> dict[str, tuple[str, int]]:
    """Where each host-derived segment of ``construct`` lies in the host transcripts.

    Returns
    -------
    dict
        Segment name to ``(transcript, 0-based offset)``; segments found in no transcript are
        left out (reads inside them would not map).
    """
    located = {}
    for segment in construct.host_segments:
        sequence = construct.segment_sequence(segment.name)
        for name, host in hosts.items():
            offset = host.find(sequence)
            if offset >= 0:
                located[segment.name] = (name, offset)
                break
    return located


# --- truth ------------------------------------------------------------------------------------


def gene_weights(hosts: list[str], weights: Mapping[str, float], basal: float) -> np.ndarray:
    """Probabilities over ``hosts``: ``weights`` plus ``basal`` for non-CD8A/CD247 genes."""
    values = np.array(
        [weights.get(name, 0.0 if name in ENDOGENOUS_CAR_GENES else basal) for name in hosts]
    )
    return values / values.sum()
