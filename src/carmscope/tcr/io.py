"""One reader per T cell receptor repertoire format, detected from the header.

Formats (column names matched case-insensitively, ignoring spaces and punctuation, so
``aminoAcid``, ``amino_acid`` and ``Amino Acid`` are one column):

``immunoseq_v2``
    Adaptive immunoSEQ sample export v2: ``nucleotide``, ``aminoAcid``, ``vGeneName`` (else
    ``vFamilyName``), ``jGeneName``, ``sequenceStatus`` (``In``/``Out``/``Stop``) and the count
    in ``count (templates/reads)``, ``count (templates)``, ``count (reads)`` or ``count``.
``immunoseq_v3``
    Adaptive immunoSEQ v3+: ``rearrangement``, ``amino_acid``, ``frame_type``, ``v_resolved``,
    ``j_resolved``; the count is ``templates``, or ``seq_reads`` when templates are absent or
    all zero.
``airr``
    AIRR rearrangement TSV (Vander Heiden et al. 2018): ``v_call``, ``j_call``,
    ``junction_aa``, ``productive``, ``locus``; the count is ``duplicate_count``, else
    ``consensus_count``; with a ``cell_id`` column each row is one chain of one cell and a
    clone's count is its number of cells (as with 10x).
``10x_vdj``
    10x Genomics Cell Ranger ``filtered_contig_annotations.csv``: ``barcode``, ``chain``,
    ``v_gene``, ``j_gene``, ``cdr3``, ``productive``, ``umis`` (``is_cell`` and
    ``high_confidence``, when present, must be true); a clone's count is its number of cells.

A clone is a productive TRB chain's CDR3 amino-acid sequence (the junction, conserved C to F/W,
as all four formats write it) and its TRBV gene in IMGT spelling without allele
(:mod:`carmscope.tcr.genes`). Rearrangements that are not productive (out of frame, stop codon,
no CDR3) are counted in ``nonproductive`` and left out. With cells (10x, AIRR with
``cell_id``), a cell's clone is its productive TRB chain; with two, the one with more UMIs
(then more reads, then the first in the file); the cell's productive TRA chain with most UMIs
is kept as an annotation.
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from carmscope.io.tables import read_stage_table
from carmscope.tcr.genes import GENE_TABLE, imgt_genes, locus_of

CLONE_COLUMNS = ("clone_id", "cdr3_aa", "v_gene", "j_gene", "count", "frequency")
CELL_COLUMNS = ("barcode", "clone_id", "cdr3_aa", "v_gene", "umis", "tra_cdr3_aa", "tra_v_gene")


@dataclass(frozen=True)
class FormatSpec:
    """How one format is recognised: the columns it must have and its count columns."""

    name: str
    label: str
    required: tuple[str, ...]
    counts: tuple[str, ...] = ()

    def describe(self) -> str:
        counts = f" and one of {' / '.join(self.counts)}" if self.counts else ""
        return f"{self.label} ({', '.join(self.required)}{counts})"


FORMATS = (
    FormatSpec(
        "10x_vdj",
        "10x filtered_contig_annotations.csv",
        ("barcode", "chain", "v_gene", "cdr3", "productive", "umis"),
    ),
    FormatSpec(
        "immunoseq_v3",
        "Adaptive immunoSEQ v3+",
        ("rearrangement", "amino_acid", "frame_type", "v_resolved"),
        ("templates", "seq_reads"),
    ),
    FormatSpec(
        "immunoseq_v2",
        "Adaptive immunoSEQ v2",
        ("nucleotide", "aminoAcid", "vGeneName", "sequenceStatus"),
        ("count (templates/reads)", "count (templates)", "count (reads)", "count"),
    ),
    FormatSpec(
        "airr",
        "AIRR rearrangement TSV",
        ("v_call", "junction_aa", "productive"),
        ("duplicate_count", "consensus_count", "cell_id"),
    ),
)
FORMAT_NAMES = tuple(spec.name for spec in FORMATS)
CELL_FORMATS = frozenset({"10x_vdj"})
"""Formats whose count is always cells (AIRR is one too when it has ``cell_id``)."""


class RepertoireError(ValueError):
    """A repertoire file that cannot be read; the message names file, line and column."""


@dataclass
class Repertoire:
    """One sample's productive TRB clones.

    Attributes
    ----------
    path
        The file read.
    format
        One of :data:`FORMAT_NAMES`.
    unit
        What ``count`` counts: ``templates``, ``reads``, ``duplicate_count``,
        ``consensus_count`` or ``cells``.
    clones
        One row per clone (:data:`CLONE_COLUMNS`), largest first; ``clone_id`` is
        ``{v_gene}:{cdr3_aa}``, the same in every file.
    nonproductive
        Count (same unit) of TRB rearrangements left out as not productive.
    cells
        Per cell with a productive TRB chain (:data:`CELL_COLUMNS`); None for bulk formats.
    """

    path: str
    format: str
    unit: str
    clones: pd.DataFrame
    nonproductive: int = 0
    cells: pd.DataFrame | None = field(default=None)

    @property
    def total(self) -> int:
        """Productive templates (or cells, reads)."""
        return int(self.clones["count"].sum())


def column_key(name: str) -> str:
    """A column name as matched: lower case, letters and digits only."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def _open_text(path: str | Path):
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_header(path: str | Path) -> tuple[list[str], str]:
    """The header's column names and the separator (tab unless the line has none)."""
    with _open_text(path) as handle:
        line = handle.readline().rstrip("\r\n").lstrip("\ufeff")
    if not line:
        raise RepertoireError(f"{path}: line 1: the file is empty (no header row)")
    sep = "\t" if "\t" in line else ","
    return [name.strip().strip('"') for name in line.split(sep)], sep


