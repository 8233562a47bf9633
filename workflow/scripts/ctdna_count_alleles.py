"""Snakemake adapter: allele counts of one plasma (or panel-of-normals) sample at the panel."""

import os
import sys
import tempfile

import pandas as pd
import pysam

from carmscope.ctdna.alleles import AlleleFilters, count_alleles, ensure_index
from carmscope.ctdna.vendor import read_vendor_table

sys.stderr = open(snakemake.log[0], "w")

TEXT = {column: str for column in ("chrom", "ref", "alt", "kind", "reason", "patients")}


def indexed(bam_path: str, folder: str) -> str:
    """The BAM, or a link to it indexed in ``folder`` when it is sorted but has no index.

    Inputs are never written to; unsorted or unreadable BAMs are left for count_alleles,
    whose error says how to fix them.
    """
    try:
        with pysam.AlignmentFile(bam_path, "rb") as bam:
            has_index = bam.has_index()
            order = bam.header.to_dict().get("HD", {}).get("SO")
    except (OSError, ValueError):
        return bam_path
    if has_index or order != "coordinate":
        return bam_path
    link = os.path.join(folder, os.path.basename(bam_path))
    os.symlink(os.path.abspath(bam_path), link)
    ensure_index(link)
    print(
        f"{bam_path} has no index: indexed a link to it in a temporary folder for this job; "
        f"index it once to save this step: samtools index {bam_path}",
        file=sys.stderr,
    )
    return link


panel = pd.read_csv(snakemake.input.panel, sep="\t", dtype=TEXT, keep_default_na=False)
if snakemake.input.get("bam"):
    source = "bam"
    with tempfile.TemporaryDirectory(prefix="carmscope-ctdna-") as folder:
        bam = indexed(snakemake.input.bam, folder)
        counts = count_alleles(bam, panel, AlleleFilters(**snakemake.params.filters))
else:
    source = "vendor"
    counts = read_vendor_table(snakemake.input.vendor, panel)
sample = snakemake.params.sample
counts.insert(0, "source", source)
for position, column in enumerate(("sample_id", "patient_id", "timepoint", "day")):
    counts.insert(position, column, sample[column])
counts["day"] = pd.array(counts["day"], dtype="Int64")
counts.to_csv(snakemake.output[0], sep="\t", index=False)
print(f"{sample['sample_id']}: {int(counts['evaluable'].sum())} sites counted", file=sys.stderr)
