"""The synthetic cohort's design: CT-0508 shape, determinism, truth definitions."""

from collections import Counter
from dataclasses import replace

import pytest

from carmscope.celltypes import CELL_TYPES
from carmscope.synthetic.design import (
    PRESETS,
    CohortParams,
    ctdna_flags,
    design_cohort,
    design_patient,
    params_from_config,
    plasma_normals,
    plasma_reads,
    rng_for,
    synthetic_job_resources,
)


@pytest.fixture(scope="module")
def default_cohort():
    return design_cohort(PRESETS["default"])


def test_default_cohort_mirrors_ct0508(default_cohort):
    assert len(default_cohort) == 14
    assert Counter(p.indication for p in default_cohort) == {
        "breast": 8,
        "gastroesophageal": 2,
        "salivary": 2,
        "cholangiocarcinoma": 1,
        "ovarian": 1,
    }
    assert Counter(p.her2_ihc for p in default_cohort) == {"3+": 9, "2+": 5}
    assert set(p.dosing for p in default_cohort) == {"fractionated", "single"}
    # CAR-M in 13 of 14 post-infusion biopsies (92%)
    assert sum(p.car_positive for p in default_cohort) == 13
    # a ctDNA fall (>= 50% at some post-infusion timepoint) in 8 of the 13 evaluable patients
    evaluable = [p for p in default_cohort if p.ctdna_trajectory]
    assert len(evaluable) == 13
    fell = [
        p
        for p in evaluable
        if min(s.ctdna_fold for s in p.samples if s.assay == "cfdna" and s.day > 0) <= 0.5
    ]
    assert len(fell) == 8


def test_every_patient_has_screening_and_post_biopsy_and_plasma(default_cohort):
    for patient in default_cohort:
        scrna = [s for s in patient.samples if s.assay == "scrna"]
        assert [s.day <= 0 for s in scrna] == [True, False]
        plasma = [s for s in patient.samples if s.assay == "cfdna"]
        if patient.ctdna_trajectory:
            assert 3 <= len(plasma) <= 4
            assert plasma[0].day <= 0 and all(s.day > 0 for s in plasma[1:])
            assert patient.tumor_variants
        else:
            assert not plasma and not patient.tumor_variants
    tumour_bulk = [
        any(s.assay == "bulk_rna" and s.tissue != "blood" for s in p.samples)
        for p in default_cohort
    ]
    assert sum(tumour_bulk) == 3


def test_car_present_only_after_infusion_in_car_positive_patients(default_cohort):
    for patient in default_cohort:
        for sample in patient.samples:
            if sample.tissue == "blood":  # PBMC: CAR in blood follows qPCR (test_synthetic_blood)
                assert not sample.car_present or sample.hours > 0
                continue
            assert sample.car_present == (
                sample.day > 0 and patient.car_positive and sample.is_biopsy
            )


def test_compositions_are_fractions_with_cd8_at_truth(default_cohort):
    for patient in default_cohort:
        for sample in patient.samples:
            if sample.assay != "scrna":
                continue
            assert set(sample.composition) == set(CELL_TYPES)
            assert sum(sample.composition.values()) == pytest.approx(1.0)
            assert min(sample.composition.values()) > 0
            expected = (
                patient.cd8_fraction_post if sample.day > 0 else patient.cd8_fraction_baseline
            )
            assert sample.composition["cd8_t"] == pytest.approx(expected)


def test_patient_design_does_not_depend_on_cohort_size():
    small = design_cohort(replace(PRESETS["default"], n_patients=3))
    large = design_cohort(replace(PRESETS["default"], n_patients=40))
    assert small == large[:3]
    assert len({p.patient_id for p in large}) == 40
    assert large[14].template == 0 and large[14].patient_id == "CARM-015"


def test_seed_changes_the_draws():
    a = design_patient(0, CohortParams(seed=1))
    b = design_patient(0, CohortParams(seed=2))
    assert a.cd8_fraction_baseline != b.cd8_fraction_baseline
    assert a == design_patient(0, CohortParams(seed=1))


