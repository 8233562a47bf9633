"""The standard genetic code, human codon choice, translation and reverse translation."""

from __future__ import annotations

import itertools

# --- genetic code and codon choice ------------------------------------------------------------

_BASES = "TCAG"
_AMINO_ACIDS = "FFLLSSSSYY**CC*WLLLLPPPPHHQQRRRRIIIMTTTTNNKKSSRRVVVVAAAADDEEGGGG"
GENETIC_CODE: dict[str, str] = {
    "".join(codon): amino_acid
    for codon, amino_acid in zip(itertools.product(_BASES, repeat=3), _AMINO_ACIDS, strict=True)
}
"""The standard genetic code (DNA codons; ``*`` is a stop)."""

HUMAN_PREFERRED_CODONS: dict[str, str] = {
    "A": "GCC",
    "R": "AGA",
    "N": "AAC",
    "D": "GAC",
    "C": "TGC",
    "Q": "CAG",
    "E": "GAG",
    "G": "GGC",
    "H": "CAC",
    "I": "ATC",
    "L": "CTG",
    "K": "AAG",
    "M": "ATG",
    "F": "TTC",
    "P": "CCC",
    "S": "AGC",
    "T": "ACC",
    "W": "TGG",
    "Y": "TAC",
    "V": "GTG",
    "*": "TGA",
}
"""The most frequent human codon of each amino acid (and stop), per the Kazusa codon usage table
for *Homo sapiens* (Nakamura, Gojobori & Ikemura 2000, Nucleic Acids Res 28:292). For arginine
the table ranks AGA first (12.2 per thousand codons; AGG 12.0, CGG 11.4); see
``resources/car/README.md``."""


# --- translation ------------------------------------------------------------------------------


def translate(dna: str) -> str:
    """Protein encoded by ``dna`` (standard code; ``*`` for stops, ``X`` for unknown codons).

    Raises
    ------
    ValueError
        If the length is not a multiple of 3.
    """
    dna = dna.upper()
    if len(dna) % 3:
        raise ValueError(f"length {len(dna)} is not a whole number of codons")
    return "".join(GENETIC_CODE.get(dna[i : i + 3], "X") for i in range(0, len(dna), 3))


def reverse_translate(protein: str) -> str:
    """DNA encoding ``protein`` with :data:`HUMAN_PREFERRED_CODONS` (one fixed codon per residue).

    Raises
    ------
    ValueError
        On a character that is not one of the 20 amino acids or ``*``.
    """
    protein = protein.upper()
    unknown = sorted(set(protein) - set(HUMAN_PREFERRED_CODONS))
    if unknown:
        raise ValueError(f"cannot reverse-translate residue(s) {', '.join(unknown)}")
    return "".join(HUMAN_PREFERRED_CODONS[residue] for residue in protein)
