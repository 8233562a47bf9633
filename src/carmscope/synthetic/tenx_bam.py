"""The synthetic 10x-style scRNA BAM of one biopsy (:func:`write_tenx_bam`).

Reads are Cell Ranger-like: read 2 of 3' v3 chemistry, sense strand, mapped to the host
transcripts with MAPQ 255, tags ``NH HI AS nM RE GN xf CR CY CB UR UY UB RG``; each UMI has
1-3 reads (PCR duplicates, each from its own fragment of the amplified cDNA; ``xf:i:25`` on
the first, ``17`` on the others). The reads and their alignments are planned by
:mod:`carmscope.synthetic.tenx_library`; unmapped reads (flag 4, still with CB/UB) come at the
end of the file. Nothing in a record tells a CAR read from a host read except its sequence.
The truth comes back through the optional ``truth`` argument and the per-cell table returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pysam

from carmscope.construct import (
    Construct,
)
from carmscope.synthetic.design import CohortParams
from carmscope.synthetic.reads import (
    ACGT_ASCII,
    CHUNK_READS,
    ReadTruth,
    SourceSequences,
    add_substitutions,
    ascii_rows,
    draw_qualities,
    other_base,
    read_names,
)
from carmscope.synthetic.tenx_library import (
    BARCODE_LENGTH,
    UMI_LENGTH,
    Placement,
    ReadPlan,
    car_specific,
    place_reads,
    plan_reads,
)

BARCODE_ERROR_RATE = 0.01
"""Reads whose raw barcode (CR) has one error that barcode correction fixed (CB)."""


def _junk_codes(rng: np.random.Generator, n: int, read_length: int) -> np.ndarray:
    """Unmappable reads: random sequence, half of them opening with a poly(A) run."""
    codes = rng.integers(0, 4, size=(n, read_length)).astype(np.uint8)
    run = rng.integers(20, read_length + 1, size=n)
    poly_a = (rng.random(n) < 0.5)[:, None] & (np.arange(read_length)[None, :] < run[:, None])
    codes[poly_a] = 0
    return codes


def _umi_strings(umi: np.ndarray) -> list[str]:
    shifts = 2 * np.arange(UMI_LENGTH - 1, -1, -1)
    return ascii_rows(ACGT_ASCII[(umi[:, None] >> shifts[None, :]) & 3])


def _raw_barcode(barcode: str, rng: np.random.Generator) -> str:
    """``barcode`` with one base changed, as read with an error that correction fixed."""
    position = int(rng.integers(BARCODE_LENGTH))
    return barcode[:position] + other_base(barcode[position]) + barcode[position + 1 :]


# --- the 10x BAM ------------------------------------------------------------------------------

FLOWCELL_10X = "HCARMDSX5"


def tenx_header(hosts: Mapping[str, str], sample_id: str) -> dict:
    """SAM header of a 10x-style BAM aligned to the host transcripts."""
    return {
        "HD": {"VN": "1.4", "SO": "coordinate"},
        "SQ": [{"SN": name, "LN": len(sequence)} for name, sequence in hosts.items()],
        "RG": [
            {
                "ID": f"{sample_id}:0:1:{FLOWCELL_10X}:1",
                "SM": sample_id,
                "LB": "0.1",
                "PU": f"{sample_id}:0:1:{FLOWCELL_10X}:1",
                "PL": "ILLUMINA",
            }
        ],
        "PG": [
            {
                "ID": "carmscope-synthetic",
                # the writer's name before the split, kept so the files stay byte-identical
                "PN": "carmscope.synthetic.reads",
                "VN": "0.1.0",
                "CL": "write_tenx_bam",
            }
        ],
        "CO": [
            "user command line: carmscope-synthetic (synthetic 10x-style BAM, not Cell Ranger)",
            "10x_bam_to_fastq:R1(CR:CY,UR:UY)",
            "10x_bam_to_fastq:R2(SEQ:QUAL)",
            "library_info:chemistry=SC3Pv3,read_group=" + f"{sample_id}:0:1:{FLOWCELL_10X}:1",
        ],
    }


def _cigar(clip_left: int, aligned: int, read_length: int) -> str:
    clip_right = read_length - clip_left - aligned
    return (
        (f"{clip_left}S" if clip_left else "")
        + f"{aligned}M"
        + (f"{clip_right}S" if clip_right else "")
    )


@dataclass(frozen=True)
class _BamContext:
    """Everything the record writer needs besides the reads."""

    plan: ReadPlan
    placement: Placement
    sources: SourceSequences
    contigs: list[str]
    read_group: str
    read_length: int
    error_rate: float
    n_hosts: int


def _chunk_sequences(
    context: _BamContext, index: np.ndarray, rng: np.random.Generator
) -> tuple[list[str], list[str], np.ndarray]:
    """Sequences, qualities and mismatches in the aligned part of the reads ``index``."""
    plan, length = context.plan, context.read_length
    source = plan.molecule_source[plan.molecule[index]]
    codes = context.sources.reads(source, plan.start[index], length)
    junk = source == context.n_hosts + 1
    codes[junk] = _junk_codes(rng, int(junk.sum()), length)
    errors = add_substitutions(codes, context.error_rate, rng)
    clip = context.placement.clip_left[index][:, None]
    end = clip + context.placement.aligned[index][:, None]
    columns = np.arange(length)[None, :]
    mismatches = (errors & (columns >= clip) & (columns < end)).sum(axis=1)
    return ascii_rows(ACGT_ASCII[codes]), ascii_rows(draw_qualities(rng, codes.shape)), mismatches


def _chunk_barcode_tags(
    context: _BamContext, index: np.ndarray, rng: np.random.Generator
) -> list[str]:
    """``CR CY [CB] UR UY [UB] RG`` tags of the reads ``index`` (CB/UB only for cells)."""
    plan = context.plan
    barcode = plan.molecule_barcode[plan.molecule[index]].tolist()
    umis = _umi_strings(plan.umi[plan.molecule[index]])
    qualities = ascii_rows(draw_qualities(rng, (index.size, BARCODE_LENGTH + UMI_LENGTH)))
    wrong = (rng.random(index.size) < BARCODE_ERROR_RATE).tolist()
    tags = []
    for i, code in enumerate(barcode):
        corrected = plan.barcodes[code]
        raw = _raw_barcode(corrected, rng) if wrong[i] else corrected
        barcode_quality, umi_quality = qualities[i][:BARCODE_LENGTH], qualities[i][BARCODE_LENGTH:]
        if plan.has_cb[code]:
            tags.append(
                f"CR:Z:{raw}\tCY:Z:{barcode_quality}\tCB:Z:{corrected}-1\tUR:Z:{umis[i]}"
                f"\tUY:Z:{umi_quality}\tUB:Z:{umis[i]}\tRG:Z:{context.read_group}"
            )
        else:
            tags.append(
                f"CR:Z:{raw}\tCY:Z:{barcode_quality}\tUR:Z:{umis[i]}\tUY:Z:{umi_quality}"
                f"\tRG:Z:{context.read_group}"
            )
    return tags


def _alignment_fields(
    context: _BamContext, index: np.ndarray, mismatches: np.ndarray
) -> list[tuple[str, str]]:
    """Per read: FLAG to CIGAR, and the ``NH HI AS nM RE GN xf`` tags (``xf:i:0`` if unmapped).

    Mapped reads have MAPQ 255; ``xf`` is 25 on the first read of a cell's UMI, 17 on its
    duplicates and 0 without a cell barcode.
    """
    placement, plan, length = context.placement, context.plan, context.read_length
    has_cb = plan.has_cb[plan.molecule_barcode[plan.molecule[index]]]
    counted = np.where(has_cb, np.where(plan.first[index], 25, 17), 0).tolist()
    rows = zip(
        placement.contig[index].tolist(),
        (placement.position[index] + 1).tolist(),
        placement.clip_left[index].tolist(),
        placement.aligned[index].tolist(),
        mismatches.tolist(),
        counted,
        strict=True,
    )
    fields = []
    for contig, position, clip, aligned, mismatch, xf in rows:
        if contig < 0:
            fields.append(("4\t*\t0\t0\t*", "xf:i:0"))
            continue
        name = context.contigs[contig]
        fields.append(
            (
                f"0\t{name}\t{position}\t255\t{_cigar(clip, aligned, length)}",
                f"NH:i:1\tHI:i:1\tAS:i:{aligned - 2 * mismatch}\tnM:i:{mismatch}\tRE:A:E"
                f"\tGN:Z:{name}\txf:i:{xf}",
            )
        )
    return fields


def _bam_lines(context: _BamContext, index: np.ndarray, rng: np.random.Generator) -> list[str]:
    """SAM lines of the reads ``index`` (in that order)."""
    sequences, qualities, mismatches = _chunk_sequences(context, index, rng)
    barcode_tags = _chunk_barcode_tags(context, index, rng)
    names = read_names(context.plan.name[index], FLOWCELL_10X)
    alignments = _alignment_fields(context, index, mismatches)
    return [
        f"{name}\t{alignment}\t*\t0\t0\t{sequence}\t{quality}\t{tags}\t{barcode}"
        for name, (alignment, tags), sequence, quality, barcode in zip(
            names, alignments, sequences, qualities, barcode_tags, strict=True
        )
    ]


def _write_order(plan: ReadPlan, placement: Placement, n_contigs: int) -> Iterable[np.ndarray]:
    """Read indices in coordinate order: each contig by position, then unmapped reads."""
    for contig in range(n_contigs):
        reads = np.flatnonzero(placement.contig == contig)
        yield reads[np.argsort(placement.position[reads], kind="stable")]
    unmapped = np.flatnonzero(placement.contig < 0)
    yield unmapped[np.lexsort((plan.umi[plan.molecule[unmapped]], plan.barcode[unmapped]))]


def _cell_truth(
    plan: ReadPlan, cells: pd.DataFrame, construct: Construct, n_hosts: int, read_length: int
) -> pd.DataFrame:
    """Per cell: CAR reads and UMIs, and those that prove the CAR (specific/junction)."""
    car = np.flatnonzero(plan.source == n_hosts)
    barcode = plan.barcode[car]
    specific = car_specific(plan.start[car], construct, read_length)
    car_molecules = np.flatnonzero(plan.molecule_source == n_hosts)
    specific_molecules = np.unique(plan.molecule[car][specific])
    n = plan.n_cells
    return pd.DataFrame(
        {
            "barcode": cells["barcode"].astype(str).to_numpy(),
            "car_reads": np.bincount(barcode, minlength=n),
            "car_umis": np.bincount(plan.molecule_barcode[car_molecules], minlength=n),
            "car_specific_reads": np.bincount(barcode[specific], minlength=n),
            "car_specific_umis": np.bincount(
                plan.molecule_barcode[specific_molecules], minlength=n
            ),
        }
    )


def _fill_bam_truth(truth: ReadTruth, plan: ReadPlan, n_hosts: int) -> None:
    car = np.flatnonzero(plan.source == n_hosts)
    truth.car_reads.extend(read_names(plan.name[car], FLOWCELL_10X))
    no_cb = np.flatnonzero(~plan.has_cb[plan.barcode])
    truth.no_barcode_reads.extend(read_names(plan.name[no_cb], FLOWCELL_10X))
    background = np.flatnonzero(plan.has_cb)[plan.n_cells :]
    truth.background_barcodes.extend(f"{plan.barcodes[i]}-1" for i in background.tolist())


def write_tenx_bam(
    path: str | Path,
    cells: pd.DataFrame,
    construct: Construct,
    hosts: Mapping[str, str],
    params: CohortParams,
    rng: np.random.Generator,
    *,
    sample_id: str = "sample",
    truth: ReadTruth | None = None,
) -> pd.DataFrame:
    """Write a 10x-style, coordinate-sorted and indexed BAM of one scRNA biopsy.

    Parameters
    ----------
    path
        Output BAM; the index is written to ``path + ".bai"``.
    cells
        One row per cell: ``barcode`` (16 nt + ``-1``), ``cell_type``, ``low_quality``,
        ``car_umis`` (CAR molecules in the cell).
    construct
        The CAR whose transcript CAR reads come from.
    hosts
        Host transcripts (:func:`host_transcripts`): the BAM's contigs.
    params
        ``host_reads_per_cell`` (a third of it for damaged cells), ``read_length`` and
        ``read_error_rate`` are used.
    rng
        The only source of randomness.
    sample_id
        Sample name of the read group.
    truth
        If given, filled with the names of CAR reads and no-CB reads and the background
        barcodes.

    Returns
    -------
    pandas.DataFrame
        Per cell, in ``cells`` order: ``barcode``, ``car_reads``, ``car_umis`` (equal to the
        input), ``car_specific_reads`` and ``car_specific_umis`` (CAR reads, and UMIs with at
        least one such read, that overlap a specific segment or span a junction: the ones a
        read can prove the CAR with).
    """
    length = params.read_length
    plan = plan_reads(cells, hosts, construct, params, rng)
    placement = place_reads(plan, construct, hosts, length)
    header = tenx_header(hosts, sample_id)
    context = _BamContext(
        plan=plan,
        placement=placement,
        sources=SourceSequences.of([*hosts.values(), construct.sequence]),
        contigs=list(hosts),
        read_group=header["RG"][0]["ID"],
        read_length=length,
        error_rate=params.read_error_rate,
        n_hosts=len(hosts),
    )
    with pysam.AlignmentFile(str(path), "wb", header=header) as bam:
        bam_header = bam.header
        for order in _write_order(plan, placement, len(hosts)):
            for chunk in range(0, order.size, CHUNK_READS):
                for line in _bam_lines(context, order[chunk : chunk + CHUNK_READS], rng):
                    bam.write(pysam.AlignedSegment.fromstring(line, bam_header))
    pysam.index(str(path))
    if truth is not None:
        _fill_bam_truth(truth, plan, len(hosts))
    return _cell_truth(plan, cells, construct, len(hosts), length)