def test_rng_for_depends_only_on_keys():
    assert rng_for(1, "S1", "x").integers(1 << 30) == rng_for(1, "S1", "x").integers(1 << 30)
    assert rng_for(1, "S1", "x").integers(1 << 30) != rng_for(1, "S2", "x").integers(1 << 30)


@pytest.mark.parametrize(
    ("baseline", "post", "expected"),
    [
        (0.02, [0.006, 0.018, 0.022], dict(molecular_response=False, transient_decrease=True)),
        (
            0.02,
            [0.004, 0.005, 0.05],
            dict(molecular_response=True, transient_decrease=True, progression=True),
        ),
        (0.02, [0.004, 0.005], dict(molecular_response=True, transient_decrease=False)),
        (0.02, [0.02, 0.022, 0.018], dict(molecular_response=False, progression=False)),
        (
            0.02,
            [0.0, 0.0, 0.0],
            dict(molecular_response=True, clearance=True, transient_decrease=False),
        ),
        (0.02, [0.036, 0.06], dict(progression=True, molecular_response=False)),
        (0.02, [0.009], dict(molecular_response=True)),  # last sample: nothing to confirm
        (0.0, [0.01], dict(molecular_response=False, progression=False, clearance=False)),
    ],
)
def test_ctdna_flag_definitions(baseline, post, expected):
    flags = ctdna_flags(baseline, post)
    for name, value in expected.items():
        assert flags[name] is value, name


def test_params_from_config_applies_preset_and_overrides():
    params = params_from_config(
        {
            "outdir": "x",
            "preset": "tiny",
            "n_patients": 2,
            "templates": [0, 7],
            "cd8_fraction_baseline": [0.05, 0.06],
        }
    )
    assert params.cells_per_biopsy == PRESETS["tiny"].cells_per_biopsy
    assert params.n_patients == 2 and params.templates == (0, 7)
    assert params.cd8_fraction_baseline == (0.05, 0.06)
    with pytest.raises(ValueError, match="one template per patient"):
        params_from_config({"preset": "tiny", "n_patients": 5})


def test_plasma_normals_by_preset_and_override():
    assert plasma_normals(PRESETS["default"]) == []
    assert plasma_normals(PRESETS["tiny"]) == [
        "cfdna_normals/PON-001.bam",
        "cfdna_normals/PON-002.bam",
        "cfdna_normals/PON-003.bam",
    ]
    params = params_from_config({"preset": "default", "n_plasma_normals": 12})
    assert plasma_normals(params)[-1] == "cfdna_normals/PON-012.bam"
    with pytest.raises(ValueError, match="n_plasma_normals"):
        params_from_config({"preset": "tiny", "n_plasma_normals": -1})


def test_plasma_panel_is_cohort_by_default_and_validated():
    assert {params.plasma_panel for params in PRESETS.values()} == {"cohort"}
    assert params_from_config({"preset": "tiny", "plasma_panel": "patient"}).plasma_panel == (
        "patient"
    )
    with pytest.raises(ValueError, match="plasma_panel must be one of 'cohort', 'patient'"):
        params_from_config({"preset": "tiny", "plasma_panel": "everything"})


def test_plasma_reads_grow_with_the_cohort_only_for_the_cohort_panel():
    def reads(n_patients, panel, **options):
        params = replace(PRESETS["default"], n_patients=n_patients, plasma_panel=panel)
        return plasma_reads(params, design_cohort(params), **options)

    assert reads(140, "cohort") > 9 * reads(14, "cohort")
    assert reads(140, "patient") == reads(14, "patient")
    assert reads(140, "patient", whole_panel=True) == reads(140, "cohort")
    small, large = (synthetic_job_resources(reads(n, "cohort"), 4) for n in (14, 500))
    assert small["mem_mb"] < large["mem_mb"] and small["runtime"] <= large["runtime"]
