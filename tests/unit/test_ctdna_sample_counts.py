"""One sample's counts table: counting an unindexed BAM without writing to it, and labels."""

from __future__ import annotations

import os

import pandas as pd

from carmscope.ctdna.sample_counts import SAMPLE_COLUMNS, bam_counts, label_counts, read_panel
from tests.unit.test_ctdna_alleles import alt_base, read, snv, write_bam


def test_unindexed_sorted_bam_is_counted_through_an_indexed_link(tmp_path, capsys):
    folder = tmp_path / "inputs"
    folder.mkdir()
    bam = write_bam(
        folder / "plasma.bam", [read("r1", 80, alt_base()), read("r2", 70)], index=False
    )
    before = sorted(os.listdir(folder))
    table = bam_counts(bam, snv(), {"min_base_quality": 20})
    assert (table.loc[0, "alt_count"], table.loc[0, "ref_count"]) == (1, 1)
    assert sorted(os.listdir(folder)) == before  # no index written beside the input
    assert "samtools index" in capsys.readouterr().err


def test_labels_come_first_and_day_is_a_nullable_integer():
    counts = pd.DataFrame({"chrom": ["chr1", "chr1"], "alt_count": [1, 0]})
    normal = {"sample_id": "panel_of_normals/1_a", "patient_id": "", "timepoint": "", "day": None}
    labelled = label_counts(counts, normal, "bam")
    assert list(labelled.columns) == [*SAMPLE_COLUMNS, "source", "chrom", "alt_count"]
    assert labelled["day"].dtype == "Int64" and labelled["day"].isna().all()
    assert list(counts.columns) == ["chrom", "alt_count"]  # the input is left as it was
    plasma = {"sample_id": "S1", "patient_id": "P1", "timepoint": "C1D8", "day": 8}
    assert label_counts(counts, plasma, "vendor")["day"].tolist() == [8, 8]


def test_panel_text_columns_stay_text(tmp_path):
    path = tmp_path / "panel.tsv"
    path.write_text("chrom\tpos\tref\talt\tkind\treason\tpatients\n1\t100\tT\tNA\tsnv\t\tP1\n")
    panel = read_panel(path)
    assert panel.loc[0, "chrom"] == "1" and panel.loc[0, "alt"] == "NA"
    assert panel.loc[0, "reason"] == "" and panel.loc[0, "pos"] == 100


def test_another_patients_variants_on_another_assembly_do_not_stop_this_sample(tmp_path):
    """Cohort background mode: the panel holds every patient's variants; one patient's VCF
    naming contigs this BAM lacks (19 vs chr1) makes those variants, not the job, fail."""
    bam = write_bam(tmp_path / "plasma.bam", [read("r1", 80, alt_base()), read("r2", 70)])
    own = snv().assign(patients="P1")
    other = snv().assign(chrom="19", pos=1000, patients="P2")
    panel = pd.concat([own, other], ignore_index=True).assign(kind="snv", evaluable=True, reason="")
    table = bam_counts(bam, panel, {"min_base_quality": 20})
    assert (table.loc[0, "alt_count"], table.loc[0, "ref_count"]) == (1, 1)
    assert not table.loc[1, "evaluable"] and pd.isna(table.loc[1, "depth"])
    assert table.loc[1, "reason"] == (
        f"contig '19' is not in the header of {bam} (variant of P2: its VCF may be on another "
        "assembly or naming, 19 vs chr19)"
    )
