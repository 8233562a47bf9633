"""Readers shared by every stage and by input inspection: one reader per file format.

* :mod:`carmscope.io.text` -- :func:`open_text` for plain or gzipped text files;
* :mod:`carmscope.io.tenx` -- single-cell count matrices (10x HDF5 of Cell Ranger 3+ and
  1.2/2, 10x MTX folders, ``.h5ad``): what inspection reports, what the expression stage
  reads and what the CAR stage takes from the matrix come from the same code;
* :mod:`carmscope.io.tables` -- the TSV tables the stages write and read back, with one
  convention for text, numbers and missing values (with pandas, or without it for jobs that
  must start fast: ``read_stage_columns``/``write_stage_columns``).
"""
