"""Paths of the input inspection rules (``workflow/rules/inputs.smk``), for them and for the
rules that read the inventory."""

RESULTS = "results/qc"
SAMPLE = RESULTS + "/inputs/{sample}.tsv"
"""One sample's inspection (wildcard ``sample``)."""
INVENTORY = RESULTS + "/inputs.tsv"
"""Every sample's inspection, one row each."""
