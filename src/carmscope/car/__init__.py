"""CAR transcript detection in biopsy reads (methods: ``docs/car_detection.md``).

Modules
-------
kmers
    The construct-specific k-mer index (:func:`~carmscope.car.kmers.build_index`).
bam, text
    Compiled, streaming prefilters of BAM records and of FASTQ/text sequences.
evidence
    Whether one read proves a construct, and where it lies on it.
formats
    A reads file's format from its content (BAM, CRAM, SAM, FASTQ).
scan
    Scan a BAM/CRAM/SAM/FASTQ file: CAR reads per construct, cell and UMI; targeted mode
    (:func:`~carmscope.car.scan.scan_reads`).
tally
    The counts of one scan: per construct, cell and UMI, and along the construct.
coverage
    Depth along the construct, segments and junctions covered; table and plot.
matrix_feature
    The CAR feature of a count matrix built with the construct.
cells
    The per-cell table, joined to the count matrix and to cell types.
calls
    Per-sample evidence and the call against background.

The compiled kernels (k-mer lookups, the BAM reader and record walk, the per-read placement)
are the package's one C extension, :mod:`carmscope.bam._native` (``src/carmscope/bam/``).

Nothing here knows of Snakemake; ``workflow/scripts/car_*.py`` are thin adapters.
"""
