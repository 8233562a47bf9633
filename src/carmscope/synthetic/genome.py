"""The synthetic cohort's reference genome: random contigs with the human GC content.

Each contig is drawn from its own stream (``rng_for(seed, "reference", chrom)``), so adding
contigs leaves the others unchanged.
"""

from __future__ import annotations

import os

import numpy as np
import pysam

from carmscope.synthetic.design import CohortParams, rng_for

# --- reference --------------------------------------------------------------------------------

BASES = "ACGT"
BASE_FREQUENCIES = (0.295, 0.205, 0.205, 0.295)
"""A, C, G, T: 41% GC, the human genome average."""
FASTA_LINE_WIDTH = 60


def make_reference(params: CohortParams) -> dict[str, str]:
    """Random reference contigs ``chr1``..``chrN`` with 41% GC.

    Parameters
    ----------
    params
        Uses ``reference_contigs``, ``reference_contig_length`` and ``seed``; each contig is
        drawn from its own stream, so adding contigs leaves the others unchanged.

    Returns
    -------
    dict
        Contig name to sequence (upper case, no N).
    """
    contigs = {}
    for number in range(1, params.reference_contigs + 1):
        chrom = f"chr{number}"
        rng = rng_for(params.seed, "reference", chrom)
        codes = rng.choice(4, size=params.reference_contig_length, p=BASE_FREQUENCIES)
        contigs[chrom] = np.frombuffer(BASES.encode(), np.uint8)[codes].tobytes().decode()
    return contigs


def write_reference(path: str | os.PathLike, contigs: dict[str, str]) -> None:
    """Write contigs as FASTA (60 columns) with a samtools ``.fai`` index beside it."""
    with open(path, "w") as handle:
        for chrom, sequence in contigs.items():
            handle.write(f">{chrom}\n")
            for start in range(0, len(sequence), FASTA_LINE_WIDTH):
                handle.write(sequence[start : start + FASTA_LINE_WIDTH] + "\n")
    pysam.faidx(str(path), catch_stdout=False)
