"""Scan a reads file for CAR reads: per construct, per cell and along the construct.

Formats are told apart by content, not by name: BAM (read natively, :mod:`carmscope.car.bam`,
or with pysam), CRAM and SAM (pysam/htslib), FASTQ and gzipped FASTQ. Every format streams:
memory does not grow with the number of reads, only with the number of CAR reads' cells.

Every primary read (secondary and supplementary alignments are skipped, so a read counts once)
goes through a compiled prefilter; the flagged reads are decided by
:func:`carmscope.car.evidence.place_read`. Each CAR read is then counted for its construct:
overall, as antisense if it is, per cell (``CB``) and UMI (``UB``) when it has them, and along
the construct (:class:`carmscope.car.coverage.CoverageAccumulator`). A CAR UMI is a distinct
(CB, UB) pair with at least one CAR read; reads with a CB but no UB count as reads of their
cell but add no UMI; reads without a CB count in the sample totals only.

Targeted mode (indexed BAM or CRAM only) reads just what can hold CAR sequence: unmapped reads,
every read on a contig named like a construct (or listed in ``construct_contigs``), and
soft-clipped reads overlapping the host loci of a BED file (e.g. CD8A and CD247). CAR reads
elsewhere, such as an unmapped read placed beside its mate, are missed, and the read total is
taken from the index (all records, secondary ones included).
"""

from __future__ import annotations

import os
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from carmscope.car import bam, text
from carmscope.car.bam import ReadsError
from carmscope.car.evidence import EvidenceSettings
from carmscope.car.formats import detect_format
from carmscope.car.kmers import SpecificKmerIndex
from carmscope.car.tally import Candidate, ScanResult, Tally

ENGINES = ("native", "pysam")
BATCH_READS = 4096
"""Reads handed to the compiled prefilter at once by the pysam reader."""
FASTQ_CHUNK = 4 << 20
PEEK_READS = 10_000
"""Reads looked at for cell barcodes before a per-cell scan."""
REFERENCE_KEY = "car.cram_reference"
"""The config key of the FASTA a biopsy CRAM is decoded with (named in errors)."""


class _ScanFields(NamedTuple):
    evidence: EvidenceSettings = EvidenceSettings()
    threads: int = 1
    per_cell: bool = False
    cell_tag: str = "CB"
    umi_tag: str = "UB"
    targeted: bool = False
    targeted_bed: str | None = None
    construct_contigs: tuple[str, ...] = ()
    reference: str | None = None
    engine: str = "native"


class ScanSettings(_ScanFields):
    """How to scan a reads file (checked when made).

    Attributes
    ----------
    evidence
        Per-read thresholds.
    threads
        Threads for a native BAM scan.
    per_cell
        Count CAR reads and UMIs per cell; the file must carry ``cell_tag``.
    cell_tag, umi_tag
        Tags of the corrected cell barcode and UMI (10x: ``CB``, ``UB``).
    targeted
        Scan only the reads that can hold CAR sequence (indexed BAM/CRAM).
    targeted_bed
        BED of host loci (e.g. CD8A, CD247) whose soft-clipped reads are scanned.
    construct_contigs
        Contigs holding the construct, besides those named like a construct.
    reference
        Reference FASTA for CRAM files whose header does not locate it.
    engine
        ``native`` or ``pysam`` for BAM files (SAM and CRAM always use pysam).
    """

    __slots__ = ()

    def __new__(cls, *args, **kwargs) -> ScanSettings:
        self = super().__new__(cls, *args, **kwargs)
        if self.threads < 1:
            raise ValueError("threads must be at least 1")
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}")
        return self


# --- readers ----------------------------------------------------------------------------------


class _Counts:
    __slots__ = ("scanned", "total")

    def __init__(self, total: int = 0, scanned: int = 0) -> None:
        self.total = total
        self.scanned = scanned


