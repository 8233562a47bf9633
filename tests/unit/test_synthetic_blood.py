"""The synthetic cohort's blood draws: the blood stage recovers every figure of the truth."""

import math

import pandas as pd
import pytest

from carmscope.blood.cohort import BloodSettings, kinetics_table
from carmscope.blood.stage import blood_tables
from carmscope.sheets import load_sheets
from carmscope.synthetic import blood
from carmscope.synthetic.design import PRESETS, design_cohort
from carmscope.synthetic.tables import write_tables

FIGURES = ("cmax", "tmax_h", "clast", "tlast_h", "auc_0_tlast", "half_life_h")


@pytest.fixture(scope="module", params=["tiny", "default"])
def cohort(request, tmp_path_factory):
    """The preset's tables, its blood files (only those) and the blood truth."""
    root = tmp_path_factory.mktemp(request.param)
    params = PRESETS[request.param]
    patients = design_cohort(params)
    data_dir = root / "cohort"
    for patient in patients:
        values = blood.patient_values(patient, params.seed)
        for sample in patient.samples:
            if sample.assay in blood.ASSAYS:
                path = data_dir / sample.counts
                path.parent.mkdir(parents=True, exist_ok=True)
                blood.write_blood_sample(path, values, sample.sample_id)
    (data_dir / "truth").mkdir()
    blood.write_truth(data_dir / "truth", patients, params.seed)
    paths = write_tables(patients, root / "tables", data_dir)
    sheets = load_sheets(*paths, generated_dirs=[data_dir])
    settings = BloodSettings(half_life_min_adj_r2=blood.MIN_ADJ_R2)
    tables = blood_tables(sheets.samples, sheets.patients, settings)
    truth = pd.read_csv(data_dir / "truth" / "blood_kinetics.tsv", sep="\t")
    cytokines = pd.read_csv(data_dir / "truth" / "blood_cytokines.tsv", sep="\t")
    return patients, tables, truth, cytokines


def test_every_kinetic_figure_matches_the_truth(cohort):
    _, tables, truth, _ = cohort
    qpcr = tables.kinetics[tables.kinetics["measure"] == "qpcr"].set_index("patient_id")
    truth = truth.set_index("patient_id")
    evaluable = truth[truth["evaluable"]]
    assert len(evaluable) >= 2
    for patient, expected in evaluable.iterrows():
        ours = qpcr.loc[patient]
        for figure in FIGURES:
            if math.isnan(expected[figure]):
                assert math.isnan(ours[figure]), (patient, figure)
            else:
                assert ours[figure] == pytest.approx(expected[figure], rel=1e-9), (patient, figure)
        assert ours["half_life_points"] == expected["half_life_points"]


def test_single_draw_and_no_qpcr_patients_are_not_evaluable(cohort):
    patients, tables, _, _ = cohort
    kinetics = tables.kinetics.set_index("patient_id")
    for patient in patients:
        if patient.template in blood.SINGLE_DRAW_TEMPLATES:
            assert kinetics.loc[patient.patient_id, "reason"].startswith("a single blood sample")
        if patient.template in blood.NO_QPCR_TEMPLATES:
            assert kinetics.loc[patient.patient_id, "reason"] == "no blood samples"
            assert kinetics.loc[patient.patient_id, "measure"] == ""


def test_every_cytokine_figure_matches_the_truth(cohort):
    _, tables, _, truth = cohort
    ours = tables.cytokines.set_index(["patient_id", "analyte"])
    assert len(truth) > 0
    for row in truth.itertuples():
        mine = ours.loc[(row.patient_id, row.analyte)]
        for figure in ("baseline", "peak", "tmax_h", "peak_fold"):
            expected = getattr(row, figure)
            if math.isnan(expected):
                assert math.isnan(mine[figure])
            else:
                assert mine[figure] == pytest.approx(expected, rel=1e-9)


