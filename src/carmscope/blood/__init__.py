"""Blood: CAR-M cellular kinetics by non-compartmental analysis, and serum cytokines.

Modules: :mod:`~carmscope.blood.measurements` (the ``car_pcr``/``cytokines`` table reader),
:mod:`~carmscope.blood.nca` (NCA), :mod:`~carmscope.blood.series` (the cohort's blood series),
:mod:`~carmscope.blood.cytokines` (baseline, peak, fold), :mod:`~carmscope.blood.cohort`
(kinetics table, patient columns, summaries, CRS associations). Methods: docs/blood.md.
"""
