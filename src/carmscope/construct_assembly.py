"""Assembly of the representative anti-HER2 CAR from its published parts, in frame.

Protein parts (the trastuzumab scFv) are reverse-translated with
:data:`carmscope.genetic_code.HUMAN_PREFERRED_CODONS`; nucleotide parts (CD8a, CD3 zeta) are
used as published, cut to whole codons. ``resources/car/README.md`` gives the sources.
"""

from __future__ import annotations

from pathlib import Path

from carmscope.construct import (
    ANTI_HER2_CAR,
    CD8A_HINGE_TM,
    CD8A_LEADER,
    CD247_ZETA_ICD,
    LINKER,
    RESOURCE_DIR,
    TRASTUZUMAB_VH,
    TRASTUZUMAB_VL,
    Construct,
    Segment,
    read_fasta,
)
from carmscope.genetic_code import reverse_translate, translate

HOST_PARTS_FASTA = "car_host_parts.fa"
SCFV_PARTS_FASTA = "trastuzumab_fv.faa"
ANTI_HER2_CAR_LAYOUT: tuple[tuple[str, str, bool], ...] = (
    # (segment, parts file, construct-specific), 5' to 3'
    (CD8A_LEADER, HOST_PARTS_FASTA, False),
    (TRASTUZUMAB_VL, SCFV_PARTS_FASTA, True),
    (LINKER, SCFV_PARTS_FASTA, True),
    (TRASTUZUMAB_VH, SCFV_PARTS_FASTA, True),
    (CD8A_HINGE_TM, HOST_PARTS_FASTA, False),
    (CD247_ZETA_ICD, HOST_PARTS_FASTA, False),
)
"""Segments of the representative anti-HER2 CAR: protein parts (``.faa``) are reverse-translated,
nucleotide parts are used as they are, cut to whole codons."""


# --- assembly of the representative anti-HER2 CAR ---------------------------------------------


def _whole_codons(dna: str) -> str:
    """``dna`` cut to a whole number of codons (drops a trailing partial codon)."""
    return dna[: len(dna) - len(dna) % 3]


def _part_dna(name: str, sequence: str, protein: bool) -> str:
    """Coding DNA of one part: reverse-translated protein or nucleotide cut to whole codons."""
    dna = reverse_translate(sequence) if protein else _whole_codons(sequence.upper())
    if "*" in translate(dna):
        raise ValueError(f"part {name} contains a stop codon")
    return dna


def assemble_anti_her2_car(parts_dir: str | Path = Path(RESOURCE_DIR) / "parts") -> Construct:
    """The representative anti-HER2 CAR, assembled in frame from its parts.

    CD8a leader - trastuzumab VL - (G4S)3 linker - trastuzumab VH - CD8a hinge/TM - CD3 zeta
    ICD. Protein parts are reverse-translated with :data:`HUMAN_PREFERRED_CODONS`; nucleotide
    parts are used as published, cut to whole codons (the CD3 zeta part carries the first base
    of its stop codon, which is dropped). No stop codon is added.

    Parameters
    ----------
    parts_dir
        Folder with ``car_host_parts.fa`` and ``trastuzumab_fv.faa``.
    """
    parts_dir = Path(parts_dir)
    files = {name: read_fasta(parts_dir / name) for name in (HOST_PARTS_FASTA, SCFV_PARTS_FASTA)}
    pieces = []
    segments = []
    position = 1
    for name, file_name, specific in ANTI_HER2_CAR_LAYOUT:
        if name not in files[file_name]:
            raise ValueError(f"{parts_dir / file_name} has no record {name!r}")
        dna = _part_dna(name, files[file_name][name], protein=file_name.endswith(".faa"))
        pieces.append(dna)
        segments.append(Segment(ANTI_HER2_CAR, name, position, position + len(dna) - 1, specific))
        position += len(dna)
    return Construct(ANTI_HER2_CAR, "".join(pieces), tuple(segments))