def _bam_candidate(record: bytes, settings: ScanSettings) -> Candidate:
    parsed = bam.parse_record(record, (settings.cell_tag, settings.umi_tag))
    return Candidate(
        parsed.name,
        parsed.sequence,
        parsed.tags.get(settings.cell_tag),
        parsed.tags.get(settings.umi_tag),
    )


def _scan_native(
    path: str, index: SpecificKmerIndex, settings: ScanSettings, new_tally: Callable[[], Tally]
) -> tuple[_Counts, Tally]:
    tallies: list[Tally] = []

    def new_consumer() -> bam.Consumer:
        tally = new_tally()
        tallies.append(tally)
        return lambda record: tally.add(_bam_candidate(record, settings))

    _, counts, _ = bam.scan_bam(path, index.lookup, settings.threads, new_consumer)
    return _Counts(counts.n_primary, counts.n_primary), _merged(tallies)


def _merged(tallies: list[Tally]) -> Tally:
    first, *rest = tallies
    for other in rest:
        first.merge(other)
    return first


def _open_alignments(path: str, settings: ScanSettings):
    import pysam

    try:
        return pysam.AlignmentFile(path, "r", check_sq=False, reference_filename=settings.reference)
    except (OSError, ValueError) as error:
        raise ReadsError(path, f"cannot be read as SAM/BAM/CRAM ({error})") from None


def _tag(read, tag: str) -> str | None:
    return str(read.get_tag(tag)) if read.has_tag(tag) else None


def _flag_batch(
    batch: list, index: SpecificKmerIndex, settings: ScanSettings, tally: Tally
) -> None:
    """Prefilter a batch of pysam reads and hand the flagged ones to ``tally``."""
    for i in text.flag_sequences([read.query_sequence for read in batch], index.lookup):
        read = batch[i]
        tally.add(
            Candidate(
                read.query_name,
                read.query_sequence,
                _tag(read, settings.cell_tag),
                _tag(read, settings.umi_tag),
            )
        )


def _scan_alignment_reads(
    path: str,
    reads: Iterable,
    index: SpecificKmerIndex,
    settings: ScanSettings,
    tally: Tally,
    keep: Callable | None = None,
) -> int:
    """Prefilter and decide primary reads with a sequence; returns how many were scanned."""
    batch: list = []
    scanned = 0
    try:
        for read in reads:
            if read.flag & bam.SECONDARY_OR_SUPPLEMENTARY or (keep is not None and not keep(read)):
                continue
            if read.query_sequence is None:
                continue
            batch.append(read)
            if len(batch) == BATCH_READS:
                _flag_batch(batch, index, settings, tally)
                scanned += len(batch)
                batch = []
    except OSError as error:
        raise ReadsError(path, f"truncated or corrupt file ({error})") from None
    _flag_batch(batch, index, settings, tally)
    return scanned + len(batch)


def _scan_pysam(
    path: str, index: SpecificKmerIndex, settings: ScanSettings, tally: Tally
) -> _Counts:
    with _open_alignments(path, settings) as alignments:
        scanned = _scan_alignment_reads(
            path, alignments.fetch(until_eof=True), index, settings, tally
        )
    return _Counts(scanned, scanned)


def _fastq_chunks(path: str) -> Iterator[bytes]:
    """Inflated (if gzipped) bytes of a FASTQ file, a few megabytes at a time."""
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    if gzipped:
        import gzip  # imported here: BAM scans, the common case, start sooner without it

        opener = gzip.open
    else:
        opener = open
    try:
        with opener(path, "rb") as handle:
            while chunk := handle.read(FASTQ_CHUNK):
                yield chunk
    except (OSError, EOFError, zlib.error) as error:
        raise ReadsError(path, f"truncated or corrupt gzip data ({error})") from None


