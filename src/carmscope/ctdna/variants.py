"""Tumour-variant VCFs: reading, allele representation, the variants table.

:func:`read_tumour_variants` reads a patient's tumour-variant VCF (or BCF) into one row per ALT
allele. Allele representation: alleles are upper-cased and trimmed to their minimal form
(shared trailing, then leading bases removed, keeping the one VCF anchor base of an indel), so
``REF=GAT ALT=GCT`` is the SNV ``A>C`` one base on; indels are expected left-aligned, as
aligners report them (``bcftools norm -f reference.fa``). A VCF compressed with plain gzip
instead of bgzip is refused with the command that fixes it.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pysam

from carmscope.bam.bgzf import BGZF_MAGIC
from carmscope.errors import LocatedInputError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    import pandas as pd

VARIANT_KEY = ["chrom", "pos", "ref", "alt"]
"""Columns that identify a variant (1-based ``pos``, minimal alleles)."""

VARIANT_COLUMNS = [*VARIANT_KEY, "kind", "evaluable", "reason"]
"""Columns of :func:`read_tumour_variants`."""

BASES = frozenset("ACGT")


class CtdnaInputError(LocatedInputError):
    """An input of the ctDNA analysis that cannot be used; the message names the file (and the
    line and column of a text file, when known). ``reason`` is the message without the place."""


def normalise_alleles(pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """Minimal representation of one REF/ALT pair.

    Upper-cases both alleles, trims shared trailing bases, then shared leading bases (moving
    ``pos`` on), always leaving at least one base in each allele.

    Parameters
    ----------
    pos
        1-based position of the first REF base.
    ref, alt
        Alleles as written in the VCF.

    Returns
    -------
    tuple
        ``(pos, ref, alt)`` after trimming. Symbolic alleles (``<DEL>``, ``*``, breakends) are
        returned unchanged.
    """
    ref, alt = ref.upper(), alt.upper()
    if not (set(ref) <= BASES | {"N"} and set(alt) <= BASES | {"N"}):
        return pos, ref, alt
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt


def classify_alleles(ref: str, alt: str) -> tuple[str, bool, str]:
    """Kind of a (minimal) REF/ALT pair and whether :func:`count_alleles` can count it.

    Returns
    -------
    tuple
        ``(kind, evaluable, reason)``: kind is ``snv``, ``insertion``, ``deletion`` or
        ``complex``; reason is '' when evaluable.
    """
    if not alt or alt == ".":
        return "complex", False, "record has no ALT allele"
    if not set(alt) <= BASES or not set(ref) <= BASES:
        if alt.startswith("<") or alt == "*" or "[" in alt or "]" in alt:
            return "complex", False, f"symbolic ALT allele {alt!r} is not counted"
        return "complex", False, f"alleles {ref}>{alt} contain bases other than A, C, G, T"
    if ref == alt:
        return "complex", False, "ALT equals REF"
    if len(ref) == 1 and len(alt) == 1:
        return "snv", True, ""
    if len(ref) == 1 and alt[0] == ref:
        return "insertion", True, ""
    if len(alt) == 1 and ref[0] == alt:
        return "deletion", True, ""
    return (
        "complex",
        False,
        f"complex allele {ref}>{alt} (MNV or deletion-insertion) is not counted; "
        "split it into SNVs and indels (bcftools norm --atomize)",
    )


def plain_gzip_problem(path: str | os.PathLike) -> str | None:
    """Why a gzip-compressed VCF cannot be read (plain gzip, not bgzip), or None.

    htslib reads VCFs compressed with bgzip (BGZF: gzip blocks with a size field, which it can
    seek in); a file compressed with plain ``gzip`` starts like one but has no such blocks, and
    pysam then fails with ``NotImplementedError: seek not implemented``.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(BGZF_MAGIC))
    except OSError:
        return None  # the reader reports it
    if head[:2] != b"\x1f\x8b" or head == BGZF_MAGIC:
        return None
    name = str(path)
    fixed = name[: -len(".gz")] + ".bgz.gz" if name.endswith(".gz") else name + ".bgz"
    return (
        "is compressed with plain gzip, not bgzip, so htslib cannot read it: recompress it "
        f"with `gunzip -c {name} | bgzip > {fixed}` (bgzip comes with htslib/tabix) and use "
        "the new file"
    )


