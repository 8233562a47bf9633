"""The workflow end to end on the tiny synthetic cohort, through Snakemake itself.

The cohort is set up the way a user sets up a scaling run: the generator writes only the tables,
and the workflow's synthetic_* rules write the data they point to.
"""

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from carmscope.genesets import read_gmt

pytestmark = pytest.mark.integration

TINY_TABLES_ARGS = ("--data-dir", "cohort", "--out", "tables")


def write_config(workdir, repo, **overrides):
    config = {
        "patients": "tables/patients.tsv",
        "samples": "tables/samples.tsv",
        "synthetic": {"outdir": "cohort", "preset": "tiny"},
        "car": {
            "construct": str(repo / "resources/car/anti_her2_car.fa"),
            "segments": str(repo / "resources/car/anti_her2_car.segments.tsv"),
        },
        "genesets": {
            "gmt": [str(repo / "resources/genesets/hallmark_inflammation.v7.0.gmt")],
            "signatures": str(repo / "resources/genesets/immune_signatures.tsv"),
        },
        "expression": {
            "markers": str(repo / "resources/markers/cell_type_markers.tsv"),
            # two DE profiles keep the runs short (the DE step has its own tests)
            "de": {"cell_types": ["macrophage_m2", "all"]},
        },
    }
    config.update(overrides)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_tiny_tables(workdir, tool):
    """The tiny cohort's tables in workdir/tables, pointing at data in workdir/cohort."""
    subprocess.run(
        [tool("carmscope-synthetic"), "tables", "--preset", "tiny", *TINY_TABLES_ARGS],
        cwd=workdir,
        check=True,
    )


