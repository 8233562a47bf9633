"""Snakemake adapter: inspect one patient's blood draws' tables (carmscope.inputs)."""

import sys

from carmscope.inputs import inspect_blood_draws, write_inventory_rows

sys.stderr = open(snakemake.log[0], "w")

rows = inspect_blood_draws(snakemake.params.draws, strict=snakemake.params.strict)
write_inventory_rows(rows, snakemake.output[0])
print(f"{len(rows)} draws, {sum(not row['usable'] for row in rows)} unusable", file=sys.stderr)
