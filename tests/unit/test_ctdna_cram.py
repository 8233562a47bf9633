"""Plasma reads as CRAM: counted with ctdna.reference (the FASTA they were aligned to) exactly
as the same reads in a BAM."""

import pandas as pd
import pysam

from carmscope.ctdna.sample_counts import bam_counts
from carmscope.ctdna.variants import read_tumour_variants
from tests.config_schema import with_defaults


def test_a_cram_counts_like_its_bam_given_the_reference(tiny_cohort, tmp_path):
    bam_path = tiny_cohort / "cfdna/CARM-001_D8_cf.bam"
    reference = tiny_cohort / "reference/genome.fa"
    cram_path = tmp_path / "CARM-001_D8_cf.cram"
    with (
        pysam.AlignmentFile(str(bam_path)) as bam,
        pysam.AlignmentFile(
            str(cram_path), "wc", template=bam, reference_filename=str(reference)
        ) as cram,
    ):
        for read in bam.fetch(until_eof=True):
            cram.write(read)
    pysam.index(str(cram_path))
    panel = read_tumour_variants(tiny_cohort / "variants/CARM-001.vcf.gz")
    filters = with_defaults()["ctdna"]["filters"]
    expected = bam_counts(bam_path, panel, filters)
    assert expected["alt_count"].sum() > 0
    pd.testing.assert_frame_equal(bam_counts(cram_path, panel, filters, reference), expected)