def open_vcf(path: str | os.PathLike) -> pysam.VariantFile:
    """Open a VCF (plain text or bgzip-compressed) or BCF with pysam, naming the file when it
    cannot be read (plain gzip: :func:`plain_gzip_problem`).

    Raises
    ------
    CtdnaInputError
        The file cannot be opened as VCF/BCF.
    """
    problem = plain_gzip_problem(path)
    if problem is not None:
        raise CtdnaInputError(path, problem)
    try:
        return pysam.VariantFile(str(path))
    except (OSError, ValueError, NotImplementedError) as error:
        raise CtdnaInputError(path, f"cannot be read as VCF/BCF: {error}") from error


def read_tumour_variants(
    vcf_path: str | os.PathLike,
    reference: str | os.PathLike | None = None,
    pass_only: bool = True,
) -> pd.DataFrame:
    """Read a patient's tumour-variant VCF, one row per ALT allele.

    Parameters
    ----------
    vcf_path
        VCF (``.vcf``, ``.vcf.gz``) or BCF of the patient's tumour-specific variants.
        Genotypes and INFO are ignored.
    reference
        Optional FASTA (indexed, or in a writable folder so pysam can index it); each record's
        REF must then match it.
    pass_only
        Records whose FILTER is neither ``PASS`` nor ``.`` are kept but marked not evaluable.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`VARIANT_COLUMNS`: ``chrom``, ``pos`` (1-based), ``ref``, ``alt``
        (minimal alleles, see :func:`normalise_alleles`), ``kind`` (snv, insertion, deletion,
        complex), ``evaluable`` and ``reason`` (why not evaluable; '' otherwise). Multi-allelic
        records give one row per ALT; a variant listed twice is kept once as evaluable.

    Raises
    ------
    CtdnaInputError
        The file cannot be read as VCF/BCF (also: compressed with plain gzip, not bgzip), has
        no records, or a REF disagrees with the reference (the message gives the record's
        line, for text VCFs, and position).
    """
    path = Path(vcf_path)
    vcf = open_vcf(path)
    header_lines = _vcf_header_line_count(path)
    fasta = _open_fasta(reference) if reference is not None else None
    rows: list[dict[str, object]] = []
    seen: set[tuple] = set()
    number = 0
    try:
        with vcf:
            records = iter(vcf)
            while True:
                where = _record_location(number + 1, header_lines)
                try:
                    record = next(records)
                except StopIteration:
                    break
                except (OSError, ValueError) as error:
                    raise CtdnaInputError(
                        path, f"{where} (after {number} good records): cannot be parsed: {error}"
                    ) from error
                number += 1
                where = f"{where} ({record.chrom}:{record.pos})"
                elsewhere = ""  # the reason when the record's contig is not in the reference
                if fasta is not None:
                    elsewhere = _check_reference(fasta, reference, path, record, where)
                filters = list(record.filter.keys())
                failed = pass_only and bool(filters) and filters != ["PASS"]
                for alt in record.alts or (".",):
                    pos, ref, alt_allele = normalise_alleles(record.pos, record.ref, alt)
                    kind, evaluable, reason = classify_alleles(ref, alt_allele)
                    key = (record.chrom, pos, ref, alt_allele)
                    if evaluable and elsewhere:
                        evaluable, reason = False, elsewhere
                    if evaluable and failed:
                        evaluable, reason = False, f"FILTER is {';'.join(filters)}"
                    if evaluable and key in seen:
                        evaluable, reason = False, "duplicate of an earlier record"
                    seen.add(key)
                    rows.append(
                        {
                            "chrom": record.chrom,
                            "pos": pos,
                            "ref": ref,
                            "alt": alt_allele,
                            "kind": kind,
                            "evaluable": evaluable,
                            "reason": reason,
                        }
                    )
    finally:
        if fasta is not None:
            fasta.close()
    if not rows:
        raise CtdnaInputError(path, "contains no variant records")
    import pandas as pd  # imported here: a counting job reads no VCF and runs without pandas

    table = pd.DataFrame(rows, columns=VARIANT_COLUMNS)
    table["pos"] = table["pos"].astype("int64")
    table["evaluable"] = table["evaluable"].astype(bool)
    return table