def detect_format(columns: list[str], path: str | Path = "<file>") -> FormatSpec:
    """The format whose required columns the header has.

    Raises
    ------
    RepertoireError
        No format fits: names the columns found and the formats expected.
    """
    keys = {column_key(c) for c in columns}
    for spec in FORMATS:
        if all(column_key(c) in keys for c in spec.required) and (
            not spec.counts or any(column_key(c) in keys for c in spec.counts)
        ):
            return spec
    expected = "; ".join(spec.describe() for spec in FORMATS)
    raise RepertoireError(
        f"{path}: line 1: not a known repertoire format. Columns found: {', '.join(columns)}. "
        f"Expected one of: {expected}"
    )


def _columns(columns: list[str]) -> dict[str, str]:
    """Matching key -> the column as spelt in the file (the first of duplicates)."""
    found: dict[str, str] = {}
    for name in columns:
        found.setdefault(column_key(name), name)
    return found


def _whole_numbers(values: pd.Series, path, column: str, *, allow_missing=False) -> np.ndarray:
    """A count column as int64; a value that is not a whole number >= 0 is an error naming the
    file, its line and the column (missing values are 0 when ``allow_missing``)."""
    if pd.api.types.is_integer_dtype(values.dtype) and (values.to_numpy() >= 0).all():
        return values.to_numpy(dtype=np.int64)
    numbers = pd.to_numeric(values, errors="coerce") if values.dtype == object else values
    numbers = numbers.to_numpy(dtype=float, na_value=np.nan)
    missing = np.isnan(numbers)
    if allow_missing:
        text = values.astype(str).str.strip() if values.dtype == object else None
        blank = missing if text is None else missing & text.isin(["", "nan", "NA", "None"])
        numbers = np.where(blank, 0.0, numbers)
        missing = np.isnan(numbers)
    bad = missing | (numbers < 0) | (numbers != np.floor(np.nan_to_num(numbers)))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise RepertoireError(
            f"{path}: line {row + 2}, column {column!r}: '{values.iloc[row]}' is not a whole "
            "number of templates/reads/cells"
        )
    return numbers.astype(np.int64)


def _read(path, sep: str, wanted: list[str], numeric: tuple[str, ...] = ()) -> pd.DataFrame:
    """The named columns as text (empty text stays ''), except ``numeric`` ones, left to the
    parser (whole numbers come back as int64; anything else is checked by _whole_numbers)."""
    return pd.read_csv(
        path,
        sep=sep,
        usecols=wanted,
        dtype={c: str for c in wanted if c not in numeric},
        keep_default_na=False,
        na_filter=False,
        quoting=0,
        engine="c",
        skipinitialspace=True,
    )


def _text(frame: pd.DataFrame, column: str | None, strip: bool = True) -> pd.Series:
    """A text column (leading blanks are dropped by the reader, trailing ones here, for the
    few distinct values that have them: no per-row string work on 300,000-row files). CDR3s
    and barcodes (``strip=False``, one distinct value per row) are taken as written."""
    if column is None:
        return pd.Series("", index=frame.index)
    values = frame[column]
    if not strip:
        return values
    codes, uniques = pd.factorize(values)
    if any(u != u.strip() for u in uniques):
        stripped = np.array([u.strip() for u in uniques], dtype=object)
        values = pd.Series(stripped[codes], index=values.index)
    return values


