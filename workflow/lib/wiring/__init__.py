"""The workflow's wiring: output and log paths, wildcards, input functions, resources and
parse-time checks of the rules in ``workflow/rules/``.

Only the workflow imports this package (``workflow/rules/common.smk`` puts ``workflow/lib`` on
the path; the tests import it the same way). The analyses live in the ``carmscope`` package
under ``src/``, which knows nothing of Snakemake: its functions take data and the files to
write, never ``results/`` or ``logs/`` paths, wildcards or config defaults (those live in
``config/schemas/config.schema.yaml`` alone).

Modules: ``car``, ``ctdna``, ``tables``, ``tcr`` (one per stage whose rules need Python beyond
``common.smk``) and ``resources`` (memory and time of every rule).
"""
