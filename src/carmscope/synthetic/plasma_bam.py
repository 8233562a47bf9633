"""Plasma BAMs of the synthetic cohort: a patient's plasma sample or a tumour-free normal.

The reads of every panel site come from :mod:`carmscope.synthetic.cfdna`. Plasma BAMs are
written record by record from NumPy arrays (the BAM binary layout, BGZF compressed through
:class:`pysam.BGZFile`): building ~8 million reads one :class:`pysam.AlignedSegment` at a
time, or through SAM text, is several times slower.
"""

from __future__ import annotations

import os
import struct

import numpy as np
import pandas as pd
import pysam

from carmscope.synthetic.cfdna import (
    MAPQ,
    READ_LENGTH,
    PlasmaReads,
    panel_sites,
    simulate_site,
    truth_vafs,
)
from carmscope.synthetic.design import CohortParams, PatientDesign, SampleDesign
from carmscope.vocabulary import CFDNA

TRUTH_COLUMNS = (
    "sample_id",
    "patient_id",
    "chrom",
    "pos",
    "ref",
    "alt",
    "truth_vaf",
    "tumour_fragments",
    "unique_fragments",
)


_NIBBLES = np.array([1, 2, 4, 8], dtype=np.uint8)
"""BAM 4-bit codes of A, C, G, T."""
_BAM_FIXED = np.dtype(
    [
        ("block_size", "<i4"),
        ("ref_id", "<i4"),
        ("pos", "<i4"),
        ("l_read_name", "u1"),
        ("mapq", "u1"),
        ("bin", "<u2"),
        ("n_cigar_op", "<u2"),
        ("flag", "<u2"),
        ("l_seq", "<i4"),
        ("next_ref_id", "<i4"),
        ("next_pos", "<i4"),
        ("tlen", "<i4"),
    ]
)
BAM_COMPRESSION_LEVEL = 1
"""BGZF level of plasma BAMs: a sample is written ~2.5x faster than at the default level 6,
for ~15% more bytes."""