def _map_unique(values: pd.Series, function) -> pd.Series:
    """``function`` of each value, computed once per distinct value (factorize and take: no
    per-row hashing beyond the factorisation)."""
    codes, uniques = pd.factorize(values)
    mapped = np.array([function(u) for u in uniques] + [None], dtype=object)
    return pd.Series(mapped[codes], index=values.index)


def _is_true(values: pd.Series) -> np.ndarray:
    truth = _map_unique(values, lambda v: v.strip().lower() in ("t", "true", "1", "yes"))
    return truth.to_numpy(dtype=bool)


def _genes(values: pd.Series, table) -> pd.Series:
    codes, uniques = pd.factorize(values)
    mapped = np.array([*imgt_genes(list(uniques), table), ""], dtype=object)
    return pd.Series(mapped[codes], index=values.index)


def _clone_table(cdr3: pd.Series, v_gene: pd.Series, j_gene: pd.Series, count) -> pd.DataFrame:
    """Productive rows -> one row per (v_gene, cdr3_aa), largest first."""
    count = np.asarray(count, dtype=np.int64)
    keep = count > 0
    cdr3, v_gene, j_gene = (np.asarray(x, dtype=object)[keep] for x in (cdr3, v_gene, j_gene))
    count = count[keep]
    clone_id = v_gene + ":" + cdr3
    # hash the IDs (pandas.factorize) and add counts per code: a groupby on text sorts
    codes, uniques = pd.factorize(clone_id)
    summed = np.bincount(codes, weights=count, minlength=len(uniques))
    first = np.unique(codes, return_index=True)[1]
    clones = pd.DataFrame(
        {
            "clone_id": uniques,
            "cdr3_aa": cdr3[first],
            "v_gene": v_gene[first],
            "j_gene": j_gene[first],
            "count": np.rint(summed).astype(np.int64),
        }
    )
    # largest first; ties in order of first appearance in the file (a string sort of 300,000
    # clone IDs would cost more than reading the file)
    clones = clones.iloc[np.argsort(-clones["count"].to_numpy(), kind="stable")]
    total = clones["count"].sum()
    clones["frequency"] = clones["count"] / total if total else np.nan
    return clones[list(CLONE_COLUMNS)].reset_index(drop=True)


def _productive_cdr3(cdr3: pd.Series) -> np.ndarray:
    """A CDR3 that is present and has no stop codon (``*``); the per-row search only runs
    when the column has a ``*`` at all (one string search of the whole column first)."""
    productive = (cdr3 != "").to_numpy()
    if "*" in "".join(cdr3.to_numpy()):
        productive &= ~cdr3.str.contains("*", regex=False).to_numpy()
    return productive


def _read_immunoseq(path, sep, spec: FormatSpec, found: dict[str, str], table) -> Repertoire:
    v2 = spec.name == "immunoseq_v2"
    aa = found["aminoacid"]
    status = found["sequencestatus" if v2 else "frametype"]
    v_col = found["vgenename" if v2 else "vresolved"]
    v_family = found.get("vfamilyname") if v2 else None
    j_col = found.get("jgenename" if v2 else "jresolved")
    count_cols = [found[column_key(c)] for c in spec.counts if column_key(c) in found]
    wanted = [c for c in (aa, status, v_col, v_family, j_col) if c] + count_cols
    frame = _read(path, sep, list(dict.fromkeys(wanted)), tuple(count_cols))
    unit, count = _immunoseq_counts(frame, path, v2, count_cols)
    v_names = _text(frame, v_col)
    if v_family:
        missing = _map_unique(v_names, lambda v: v.lower() in ("", "unresolved", "unknown"))
        v_names = v_names.where(~missing.to_numpy(dtype=bool), _text(frame, v_family))
    v_gene = _genes(v_names, table)
    j_gene = _genes(_text(frame, j_col), table)
    cdr3 = _text(frame, aa, strip=False)
    locus = _map_unique(v_gene, locus_of)
    trb = ((locus == "TRB") | (v_gene == "")).to_numpy()
    in_frame = _map_unique(_text(frame, status), lambda v: v.lower() == "in").to_numpy(dtype=bool)
    productive = in_frame & _productive_cdr3(cdr3)
    keep = trb & productive
    clones = _clone_table(cdr3, v_gene, j_gene, np.where(keep, count, 0))  # 0: left out
    return Repertoire(str(path), spec.name, unit, clones, int(count[trb & ~productive].sum()))


