"""What the CAR rules need from the config and the sample sheets (workflow/lib/wiring/car.py)."""

import re

import pytest
from wiring import car as rules

from carmscope.sheets import load_sheets
from tests.config_schema import with_defaults


@pytest.fixture(scope="module")
def sheets(tiny_cohort):
    return load_sheets(tiny_cohort / "patients.tsv", tiny_cohort / "samples.tsv")


def settings(section=None):
    """The ``car`` section as the rules get it: filled with the schema's defaults."""
    return with_defaults({"car": section or {}})["car"]


def test_defaults_fill_a_partial_section(repo):
    car = settings({"construct": "x.fa", "host_transcripts": None, "targeted": {"enabled": True}})
    assert car["construct"] == "x.fa" and car["kmer_size"] == 19
    assert car["targeted"] == {"enabled": True, "bed": None, "construct_contigs": []}
    # every key the CAR rules read has a default in the schema
    read = set(re.findall(r'CAR\["(\w+)"\]', (repo / "workflow/rules/car.smk").read_text()))
    assert read and read <= set(settings())


def test_outputs_cover_every_biopsy_with_reads(sheets):
    outputs = rules.outputs(sheets.samples)
    assert outputs[0] == "results/car/summary.tsv"
    assert "results/car/scrna/CARM-001_D8_sc/cells.tsv.gz" in outputs
    assert "results/car/bulk_rna/CARM-003_D8_bulk/coverage.png" in outputs
    assert not any("_cf" in path for path in outputs)
    assert not any("bulk_rna" in path and "cells" in path for path in outputs)
    assert len(rules.evidence_files(sheets.samples)) == 10


def test_post_infusion_biopsies_are_tested_against_their_baseline(sheets):
    baselines = rules.baselines(sheets)
    assert baselines["CARM-001_D8_sc"] == "CARM-001_screening_sc"
    assert baselines["CARM-003_D8_bulk"] == "CARM-003_screening_bulk"
    assert baselines["CARM-001_screening_sc"] == ""
    table = rules.sample_table(sheets.samples)
    assert table["CARM-002_D8_sc"] == {"patient_id": "CARM-002", "timepoint": "D8", "day": 8}


def test_scan_inputs(sheets, tiny_cohort):
    car = settings({"targeted": {"enabled": True, "bed": "loci.bed"}})
    scrna = rules.scan_inputs(sheets.samples, "CARM-001_D8_sc", car)
    assert set(scrna) == {"reads", "counts", "reads_index", "targeted_bed"}
    assert scrna["reads_index"] == scrna["reads"] + ".bai"
    bulk = rules.scan_inputs(sheets.samples, "CARM-003_D8_bulk", settings())
    assert set(bulk) == {"reads"}
    assert rules.index_inputs(settings({"host_transcripts": "t.fa"}))["host_transcripts"] == "t.fa"
    assert rules.scan_runtime(5000, 2) == 30


def test_kernels_are_built_in_this_checkout():
    assert rules.kernels_not_built() is None


def test_missing_kernels_are_named_with_the_fix(monkeypatch):
    real_find_spec = rules.importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "carmscope.bam._native" else real_find_spec(name, *args)

    monkeypatch.setattr(rules.importlib.util, "find_spec", find_spec)
    message = rules.kernels_not_built()
    assert "carmscope.bam._native" in message and "make setup" in message


def test_pbmc_samples_are_tested_against_the_pre_infusion_pbmc(tiny_cohort):
    """A PBMC bulk sample (tissue blood) takes the patient's pre-infusion PBMC as background,
    not its tumour biopsy; a 2-hour draw on day 0 is post-infusion by its hours."""
    samples = (tiny_cohort / "samples.tsv").read_text().splitlines()
    header = samples[0].split("\t")
    bulk = next(line for line in samples if "CARM-003_screening_bulk" in line).split("\t")
    rows = []
    for sample_id, day, hours in (("PBMC_pre", "0", "-1"), ("PBMC_h2", "0", "2")):
        row = dict(zip(header, bulk, strict=True))
        row.update(sample_id=sample_id, timepoint=sample_id, day=day, hours=hours, tissue="blood")
        rows.append("\t".join(row[column] for column in header))
    table = tiny_cohort / "samples_with_pbmc.tsv"  # beside the data: paths stay relative
    table.write_text("\n".join([*samples, *rows]) + "\n")
    try:
        sheets = load_sheets(tiny_cohort / "patients.tsv", table)
    finally:  # the cohort is shared: a test comparing its files must not find this one
        table.unlink()
    baselines = rules.baselines(sheets)
    assert baselines["PBMC_h2"] == "PBMC_pre"
    assert baselines["CARM-003_D8_bulk"] == "CARM-003_screening_bulk"


def test_a_local_scan_takes_at_most_half_the_cores():
    # a scan needing every core of a local run would wait while one-thread jobs keep starting
    assert rules.scan_threads(4, 2) == 1
    assert rules.scan_threads(4, 3) == 1
    assert rules.scan_threads(4, 8) == 4
    assert rules.scan_threads(4, 6) == 3
    assert rules.scan_threads(1, 1) == 1
    assert rules.scan_threads(4, None) == 4  # a cluster job gets what it asks for
