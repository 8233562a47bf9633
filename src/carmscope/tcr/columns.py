"""The columns of a repertoire file, read once and kept as distinct values + row codes.

A 300,000-row repertoire has a handful of distinct V genes, loci and productivity flags and one
CDR3 per row. Every per-value step of the readers (gene-name normalisation, ``true``/``false``,
stop codons, trimming) therefore runs over the distinct values of a column (:class:`Factor`),
and rows are joined to the results by integer codes: no Python call per row.

Reading (measured reason for pyarrow, docs/tcr.md "Benchmark"): ``pyarrow.csv`` (pinned in
requirements.lock, one thread, as the rule declares) reads the needed columns as text in about
a tenth of the time ``pandas.read_csv`` takes, and hashes the CDR3s into codes in C++. It reads
the file as the pandas C parser did before (quotes, blank lines, leading blanks of a field
dropped as ``skipinitialspace`` did); any file it refuses (ragged rows, invalid UTF-8, ...) is
read again with ``pandas.read_csv``, so such files get the messages and the behaviour they had.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from carmscope.tcr.formats import RepertoireError
from carmscope.tcr.genes import imgt_genes

MISSING_COUNT = ("", "nan", "NA", "None")
"""Count cells read as 0 where a column allows missing counts (immunoSEQ v3+, AIRR cells)."""


@dataclass(frozen=True)
class Factor:
    """A text column as its distinct values (``uniques``) and each row's code into them."""

    codes: np.ndarray
    uniques: np.ndarray

    @classmethod
    def of(cls, values) -> Factor:
        """Factorise row values (``pandas.factorize``)."""
        codes, uniques = pd.factorize(np.asarray(values, dtype=object))
        return cls(codes, np.asarray(uniques, dtype=object))

    @classmethod
    def empty(cls, rows: int) -> Factor:
        """A column of ``rows`` empty strings (an optional column the file does not have)."""
        return cls(np.zeros(rows, dtype=np.int64), np.array([""], dtype=object))

    def values(self) -> np.ndarray:
        """The row values (object array)."""
        return self.uniques[self.codes]

    def per_row(self, function: Callable[[str], object], dtype=str) -> np.ndarray:
        """``function`` of each row's value, called once per distinct value (text results as
        a NumPy string array, so comparing rows with a value is one vectorised operation)."""
        mapped = np.array([function(u) for u in self.uniques], dtype=dtype)
        return mapped[self.codes] if len(mapped) else np.zeros(len(self.codes), dtype=dtype)

    def mapped(self, function: Callable[[np.ndarray], Sequence[str]]) -> Factor:
        """A new factor of ``function`` applied to the distinct values (given all at once);
        values that become equal are merged."""
        new_codes, new_uniques = pd.factorize(np.asarray(function(self.uniques), dtype=object))
        if not len(new_uniques):
            return Factor.empty(len(self.codes))
        return Factor(new_codes[self.codes], np.asarray(new_uniques, dtype=object))


def imgt_factor(names: Factor, table: str) -> Factor:
    """Gene calls in IMGT spelling (:func:`carmscope.tcr.genes.imgt_genes`)."""
    return names.mapped(lambda uniques: imgt_genes(list(uniques), table))


def stripped(names: Factor) -> Factor:
    """Values without surrounding blanks (checked over the distinct values)."""
    if all(u == u.strip() for u in names.uniques):
        return names
    return names.mapped(lambda uniques: [u.strip() for u in uniques])


def is_true(flags: Factor) -> np.ndarray:
    """``t``/``true``/``1``/``yes`` (any case, blanks ignored) as True."""
    return flags.per_row(lambda v: v.strip().lower() in ("t", "true", "1", "yes"), dtype=bool)


def productive_cdr3(cdr3: Factor) -> np.ndarray:
    """Rows whose CDR3 is present and has no stop codon (``*``). The distinct CDR3s are about
    as many as the rows: one string search of them all first, a search per value only when
    there is a ``*`` at all."""
    uniques = cdr3.uniques
    productive = uniques != ""
    if "*" in "".join(uniques):
        productive &= np.array(["*" not in v for v in uniques], dtype=bool)
    return productive[cdr3.codes] if len(uniques) else np.zeros(len(cdr3.codes), dtype=bool)


