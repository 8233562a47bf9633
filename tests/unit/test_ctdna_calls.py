"""Vendor tables, background error rates and per-sample ctDNA calls."""

import numpy as np
import pandas as pd
import pytest

from carmscope.ctdna.alleles import ALLELE_COUNT_COLUMNS
from carmscope.ctdna.background import mark_carriers, site_background
from carmscope.ctdna.calls import critical_alt_count, sample_calls, variant_calls
from carmscope.ctdna.variants import CtdnaInputError
from carmscope.ctdna.vendor import read_vendor_table

HEADER = "chrom\tpos\tref\talt\talt_count\tdepth\n"


def counts(sample_id, patient_id, alts, depths, first_pos=1000, carrier=True, **columns):
    """Per-variant count rows of one sample at consecutive SNV sites."""
    n = len(alts)
    alt = np.asarray(alts, dtype=float)
    depth = np.asarray(depths, dtype=float) * np.ones(n)
    with np.errstate(invalid="ignore"):
        vaf = np.where(depth > 0, alt / depth, np.nan)
    return pd.DataFrame(
        {
            "sample_id": sample_id,
            "patient_id": patient_id,
            "chrom": "chr1",
            "pos": np.arange(first_pos, first_pos + n),
            "ref": "A",
            "alt": "C",
            "kind": "snv",
            "evaluable": True,
            "reason": "",
            "alt_count": alt.astype(int),
            "depth": depth.astype(int),
            "vaf": vaf,
            "carrier": carrier,
            **columns,
        }
    )


def call(table, background=None, **kw):
    if background is None:
        background = site_background(table.assign(carrier=False).iloc[:0])
    return sample_calls(variant_calls(table, background), **kw)


# --- vendor tables ---------------------------------------------------------------------------


def test_vendor_table_with_counts_and_vaf_only_rows(tmp_path):
    path = tmp_path / "vendor.tsv"
    path.write_text(
        "# exported by the vendor\n"
        "chrom\tpos\tref\talt\talt_count\tdepth\tvaf\tgene\n"
        "chr1\t100\tA\tC\t12\t1000\t0.012\tERBB2\n"
        "chr1\t200\tGAT\tGCT\t\t\t0.05\tTP53\n"  # normalised to the SNV A>C at 201
    )
    table = read_vendor_table(path)
    assert list(table.columns) == ALLELE_COUNT_COLUMNS
    first, second = table.iloc[0], table.iloc[1]
    assert (first["alt_count"], first["ref_count"], first["depth"]) == (12, 988, 1000)
    assert first["vaf"] == pytest.approx(0.012)
    assert (second["pos"], second["ref"], second["alt"], second["kind"]) == (201, "A", "C", "snv")
    assert pd.isna(second["depth"]) and second["vaf"] == pytest.approx(0.05)


def test_vendor_table_aligned_to_tumour_variants(tmp_path):
    path = tmp_path / "vendor.tsv"
    path.write_text(HEADER + "chr1\t100\tA\tC\t5\t500\nchr1\t900\tG\tT\t1\t400\n")
    variants = pd.DataFrame(
        {"chrom": "chr1", "pos": [100, 300], "ref": ["A", "T"], "alt": ["C", "G"]}
    )
    table = read_vendor_table(path, variants)
    assert table["pos"].tolist() == [100, 300]  # the unlisted variant at 900 is dropped
    assert table["evaluable"].tolist() == [True, False]
    assert table.loc[1, "reason"] == "not in the vendor table"
    assert table.loc[0, "alt_count"] == 5 and pd.isna(table.loc[1, "alt_count"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("chrom\tpos\tref\talt_count\tdepth\n", r"line 1: missing column\(s\): alt"),
        ("chrom\tpos\tref\talt\n", r"line 1: missing column\(s\): alt_count and depth, or vaf"),
        (HEADER + "chr1\t100\tA\tC\tfive\t100\n", r"line 2, column 'alt_count': 'five'"),
        (HEADER + "chr1\tx\tA\tC\t5\t100\n", r"line 2, column 'pos'"),
        (HEADER + "chr1\t100\tA\tC\t50\t10\n", r"line 2, column 'alt_count': .*exceeds depth"),
        (HEADER + "chr1\t100\tA\tC\t\t\n", r"line 2.*neither alt_count and depth nor vaf"),
        ("chrom\tpos\tref\talt\tvaf\nchr1\t100\tA\tC\t1.7\n", r"line 2, column 'vaf': 1.7 is"),
        ("chrom\tpos\tref\talt\tvaf\nchr1\t100\tA\tC\tlow\n", r"line 2, column 'vaf'"),
        (
            "chrom\tpos\tref\talt\talt_count\tdepth\tvaf\nchr1\t100\tA\tC\t5\t1000\t0.5\n",
            r"line 2, column 'vaf': vaf 0.5 disagrees",
        ),
        (HEADER + "chr1\t100\tA\tC\t5\n", r"line 2: 5 fields where the header has 6"),
        ("", "is empty"),
    ],
)
def test_vendor_table_errors_name_file_line_and_column(tmp_path, content, expected):
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(CtdnaInputError, match=expected) as caught:
        read_vendor_table(path)
    assert str(caught.value).startswith(str(path))


