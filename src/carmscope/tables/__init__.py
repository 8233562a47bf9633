"""The deliverables a trial team reads: per-patient and per-sample result tables, the cohort
summary with its paired tests, the Excel workbook, the data dictionary and the report figures.

Every function here works on the tables the analysis stages wrote (``results/car``,
``results/expression``, ``results/ctdna``, ``results/qc``), loaded by
:func:`carmscope.tables.steps.read_step_outputs`; nothing is recomputed from raw data.
Columns and methods: ``docs/outputs.md`` (rendered from :mod:`carmscope.tables.dictionary`).
"""
