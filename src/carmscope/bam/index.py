"""Where an alignment file's index is, and what happens when it has none (one policy).

The policy (``docs/alignment_files.md``), the same for every stage and for input inspection:

- An index is looked for beside the file, under the names htslib (samtools, pysam) tries, in
  its order: for ``x.bam`` first ``x.bam.csi``, ``x.csi``, then ``x.bam.bai``, ``x.bai``; for
  ``x.cram`` ``x.cram.crai``, then ``x.crai`` (:func:`find_index`). A ``.csi`` beside a ``.bai``
  wins, as it does in htslib.
- Reading a whole file (the full CAR scan) needs no index.
- Reading by position (ctDNA allele counting, the targeted CAR scan) without an index: the file
  is indexed for the job, through a link in a temporary folder of the job (inputs are never
  written to), and the job's log says so and how to index it once (:func:`indexed`). Only a
  coordinate-sorted file can be indexed; any other is refused with the sort command.
- Input inspection reports whether an index was found (``reads_indexed``) and never refuses a
  sorted file for lacking one.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import TextIO

INDEX_SUFFIXES = {".bam": (".csi", ".bai"), ".cram": (".crai",)}
"""Index suffixes htslib tries for each alignment format, in its order."""


def index_candidates(path: str | os.PathLike) -> list[str]:
    """Every file name that could hold the index of ``path``, in the order htslib tries them.

    A file named neither ``.bam`` nor ``.cram`` (formats are told by content elsewhere) gets the
    BAM names and then the CRAM ones.
    """
    path = str(path)
    stem, extension = os.path.splitext(path)
    suffixes = INDEX_SUFFIXES.get(extension.lower(), (".csi", ".bai", ".crai"))
    candidates: list[str] = []
    for suffix in suffixes:
        candidates.append(path + suffix)
        if extension:
            candidates.append(stem + suffix)
    return candidates


def find_index(path: str | os.PathLike) -> str | None:
    """The index htslib would use for ``path`` (first of :func:`index_candidates` that exists),
    or None."""
    return next((name for name in index_candidates(path) if os.path.exists(name)), None)


def index_advice(path: str | os.PathLike) -> str:
    """The command that indexes ``path`` once, beside it."""
    return f"samtools index {path}"


@contextlib.contextmanager
def indexed(path: str | os.PathLike, *, log: TextIO | None = None) -> Iterator[str]:
    """``path`` itself when it has an index, else a link to it indexed in a temporary folder.

    The link and its index are removed on leaving the ``with`` block; the input is never
    written to. A note goes to ``log`` (default: standard error, the job's log).

    Parameters
    ----------
    path
        A coordinate-sorted BAM or CRAM.
    log
        Where the note on indexing goes.

    Raises
    ------
    IndexingError
        When indexing fails (the message names the file and says to sort it, which is the
        usual reason).
    """
    path = str(path)
    if find_index(path) is not None:
        yield path
        return
    import pysam  # only when indexing is needed

    with tempfile.TemporaryDirectory(prefix="carmscope-index-") as folder:
        link = os.path.join(folder, os.path.basename(path))
        os.symlink(os.path.abspath(path), link)
        try:
            pysam.index(link)
        except pysam.SamtoolsError as error:
            raise IndexingError(
                path,
                f"has no index and cannot be indexed ({str(error).strip()}); sort and index "
                f"it: samtools sort -o sorted.bam {path} && samtools index sorted.bam",
            ) from error
        print(
            f"{path} has no index: indexed a link to it in a temporary folder for this job; "
            f"index it once to save this step: {index_advice(path)}",
            file=log or sys.stderr,
        )
        yield link


class IndexingError(ValueError):
    """An alignment file that has no index and cannot be indexed; the message names it."""

    def __init__(self, path: str | os.PathLike, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)