def test_vendor_vaf_only_sample_is_vendor_reported():
    rows = counts("S1", "P1", [0, 0], [0, 0]).assign(
        alt_count=pd.array([pd.NA, pd.NA], dtype="Int64"),
        depth=pd.array([pd.NA, pd.NA], dtype="Int64"),
        vaf=[0.0, 0.02],
    )
    result = call(rows).iloc[0]
    assert result["detection_method"] == "vendor-reported"
    assert result["call_status"] == "vendor_reported" and result["ctdna_detected"]
    assert result["mean_vaf"] == pytest.approx(0.01)
    assert np.isnan(result["p_value"]) and np.isnan(result["detection_limit_vaf"])
    none = call(rows.assign(vaf=[0.0, 0.0])).iloc[0]
    assert none["call_status"] == "vendor_not_reported" and not none["ctdna_detected"]


# --- background ------------------------------------------------------------------------------


def test_site_background_pools_non_carriers_with_floor_and_pseudo_count():
    own = counts("A1", "A", [40, 3], [1000, 1000])  # patient A's plasma: its own variants
    other = counts("B1", "B", [2, 0], [10_000, 10_000])
    normal = counts("N1", "", [3, 0], [20_000, 20_000])  # panel of normals
    tumour_variants = own[["patient_id", "chrom", "pos", "ref", "alt"]]
    table = mark_carriers(pd.concat([own, other, normal]).drop(columns="carrier"), tumour_variants)
    assert table["carrier"].tolist() == [True, True, False, False, False, False]
    background = site_background(table, floor=1e-4).set_index("pos")
    first, second = background.loc[1000], background.loc[1001]
    assert (first["background_alt"], first["background_depth"]) == (5, 30_000)
    assert first["background_samples"] == 2
    assert first["error_rate"] == pytest.approx(5.5 / 30_001)  # Jeffreys pseudo-counts
    assert not first["floored"]
    assert second["error_rate"] == 1e-4 and second["floored"]  # 0.5 / 30001 < floor
    noisy = site_background(table.assign(alt_count=[0, 0, 500, 0, 900, 0]))
    assert noisy["noisy"].tolist() == [True, False]


def test_site_without_background_gets_the_floor():
    table = counts("A1", "A", [5], [500])
    background = site_background(table, floor=2e-4)
    assert background.loc[0, "background_depth"] == 0
    assert background.loc[0, "error_rate"] == 2e-4


# --- detection -------------------------------------------------------------------------------


def test_detection_p_value_small_for_tumour_signal_large_for_background():
    rates = pd.DataFrame(
        {"chrom": "chr1", "pos": range(1000, 1008), "ref": "A", "alt": "C", "error_rate": 1e-3}
    ).assign(noisy=False)
    tumour = call(counts("T", "P", [12, 9, 15, 10, 11, 8, 14, 13], 1000), rates).iloc[0]
    assert tumour["p_value"] < 1e-30 and tumour["ctdna_detected"]
    assert tumour["mean_vaf"] == pytest.approx(0.0115)
    assert tumour["pooled_vaf"] == pytest.approx(92 / 8000)
    assert tumour["tumour_fraction"] == pytest.approx(0.023)
    assert tumour["expected_alt"] == pytest.approx(8.0)
    clean = call(counts("C", "P", [1, 0, 2, 1, 0, 1, 2, 1], 1000), rates).iloc[0]
    assert clean["p_value"] > 0.3 and not clean["ctdna_detected"]
    assert clean["call_status"] == "not_detected"
    assert 0 < clean["detection_limit_vaf"] < 0.005


def test_tumour_fraction_is_capped_at_one():
    result = call(counts("T", "P", [700, 650], [1000, 1000])).iloc[0]
    assert result["tumour_fraction"] == 1.0


def test_no_coverage_and_no_evaluable_variants_are_not_calls():
    empty = call(counts("Z", "P", [0, 0], [0, 0])).iloc[0]
    assert empty["call_status"] == "no_coverage" and not empty["ctdna_detected"]
    assert np.isnan(empty["p_value"]) and np.isnan(empty["mean_vaf"])
    dropped = counts("Y", "P", [5], [100]).assign(evaluable=False, reason="complex allele")
    result = call(dropped).iloc[0]
    assert result["call_status"] == "no_evaluable_variants" and result["n_used"] == 0