def _vcf_header_line_count(path: Path) -> int | None:
    """Header lines of a text VCF (plain or gzip/BGZF), or None for BCF or unreadable files."""
    try:
        with open(path, "rb") as raw:
            magic = raw.read(2)
        opener = gzip.open if magic == b"\x1f\x8b" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            count = 0
            for line in handle:
                if count == 0 and line.startswith("BCF"):
                    return None
                if not line.startswith("#"):
                    break
                count += 1
            return count
    except (OSError, EOFError, UnicodeError):
        return None


def _record_location(number: int, header_lines: int | None) -> str:
    if header_lines is None:
        return f"record {number}"
    return f"line {header_lines + number} (record {number})"


def _open_fasta(reference: str | os.PathLike) -> pysam.FastaFile:
    try:
        return pysam.FastaFile(str(reference))
    except (OSError, ValueError) as error:
        raise CtdnaInputError(
            reference, f"cannot open the reference FASTA (or build its .fai): {error}"
        ) from error


def _check_reference(
    fasta: pysam.FastaFile,
    reference: str | os.PathLike | None,
    path: Path,
    record: pysam.VariantRecord,
    where: str,
) -> str:
    """'' when the record's REF matches the reference; the reason it is not evaluable when its
    contig is not in the reference (the VCF is on another assembly or naming: the patient's
    variants are then not evaluable, the rest of the cohort goes on). A REF that disagrees
    with a contig the reference has is an error."""
    if record.chrom not in fasta.references:
        return (
            f"contig {record.chrom!r} is not in the reference {reference}: was the VCF called "
            "on another assembly or naming (19 vs chr19)?"
        )
    start = record.pos - 1
    expected = fasta.fetch(record.chrom, start, start + len(record.ref)).upper()
    if expected != record.ref.upper():
        raise CtdnaInputError(
            path,
            f"{where}: REF {record.ref} disagrees with the reference {reference} "
            f"({expected or 'beyond the contig end'}); was the VCF called on another assembly?",
        )
    return ""


def as_variants(variants: pd.DataFrame) -> pd.DataFrame:
    """A copy of a variants table with ``kind``, ``evaluable`` and ``reason``.

    Parameters
    ----------
    variants
        Table with at least :data:`VARIANT_KEY` (minimal alleles); the three columns are
        derived with :func:`classify_alleles` when absent.

    Returns
    -------
    pandas.DataFrame
        The table with a fresh 0-based index, ``pos`` as int64 and ``evaluable`` as bool.
    """
    _check_key(variants)
    table = variants.reset_index(drop=True).copy()
    if not {"kind", "evaluable", "reason"} <= set(table.columns):
        table["kind"], table["evaluable"], table["reason"] = _classified(table["ref"], table["alt"])
    table["pos"] = table["pos"].astype("int64")
    table["evaluable"] = table["evaluable"].astype(bool)
    table["reason"] = table["reason"].fillna("").astype(str)
    return table


def variant_columns(variants: Mapping[str, Sequence[object]]) -> dict[str, list[object]]:
    """:func:`as_variants` for columns of Python lists (no pandas): a copy with ``kind``,
    ``evaluable`` and ``reason``, ``pos`` as int, ``evaluable`` as bool and a missing
    ``reason`` as ''.

    Parameters
    ----------
    variants
        Column name to cells, with at least :data:`VARIANT_KEY`.

    Returns
    -------
    dict
        The columns, in the order given (derived ones appended).
    """
    _check_key(variants)
    table = {name: list(cells) for name, cells in variants.items()}
    if not {"kind", "evaluable", "reason"} <= set(table):
        table["kind"], table["evaluable"], table["reason"] = _classified(table["ref"], table["alt"])
    table["pos"] = [int(pos) for pos in table["pos"]]  # type: ignore[call-overload]
    table["evaluable"] = [bool(evaluable) for evaluable in table["evaluable"]]
    table["reason"] = ["" if reason is None else str(reason) for reason in table["reason"]]
    return table


def _check_key(variants: Mapping[str, object] | pd.DataFrame) -> None:
    missing = [column for column in VARIANT_KEY if column not in variants]
    if missing:
        raise ValueError(f"variants lack column(s) {', '.join(missing)}")


def _classified(refs: Iterable[str], alts: Iterable[str]) -> tuple[list, list, list]:
    """``(kinds, evaluable, reasons)`` of REF/ALT pairs (:func:`classify_alleles`)."""
    classified = [classify_alleles(r, a) for r, a in zip(refs, alts, strict=True)]
    return [c[0] for c in classified], [c[1] for c in classified], [c[2] for c in classified]
