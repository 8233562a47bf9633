"""Circulating tumour DNA: tumour-informed tracking of a patient's variants in plasma.

One concern per module, plain functions over files and DataFrames:

- :mod:`~carmscope.ctdna.variants`: tumour-variant VCFs, minimal alleles, the variants table;
- :mod:`~carmscope.ctdna.alleles`: allele counts in cfDNA BAMs (:func:`count_alleles`), by
  one of two engines with the same rules: :mod:`~carmscope.ctdna.bamscan` (raw records, C)
  and :mod:`~carmscope.ctdna.pileup` (pysam); read filters in :mod:`~carmscope.ctdna.filters`,
  opening and checking the BAM in :mod:`~carmscope.ctdna.reads`;
- :mod:`~carmscope.ctdna.vendor`: vendor-reported VAF tables in the same schema;
- :mod:`~carmscope.ctdna.background`: per-site background error rates from non-carriers;
- :mod:`~carmscope.ctdna.calls`: detection, mean VAF, tumour fraction, detection limit;
- :mod:`~carmscope.ctdna.response`: change from baseline and molecular-response flags;
- :mod:`~carmscope.ctdna.plots`: spider and waterfall plots.

Methods and references: ``docs/ctdna.md``.
"""
