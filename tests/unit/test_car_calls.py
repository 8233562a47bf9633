"""Per-sample calls against background, and the whole CAR analysis on the synthetic cohort."""

import numpy as np
import pandas as pd
import pytest

from carmscope.car.calls import (
    CALL_COLUMNS,
    EVIDENCE_COLUMNS,
    CallSettings,
    background_test,
    call_samples,
    cohort_summary,
)
from carmscope.car.kmers import build_index
from carmscope.car.sample import analyse_sample, load_index, write_sample_outputs
from carmscope.car.scan import ScanSettings
from carmscope.construct import Construct, Segment, read_construct, write_constructs
from carmscope.sheets import baseline_sample, load_sheets

ASSAYS = ("scrna", "bulk_rna")


# --- the test ---------------------------------------------------------------------------------


def test_no_car_reads_is_never_a_detection():
    result = background_test(0, 1_000_000, CallSettings())
    assert result["p_value"] == 1.0 and not result["car_detected"]


def test_reads_far_above_the_floor_are_detected():
    result = background_test(20, 1_000_000, CallSettings(floor_per_million=1.0))
    assert result["expected_background_reads"] == pytest.approx(1.0)
    assert result["p_value"] < 1e-15 and result["car_detected"]


def test_reads_at_the_floor_are_not_detected():
    result = background_test(3, 2_000_000, CallSettings(floor_per_million=1.0))
    assert result["p_value"] > 0.1 and not result["car_detected"]


def test_a_baseline_above_the_floor_raises_the_background():
    settings = CallSettings(floor_per_million=1.0)
    alone = background_test(30, 1_000_000, settings)
    against = background_test(30, 1_000_000, settings, baseline_reads=24, baseline_total=1_000_000)
    assert against["background_per_million"] == pytest.approx(25.0)
    assert alone["car_detected"] and not against["car_detected"]


def test_an_empty_baseline_counts_as_about_one_read():
    result = background_test(8, 20_000, CallSettings(), baseline_reads=0, baseline_total=20_000)
    assert result["expected_background_reads"] == pytest.approx(1.0)
    assert result["car_detected"]


def test_too_few_reads_are_never_a_detection():
    result = background_test(2, 1_000_000, CallSettings(floor_per_million=0.0, min_reads=3))
    assert result["p_value"] == 0.0 and not result["car_detected"]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="alpha"):
        CallSettings(alpha=0)
    with pytest.raises(ValueError, match="floor"):
        CallSettings(floor_per_million=-1)


def evidence_row(sample_id, car_reads, total_reads=1_000_000):
    row = dict.fromkeys(EVIDENCE_COLUMNS, pd.NA)
    row.update(sample_id=sample_id, construct="car", car_reads=car_reads, total_reads=total_reads)
    return row


def test_post_infusion_samples_are_tested_against_their_baseline():
    evidence = pd.DataFrame(
        [evidence_row("pre", 40), evidence_row("post", 45), evidence_row("other", 45)]
    )
    calls = call_samples(evidence, {"post": "pre", "pre": None, "other": "missing"})
    assert list(calls.columns) == [*EVIDENCE_COLUMNS, *CALL_COLUMNS]
    by_sample = calls.set_index("sample_id")
    assert by_sample.loc["post", "background_sample"] == "pre"
    assert by_sample.loc["other", "background_sample"] == ""
    assert not by_sample.loc["post", "car_detected"]
    assert by_sample.loc["other", "car_detected"] and by_sample.loc["pre", "car_detected"]


# --- the synthetic cohort ---------------------------------------------------------------------


def other_car(car: Construct) -> Construct:
    """An absent CAR on the same backbone: CD8a leader and hinge/TM, 4-1BB, CD3 zeta, with
    another scFv (random sequence standing in for it) and the same (G4S)3 linker."""
    rng = np.random.default_rng(19)
    parts = [
        ("CD8A_leader", car.segment_sequence("CD8A_leader"), False),
        ("other_VL", "".join(rng.choice(list("ACGT"), 321)), True),
        ("G4S3_linker", car.segment_sequence("G4S3_linker"), True),
        ("other_VH", "".join(rng.choice(list("ACGT"), 360)), True),
        ("CD8A_hinge_TM", car.segment_sequence("CD8A_hinge_TM"), False),
        ("TNFRSF9_ICD", "".join(rng.choice(list("ACGT"), 126)), False),
        ("CD247_zeta_ICD", car.segment_sequence("CD247_zeta_ICD"), False),
    ]
    segments, start = [], 1
    for name, sequence, specific in parts:
        segments.append(Segment("other_CAR", name, start, start + len(sequence) - 1, specific))
        start += len(sequence)
    return Construct("other_CAR", "".join(p[1] for p in parts), tuple(segments))


@pytest.fixture(scope="module")
def cohort(tiny_cohort):
    """The tiny cohort's tables, truth and sheets."""
    sheets = load_sheets(tiny_cohort / "patients.tsv", tiny_cohort / "samples.tsv")
    truth = pd.read_csv(tiny_cohort / "truth/samples.tsv", sep="\t").set_index("sample_id")
    cells = pd.read_csv(tiny_cohort / "truth/cells.tsv.gz", sep="\t")
    scanned = sheets.samples[sheets.samples["assay"].isin(ASSAYS)]
    return {"sheets": sheets, "truth": truth, "cells": cells, "samples": scanned}


