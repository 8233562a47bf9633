"""The end-of-run summary lists each not-evaluable figure with its reason."""

import pandas as pd

from carmscope.tables.run_summary import not_evaluable, run_summary


def table(tmp_path):
    rows = pd.DataFrame(
        {
            "patient_id": ["P1", "P2", "P3"],
            "car_detected": ["True", "", "False"],
            "car_reason": ["", "no post-infusion biopsy", ""],
            "ctdna_reason": ["", "no plasma samples", "no tumor_variants VCF"],
        }
    )
    path = tmp_path / "patients.tsv"
    rows.to_csv(path, sep="\t", index=False)
    return path


def test_reasons_by_figure_group(tmp_path):
    patients = pd.read_csv(table(tmp_path), sep="\t", dtype=str, keep_default_na=False)
    groups = not_evaluable(patients.set_index("patient_id"))
    assert groups == {
        "car": {"P2": "no post-infusion biopsy"},
        "ctdna": {"P2": "no plasma samples", "P3": "no tumor_variants VCF"},
    }


def test_summary_text(tmp_path):
    text = run_summary(table(tmp_path), max_listed=1)
    assert "  car: 1 of 3 with a reason (not evaluable or partial)" in text
    assert "    P2: no post-infusion biopsy" in text
    assert "  ctdna: 2 of 3 with a reason" in text
    assert "... and 1 more (see the table)" in text
    assert run_summary(tmp_path / "absent.tsv") == ""


def test_summary_lists_the_samples_input_inspection_left_out(tmp_path):
    inventory = tmp_path / "inputs.tsv"
    inventory.write_text(
        "sample_id\tassay\tusable\tproblem\n"
        "S1\tscrna\tTrue\t\n"
        "S2\tcfdna\tFalse\tcf.bam: cannot be read as SAM/BAM/CRAM\n"
    )
    text = run_summary(table(tmp_path), inventory=inventory)
    assert f"  1 sample(s) left out by input inspection ({inventory}):" in text
    assert "    S2: cf.bam: cannot be read as SAM/BAM/CRAM" in text
    assert "S1" not in text
    assert "left out" not in run_summary(table(tmp_path), inventory=tmp_path / "absent.tsv")


def test_a_failed_run_marks_the_tables_stale_until_one_succeeds(tmp_path):
    from carmscope.tables.run_summary import clear_stale, mark_stale

    note = tmp_path / "tables" / "STALE.txt"
    mark_stale(note)
    assert not note.exists()  # no tables folder yet: nothing to mark
    note.parent.mkdir()
    mark_stale(note, when="2026-12-07")
    assert "failed" in note.read_text() and "2026-12-07" in note.read_text()
    clear_stale(note)
    assert not note.exists()