def _immunoseq_counts(frame, path, v2: bool, count_cols: list[str]) -> tuple[str, np.ndarray]:
    if v2:
        column = count_cols[0]
        unit = (
            "reads"
            if "reads" in column.lower() and "templates" not in column.lower()
            else ("templates")
        )
        return unit, _whole_numbers(frame[column], path, column)
    by_key = {column_key(c): c for c in count_cols}
    if "templates" in by_key:
        templates = _whole_numbers(
            frame[by_key["templates"]], path, by_key["templates"], allow_missing=True
        )
        if templates.any() or "seqreads" not in by_key:
            return "templates", templates
    column = by_key["seqreads"]
    return "reads", _whole_numbers(frame[column], path, column, allow_missing=True)


def _best_chain(rows: pd.DataFrame) -> pd.DataFrame:
    """Per cell, the chain with most UMIs (then reads, then first in the file)."""
    ordered = rows.assign(_order=np.arange(len(rows))).sort_values(
        ["cell", "umis", "reads", "_order"], ascending=[True, False, False, True], kind="stable"
    )
    return ordered.drop_duplicates("cell", keep="first")


def _cell_repertoire(path, spec_name: str, chains: pd.DataFrame) -> Repertoire:
    """Per-cell chains (``cell``, ``locus``, ``productive``, ``cdr3_aa``, ``v_gene``,
    ``j_gene``, ``umis``, ``reads``) -> clones counted in cells."""
    productive = chains["productive"].to_numpy() & _productive_cdr3(chains["cdr3_aa"])
    trb = chains["locus"].to_numpy() == "TRB"
    beta = _best_chain(chains[trb & productive])
    alpha = _best_chain(chains[(chains["locus"].to_numpy() == "TRA") & productive])
    alpha = alpha.set_index("cell")
    no_productive_beta = set(chains.loc[trb, "cell"]) - set(beta["cell"])
    clones = _clone_table(
        beta["cdr3_aa"], beta["v_gene"], beta["j_gene"], np.ones(len(beta), dtype=np.int64)
    )
    cells = pd.DataFrame(
        {
            "barcode": beta["cell"].to_numpy(),
            "clone_id": (beta["v_gene"] + ":" + beta["cdr3_aa"]).to_numpy(),
            "cdr3_aa": beta["cdr3_aa"].to_numpy(),
            "v_gene": beta["v_gene"].to_numpy(),
            "umis": beta["umis"].to_numpy(),
        }
    )
    cells["tra_cdr3_aa"] = cells["barcode"].map(alpha["cdr3_aa"]).fillna("")
    cells["tra_v_gene"] = cells["barcode"].map(alpha["v_gene"]).fillna("")
    return Repertoire(str(path), spec_name, "cells", clones, len(no_productive_beta), cells)


def _read_10x(path, sep, spec: FormatSpec, found: dict[str, str], table) -> Repertoire:
    optional = [found.get(k) for k in ("jgene", "iscell", "highconfidence", "reads")]
    wanted = [found[column_key(c)] for c in spec.required] + [c for c in optional if c]
    frame = _read(path, sep, wanted)
    keep = np.ones(len(frame), dtype=bool)
    for flag in ("iscell", "highconfidence"):
        if flag in found:
            keep &= _is_true(frame[found[flag]])
    umis = _whole_numbers(frame[found["umis"]], path, found["umis"])
    reads = (
        _whole_numbers(frame[found["reads"]], path, found["reads"])
        if "reads" in found
        else np.zeros(len(frame), dtype=np.int64)
    )
    v_gene = _genes(_text(frame, found["vgene"]), table)
    chain = _map_unique(_text(frame, found["chain"]), str.upper)
    chains = pd.DataFrame(
        {
            "cell": _text(frame, found["barcode"]),
            "locus": chain.where(chain.isin(["TRA", "TRB", "TRG", "TRD"]), v_gene.map(locus_of)),
            "productive": _is_true(frame[found["productive"]]),
            "cdr3_aa": _text(frame, found["cdr3"]).replace({"None": ""}),
            "v_gene": v_gene,
            "j_gene": _genes(_text(frame, found.get("jgene")), table),
            "umis": umis,
            "reads": reads,
        }
    )
    return _cell_repertoire(path, spec.name, chains[keep])