def analyse_cohort(cohort, index):
    """Evidence and cells of every biopsy, and the summary with calls."""
    evidence, cells = [], {}
    for sample_id, row in cohort["samples"].iterrows():
        analysis = analyse_sample(
            sample_id, row["assay"], row["reads"], index, ScanSettings(), counts=row["counts"]
        )
        evidence.append(analysis.evidence)
        cells[sample_id] = analysis.cells
    baselines = {
        sample_id: baseline_sample(cohort["sheets"], row["patient_id"], row["assay"])
        if row["day"] > 0
        else None
        for sample_id, row in cohort["samples"].iterrows()
    }
    summary = cohort_summary(pd.concat(evidence), cohort["samples"], baselines)
    return summary, cells


@pytest.fixture(scope="module")
def analysed(cohort):
    return analyse_cohort(cohort, build_index([read_construct()]))


def test_every_call_matches_the_truth(cohort, analysed):
    summary, _ = analysed
    truth = cohort["truth"]["car_present"].astype(bool)
    called = summary.set_index("sample_id")["car_detected"]
    assert len(called) == len(cohort["samples"]) == 10
    assert called.to_dict() == truth.reindex(called.index).to_dict()
    post = summary[summary["day"] > 0]
    assert (post["background_sample"] != "").all()


def test_per_cell_umis_match_the_simulated_detectable_ones(cohort, analysed):
    _, cells = analysed
    truth = cohort["cells"]
    for sample_id, table in cells.items():
        if table is None:
            continue
        own = truth[truth["sample_id"] == sample_id].set_index("barcode")["car_specific_umis"]
        found = table.set_index("barcode")["car_umis"]
        assert not found[~table.set_index("barcode")["in_count_matrix"]].any()
        found = found.reindex(own.index)
        assert (found <= own).all(), sample_id
        assert found.sum() >= 0.97 * own.sum(), sample_id
        positive = table.set_index("barcode")["car_positive"].reindex(own.index)
        assert (positive == (found > 0)).all()


def test_car_reads_per_million_and_fractions_are_consistent(analysed):
    summary, _ = analysed
    detected = summary[summary["car_detected"]]
    assert (detected["segments_covered"].str.contains("trastuzumab_VH")).all()
    expected = detected["car_reads"] * 1e6 / detected["total_reads"]
    assert np.allclose(detected["car_reads_per_million"], expected)
    single = detected[detected["assay"] == "scrna"]
    assert np.allclose(
        single["car_positive_fraction"], single["car_positive_cells"] / single["cells"]
    )


def test_an_absent_construct_is_never_detected(cohort):
    summary, cells = analyse_cohort(cohort, build_index([other_car(read_construct())]))
    assert not summary["car_detected"].any()
    assert (summary["car_reads"] == 0).all()
    assert all(table is None or table["car_umis"].sum() == 0 for table in cells.values())


def test_both_constructs_configured_find_only_the_one_present(cohort):
    index = build_index([read_construct(), other_car(read_construct())])
    row = cohort["samples"].loc["CARM-001_D8_sc"]
    analysis = analyse_sample("CARM-001_D8_sc", "scrna", row["reads"], index, ScanSettings())
    reads = analysis.evidence.set_index("construct")["car_reads"]
    assert reads["anti_HER2_CAR"] > 50 and reads["other_CAR"] == 0


def test_sample_outputs_are_written(tmp_path, cohort):
    car = read_construct()
    fasta, segments = tmp_path / "car.fa", tmp_path / "car.tsv"
    write_constructs([car], fasta, segments)
    table = tmp_path / "kmers.tsv.gz"
    build_index([car]).to_table().to_csv(table, sep="\t", index=False)
    index = load_index(fasta, segments, table)
    row = cohort["samples"].loc["CARM-001_D8_sc"]
    analysis = analyse_sample(
        "CARM-001_D8_sc", "scrna", row["reads"], index, ScanSettings(), counts=row["counts"]
    )
    paths = {name: tmp_path / name for name in ("e.tsv", "c.tsv.gz", "r.tsv", "p.png", "x.gz")}
    write_sample_outputs(
        analysis,
        evidence=paths["e.tsv"],
        coverage=paths["c.tsv.gz"],
        regions=paths["r.tsv"],
        plot=paths["p.png"],
        cells=paths["x.gz"],
    )
    assert all(path.stat().st_size > 0 for path in paths.values())
    assert paths["p.png"].read_bytes()[:4] == b"\x89PNG"
    cells = pd.read_csv(paths["x.gz"], sep="\t")
    assert len(cells) >= 300 and cells["car_umis"].sum() > 0


def test_a_cohort_without_reads_has_an_empty_summary():
    # biopsies with count matrices only: no sample is scanned, car_calls still writes its table
    from carmscope.car.calls import EVIDENCE_COLUMNS, cohort_summary, read_evidence

    evidence = read_evidence([])
    assert list(evidence.columns) == list(EVIDENCE_COLUMNS)
    samples = pd.DataFrame(columns=["patient_id", "timepoint", "day"])
    summary = cohort_summary(evidence, samples, {})
    assert summary.empty
    assert {"sample_id", "patient_id", "car_detected", "p_value"} <= set(summary.columns)