def whole_numbers(values: pd.Series, path, column: str, *, allow_missing=False) -> np.ndarray:
    """A count column as int64; a value that is not a whole number >= 0 is an error naming the
    file, its line and the column (missing values are 0 when ``allow_missing``)."""
    if pd.api.types.is_integer_dtype(values.dtype) and (values.to_numpy() >= 0).all():
        return values.to_numpy(dtype=np.int64)
    numbers = pd.to_numeric(values, errors="coerce") if values.dtype == object else values
    numbers = numbers.to_numpy(dtype=float, na_value=np.nan)
    missing = np.isnan(numbers)
    if allow_missing:
        text = values.astype(str).str.strip() if values.dtype == object else None
        blank = missing if text is None else missing & text.isin(MISSING_COUNT)
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


class RepertoireColumns:
    """The named columns of one repertoire file, read as text.

    Parameters
    ----------
    path
        The file (plain or gzip-compressed).
    sep
        Its separator.
    header
        Its column names as :func:`carmscope.tcr.formats.read_header` gives them; a wanted name
        is the first column of that name.
    wanted
        The columns to read.
    """

    def __init__(self, path, sep: str, header: Sequence[str], wanted: Sequence[str]) -> None:
        self.path = path
        wanted = list(dict.fromkeys(wanted))
        positions = {name: header.index(name) for name in wanted}
        try:
            self._arrow = _read_arrow(path, sep, len(header), positions)
            self._frame = None
            self.rows = self._arrow.num_rows
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError, OSError):
            self._arrow = None
            self._frame = _read_pandas(path, sep, wanted)
            self.rows = len(self._frame)

    def text(self, column: str | None) -> Factor:
        """A text column as a :class:`Factor` (taken as written, leading blanks dropped by the
        reader); a column the file lacks (None) is all ''."""
        if column is None:
            return Factor.empty(self.rows)
        if self._frame is not None:
            return Factor.of(self._frame[column].to_numpy())
        encoded = self._arrow.column(column).combine_chunks().dictionary_encode()
        uniques = encoded.dictionary.to_numpy(zero_copy_only=False)
        return Factor(encoded.indices.to_numpy(), np.asarray(uniques, dtype=object))

    def counts(self, column: str, *, allow_missing: bool = False) -> np.ndarray:
        """A count column as int64 (:func:`whole_numbers`; errors name file, line, column)."""
        if self._frame is not None:
            values = self._frame[column]
        else:
            text = self._arrow.column(column)
            try:
                numbers = pc.cast(text, pa.int64()).to_numpy()
                if not len(numbers) or numbers.min() >= 0:
                    return numbers
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
            values = pd.Series(text.to_numpy(), dtype=object)
        return whole_numbers(values, self.path, column, allow_missing=allow_missing)


def _gzipped(path) -> bool:
    """Whether the file is gzip-compressed (magic bytes; the name need not end in .gz)."""
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _read_arrow(path, sep: str, width: int, positions: dict[str, int]) -> pa.Table:
    names = [f"column {i}" for i in range(width)]
    for name, index in positions.items():
        names[index] = name
    source = pa.input_stream(str(Path(path)), compression="gzip" if _gzipped(path) else None)
    table = pa_csv.read_csv(
        source,
        read_options=pa_csv.ReadOptions(column_names=names, skip_rows=1, use_threads=False),
        parse_options=pa_csv.ParseOptions(delimiter=sep, quote_char='"', double_quote=True),
        convert_options=pa_csv.ConvertOptions(
            include_columns=list(positions),
            column_types=dict.fromkeys(positions, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    # pandas' skipinitialspace (what the readers used before): leading blanks are not data
    return pa.table([_lstripped(table.column(name)) for name in positions], names=list(positions))


def _lstripped(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column without leading blanks (copied only when a value has one)."""
    if pc.any(pc.starts_with(column, " ")).as_py():
        return pc.utf8_ltrim(column, characters=" ")
    return column


def _read_pandas(path, sep: str, wanted: list[str]) -> pd.DataFrame:
    return pd.read_csv(
        path,
        sep=sep,
        compression="gzip" if _gzipped(path) else None,
        usecols=wanted,
        dtype=dict.fromkeys(wanted, str),
        keep_default_na=False,
        na_filter=False,
        quoting=0,
        engine="c",
        skipinitialspace=True,
    )


def first_rows(codes: np.ndarray) -> np.ndarray:
    """The row of each code's first occurrence, for codes numbered in order of first
    appearance (as :func:`pandas.factorize` numbers them): one pass, no sort."""
    codes = np.asarray(codes)
    if not len(codes):
        return np.array([], dtype=np.int64)
    seen = np.maximum.accumulate(codes)
    return np.flatnonzero(np.concatenate([[True], codes[1:] > seen[:-1]]))