def test_noisy_sites_are_left_out_of_the_call():
    table = counts("S", "P", [300, 2], [1000, 1000])
    rates = pd.DataFrame(
        {
            "chrom": "chr1",
            "pos": [1000, 1001],
            "ref": "A",
            "alt": "C",
            "error_rate": [0.3, 1e-3],
            "noisy": [True, False],
        }
    )
    variants = variant_calls(table, rates)
    assert variants["used"].tolist() == [False, True]
    assert "noisy" in variants.loc[0, "excluded_because"]
    result = sample_calls(variants).iloc[0]
    assert (result["alt_count"], result["depth"], result["n_used"]) == (2, 1000, 1)
    assert not result["ctdna_detected"]


def test_critical_count_is_the_smallest_significant_count():
    from scipy import stats

    for expected in (0.05, 0.8, 3.2, 16.0, 120.0):
        k = int(critical_alt_count(expected, 0.01))
        assert stats.poisson.sf(k - 1, expected) <= 0.01 < stats.poisson.sf(k - 2, expected)


def test_detection_limit_is_detected_with_95_percent_probability():
    rng = np.random.default_rng(11)
    depths = np.array([800, 1200, 600, 1000, 900, 700])
    error = 1e-3
    rates = pd.DataFrame(
        {"chrom": "chr1", "pos": range(1000, 1006), "ref": "A", "alt": "C", "error_rate": error}
    ).assign(noisy=False)
    limit = call(counts("L", "P", [0] * 6, depths), rates).iloc[0]["detection_limit_vaf"]
    assert 1e-4 < limit < 0.01

    def detection_rate(vaf, replicates=2000):
        probability = vaf + (1 - vaf) * error
        alts = rng.binomial(depths, probability, size=(replicates, len(depths)))
        samples = counts("r", "P", alts.ravel(), np.tile(depths, replicates))
        samples["sample_id"] = np.repeat(np.arange(replicates), len(depths))
        samples["pos"] = np.tile(np.arange(1000, 1000 + len(depths)), replicates)
        return call(samples, rates)["ctdna_detected"].mean()

    assert 0.93 <= detection_rate(limit) <= 0.985
    assert detection_rate(limit / 3) < 0.6


def test_false_positive_rate_of_tumour_free_samples_is_near_alpha():
    """500 tumour-free plasma samples (50 patients x 10), binomial errors at site-specific
    rates and depths from 150 to 5000; each patient's background comes from the others."""
    rng = np.random.default_rng(508)
    n_patients, samples_each, sites_each = 50, 10, 8
    n_sites = n_patients * sites_each
    error = np.exp(rng.uniform(np.log(1e-4), np.log(3e-3), n_sites))
    sample_patient = np.repeat(np.arange(n_patients), samples_each)
    scale = np.exp(rng.uniform(np.log(150), np.log(5000), len(sample_patient)))
    depth = rng.poisson(scale[:, None] * np.ones(n_sites))
    alt = rng.binomial(depth, error)
    site_owner = np.repeat(np.arange(n_patients), sites_each)
    table = pd.DataFrame(
        {
            "sample_id": np.repeat([f"S{i}" for i in range(len(sample_patient))], n_sites),
            "patient_id": np.repeat([f"P{p}" for p in sample_patient], n_sites),
            "chrom": "chr1",
            "pos": np.tile(np.arange(1, n_sites + 1) * 100, len(sample_patient)),
            "ref": "A",
            "alt": "C",
            "kind": "snv",
            "evaluable": True,
            "reason": "",
            "alt_count": alt.ravel(),
            "depth": depth.ravel(),
        }
    )
    table["vaf"] = table["alt_count"] / table["depth"]
    tumour_variants = pd.DataFrame(
        {
            "patient_id": [f"P{p}" for p in site_owner],
            "chrom": "chr1",
            "pos": np.arange(1, n_sites + 1) * 100,
            "ref": "A",
            "alt": "C",
        }
    )
    table = mark_carriers(table, tumour_variants)
    calls = sample_calls(variant_calls(table, site_background(table)))
    assert len(calls) == 500 and (calls["n_used"] == sites_each).all()
    false_positive_rate = calls["ctdna_detected"].mean()
    assert false_positive_rate <= 0.05
    assert 0.002 <= false_positive_rate <= 0.03  # near alpha = 0.01, not trivially conservative
    # p-values are roughly uniform (a discrete, slightly conservative test)
    assert 0.05 <= (calls["p_value"] <= 0.1).mean() <= 0.13