def snakemake(repo, tool, workdir, *args, timeout=900, configfile="config.yaml"):
    command = [
        tool("snakemake"),
        "--snakefile",
        str(repo / "Snakefile"),
        "--directory",
        str(workdir),
        *(["--configfile", str(workdir / configfile)] if configfile else []),
        "--cores",
        "2",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, repo, tool):
    workdir = tmp_path_factory.mktemp("tiny_workflow")
    write_tiny_tables(workdir, tool)
    write_config(workdir, repo)
    result = snakemake(repo, tool, workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def test_synthetic_rule_writes_every_file_the_tables_name(tiny_run):
    samples = pd.read_csv(tiny_run / "tables/samples.tsv", sep="\t", keep_default_na=False)
    for column in ("counts", "reads"):
        for path in samples[column]:
            if path:
                assert (tiny_run / "tables" / path).exists(), path
    assert (tiny_run / "cohort/truth/samples.tsv").exists()


def test_input_inventory_matches_truth(tiny_run):
    inventory = pd.read_csv(tiny_run / "results/qc/inputs.tsv", sep="\t").set_index("sample_id")
    samples = pd.read_csv(tiny_run / "tables/samples.tsv", sep="\t").set_index("sample_id")
    assert list(inventory.index) == list(samples.index)
    truth = pd.read_csv(tiny_run / "cohort/truth/samples.tsv", sep="\t").set_index("sample_id")
    scrna = samples.index[samples["assay"] == "scrna"]
    assert (inventory.loc[scrna, "n_cells"] == truth.loc[scrna, "n_cells"]).all()
    assert (inventory.loc[scrna, "reads_with_cell_barcode"] > 0.5).all()
    cfdna = samples.index[samples["assay"] == "cfdna"]
    assert (inventory.loc[cfdna, "reads_sort_order"] == "coordinate").all()
    assert (inventory.loc[cfdna, "n_variants"] > 0).all()


def test_second_run_has_nothing_to_do(tiny_run, repo, tool):
    result = snakemake(repo, tool, tiny_run, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def test_bad_table_stops_before_any_job(tmp_path, repo, tool):
    shutil.copytree(repo / "config/test", tmp_path / "tables")
    samples = tmp_path / "tables/samples.tsv"
    lines = samples.read_text().splitlines()
    fields = lines[2].split("\t")
    fields[3] = "eight"  # day
    lines[2] = "\t".join(fields)
    samples.write_text("\n".join(lines) + "\n")
    write_config(tmp_path, repo)
    result = snakemake(repo, tool, tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "line 3" in output and "'day'" in output, output[-3000:]
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "cohort").exists()


def test_tables_disagreeing_with_generator_stop_before_any_job(tmp_path, repo, tool):
    write_tiny_tables(tmp_path, tool)
    write_config(
        tmp_path, repo, synthetic={"outdir": "cohort", "preset": "tiny", "templates": [0, 7, 2, 13]}
    )
    result = snakemake(repo, tool, tmp_path, "--dry-run")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "disagree with what the generator makes" in output, output[-3000:]
    assert "CARM-003_D8_bulk is not in the synthetic cohort's design" in output


# --- result tables and report (docs/outputs.md) -----------------------------------------------


def repo_path(relative):
    return Path(__file__).resolve().parents[2] / relative


def printed(value):
    """A step output's full-precision value as the result tables print it (six significant
    digits, docs/outputs.md): equal to the table's value within the printed precision."""
    if isinstance(value, pd.Series):
        return [printed(v) for v in value]
    return pytest.approx(value, rel=5e-6, abs=0, nan_ok=True)


def read_result(workdir, name):
    return pd.read_csv(workdir / f"results/tables/{name}.tsv", sep="\t", dtype={"her2_ihc": str})


def test_patient_table_answers_equal_truth_and_step_outputs(tiny_run):
    table = read_result(tiny_run, "patients").set_index("patient_id")
    sheet = pd.read_csv(tiny_run / "tables/patients.tsv", sep="\t", dtype=str).set_index(
        "patient_id"
    )
    truth = pd.read_csv(tiny_run / "cohort/truth/patients.tsv", sep="\t").set_index("patient_id")
    assert list(table.index) == list(sheet.index)  # one row per patient, sheet order
    assert (table["dosing"] == sheet["dosing"]).all()
    assert (table["car_detected"] == truth.loc[table.index, "car_positive"]).all()
    # CD8 fractions: exactly the expression stage's pairs, and within annotation error of truth
    paired = pd.read_csv(tiny_run / "results/expression/scrna/paired_values.tsv", sep="\t")
    cd8 = paired[paired["metric"] == "fraction_of_cells/cd8_t"].set_index("patient_id")
    for patient in cd8.index:
        assert table.loc[patient, "cd8_fraction_baseline"] == printed(cd8.loc[patient, "baseline"])
        assert table.loc[patient, "cd8_fraction_delta"] == printed(cd8.loc[patient, "delta"])
    for side in ("baseline", "post"):
        error = (table[f"cd8_fraction_{side}"] - truth[f"cd8_fraction_{side}"]).abs()
        assert (error < 0.02).all(), error
    # every score column: exactly the expression stage's baseline/post/delta of the pair
    scores = {"cd8_score": "all/CD8_T_cells/mean_log2cpm"}
    for gene_set in read_gmt(repo_path("resources/genesets/hallmark_inflammation.v7.0.gmt")):
        scores[gene_set] = f"all/{gene_set}/mean_log2cpm"
    by_metric = paired.set_index(["patient_id", "metric"])
    for prefix, metric in scores.items():
        for patient in cd8.index:
            source = by_metric.loc[(patient, metric)]
            for side in ("baseline", "post", "delta"):
                assert table.loc[patient, f"{prefix}_{side}"] == printed(source[side]), prefix
    car = pd.read_csv(tiny_run / "results/car/summary.tsv", sep="\t").set_index("sample_id")
    for _, row in table.iterrows():
        source = car.loc[row["car_sample_id"]]
        assert row["car_reads_per_million"] == printed(source["car_reads_per_million"])
        assert row["car_positive_cell_fraction"] == printed(source["car_positive_fraction"])
    changed = truth["cd8_fraction_delta"].abs() > 0.02
    assert (table.loc[changed, "cd8_up"] == (truth.loc[changed, "cd8_fraction_delta"] > 0)).all()
    inflamed = truth["inflammation_log2fc"] > 0
    assert table.loc[inflamed, "inflammation_up"].all()
    assert (table.loc[~inflamed, "inflammation_delta_mean"].abs() < 0.1).all()
    # ctDNA: the stage's per-patient table and the truth's flags; empty when not evaluable
    ctdna = pd.read_csv(tiny_run / "results/ctdna/patients.tsv", sep="\t").set_index("patient_id")
    evaluable = ctdna.index[ctdna["evaluable"]]
    assert list(table.loc[evaluable, "ctdna_nadir_mean_vaf"]) == printed(
        ctdna.loc[evaluable, "nadir_vaf"]
    )
    for ours, theirs in (
        ("baseline_mean_vaf", "baseline_vaf"),
        ("nadir_day", "nadir_day"),
        ("nadir_change_pct", "best_change_pct"),
        ("latest_change_pct", "latest_change_pct"),
    ):
        assert list(table.loc[evaluable, f"ctdna_{ours}"]) == printed(ctdna.loc[evaluable, theirs])
    for flag in ("molecular_response", "transient_decrease", "clearance", "progression"):
        assert (
            table.loc[evaluable, f"ctdna_{flag}"] == truth.loc[evaluable, f"ctdna_{flag}"]
        ).all()
    absent = table.index.difference(evaluable)
    assert table.loc[absent, "ctdna_molecular_response"].isna().all()
    assert (table.loc[absent, "ctdna_reason"].str.len() > 0).all()


def test_sample_table_carries_every_per_sample_figure(tiny_run):
    table = read_result(tiny_run, "samples").set_index("sample_id")
    sheet = pd.read_csv(tiny_run / "tables/samples.tsv", sep="\t").set_index("sample_id")
    assert list(table.index) == list(sheet.index)
    car = pd.read_csv(tiny_run / "results/car/summary.tsv", sep="\t").set_index("sample_id")
    assert (table.loc[car.index, "car.reads"] == car["car_reads"]).all()
    metrics = pd.read_csv(tiny_run / "results/expression/scrna/metrics.tsv", sep="\t")
    row = metrics.iloc[len(metrics) // 2]
    column = "expr." + row["metric"].replace("/", ".")
    assert table.loc[row["sample_id"], column] == printed(row["value"])
    plasma = pd.read_csv(tiny_run / "results/ctdna/samples.tsv", sep="\t").set_index("sample_id")
    assert list(table.loc[plasma.index, "ctdna.mean_vaf"]) == printed(plasma["mean_vaf"])


def test_cohort_summary_counts_the_patient_table(tiny_run):
    patients = read_result(tiny_run, "patients")
    summary = read_result(tiny_run, "cohort_summary")
    rows = summary.set_index(["stratum", "group", "endpoint"])
    car = rows.loc[("all", "all", "car_detected")]
    assert car["n_positive"] == patients["car_detected"].sum()
    assert car["n_evaluable"] == patients["car_detected"].notna().sum()
    for her2, group in patients.groupby("her2_ihc"):
        assert rows.loc[("her2_ihc", her2, "car_detected"), "n_patients"] == len(group)
    assert set(summary.loc[summary["kind"] == "paired_test", "endpoint"]) >= {
        "cd8_fraction_delta",
        "cd8_score_delta",
        "HALLMARK_INFLAMMATORY_RESPONSE_delta",
    }


def test_workbook_and_dictionary_cover_the_tables(tiny_run):
    from carmscope.tables.dictionary import undocumented

    sheets = pd.read_excel(tiny_run / "results/tables/carmscope_results.xlsx", sheet_name=None)
    assert list(sheets) == ["patients", "samples", "cohort_summary", "dictionary"]
    clinical = pd.read_csv(tiny_run / "tables/patients.tsv", sep="\t", nrows=0).columns
    for name in ("patients", "samples", "cohort_summary"):
        tsv = read_result(tiny_run, name)
        assert list(sheets[name].columns) == list(tsv.columns)
        assert len(sheets[name]) == len(tsv)
        assert undocumented(name, list(tsv.columns), clinical) == [], name
    panels = (tiny_run / "results/report/patients").glob("*.png")
    assert sorted(p.name for p in panels) == [
        f"{patient}.png" for patient in read_result(tiny_run, "patients")["patient_id"]
    ]


@pytest.fixture(scope="module")
def tiny_report(tiny_run, repo, tool, tmp_path_factory):
    """The HTML report of the tiny run (`make report`)."""
    report = tmp_path_factory.mktemp("report") / "report.html"
    result = snakemake(repo, tool, tiny_run, "--report", str(report))
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return report


def test_report_is_self_contained_html_with_every_patient(tiny_run, tiny_report):
    html = tiny_report.read_text()
    for patient in read_result(tiny_run, "patients")["patient_id"]:
        assert f"{patient}.png" in html
    for text in ("patients.tsv", "cohort_summary.tsv", "Clopper-Pearson", "Wilcoxon"):
        assert text in html
    for text in ("_umap.png", "_markers.png", "Harmony", "marker genes"):
        assert text in html, text


# --- embeddings, formatted tables, reproducibility (issues 15 and 19) -------------------------


def test_cells_h5ad_opens_in_scanpy_with_embedding_and_car_calls(tiny_run, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import scanpy as sc

    samples = pd.read_csv(tiny_run / "tables/samples.tsv", sep="\t", keep_default_na=False)
    scrna = samples[samples["assay"] == "scrna"]
    car = pd.read_csv(tiny_run / "results/car/summary.tsv", sep="\t").set_index("sample_id")
    for _, row in scrna.iterrows():
        adata = sc.read_h5ad(tiny_run / f"results/expression/scrna/{row['sample_id']}/cells.h5ad")
        assert adata.obsm["X_umap"].shape == (adata.n_obs, 2)
        assert {"leiden", "cell_type"} <= set(adata.obs.columns)
        assert adata.var["highly_variable"].any()
        if row["reads"]:
            # the CAR calls in obs are CAR detection's: as many CAR+ annotated cells as
            # car_by_cell_type.tsv counts, and every CAR read of them in the CAR table
            assert adata.obs["car_positive"].dtype == bool
            assert adata.obs["car_umis"].dtype.kind == "i"
            folder = tiny_run / f"results/expression/scrna/{row['sample_id']}"
            by_type = pd.read_csv(folder / "car_by_cell_type.tsv", sep="\t").set_index("cell_type")
            assert adata.obs["car_positive"].sum() == by_type.loc["all", "n_car_positive"]
            assert (
                adata.obs["car_positive"].sum() > 0 or not car.loc[row["sample_id"], "car_detected"]
            )
            axes = sc.pl.umap(adata, color=["cell_type", "car_positive"], show=False)
            axes[0].figure.savefig(tmp_path / f"{row['sample_id']}.png")
        for figure in ("umap", "markers"):
            assert (tiny_run / f"results/report/biopsies/{row['sample_id']}_{figure}.png").exists()
    for patient, group in scrna.groupby("patient_id"):
        joint = sc.read_h5ad(tiny_run / f"results/expression/scrna/patients/{patient}.h5ad")
        assert set(joint.obs["sample_id"]) == set(group["sample_id"])
        assert joint.obsm["X_umap"].shape == (joint.n_obs, 2)
        if len(group) > 1:
            assert joint.uns["embedding"]["representation"] == "X_pca_harmony"
        assert (tiny_run / f"results/report/patients_umap/{patient}.png").exists()


def test_tables_print_integers_six_digits_and_p_values_and_the_workbook_matches(tiny_run):
    import re

    from carmscope.tables.formatting import is_p_value

    scientific = re.compile(r"-?\d\.\d\de[+-]\d{2,3}\Z")
    workbook = pd.read_excel(
        tiny_run / "results/tables/carmscope_results.xlsx", sheet_name=None, dtype={"her2_ihc": str}
    )
    checked = 0
    for name in ("patients", "samples", "cohort_summary"):
        text = pd.read_csv(
            tiny_run / f"results/tables/{name}.tsv", sep="\t", dtype=str, keep_default_na=False
        )
        for column in text.columns:
            for cell in text[column]:
                try:
                    float(cell)
                except ValueError:
                    continue
                checked += 1
                if is_p_value(column):
                    assert scientific.match(cell), (name, column, cell)
                    continue
                assert not cell.endswith(".0"), (name, column, cell)
                if "." in cell or "e" in cell:  # not an integer: six significant digits
                    digits = re.sub(r"e.*|[-.]", "", cell).lstrip("0")
                    assert len(digits) <= 6, (name, column, cell)
        # the workbook's sheet holds the values the TSV prints
        tsv = read_result(tiny_run, name)
        pd.testing.assert_frame_equal(tsv, workbook[name], check_dtype=False)
    assert checked > 100


def test_same_inputs_give_byte_identical_results(tiny_run, repo, tool, tmp_path):
    """The tiny cohort's analyses run a second time in the same folder (results/ moved aside,
    the synthetic inputs kept): every file under results/ is byte-identical (issue 15: gzip
    mtime, figure metadata and SVG IDs, workbook timestamps)."""
    first_run = tmp_path / "results"
    shutil.move(tiny_run / "results", first_run)
    result = snakemake(repo, tool, tiny_run)
    assert result.returncode == 0, result.stderr[-5000:]
    first = {p.relative_to(first_run) for p in first_run.rglob("*") if p.is_file()}
    second = {p.relative_to(tiny_run / "results") for p in (tiny_run / "results").rglob("*")}
    assert first == {p for p in second if (tiny_run / "results" / p).is_file()}
    differ = [
        str(path)
        for path in sorted(first)
        if (first_run / path).read_bytes() != (tiny_run / "results" / path).read_bytes()
    ]
    assert differ == []


def tools_command(repo, name):
    """A test-only tool of .venv-tools/ (make tools), or skip saying why."""
    path = repo / ".venv-tools" / "bin" / name
    if not path.exists():
        pytest.skip(
            f"{name} not installed: run `make tools` (.venv-tools/, requirements-tools.lock)"
        )
    return str(path)


def test_multiqc_finds_the_carmscope_sections(tiny_run, repo, tmp_path):
    from carmscope.tables.multiqc import SECTIONS, file_name

    folder = tiny_run / "results/qc/multiqc"
    samples = read_result(tiny_run, "samples").set_index("sample_id")
    car = pd.read_csv(folder / "carmscope_car_mqc.tsv", sep="\t", comment="#")
    assert set(car["Sample"]) == set(samples.index[samples["car.reads"].notna()])
    cells = pd.read_csv(folder / "carmscope_scrna_qc_mqc.tsv", sep="\t", comment="#")
    assert (cells["qc.cells_after"] <= cells["qc.cells_before"]).all()
    multiqc = tools_command(repo, "multiqc")
    result = subprocess.run(
        [multiqc, str(tiny_run / "results"), "--outdir", str(tmp_path), "--force", "--no-ai"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    report = (tmp_path / "multiqc_report.html").read_text()
    for section in SECTIONS:
        assert section.id in report, section.id
        assert section.name in report, section.name
    for section in SECTIONS:  # MultiQC's parsed data: the samples of each carmscope file
        ours = pd.read_csv(folder / file_name(section), sep="\t", comment="#")
        parsed = pd.read_csv(tmp_path / f"multiqc_data/multiqc_{section.id}_table.txt", sep="\t")
        assert set(parsed["Sample"]) == set(ours["Sample"]), section.id


# JavaScript run in the report page: pairs of visible text runs (text nodes, measured by their
# own extent, not their element's box) that overlap by more than a fifth of the smaller one.
OVERLAPPING_TEXT = """
(() => {
  const runs = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim() || node.parentElement.closest('script,style')) continue;
    const style = getComputedStyle(node.parentElement);
    if (style.visibility === 'hidden' || style.display === 'none') continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) {
      if (r.width >= 1 && r.height >= 1) runs.push([node.textContent.trim().slice(0, 40), r]);
    }
  }
  const overlaps = [];
  for (let i = 0; i < runs.length; i++) {
    for (let j = i + 1; j < runs.length; j++) {
      const [a, ra] = runs[i], [b, rb] = runs[j];
      const w = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
      const h = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
      if (w <= 0 || h <= 0) continue;
      if (w * h > 0.2 * Math.min(ra.width * ra.height, rb.width * rb.height)) {
        overlaps.push([a, b]);
      }
    }
  }
  return overlaps;
})()
"""

SHOW_IMAGE = """
new Promise(resolve => {
  app.setView({content: "img", contentPath: results[%s].data_uri, resultPath: %s});
  const start = Date.now();
  const check = () => {
    const img = [...document.images].find(i => i.src === results[%s].data_uri);
    if (img && img.complete) resolve({width: img.naturalWidth, height: img.naturalHeight});
    else if (Date.now() - start > 10000) resolve({width: 0, height: 0});
    else setTimeout(check, 50);
  };
  setTimeout(check, 50);
})
"""


def test_report_opens_in_chromium_with_every_figure_and_no_overlapping_text(tiny_report, tmp_path):
    """Headless Chromium (Debian's package): the report renders, each section (category)
    is shown and screenshotted, every image result decodes, no text overlaps."""
    import json

    from tests.integration.browser import Chromium, find_chromium

    executable = find_chromium()
    if executable is None:
        pytest.skip("chromium not installed (apt-get install -y --no-install-recommends chromium)")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with Chromium(executable, tmp_path / "profile") as browser:
        browser.open(tiny_report.as_uri(), "typeof app !== 'undefined' && app.state")
        browser.wait_for("document.querySelector('#app').innerText.length > 0")
        assert browser.evaluate(OVERLAPPING_TEXT) == []
        browser.screenshot(shots / "00_start.png")
        categories = browser.evaluate("Object.keys(categories)")
        assert {"1. Cohort", "2. Patients", "5. Biopsy cells"} <= set(categories)
        for number, category in enumerate(categories, start=1):
            browser.evaluate(f"app.showCategory({json.dumps(category)})")
            browser.wait_for(
                f"document.querySelector('#app').innerText.includes({json.dumps(category)})"
            )
            assert browser.evaluate(OVERLAPPING_TEXT) == [], category
            browser.screenshot(shots / f"{number:02d}_section.png")
        images = browser.evaluate(
            "Object.keys(results).filter(p => results[p].mime_type.startsWith('image/'))"
        )
        assert any("_umap.png" in path for path in images)
        for path in images:
            quoted = json.dumps(path)
            size = browser.evaluate(SHOW_IMAGE % (quoted, quoted, quoted))
            assert size["width"] > 100 and size["height"] > 100, path
    for shot in shots.iterdir():
        assert shot.stat().st_size > 5000, shot.name  # a rendered page, not a blank one
