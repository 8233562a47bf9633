"""The tcr stage against the synthetic cohort's truth: every designed expanded and new clone
found, false calls among unchanged clones within the FDR, clonality within 0.01 of the truth,
every patient-level flag equal to the truth.

Only the repertoires are written (the default cohort's 14 patients: immunoSEQ v2/v3, AIRR, and
10x vdj of biopsies whose cells are drawn from the designed composition), so this runs in
seconds; the workflow run of the tiny cohort is tests/integration/test_tcr.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carmscope.sheets import load_sheets
from carmscope.synthetic import tcr as synthetic_tcr
from carmscope.synthetic.design import PRESETS, design_cohort, rng_for
from carmscope.synthetic.tables import write_tables
from carmscope.tcr.compare import ChangeSettings
from carmscope.tcr.patients import compared_samples, repertoire_sample_ids
from carmscope.tcr.stage import changes_step, sample_step, summary_step, write_tsv
from carmscope.vocabulary import SCRNA, TCR, TUMOUR

PARAMS = PRESETS["default"]
SETTINGS = ChangeSettings()


def _cells(sample, n: int = 1500) -> pd.DataFrame:
    """Barcodes and cell types of a biopsy drawn from its designed composition."""
    rng = rng_for(PARAMS.seed, sample.sample_id, "test_cells")
    types = list(sample.composition)
    p = np.array([sample.composition[t] for t in types])
    return pd.DataFrame(
        {
            "barcode": [f"{i:016d}-1" for i in range(n)],
            "cell_type": rng.choice(types, n, p=p / p.sum()),
        }
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tcr_cohort")
    patients = design_cohort(PARAMS)
    sample_truth = []
    for patient in patients:
        for sample in patient.samples:
            if sample.assay == TCR:
                row = synthetic_tcr.write_tcr_sample(
                    folder / sample.counts, sample, patient, PARAMS
                )
            elif sample.assay == SCRNA and sample.vdj:
                cells = _cells(sample)
                cells.to_csv(folder / f"{sample.sample_id}.types.tsv", sep="\t", index=False)
                row = synthetic_tcr.write_vdj(folder / sample.vdj, sample, patient, cells, PARAMS)
            else:
                continue
            sample_truth.append({"sample_id": sample.sample_id, **row})
    write_tables(patients, folder, folder)
    # the other assays' files are not written: the generated folder lets the sheet name them
    sheets = load_sheets(
        folder / "patients.tsv", folder / "samples.tsv", generated_dirs=[str(folder)]
    )
    samples = sheets.samples
    out = folder / "results"
    out.mkdir()
    clone_files, summaries, cell_files = {}, {}, {}
    for sample in repertoire_sample_ids(samples):
        is_vdj = samples.loc[sample, "assay"] == SCRNA
        repertoire = samples.loc[sample, "vdj" if is_vdj else "counts"]
        types = str(folder / f"{sample}.types.tsv") if is_vdj else None
        clones, summary, cells = sample_step(repertoire, types)
        clone_files[sample] = str(out / f"{sample}.clones.tsv")
        write_tsv(clones, clone_files[sample])
        summaries[sample] = str(out / f"{sample}.summary.tsv")
        pd.DataFrame([summary]).to_csv(summaries[sample], sep="\t", index=False)
        if is_vdj:
            cell_files[sample] = str(out / f"{sample}.cells.tsv")
            cells.to_csv(cell_files[sample], sep="\t", index=False)
    change_files, changes = {}, {}
    for key, ids in compared_samples(samples).items():
        table = changes_step(samples.loc[ids], {s: clone_files[s] for s in ids}, SETTINGS)
        change_files[key] = str(out / f"{key[0]}_{key[1]}.tsv")
        write_tsv(table, change_files[key])
        changes[key] = table
    sample_table, patient_table = summary_step(
        samples, clone_files, summaries, change_files, cell_files, None, list(sheets.patients.index)
    )
    clone_truth, patient_truth = synthetic_tcr.truth_tables(patients, PARAMS)
    return {
        "changes": changes,
        "samples": sample_table,
        "patients": patient_table.set_index("patient_id"),
        "sample_truth": pd.DataFrame(sample_truth).set_index("sample_id"),
        "clone_truth": clone_truth,
        "patient_truth": patient_truth.set_index("patient_id"),
    }


def test_every_designed_expanded_and_new_clone_found(cohort):
    truth = cohort["clone_truth"]
    assert len(truth), "the design has changed clones"
    for (patient, tissue), designed in truth.groupby(["patient_id", "tissue"]):
        table = cohort["changes"].get((patient, tissue))
        if table is None or not len(table):
            continue  # not evaluable (e.g. baseline only): checked by the flags test
        for post, rows in table.groupby("post_sample"):
            called = rows.set_index("clone_id")
            for role in ("expanded", "new"):
                wanted = set(designed.loc[designed["role"] == role, "clone_id"])
                found = set(called.index[called[role].astype(bool)])
                assert wanted <= found, (patient, tissue, post, role, wanted - found)
            if role == "new":
                continue
            wanted = set(designed.loc[designed["role"] == "contracted", "clone_id"])
            assert wanted <= set(called.index[called["contracted"].astype(bool)])


def test_false_calls_among_unchanged_clones_within_fdr(cohort):
    truth = cohort["clone_truth"]
    calls = false = 0
    for (patient, tissue), table in cohort["changes"].items():
        designed = set(
            truth.loc[(truth["patient_id"] == patient) & (truth["tissue"] == tissue), "clone_id"]
        )
        expanded = table[table["expanded"].astype(bool)]
        calls += len(expanded)
        false += int((~expanded["clone_id"].isin(designed)).sum())
    assert calls > 0
    assert false / calls <= SETTINGS.fdr, (false, calls)


def test_clonality_within_001_of_truth(cohort):
    samples = cohort["samples"].set_index("sample_id")
    truth = cohort["sample_truth"]
    assert set(samples.index) == set(truth.index)
    for sample in truth.index:
        assert abs(samples.loc[sample, "clonality"] - truth.loc[sample, "tcr_clonality"]) < 0.01
        assert samples.loc[sample, "templates"] == truth.loc[sample, "tcr_templates"]


def test_every_patient_flag_equals_truth(cohort):
    patients = cohort["patients"]
    truth = cohort["patient_truth"]
    assert len(truth) >= 5
    for patient, row in truth.iterrows():
        got = patients.loc[patient, "tcr_expansion"]
        if pd.isna(row["tcr_expansion"]):
            assert pd.isna(got), patient
            assert patients.loc[patient, "tcr_expansion_reason"], patient
        else:
            assert bool(got) == bool(row["tcr_expansion"]), patient
            assert patients.loc[patient, "tcr_expansion_tissue"] == row["tcr_expansion_tissue"]
    # patients without any repertoire: not evaluable, with a reason, never an error
    others = [p for p in patients.index if p not in truth.index]
    assert others and patients.loc[others, "tcr_expansion"].isna().all()


def test_expanded_vdj_clones_are_cd8(cohort):
    patients = cohort["patients"]
    vdj = [p for p, r in cohort["patient_truth"].iterrows() if r["tcr_expansion"] is True]
    fractions = patients.loc[vdj, "tcr_expanded_cd8_fraction"].dropna()
    assert len(fractions) and (fractions > 0.9).all()


def test_tumour_expanded_clones_found_in_blood(cohort):
    patients = cohort["patients"]
    truth = cohort["patient_truth"]["tcr_tumour_expanded_in_blood"].dropna()
    assert len(truth) >= 3 and (truth > 0).any() and (truth == 0).any()
    for patient, expected in truth.items():
        assert patients.loc[patient, "tcr_tumour_expanded_in_blood"] == expected, patient
        if expected:  # present from the blood baseline on
            first = patients.loc[patient, "tcr_tumour_expanded_in_blood_first_sample"]
            assert first == f"{patient}_C1D0_tcrb"


def test_clone_universe_is_drawn_once_and_handed_out_as_copies():
    """Every repertoire sample of a patient's tissue uses the same universe: it is drawn once
    per process (cached), and a caller changing its copy does not change the next one."""
    synthetic_tcr._clone_universe.cache_clear()
    first = synthetic_tcr.clone_universe(PARAMS.seed, "CARM-001", TUMOUR, True)
    expected = first.copy()
    first.loc[0, "cdr3_aa"] = "CHANGED"
    first["extra"] = 1
    second = synthetic_tcr.clone_universe(PARAMS.seed, "CARM-001", TUMOUR, True)
    pd.testing.assert_frame_equal(second, expected)
    assert synthetic_tcr._clone_universe.cache_info().hits == 1
    other = synthetic_tcr.clone_universe(PARAMS.seed, "CARM-002", TUMOUR, True)
    assert not other["cdr3_aa"].equals(expected["cdr3_aa"])
