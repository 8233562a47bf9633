"""The step outputs the result-table rules read and their settings as params
(workflow/lib/wiring/tables.py)."""

from wiring import tables as rules

from carmscope.tables.patients import TableSettings
from tests.unit.test_tables import sheets
from tests.unit.test_tables_outputs import config, settings


def test_settings_params_round_trip(repo):
    patients, _ = sheets()
    chosen = settings(config(repo, cd8_up_min_delta=0.05), patients)
    assert TableSettings(**rules.settings_params(chosen)).cd8_up_min_delta == 0.05


def test_table_inputs_follow_the_stages_the_cohort_has():
    _, samples = sheets()
    samples = samples.assign(counts="x.h5", reads="")
    files = rules.table_inputs(samples, car_scanned=False)
    assert "car" not in files and files["car_cell_types"] == []
    assert files["ctdna_patients"] == "results/ctdna/patients.tsv"
    no_plasma = rules.table_inputs(samples[samples["assay"] != "cfdna"], car_scanned=True)
    assert "ctdna_patients" not in no_plasma and no_plasma["car"] == "results/car/summary.tsv"


def test_table_inputs_leave_out_biopsies_without_counts_and_untracked_plasma():
    _, samples = sheets()
    samples = samples.assign(counts="x.h5", reads="")
    reads_only = samples.index[samples["assay"] == "scrna"][0]
    samples.loc[reads_only, ["counts", "reads"]] = ["", "x.bam"]
    files = rules.table_inputs(samples, car_scanned=True, ctdna_tracked=False)
    assert f"results/expression/scrna/{reads_only}/qc.tsv" not in files["expression_qc"]
    assert len(files["expression_qc"]) == (samples["assay"] == "scrna").sum() - 1
    assert "ctdna_patients" not in files
