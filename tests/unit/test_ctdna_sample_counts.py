"""One sample's counts table: counting an unindexed BAM without writing to it, and labels;
the counting job without pandas writes the DataFrame path's table byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from carmscope.ctdna.sample_counts import (
    SAMPLE_COLUMNS,
    bam_counts,
    label_counts,
    read_panel,
    read_panel_columns,
    write_sample_counts,
)
from carmscope.ctdna.vendor import read_vendor_table
from carmscope.errors import LocatedInputError
from carmscope.io.tables import read_stage_table
from tests.unit.test_ctdna_alleles import (
    ALT_OF,
    REFERENCE,
    alt_base,
    read,
    simulated_fragments,
    snv,
    write_bam,
)


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


# --- the counting job without pandas --------------------------------------------------------

SIMULATED_SITES = [120, 150, 151, 200, 290]


def written_panel(path):
    """A panel as the panel rules write it (pandas to_csv) with every kind of row a job meets:
    counted SNVs and indels, a site without reads (depth 0, no VAF), a variant on a contig the
    BAM lacks, variants not evaluable with reasons (one quoted, one with a tab)."""
    from carmscope.ctdna.variants import classify_alleles

    variants = [
        ("chr1", site + 1, REFERENCE[site], ALT_OF[REFERENCE[site]], "P1")
        for site in SIMULATED_SITES
    ]
    variants += [
        ("chr1", 251, REFERENCE[250:252], REFERENCE[250], "P1,P2"),  # a deletion
        ("chr1", 301, REFERENCE[300], REFERENCE[300] + "GA", "P2"),  # an insertion
        ("chr1", 591, REFERENCE[590], ALT_OF[REFERENCE[590]], ""),  # no reads reach it
        ("19", 1000, "C", "T", "P3"),  # another assembly's naming
        ("chr1", 130, REFERENCE[129:131], "GT", "P2"),  # complex: not counted
    ]
    rows = []
    for chrom, pos, ref, alt, patients in variants:
        kind, evaluable, reason = classify_alleles(ref, alt)
        rows.append((chrom, pos, ref, alt, kind, evaluable, reason, patients))
    rows.append(
        ("chr1", 160, "A", "<DEL>", "complex", False, "symbolic ALT '<DEL>', \"quoted\"", "P2")
    )
    rows.append(("chr1", 170, "C", "A", "snv", False, "FILTER is\tLowQual", "P1"))
    columns = ["chrom", "pos", "ref", "alt", "kind", "evaluable", "reason", "patients"]
    pd.DataFrame(rows, columns=columns).to_csv(path, sep="\t", index=False)
    return path


CASES = {
    "plasma": ({"sample_id": "S1", "patient_id": "P1", "timepoint": "C1D8", "day": 8}, {}, True),
    "normal without a day, unindexed": (
        {"sample_id": "panel_of_normals/1_a", "patient_id": "", "timepoint": "", "day": None},
        {"min_base_quality": 0, "count_overlapping_mates_once": False},
        False,
    ),
    "baseline, improper pairs kept": (
        {"sample_id": "S0", "patient_id": "P2", "timepoint": "C1D0", "day": 0.0},
        {"exclude_improper_pairs": False, "min_mapping_quality": 0},
        True,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_job_table_is_byte_identical_to_the_dataframe_path(tmp_path, case):
    """What the job writes without pandas is what label_counts(...).to_csv wrote before."""
    sample, filters, index = CASES[case]
    reads = simulated_fragments(np.random.default_rng(31), SIMULATED_SITES)
    bam = write_bam(tmp_path / "plasma.bam", reads, index=index)
    panel = written_panel(tmp_path / "panel.tsv")
    before = tmp_path / "dataframe.tsv"
    counts = bam_counts(bam, read_panel(panel), filters)
    label_counts(counts, sample, "bam").to_csv(before, sep="\t", index=False)
    after = tmp_path / "job.tsv"
    assert write_sample_counts(after, panel, sample, filters, bam=bam) == counts["evaluable"].sum()
    assert after.read_bytes() == before.read_bytes()
    table = read_stage_table(after, ["reason", "patients"])  # the cases are really there
    assert table["depth"].max() > 20 and table["depth"].eq(0).any()
    assert table["vaf"].notna().sum() == (table["depth"] > 0).sum() > 3
    assert table["reason"].str.startswith("contig '19' is not in the header").sum() == 1
    assert (table["day"].isna().all()) == (sample["day"] is None)


def test_vendor_table_is_written_through_the_dataframe_path(tmp_path):
    panel = written_panel(tmp_path / "panel.tsv")
    vendor = tmp_path / "vendor.tsv"
    site = SIMULATED_SITES[0]
    vendor.write_text(
        f"chrom\tpos\tref\talt\talt_count\tdepth\nchr1\t{site + 1}\t{REFERENCE[site]}\t"
        f"{ALT_OF[REFERENCE[site]]}\t3\t120\n"
    )
    sample = {"sample_id": "S2", "patient_id": "P1", "timepoint": "C1D8", "day": 8}
    before = tmp_path / "dataframe.tsv"
    counts = read_vendor_table(vendor, read_panel(panel))
    label_counts(counts, sample, "vendor").to_csv(before, sep="\t", index=False)
    after = tmp_path / "job.tsv"
    assert write_sample_counts(after, panel, sample, {}, vendor=vendor) == 1
    assert after.read_bytes() == before.read_bytes()


def test_panel_cells_that_cannot_be_read_are_named(tmp_path):
    path = tmp_path / "panel.tsv"
    path.write_text("chrom\tpos\tref\talt\tkind\tevaluable\treason\nchr1\t10\tA\tC\tsnv\tyes\t\n")
    with pytest.raises(LocatedInputError, match=r"panel\.tsv, line 2, column 'evaluable'"):
        read_panel_columns(path)


JOB = """
import json, runpy, sys

