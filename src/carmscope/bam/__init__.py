"""The shared reader of alignment files: BGZF blocks, BAM records, indexes, CRAM references.

Every stage that reads BAM/CRAM goes through this package, so two stages cannot disagree about
a file:

- :mod:`carmscope.bam._native` (C, ``_native.c``): the one compiled BGZF/BAM record kernel.
  It inflates BGZF blocks with libdeflate and walks raw records for the CAR scan
  (:mod:`carmscope.car.bam`, :mod:`carmscope.car.kmers`) and the ctDNA allele counting
  (:mod:`carmscope.ctdna.bamscan`).
- :mod:`carmscope.bam.bgzf`: BGZF blocks and the BAM header in Python (header, split points).
- :mod:`carmscope.bam.index`: where a file's index is (``.bai``, ``.csi``, ``.crai``) and what
  happens without one (one policy, ``docs/alignment_files.md``).
- :mod:`carmscope.bam.alignments`: opening a BAM/CRAM with pysam: the CRAM reference check and
  the sort order (from the header, or from the records when the header is silent).
"""
