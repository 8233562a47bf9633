"""The synthetic bulk RNA-seq FASTQ of one biopsy (:func:`write_bulk_fastq`).

Unstranded single-end reads from the host transcripts and, in a CAR-positive biopsy, a small
fraction from the CAR. Sequences are made per chunk just before they are written, from the
generator passed in, so the same seed gives a byte-identical file.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from carmscope.construct import (
    Construct,
)
from carmscope.synthetic.design import CohortParams
from carmscope.synthetic.host_transcripts import BASAL_WEIGHT, HOUSEKEEPING_WEIGHTS, gene_weights
from carmscope.synthetic.reads import (
    ACGT_ASCII,
    CHUNK_READS,
    ReadTruth,
    SourceSequences,
    add_substitutions,
    ascii_rows,
    draw_qualities,
    read_names,
)

BULK_CAR_READ_FRACTION = 50e-6
MIN_BULK_CAR_READS = 10
"""Fewest CAR reads in a CAR-positive bulk FASTQ (so the tiny cohort has some)."""
FASTQ_COMPRESSION_LEVEL = 1
"""gzip level of bulk FASTQs: at zlib's default level 6, compression took ~45% of the time of
a patient with five bulk samples (200,000 reads each); level 1 writes a sample 2.5x faster
(1.4 s CPU instead of 3.6 s) for 50% more bytes. The reads, and so every result, are the same."""


BULK_WEIGHTS = {**HOUSEKEEPING_WEIGHTS, "ERBB2": 2.0, "EPCAM": 1.5, "CD8A": 0.3, "CD247": 0.3}
"""Relative expression in bulk tumour RNA (other genes at :data:`BASAL_WEIGHT` x 5)."""


# --- bulk FASTQ -------------------------------------------------------------------------------

FLOWCELL_BULK = "HBULKDSX5"
_BULK_INDEX = "GATCAGAT+ACTTGAAT"


def _fastq_chunk(
    numbers: np.ndarray,
    source: np.ndarray,
    sources: SourceSequences,
    lengths: np.ndarray,
    params: CohortParams,
    rng: np.random.Generator,
) -> str:
    """FASTQ text of one chunk of bulk reads (unstranded: half reverse-complemented)."""
    length = params.read_length
    start = (rng.random(source.size) * (lengths[source] - length + 1)).astype(np.int64)
    codes = sources.reads(source, start, length)
    reverse = rng.random(source.size) < 0.5
    codes[reverse] = 3 - codes[reverse][:, ::-1]
    add_substitutions(codes, params.read_error_rate, rng)
    sequences = ascii_rows(ACGT_ASCII[codes])
    qualities = ascii_rows(draw_qualities(rng, codes.shape))
    names = read_names(numbers, FLOWCELL_BULK)
    return "".join(
        f"@{name} 1:N:0:{_BULK_INDEX}\n{sequence}\n+\n{quality}\n"
        for name, sequence, quality in zip(names, sequences, qualities, strict=True)
    )


def write_bulk_fastq(
    path: str | Path,
    car_present: bool,
    construct: Construct,
    hosts: Mapping[str, str],
    params: CohortParams,
    rng: np.random.Generator,
    car_read_fraction: float = BULK_CAR_READ_FRACTION,
    *,
    truth: ReadTruth | None = None,
) -> int:
    """Write a bulk RNA-seq FASTQ (gzip, byte-identical for the same generator state).

    Parameters
    ----------
    path
        Output ``.fastq.gz``.
    car_present
        Whether the biopsy carries CAR-M; if so ``max(MIN_BULK_CAR_READS,
        round(bulk_reads * car_read_fraction))`` reads come from the CAR.
    construct, hosts
        Sources of the CAR and host reads (host expression: :data:`BULK_WEIGHTS`).
    params
        ``bulk_reads`` (total reads), ``read_length`` and ``read_error_rate`` are used.
    rng
        The only source of randomness.
    car_read_fraction
        CAR reads per read (default 50 per million).
    truth
        If given, ``truth.car_reads`` gets the CAR reads' names.

    Returns
    -------
    int
        Number of CAR reads.
    """
    total = params.bulk_reads
    n_car = 0
    if car_present:
        n_car = min(total, max(MIN_BULK_CAR_READS, round(total * car_read_fraction)))
    car_positions = np.sort(rng.choice(total, size=n_car, replace=False))
    names = list(hosts)
    weights = gene_weights(names, BULK_WEIGHTS, BASAL_WEIGHT * 5)
    sources = SourceSequences.of([*hosts.values(), construct.sequence])
    lengths = np.array([len(s) for s in hosts.values()] + [construct.length])
    with (
        open(path, "wb") as raw,
        gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=FASTQ_COMPRESSION_LEVEL
        ) as handle,
    ):
        for chunk in range(0, total, CHUNK_READS):
            numbers = np.arange(chunk, min(chunk + CHUNK_READS, total))
            source = rng.choice(len(names), size=numbers.size, p=weights)
            in_chunk = car_positions[(car_positions >= chunk) & (car_positions < numbers[-1] + 1)]
            source[in_chunk - chunk] = len(names)
            handle.write(_fastq_chunk(numbers, source, sources, lengths, params, rng).encode())
    if truth is not None:
        truth.car_reads.extend(read_names(car_positions, FLOWCELL_BULK))
    return n_car