def _reg2bin(begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """BAM index bin of each 0-based half-open interval (SAM specification, 5.3)."""
    last = end - 1
    result = np.zeros(len(begin), dtype=np.uint16)
    done = np.zeros(len(begin), dtype=bool)
    for shift, first_bin in ((14, 4681), (17, 585), (20, 73), (23, 9), (26, 1)):
        same = ~done & (begin >> shift == last >> shift)
        result[same] = first_bin + (begin[same] >> shift)
        done |= same
    return result


def _encode_records(reads: PlasmaReads, tag: bytes) -> bytes:
    """BAM records of reads that all have the same number of CIGAR operations."""
    n, name_width = reads.names.shape
    n_cigar = int(reads.n_cigar[0])
    fixed = np.zeros(n, dtype=_BAM_FIXED)
    fixed["block_size"] = (
        _BAM_FIXED.itemsize - 4 + name_width + 1 + 4 * n_cigar + READ_LENGTH // 2 + READ_LENGTH
    ) + len(tag)
    fixed["ref_id"] = fixed["next_ref_id"] = reads.ref_id
    fixed["pos"] = reads.pos
    fixed["l_read_name"] = name_width + 1
    fixed["mapq"] = MAPQ
    fixed["bin"] = _reg2bin(reads.pos, reads.end)
    fixed["n_cigar_op"] = n_cigar
    fixed["flag"] = reads.flag
    fixed["l_seq"] = READ_LENGTH
    fixed["next_pos"] = reads.mate_pos
    fixed["tlen"] = reads.tlen
    cigar = np.ascontiguousarray(reads.cigar[:, :n_cigar], dtype="<u4")
    columns = [
        fixed.view(np.uint8).reshape(n, _BAM_FIXED.itemsize),
        reads.names,
        np.zeros((n, 1), dtype=np.uint8),
        cigar.view(np.uint8).reshape(n, 4 * n_cigar),
        _NIBBLES[reads.seq[:, 0::2]] << 4 | _NIBBLES[reads.seq[:, 1::2]],
        reads.qual,
        np.broadcast_to(np.frombuffer(tag, np.uint8), (n, len(tag))),
    ]
    return np.concatenate(columns, axis=1).tobytes()


def _bam_header(sample_id: str, contigs: dict[str, str]) -> bytes:
    """Binary BAM header: coordinate-sorted, one read group, no timestamp or command line."""
    lines = [
        "@HD\tVN:1.6\tSO:coordinate",
        *(f"@SQ\tSN:{chrom}\tLN:{len(seq)}" for chrom, seq in contigs.items()),
        f"@RG\tID:{sample_id}\tSM:{sample_id}\tLB:{sample_id}\tPL:ILLUMINA",
        # the writer's name before the split, kept so the files stay byte-identical
        "@PG\tID:carmscope-synthetic\tPN:carmscope.synthetic.cfdna",
    ]
    text = ("\n".join(lines) + "\n").encode()
    parts = [b"BAM\x01", struct.pack("<i", len(text)), text, struct.pack("<i", len(contigs))]
    for chrom, sequence in contigs.items():
        name = chrom.encode() + b"\x00"
        parts += [struct.pack("<i", len(name)), name, struct.pack("<i", len(sequence))]
    return b"".join(parts)


def _write_bam(
    path: str | os.PathLike, sample_id: str, contigs: dict[str, str], reads: PlasmaReads
) -> None:
    """Write coordinate-sorted reads as an indexed BAM (``path + ".bai"``)."""
    tag = b"RGZ" + sample_id.encode() + b"\x00"
    breaks = np.flatnonzero(np.diff(reads.n_cigar)) + 1
    with pysam.BGZFile(str(path), f"wb{BAM_COMPRESSION_LEVEL}") as handle:
        handle.write(_bam_header(sample_id, contigs))
        for low, high in zip((0, *breaks), (*breaks, len(reads)), strict=True):
            if high > low:
                handle.write(_encode_records(reads.take(slice(low, high)), tag))
    pysam.index(str(path), catch_stdout=False)


def write_plasma_bam(
    path: str | os.PathLike,
    sample: SampleDesign,
    patient: PatientDesign,
    panel: pd.DataFrame,
    contigs: dict[str, str],
    params: CohortParams,
) -> pd.DataFrame:
    """Simulate a plasma sample's targeted cfDNA sequencing as an indexed BAM.

    Every site of the panel gets Poisson(``cfdna_depth``) unique fragments, each with a read
    spanning the site; fragments carry an alt only at the patient's own variants, each
    independently with that variant's truth VAF (:func:`truth_vafs`). Reads are 2x100 bp,
    properly paired, MAPQ 60, with Illumina-like qualities and ``cfdna_error_rate``
    substitution errors; ``cfdna_duplicate_rate`` of fragments get 1-2 PCR duplicates, which
    are flagged 0x400 (the original is not).

    Parameters
    ----------
    path
        Output ``.bam``; the index is written to ``path + ".bai"``.
    sample
        A cfDNA sample of ``patient``.
    patient
        Its patient (baseline VAF).
    panel
        The variants whose sites the BAM covers: every patient's (:func:`design_variants`),
        or a part of them that holds the patient's own (e.g. only those).
    contigs
        The reference (:func:`make_reference`).
    params
        Depth, duplicate rate, error rate and seed.

    Returns
    -------
    pandas.DataFrame
        Columns ``TRUTH_COLUMNS``, one row per variant of the patient: the truth VAF and the
        realised numbers of tumour-derived and of unique fragments at the site.
    """
    if sample.assay != CFDNA or sample.patient_id != patient.patient_id:
        raise ValueError(f"{sample.sample_id} is not a cfDNA sample of {patient.patient_id}")
    own = panel[panel["patient_id"] == patient.patient_id].reset_index(drop=True)
    own = own.assign(sample_id=sample.sample_id, truth_vaf=truth_vafs(sample, patient, own))
    fragments = _write_panel_bam(path, sample.sample_id, panel, own, contigs, params)
    tumour, unique = [], []
    for chrom, pos, alt in own[["chrom", "pos", "alt"]].itertuples(index=False):
        site_alleles, allele = fragments[chrom, pos]
        tumour.append(int(np.sum(allele == site_alleles.index(alt))))
        unique.append(len(allele))
    own = own.assign(tumour_fragments=tumour, unique_fragments=unique)
    return own[list(TRUTH_COLUMNS)]


def _write_panel_bam(
    path: str | os.PathLike,
    sample_id: str,
    panel: pd.DataFrame,
    own: pd.DataFrame,
    contigs: dict[str, str],
    params: CohortParams,
) -> dict[tuple[str, int], tuple[tuple[str, ...], np.ndarray]]:
    """Simulate every panel site (alts at ``own``'s truth VAFs) and write the BAM.

    Returns the alleles of each site and the allele of each of its unique fragments.
    """
    parts, fragments = [], {}
    for site in panel_sites(panel, own, contigs):
        reads, allele = simulate_site(site, contigs[site.chrom], sample_id, params)
        parts.append(reads)
        fragments[site.chrom, site.start + 1] = (site.alleles, allele)
    reads = PlasmaReads.concat(parts)
    _write_bam(path, sample_id, contigs, reads.take(np.lexsort((reads.pos, reads.ref_id))))
    return fragments


def write_normal_plasma_bam(
    path: str | os.PathLike,
    normal_id: str,
    panel: pd.DataFrame,
    contigs: dict[str, str],
    params: CohortParams,
) -> int:
    """Simulate tumour-free plasma (a panel-of-normals sample) as an indexed BAM.

    Processed exactly like a patient's plasma (:func:`write_plasma_bam`): every panel site gets
    Poisson(``cfdna_depth``) unique fragments with the same fragment lengths, qualities,
    ``cfdna_error_rate`` substitutions and ``cfdna_duplicate_rate`` duplicates, but no fragment
    carries a tumour allele, so every ALT read is a sequencing error. Reads come from
    ``rng_for(seed, "cfdna", normal_id, chrom, pos)``.

    Parameters
    ----------
    path
        Output ``.bam``; the index is written to ``path + ".bai"``.
    normal_id
        The normal's ID (read group and random streams), e.g. ``PON-001``.
    panel, contigs, params
        As for :func:`write_plasma_bam`.

    Returns
    -------
    int
        Number of unique fragments written.
    """
    own = panel.iloc[0:0].assign(truth_vaf=pd.Series(dtype=float))
    fragments = _write_panel_bam(path, normal_id, panel, own, contigs, params)
    return sum(len(allele) for _, allele in fragments.values())
