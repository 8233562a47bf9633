"""Analyses stop with the inspection's message when a sample's inputs are unusable."""

import pytest

from carmscope.inputs import inspect_sample, usable_samples, write_inventory_row
from carmscope.verdict import UnusableInputError, read_verdict, require_usable


def test_unusable_sample_stops_its_analyses_with_the_inspection_message(tmp_path):
    table = tmp_path / "vaf.tsv"
    table.write_text("chrom\tpos\n")
    row = inspect_sample("S1", "cfdna", str(table), "")
    write_inventory_row(row, tmp_path / "S1.tsv")
    assert read_verdict(tmp_path / "S1.tsv")[:2] == ("S1", False)
    with pytest.raises(UnusableInputError, match=r"sample S1 is left out of the analyses: .*vaf"):
        require_usable(tmp_path / "S1.tsv")


def test_usable_and_old_inventories_pass(tmp_path):
    (tmp_path / "ok.tsv").write_text("sample_id\tassay\tusable\tproblem\nS2\tscrna\tTrue\t\n")
    (tmp_path / "old.tsv").write_text("sample_id\tassay\nS3\tscrna\n")
    require_usable(tmp_path / "ok.tsv")
    require_usable(tmp_path / "old.tsv")
    inventory = tmp_path / "inputs.tsv"
    inventory.write_text("sample_id\tusable\nS1\tFalse\nS2\tTrue\n")
    assert usable_samples(inventory) == {"S2"}