def test_crs_grades_flags_and_associations_run(cohort):
    patients, tables, _, _ = cohort
    grades = tables.patients.set_index("patient_id")["crs_grade"]
    assert list(grades) == [patient.crs_grade for patient in patients]
    crs = tables.crs.set_index("endpoint")
    assert "cytokine_IL6_peak_fold" in crs.index and "car_blood_cmax" in crs.index
    il6 = crs.loc["cytokine_IL6_peak_fold"]
    if il6["n_crs"] and il6["n_no_crs"]:
        assert 0 < il6["p_value"] <= 1
    else:  # tiny: the one patient without CRS has a single draw, so no fold
        assert math.isnan(il6["p_value"]) and il6["reason"]
    if len(patients) == 14:  # the trial's 9 of 14 with CRS; their IL-6 rises far more
        assert (grades != "0").sum() == 9
        assert crs.loc["cytokine_IL6_peak_fold", "p_value"] < 0.01
    assert set(tables.summary["stratum"]) >= {"all", "dosing", "her2_ihc"}


def test_pbmc_bulk_rna_kinetics_through_the_car_scan(tmp_path):
    """PBMC bulk RNA of a synthetic patient (template 5, single dose): its reads written by the
    generator, scanned and called by the CAR stage's functions, give the blood stage's
    bulk_rna kinetics; times exactly as in the truth, levels within the scan's sensitivity
    (only CAR reads with construct-specific sequence count)."""
    from carmscope.car.calls import CallSettings, cohort_summary
    from carmscope.car.evidence import EvidenceSettings
    from carmscope.car.sample import analyse_sample, load_index
    from carmscope.car.scan import ScanSettings
    from carmscope.synthetic.cohort import generate_patient, prepare
    from carmscope.synthetic.design import CohortParams
    from tests.conftest import REPO

    params = CohortParams(
        n_patients=1,
        templates=(5,),
        cells_per_biopsy=100,
        n_background_genes=500,
        host_reads_per_cell=5,
        bulk_reads=20_000,
        reference_contigs=1,
        reference_contig_length=20_000,
    )
    construct = REPO / "resources/car/anti_her2_car.fa"
    segments = REPO / "resources/car/anti_her2_car.segments.tsv"
    simulation = prepare(
        params,
        tmp_path,
        construct_fasta=construct,
        segments_tsv=segments,
        gmt_paths=[REPO / "resources/genesets/hallmark_inflammation.v7.0.gmt"],
        signatures_tsv=REPO / "resources/genesets/immune_signatures.tsv",
    )
    patient = next(iter(simulation.patients.values()))
    generate_patient(simulation, patient.patient_id)
    pbmc = [s for s in patient.samples if s.assay == "bulk_rna" and s.tissue == "blood"]
    assert len(pbmc) == len(blood.PBMC_HOURS)
    index = load_index(construct, segments)
    settings = ScanSettings(evidence=EvidenceSettings(8, 0.1))
    evidence = pd.concat(
        [
            analyse_sample(s.sample_id, "bulk_rna", tmp_path / s.reads, index, settings).evidence
            for s in pbmc
        ]
    )
    sheet = pd.DataFrame(
        {
            "patient_id": patient.patient_id,
            "timepoint": [s.timepoint for s in pbmc],
            "day": [s.day for s in pbmc],
            "hours": [s.hours for s in pbmc],
            "assay": "bulk_rna",
            "tissue": "blood",
            "counts": "",
            "reads": [s.reads for s in pbmc],
        },
        index=pd.Index([s.sample_id for s in pbmc], name="sample_id"),
    )
    pre = pbmc[0].sample_id
    baselines = {s.sample_id: (pre if s.hours > 0 else "") for s in pbmc}
    summary = cohort_summary(evidence, sheet, baselines, CallSettings())
    summary.to_csv(tmp_path / "summary.tsv", sep="\t", index=False)
    from carmscope.blood.series import read_car_summary, rna_series

    series = rna_series(sheet, read_car_summary(tmp_path / "summary.tsv"))
    ours = kinetics_table(series, [patient.patient_id]).iloc[0]
    truth = blood.kinetics_truth(
        blood.pbmc_values(patient, params.seed, params.bulk_reads), assay="bulk_rna"
    )
    assert ours["measure"] == "bulk_rna" and truth["evaluable"]
    assert (ours["tmax_h"], ours["tlast_h"]) == (truth["tmax_h"], truth["tlast_h"])
    assert 0.5 * truth["cmax"] <= ours["cmax"] <= truth["cmax"]
    assert 0.5 * truth["auc_0_tlast"] <= ours["auc_0_tlast"] <= truth["auc_0_tlast"]