def _read_airr(path, sep, spec: FormatSpec, found: dict[str, str], table) -> Repertoire:
    optional = ("jcall", "locus", "cellid", "umicount", "duplicatecount", "consensuscount")
    wanted = [found[column_key(c)] for c in spec.required]
    wanted += [found[k] for k in optional if k in found]
    counts = tuple(found[k] for k in ("umicount", "duplicatecount", "consensuscount") if k in found)
    frame = _read(path, sep, wanted, counts)
    v_gene = _genes(_text(frame, found["vcall"]), table)
    # the locus column when given, but never a chain whose V gene is of another locus
    gene_locus = _map_unique(v_gene, locus_of)
    locus = _map_unique(_text(frame, found.get("locus")), str.upper)
    locus = locus.where(locus != "", gene_locus).where(
        (gene_locus == "") | (gene_locus == locus), gene_locus
    )
    cdr3 = _text(frame, found["junctionaa"], strip=False)
    j_gene = _genes(_text(frame, found.get("jcall")), table)
    productive = _is_true(frame[found["productive"]])
    cell = _text(frame, found.get("cellid"))
    if "cellid" in found and (cell != "").any():
        umi_col = next(
            (found[k] for k in ("umicount", "duplicatecount", "consensuscount") if k in found), None
        )
        read_col = found.get("consensuscount")
        zeros = np.zeros(len(frame), dtype=np.int64)
        chains = pd.DataFrame(
            {
                "cell": cell,
                "locus": locus,
                "productive": productive,
                "cdr3_aa": cdr3,
                "v_gene": v_gene,
                "j_gene": j_gene,
                "umis": _whole_numbers(frame[umi_col], path, umi_col, allow_missing=True)
                if umi_col
                else zeros,
                "reads": _whole_numbers(frame[read_col], path, read_col, allow_missing=True)
                if read_col
                else zeros,
            }
        )
        return _cell_repertoire(path, spec.name, chains[(cell != "").to_numpy()])
    count_key = next((k for k in ("duplicatecount", "consensuscount") if k in found), None)
    if count_key is None:
        raise RepertoireError(
            f"{path}: line 1: an AIRR rearrangement file needs a count column "
            "(duplicate_count or consensus_count) or cell_id (one row per chain of a cell)"
        )
    count = _whole_numbers(frame[found[count_key]], path, found[count_key])
    trb = (locus == "TRB").to_numpy()
    productive &= _productive_cdr3(cdr3)
    keep = trb & productive
    clones = _clone_table(cdr3, v_gene, j_gene, np.where(keep, count, 0))  # 0: left out
    unit = "duplicate_count" if count_key == "duplicatecount" else "consensus_count"
    return Repertoire(str(path), spec.name, unit, clones, int(count[trb & ~productive].sum()))


_READERS = {
    "immunoseq_v2": _read_immunoseq,
    "immunoseq_v3": _read_immunoseq,
    "10x_vdj": _read_10x,
    "airr": _read_airr,
}


def read_repertoire(path: str | Path, gene_table: str | Path = GENE_TABLE) -> Repertoire:
    """Read one repertoire file of any supported format (detected from its header).

    Parameters
    ----------
    path
        The repertoire (plain or gzip-compressed text).
    gene_table
        The Adaptive-to-IMGT gene name table (:data:`carmscope.tcr.genes.GENE_TABLE`).

    Returns
    -------
    Repertoire
        Productive TRB clones, the non-productive count and, for cell formats, the cells.

    Raises
    ------
    RepertoireError
        Unknown format (the columns found and the formats expected), a count that is not a
        whole number (file, line, column), or a file pandas cannot parse.
    """
    columns, sep = read_header(path)
    spec = detect_format(columns, path)
    found = _columns(columns)
    try:
        return _READERS[spec.name](path, sep, spec, found, str(gene_table))
    except pd.errors.ParserError as error:
        raise RepertoireError(f"{path}: {spec.label}: {error}") from None


def read_clones(path: str | Path) -> pd.DataFrame:
    """A clone table written by the ``tcr`` stage (``clones.tsv``), IDs and sequences as text."""
    return read_stage_table(path, ("clone_id", "cdr3_aa", "v_gene", "j_gene"))
