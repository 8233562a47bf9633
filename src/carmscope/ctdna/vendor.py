"""Vendor-reported variant allele fractions, read into the allele-count schema.

A plasma sample sequenced by a commercial assay may come as a table instead of a BAM: a TSV
with columns ``chrom``, ``pos`` (1-based), ``ref``, ``alt`` and, per row, either ``alt_count``
and ``depth`` (preferred: the sample then gets a detection p-value) or ``vaf`` alone (the
sample then gives a mean VAF but no p-value; see :mod:`carmscope.ctdna.calls`). Blank lines and
lines starting with ``#`` are skipped; other columns are ignored. Alleles are normalised as in
:func:`carmscope.ctdna.variants.normalise_alleles`, so rows match the tumour VCF's variants.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pandas as pd

from carmscope.ctdna.alleles import ALLELE_COUNT_COLUMNS, COUNT_COLUMNS
from carmscope.ctdna.variants import VARIANT_KEY, CtdnaInputError, as_variants, normalise_alleles
from carmscope.messages import found_columns

REQUIRED_COLUMNS = ("chrom", "pos", "ref", "alt")
COUNT_PAIR = ("alt_count", "depth")
VAF_TOLERANCE = 0.01
"""Largest accepted difference between a row's ``vaf`` and its ``alt_count / depth``."""


def _rows(path: str | os.PathLike) -> Iterator[tuple[int, list[str]]]:
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                text = line.rstrip("\r\n")
                if text.strip() and not text.startswith("#"):
                    yield number, text.split("\t")
    except (OSError, UnicodeError) as error:
        raise CtdnaInputError(path, f"cannot be read: {error}") from error


def _integer(path, number: int, column: str, text: str, minimum: int) -> int:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value == value or value != int(value) or value < minimum:  # NaN, fraction, too small
        raise CtdnaInputError(
            path,
            f"{text!r} is not a whole number >= {minimum}",
            line=number,
            column=column,
        )
    return int(value)


def _fraction(path, number: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError as error:
        raise CtdnaInputError(
            path, f"{text!r} is not a number", line=number, column="vaf"
        ) from error
    if not 0.0 <= value <= 1.0:
        raise CtdnaInputError(
            path,
            f"{text} is outside [0, 1] (a fraction is expected, not a percentage)",
            line=number,
            column="vaf",
        )
    return value


def read_vendor_table(
    path: str | os.PathLike, variants: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Read a vendor VAF table into the schema of :func:`~carmscope.ctdna.alleles.count_alleles`.

    Parameters
    ----------
    path
        Tab-separated table with a header line (see the module docstring).
    variants
        The patient's tumour variants (e.g. from
        :func:`~carmscope.ctdna.variants.read_tumour_variants`). When given, the result has one
        row per variant, in its order, with the variant's kind, evaluable and reason; variants
        absent from the table are not evaluable ("not in the vendor table"); table rows that
        are not among the variants are dropped.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`~carmscope.ctdna.alleles.ALLELE_COUNT_COLUMNS`. From ``alt_count`` and
        ``depth``: ``ref_count`` = depth - alt_count, ``other_count`` = 0 (the vendor gives no
        split), strand counts missing, ``vaf`` = alt_count / depth. From ``vaf`` alone: every
        count missing (``depth`` unknown) and ``vaf`` as reported.

    Raises
    ------
    CtdnaInputError
        Naming the file, line and column: missing columns, a value that is not a number,
        a ``vaf`` outside [0, 1] or disagreeing with ``alt_count / depth``, ``alt_count`` above
        ``depth``, a row with neither counts nor ``vaf``, a variant listed twice.
    """
    rows = _rows(path)
    try:
        header_line, header = next(rows)
    except StopIteration:
        raise CtdnaInputError(path, "is empty: a header line is expected") from None
    header = [name.strip() for name in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if not (set(COUNT_PAIR) <= set(header) or "vaf" in header):
        missing += [f"{' and '.join(COUNT_PAIR)}, or vaf"]
    if missing:
        raise CtdnaInputError(
            path,
            f"missing column(s): {'; '.join(missing)} ({found_columns(header)})",
            line=header_line,
        )
    records: dict[tuple, dict[str, object]] = {}
    for number, fields in rows:
        if len(fields) != len(header):
            raise CtdnaInputError(
                path, f"{len(fields)} fields where the header has {len(header)}", line=number
            )
        record = _parse_row(path, number, dict(zip(header, fields, strict=True)))
        key = tuple(record[c] for c in VARIANT_KEY)
        if key in records:
            raise CtdnaInputError(path, f"variant {key} is listed twice", line=number)
        records[key] = record
    table = pd.DataFrame(list(records.values()), columns=[*VARIANT_KEY, *COUNT_COLUMNS, "vaf"])
    table = as_variants(table) if variants is None else _align(table, variants)
    for column in COUNT_COLUMNS:
        table[column] = pd.array(table[column], dtype="Int64")
    table["vaf"] = table["vaf"].astype(float)
    extra = [c for c in table.columns if c not in ALLELE_COUNT_COLUMNS]
    return table[[*ALLELE_COUNT_COLUMNS, *extra]]


def _parse_row(path, number: int, values: dict[str, str]) -> dict[str, object]:
    for column in REQUIRED_COLUMNS:
        if not values[column].strip():
            raise CtdnaInputError(path, "empty value", line=number, column=column)
    pos = _integer(path, number, "pos", values["pos"].strip(), 1)
    pos, ref, alt = normalise_alleles(pos, values["ref"].strip(), values["alt"].strip())
    record: dict[str, object] = {"chrom": values["chrom"].strip(), "pos": pos, "ref": ref}
    record["alt"] = alt
    record.update(dict.fromkeys(COUNT_COLUMNS, pd.NA))
    given = {c: values.get(c, "").strip() for c in (*COUNT_PAIR, "vaf")}
    vaf = _fraction(path, number, given["vaf"]) if given["vaf"] else None
    if given["alt_count"] and given["depth"]:
        alt_count = _integer(path, number, "alt_count", given["alt_count"], 0)
        depth = _integer(path, number, "depth", given["depth"], 0)
        if alt_count > depth:
            raise CtdnaInputError(
                path,
                f"alt_count {alt_count} exceeds depth {depth}",
                line=number,
                column="alt_count",
            )
        measured = alt_count / depth if depth else float("nan")
        if vaf is not None and depth and abs(vaf - measured) > VAF_TOLERANCE:
            raise CtdnaInputError(
                path,
                f"vaf {vaf} disagrees with alt_count/depth = {measured:.4f}",
                line=number,
                column="vaf",
            )
        record.update(ref_count=depth - alt_count, alt_count=alt_count, other_count=0)
        record.update(depth=depth, vaf=measured)
    elif vaf is not None:
        record["vaf"] = vaf
    else:
        column = "alt_count" if "alt_count" in values else "vaf"
        raise CtdnaInputError(
            path, "neither alt_count and depth nor vaf is given", line=number, column=column
        )
    return record


def _align(table: pd.DataFrame, variants: pd.DataFrame) -> pd.DataFrame:
    """One row per tumour variant, with the vendor's numbers where the table has them."""
    base = as_variants(variants)
    keep = [c for c in base.columns if c not in (*COUNT_COLUMNS, "vaf")]
    merged = base[keep].merge(table, on=VARIANT_KEY, how="left", indicator=True)
    absent = (merged["_merge"] == "left_only") & merged["evaluable"]
    merged.loc[absent, "evaluable"] = False
    merged.loc[absent, "reason"] = "not in the vendor table"
    return merged.drop(columns="_merge")