class Files(list):
    '''Files as snakemake.input/output hold them: a list, the named ones also as attributes.'''
    def __init__(self, files):
        named = files if isinstance(files, dict) else {}
        super().__init__(named.values() if named else files)
        self.__dict__.update(named)
    def get(self, name, default=None):
        return self.__dict__.get(name, default)

script, job = sys.argv[1], json.loads(sys.argv[2])
snakemake = type("Snakemake", (), {})()
for name in ("input", "output", "log"):
    setattr(snakemake, name, Files(job[name]))
snakemake.params = type("Params", (), job["params"])()
runpy.run_path(script, init_globals={"snakemake": snakemake})
print(json.dumps(sorted(sys.modules)))
"""
HEAVY = {"pandas", "pyarrow", "scipy", "matplotlib"}
"""What a counting job must not load (NumPy it may: the record scan's arrays)."""


def run_job(repo, script, **job) -> list[str]:
    """Run a workflow script in a fresh Python as Snakemake would (``job``: its input, output,
    log and params); the modules it loaded."""
    path = repo / "workflow/scripts" / script
    run = subprocess.run(
        [sys.executable, "-c", JOB, str(path), json.dumps(job, default=str)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(run.stdout)


def test_counting_job_imports_neither_pandas_nor_pyarrow(tmp_path, repo):
    """The ctdna_count_alleles script, run on a BAM as Snakemake runs it, loads no pandas (or
    the pyarrow it brings): most of a job's start-up (docs/ctdna.md, "Job start-up")."""
    bam = write_bam(tmp_path / "plasma.bam", [read("r1", 80, alt_base()), read("r2", 70)])
    panel = tmp_path / "panel.tsv"
    snv().assign(kind="snv", evaluable=True, reason="", patients="P1").to_csv(
        panel, sep="\t", index=False
    )
    verdict = tmp_path / "verdict.tsv"
    verdict.write_text("sample_id\tusable\tproblem\nS1\tTrue\t\n")
    output, log = tmp_path / "counts.tsv", tmp_path / "job.log"
    sample = {"sample_id": "S1", "patient_id": "P1", "timepoint": "C1D8", "day": 8}
    modules = run_job(
        repo,
        "ctdna_count_alleles.py",
        input={"verdict": verdict, "panel": panel, "bam": bam, "reference": []},
        output=[output],
        log=[log],
        params={"sample": sample, "filters": {}},
    )
    assert "carmscope.ctdna.bamscan" in modules  # it did count, with the record scan
    assert log.read_text() == "S1: 1 sites counted\n"
    table = read_stage_table(output)
    assert (table.loc[0, "alt_count"], table.loc[0, "ref_count"], table.loc[0, "day"]) == (1, 1, 8)
    assert [name for name in modules if name.split(".")[0] in HEAVY] == []


def test_normals_job_writes_the_dataframe_tables_without_pandas(tmp_path, repo):
    """ctdna_count_normals: one table per normal BAM (one of them unindexed), each the
    DataFrame path's byte for byte, and no pandas loaded."""
    reads = simulated_fragments(np.random.default_rng(5), SIMULATED_SITES)
    bams = [
        write_bam(tmp_path / "normal_a.bam", reads),
        write_bam(tmp_path / "normal_b.bam", reads[::2], index=False),
    ]
    panel = written_panel(tmp_path / "panel.tsv")
    samples = [
        {"sample_id": f"panel_of_normals/{name}", "patient_id": "", "timepoint": "", "day": None}
        for name in ("a", "b")
    ]
    outputs = [tmp_path / "a.tsv", tmp_path / "b.tsv"]
    modules = run_job(
        repo,
        "ctdna_count_normals.py",
        input={"bams": bams, "panel": panel},
        output=outputs,
        log=[tmp_path / "job.log"],
        params={"samples": samples, "filters": {"min_base_quality": 13}},
    )
    assert [name for name in modules if name.split(".")[0] in HEAVY] == []
    for bam, sample, output in zip(bams, samples, outputs, strict=True):
        before = tmp_path / "dataframe.tsv"
        counts = bam_counts(bam, read_panel(panel), {"min_base_quality": 13})
        label_counts(counts, sample, "bam").to_csv(before, sep="\t", index=False)
        assert output.read_bytes() == before.read_bytes()