def _fastq_candidate(data: bytes, offset: int) -> Candidate:
    header_end = data.index(b"\n", offset)
    sequence_end = data.find(b"\n", header_end + 1)
    name = data[offset + 1 : header_end].split(maxsplit=1)[0].decode("ascii", "replace")
    sequence = data[header_end + 1 : sequence_end].rstrip(b"\r").decode("ascii", "replace")
    return Candidate(name, sequence)


def _scan_fastq(
    path: str, index: SpecificKmerIndex, settings: ScanSettings, tally: Tally
) -> _Counts:
    counts = _Counts()
    pending = b""
    chunks = _fastq_chunks(path)
    chunk = next(chunks, b"")
    while chunk or pending:
        following = next(chunks, b"")
        data = pending + chunk
        candidates = array("q", bytes(8 * (len(data) // 4 + 1)))
        consumed, n_records, n_candidates, error = text.scan_fastq_chunk(
            data, not following, *text.fastq_chunk_args(index.lookup), candidates
        )
        if error:
            raise ReadsError(path, f"malformed FASTQ record after {counts.total + n_records} reads")
        counts.total += n_records
        for offset in candidates[:n_candidates].tolist():
            tally.add(_fastq_candidate(data, offset))
        pending = data[consumed:]
        chunk = following
        if not chunk and pending and consumed == 0:
            raise ReadsError(path, "truncated file: the last FASTQ record is incomplete")
    counts.scanned = counts.total
    return counts


# --- targeted mode ----------------------------------------------------------------------------


def read_bed(path: str | os.PathLike) -> dict[str, list[tuple[int, int]]]:
    """Merged 0-based half-open intervals per contig of a BED file.

    Raises
    ------
    ReadsError
        On a line that is not ``contig start end ...`` with ``0 <= start < end``.
    """
    intervals: dict[str, list[tuple[int, int]]] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\n").split("\t")
            try:
                start, end = int(fields[1]), int(fields[2])
            except (IndexError, ValueError):
                raise ReadsError(path, f"line {number}: expected contig, start, end") from None
            if not 0 <= start < end:
                raise ReadsError(path, f"line {number}: need 0 <= start < end")
            intervals.setdefault(fields[0], []).append((start, end))
    return {contig: _merge(spans) for contig, spans in intervals.items()}


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _soft_clipped(read) -> bool:
    cigar = read.cigarstring
    return cigar is not None and "S" in cigar


def _scan_targeted(
    path: str, index: SpecificKmerIndex, settings: ScanSettings, tally: Tally
) -> _Counts:
    with _open_alignments(path, settings) as alignments:
        if not alignments.has_index():
            raise ReadsError(
                path, "a targeted scan needs an indexed BAM or CRAM (run `samtools index`)"
            )
        contigs = set(alignments.references)
        construct_contigs = (set(index.construct_names()) | set(settings.construct_contigs)) & (
            contigs
        )
        bed = read_bed(settings.targeted_bed) if settings.targeted_bed else {}
        if bed and not set(bed) & contigs:
            raise ReadsError(
                path,
                f"no contig of {settings.targeted_bed} ({', '.join(sorted(bed)[:3])}, ...) is in "
                "the file's header: is the BED for another reference (e.g. chr17 vs 17)?",
            )
        scanned = _scan_alignment_reads(path, alignments.fetch("*"), index, settings, tally)
        for contig in sorted(construct_contigs):
            scanned += _scan_alignment_reads(path, alignments.fetch(contig), index, settings, tally)
        for contig, spans in bed.items():
            if contig not in contigs or contig in construct_contigs:
                continue
            previous_end = -1
            for start, end in spans:
                first_overlap = _starts_after(previous_end)
                scanned += _scan_alignment_reads(
                    path,
                    alignments.fetch(contig, start, end),
                    index,
                    settings,
                    tally,
                    keep=lambda read, first=first_overlap: first(read) and _soft_clipped(read),
                )
                previous_end = end
        total = sum(s.total for s in alignments.get_index_statistics()) + (alignments.nocoordinate)
    return _Counts(total, scanned)


def _starts_after(previous_end: int) -> Callable:
    """Keep a read only if the previous BED interval on its contig did not already yield it."""
    return lambda read: read.reference_start >= previous_end


# --- the scan ---------------------------------------------------------------------------------


def check_cell_barcodes(path: str, fmt: str, settings: ScanSettings) -> None:
    """Raise :class:`ReadsError` unless some of the first reads carry ``settings.cell_tag``."""
    if fmt == "fastq":
        raise ReadsError(
            path, "per-cell CAR counts need a 10x BAM with cell barcodes, not a FASTQ file"
        )
    if fmt == "bam":  # read natively: no pysam import on the common path
        found, seen = bam.first_tagged(path, settings.cell_tag, PEEK_READS)
        if found:
            return
        _refuse_without_barcodes(path, seen, settings)
    with _open_alignments(path, settings) as alignments:
        seen = 0
        try:
            for read in alignments.fetch(until_eof=True):
                if read.has_tag(settings.cell_tag):
                    return
                seen += 1
                if seen >= PEEK_READS:
                    break
        except OSError as error:
            raise ReadsError(path, f"truncated or corrupt file ({error})") from None
    _refuse_without_barcodes(path, seen, settings)


def _refuse_without_barcodes(path: str, seen: int, settings: ScanSettings) -> None:
    raise ReadsError(
        path,
        f"none of the first {seen} reads has a {settings.cell_tag} tag: per-cell CAR counts "
        "need a 10x BAM with corrected cell barcodes (Cell Ranger's possorted_genome_bam.bam)",
    )


def scan_reads(
    path: str | os.PathLike,
    index: SpecificKmerIndex,
    settings: ScanSettings | None = None,
    *,
    keep_read_names: bool = False,
) -> ScanResult:
    """Scan one reads file for CAR reads.

    Parameters
    ----------
    path
        BAM, CRAM, SAM, FASTQ or gzipped FASTQ.
    index
        Specific k-mers of the constructs (:func:`carmscope.car.kmers.build_index`).
    settings
        How to scan (defaults: full scan, 1 thread, no per-cell counts).
    keep_read_names
        Also keep the names of the CAR reads (``result.tally.car_read_names``; for tests).

    Raises
    ------
    ReadsError
        Unreadable, truncated or malformed files; a CRAM whose reference cannot be found
        (naming it and ``car.cram_reference``); per-cell counts asked of a file without cell
        barcodes; a targeted scan of a file without index.
    """
    settings = settings or ScanSettings()
    path = str(path)
    fmt = detect_format(path)
    if fmt == "cram":
        from carmscope.bam.alignments import cram_reference_problem  # CRAM only: not at start-up

        problem = cram_reference_problem(path, settings.reference, REFERENCE_KEY)
        if problem is not None:
            raise ReadsError(path, problem)
    if settings.per_cell:
        check_cell_barcodes(path, fmt, settings)

    def new_tally() -> Tally:
        tally = Tally(index, settings.evidence)
        if keep_read_names:
            tally.car_read_names = []
        return tally

    if settings.targeted:
        if fmt not in ("bam", "cram"):
            raise ReadsError(path, f"a targeted scan needs an indexed BAM or CRAM, not {fmt}")
        tally = new_tally()
        counts = _scan_targeted(path, index, settings, tally)
    elif fmt == "bam" and settings.engine == "native":
        counts, tally = _scan_native(path, index, settings, new_tally)
    else:
        tally = new_tally()
        reader = _scan_fastq if fmt == "fastq" else _scan_pysam
        counts = reader(path, index, settings, tally)
    mode = "targeted" if settings.targeted else "full"
    return ScanResult(path, fmt, mode, counts.total, counts.scanned, tally)


__all__ = [
    "ReadsError",
    "ScanSettings",
    "check_cell_barcodes",
    "read_bed",
    "scan_reads",
]
