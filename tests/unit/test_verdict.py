"""A sample whose inputs inspection found unusable is left out of the analyses with the
inspection's message: its outputs carry the reason, the next steps pass it on, cohort steps
leave it out (an analysis asked to require the sample stops with the message)."""

import re

from carmscope.inputs import inspect_sample, usable_samples, write_inventory_row
from carmscope.verdict import (
    carry_left_out,
    kept,
    kept_by_key,
    leave_out,
    left_out,
    left_out_reason,
    read_verdict,
    usable_mask,
)


def test_unusable_sample_is_left_out_with_the_inspection_message(tmp_path):
    table = tmp_path / "vaf.tsv"
    table.write_text("chrom\tpos\n")
    row = inspect_sample("S1", "cfdna", str(table), "")
    write_inventory_row(row, tmp_path / "S1.tsv")
    assert read_verdict(tmp_path / "S1.tsv")[:2] == ("S1", False)
    assert re.match(r"sample S1 is left out of the analyses: .*vaf", left_out(tmp_path / "S1.tsv"))


def test_usable_and_old_inventories_pass(tmp_path):
    (tmp_path / "ok.tsv").write_text("sample_id\tassay\tusable\tproblem\nS2\tscrna\tTrue\t\n")
    (tmp_path / "old.tsv").write_text("sample_id\tassay\nS3\tscrna\n")
    assert left_out(tmp_path / "ok.tsv") == left_out(tmp_path / "old.tsv") == ""
    inventory = tmp_path / "inputs.tsv"
    inventory.write_text("sample_id\tusable\nS1\tFalse\nS2\tTrue\n")
    assert usable_samples(inventory) == {"S2"}


def unusable_row(tmp_path):
    table = tmp_path / "vaf.tsv"
    table.write_text("chrom\tpos\n")
    write_inventory_row(inspect_sample("S1", "cfdna", str(table), ""), tmp_path / "S1.tsv")
    return tmp_path / "S1.tsv"


def test_a_left_out_sample_marks_every_output_with_the_reason(tmp_path):
    outputs = [tmp_path / "out/counts.tsv", tmp_path / "out/cells.tsv.gz", tmp_path / "plot.png"]
    reason = leave_out(unusable_row(tmp_path), outputs)
    assert reason.startswith("sample S1 is left out of the analyses: ") and "vaf.tsv" in reason
    assert left_out_reason(outputs[0]) == left_out_reason(outputs[1]) == reason
    # a figure output is an image saying so, not text a viewer cannot show
    assert outputs[2].read_bytes().startswith(b"\x89PNG")
    assert left_out_reason(outputs[2]) == ""
    # the next step passes the mark on; a cohort step leaves the marked files out
    usable = tmp_path / "usable.tsv"
    usable.write_text("sample_id\tvalue\nS2\t1\n")
    passed_on = [tmp_path / "next.tsv"]
    assert carry_left_out([usable, outputs[0]], passed_on) == reason
    assert left_out_reason(passed_on[0]) == reason
    assert carry_left_out([usable, tmp_path], [tmp_path / "other.tsv"]) == ""
    assert not (tmp_path / "other.tsv").exists()
    assert kept([outputs[0], usable, passed_on[0]]) == [str(usable)]
    assert kept(str(usable)) == [str(usable)]
    assert kept_by_key({"S1": outputs[0], "S2": usable}) == {"S2": str(usable)}


def test_a_usable_sample_is_not_left_out(tmp_path):
    (tmp_path / "ok.tsv").write_text("sample_id\tassay\tusable\tproblem\nS2\tscrna\tTrue\t\n")
    output = tmp_path / "out.tsv"
    assert leave_out(tmp_path / "ok.tsv", [output]) == ""
    assert not output.exists()
    assert usable_mask([tmp_path / "ok.tsv", unusable_row(tmp_path)]) == [True, False]
    assert usable_mask(str(tmp_path / "ok.tsv")) == [True]
