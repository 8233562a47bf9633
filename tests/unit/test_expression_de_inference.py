"""VectorisedInference against pydeseq2's DefaultInference (carmscope.expression.de_inference).

Two levels (tolerances and their reasons in docs/expression.md, section 8):

* each vectorised method on exactly the inputs pydeseq2 gave its own ``DefaultInference``
  during a fit (recorded): the IRLS and Wald test agree to rounding; the dispersion and apeglm
  optima are at least as good as L-BFGS-B's and within its stopping error of them;
* whole fits: the same genes called up and down at padj < 0.05, and the numbers within a small
  multiple of how much pydeseq2 moves when the size factors change by 1e-13 (the reference's
  own L-BFGS-B stops are not reproducible beyond that).
"""

from __future__ import annotations

import copy
import importlib
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from pydeseq2.default_inference import DefaultInference

from carmscope.expression import de, de_model
from carmscope.expression.de_apeglm import _Posterior
from carmscope.expression.de_inference import (
    FLAT_CURVATURE,
    VectorisedInference,
    _DispersionObjective,
)
from tests.unit.test_expression_de import simulated_pairs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """As in the DE step (de_model._fitting): BLAS threads only spin on matrices this small."""
    with de_model._fitting():
        yield


class Recording(DefaultInference):
    """pydeseq2's own inference, keeping every call's arguments and answer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, dict, tuple]] = []

    def _record(self, name, kwargs):
        answer = getattr(super(), name)(**kwargs)
        # copies: pydeseq2 later changes some of these arrays in place (lfc_shrink's LFC)
        self.calls.append((name, copy.deepcopy(kwargs), copy.deepcopy(answer)))
        return answer

    def irls(self, **kwargs):
        return self._record("irls", kwargs)

    def alpha_mle(self, **kwargs):
        return self._record("alpha_mle", kwargs)

    def wald_test(self, **kwargs):
        return self._record("wald_test", kwargs)

    def lfc_shrink_nbinom_glm(self, **kwargs):
        return self._record("lfc_shrink_nbinom_glm", kwargs)


def _r_agreement_data():
    """The counts and design of test_expression_de's R DESeq2 agreement test."""
    counts, design, _ = simulated_pairs(n_pairs=7, n_genes=2000, n_up=150, n_down=100, lfc=1.0)
    return de.filter_genes(counts, 10, 7), design


@pytest.fixture(scope="module")
def recorded():
    from pydeseq2.ds import DeseqStats

    counts, design = _r_agreement_data()
    inference = Recording(n_cpus=1)
    with de_model._fitting(), warnings.catch_warnings():  # one BLAS thread, as the step
        warnings.simplefilter("ignore")
        dds = de_model.paired_dataset(counts, design, inference)
        dds.deseq2()
        stats = DeseqStats(
            dds, contrast=["time", "post", "baseline"], inference=inference, quiet=True
        )
        stats.summary()
        stats.lfc_shrink(coeff=de_model.TIME_COEFFICIENT)
    return inference.calls


def _calls(recorded, name):
    found = [(kwargs, answer) for method, kwargs, answer in recorded if method == name]
    assert found, name
    return found


def test_irls_is_pydeseq2s_iteration(recorded):
    for kwargs, (beta, mu, hat, converged) in _calls(recorded, "irls"):
        ours = VectorisedInference().irls(**kwargs)
        np.testing.assert_allclose(ours[0], beta, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(ours[1], mu, rtol=1e-9)
        np.testing.assert_allclose(ours[2], hat, rtol=1e-8, atol=1e-12)
        assert np.array_equal(ours[3], converged)


def test_irls_hands_genes_it_cannot_finish_to_pydeseq2(recorded, monkeypatch):
    from carmscope.expression import de_inference

    kwargs, _ = _calls(recorded, "irls")[-1]
    # with 3 iterations allowed, every gene not converged by then takes irls_solver's L-BFGS-B
    genes = slice(0, 60)
    kwargs = {
        **kwargs,
        "counts": kwargs["counts"][:, genes],
        "disp": kwargs["disp"][genes],
        "maxiter": 3,
    }
    handed = []
    solver = de_inference.utils.irls_solver

    def spy(**arguments):
        handed.append(arguments["disp"])
        return solver(**arguments)

    monkeypatch.setattr(de_inference.utils, "irls_solver", spy)
    ours = VectorisedInference().irls(**kwargs)
    monkeypatch.setattr(de_inference.utils, "irls_solver", solver)
    theirs = DefaultInference(n_cpus=1).irls(**kwargs)
    assert 0 < len(handed) <= len(kwargs["disp"])
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-9, atol=1e-9)


def _loss(kwargs, gene, alpha):
    objective = _DispersionObjective(
        np.asarray(kwargs["counts"], float)[:, [gene]],
        np.asarray(kwargs["mu"], float)[:, [gene]],
        np.asarray(kwargs["design_matrix"], float),
        np.log(np.atleast_1d(kwargs["alpha_hat"][gene])),
        kwargs.get("cr_reg", True),
        kwargs.get("prior_reg", False),
        kwargs.get("prior_disp_var"),
    )
    return [v[0] for v in objective(np.log([alpha]), np.array([0]))]


def test_dispersions_are_the_same_optimum_within_l_bfgs_bs_stopping_error(recorded):
    for kwargs, (alpha, converged) in _calls(recorded, "alpha_mle"):
        ours, ours_converged = VectorisedInference().alpha_mle(**kwargs)
        differs = np.flatnonzero(ours != alpha)
        for gene in differs:
            f_ref, g_ref, _ = _loss(kwargs, gene, alpha[gene])
            f_ours, g_ours, h_ours = _loss(kwargs, gene, ours[gene])
            # at least as good an optimum as L-BFGS-B's (or its grid search's) ...
            assert f_ours <= f_ref + 1e-9 * abs(f_ref), gene
            assert abs(g_ours) <= 1e-5 or h_ours < FLAT_CURVATURE
            if converged[gene] and h_ours >= FLAT_CURVATURE:
                # ... and where L-BFGS-B converged, within its own stopping error |g| / h
                gap = abs(np.log(ours[gene]) - np.log(alpha[gene]))
                assert gap <= 2 * abs(g_ref) / h_ours + 1e-8, gene
        assert ours_converged[converged].all()


def test_wald_test_is_pydeseq2s(recorded):
    for kwargs, (pvalue, stat, se) in _calls(recorded, "wald_test"):
        ours = VectorisedInference().wald_test(**kwargs)
        np.testing.assert_allclose(ours[0], pvalue, rtol=1e-9, atol=1e-300)
        np.testing.assert_allclose(ours[1], stat, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(ours[2], se, rtol=1e-9)


@pytest.mark.parametrize("alt_hypothesis", ["greaterAbs", "lessAbs", "greater", "less"])
def test_wald_test_alternative_hypotheses(recorded, alt_hypothesis):
    kwargs, _ = _calls(recorded, "wald_test")[0]
    kwargs = {**kwargs, "alt_hypothesis": alt_hypothesis, "lfc_null": 0.3}
    ours = VectorisedInference().wald_test(**kwargs)
    theirs = DefaultInference(n_cpus=1).wald_test(**kwargs)
    for mine, reference in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(mine, reference, rtol=1e-9, atol=1e-12)


def test_apeglm_is_the_same_optimum(recorded):
    (kwargs, (beta, inverse, converged)), *_ = _calls(recorded, "lfc_shrink_nbinom_glm")
    ours, ours_inverse, ours_converged = VectorisedInference().lfc_shrink_nbinom_glm(**kwargs)
    k = kwargs["shrink_index"]
    posterior = _Posterior(
        np.asarray(kwargs["design_matrix"], float),
        np.asarray(kwargs["counts"], float),
        np.asarray(kwargs["size"], float),
        np.asarray(kwargs["offset"], float),
        kwargs["prior_no_shrink_scale"],
        kwargs["prior_scale"],
        k,
    )
    genes = np.arange(len(beta))
    assert (posterior.value(ours, genes) <= posterior.value(beta, genes) + 1e-9).all()
    # L-BFGS-B stops at a gradient of 1e-8 times the posterior at 0 (up to 1e-2 here): its
    # distance to the optimum is the Newton step from its answer; ours is within twice that
    grad, gram, h = posterior.derivatives(beta, genes)
    newton = np.linalg.solve(gram + h[:, :, None] * np.eye(len(h[0])), grad[..., None])[..., 0]
    assert (np.abs(ours[:, k] - beta[:, k]) <= 2 * np.abs(newton[:, k]) + 1e-8).all()
    assert np.abs(ours[:, k] - beta[:, k]).max() < 2e-3
    np.testing.assert_allclose(ours_inverse[:, k, k], inverse[:, k, k], rtol=1e-2)
    assert ours_converged[converged].all()


# --- whole fits -------------------------------------------------------------------------------


def _agree(ours, theirs, decided_apart, lfc_tol, stat_tol=2e-3, p_rtol=2e-2) -> None:
    """Same calls for every gene; the numbers within tolerance where the dispersion is decided
    alike (``decided_apart``: genes where the two fits chose differently between genewise and
    MAP dispersion, or where pydeseq2's L-BFGS-B failed and its grid search answered)."""
    assert ours.index.equals(theirs.index)
    for sign in (1, -1):
        called = [
            set(t.index[(t["padj"] < 0.05) & (sign * t["log2FoldChange"] > 0)])
            for t in (ours, theirs)
        ]
        assert called[0] == called[1]
    genes = ours.index.get_level_values("gene")
    alike = ~genes.isin(list(decided_apart))
    assert alike.mean() > 0.95
    ours, theirs = ours[alike], theirs[alike]
    np.testing.assert_allclose(ours["log2FoldChange"], theirs["log2FoldChange"], atol=lfc_tol)
    np.testing.assert_allclose(ours["stat"], theirs["stat"], atol=stat_tol)
    np.testing.assert_allclose(ours["pvalue"], theirs["pvalue"], rtol=p_rtol, atol=1e-12)


@pytest.fixture
def fits(monkeypatch):
    """Every DeseqDataSet fitted, by inference class name."""
    from pydeseq2.dds import DeseqDataSet

    seen: dict[str, list] = {}
    fit = DeseqDataSet.deseq2

    def spy(self, *args, **kwargs):
        fit(self, *args, **kwargs)
        seen.setdefault(type(self.inference).__name__, []).append(self)

    monkeypatch.setattr(DeseqDataSet, "deseq2", spy)
    return seen


def _decided_apart(fits) -> set[str]:
    apart: set[str] = set()
    for ours, theirs in zip(fits["VectorisedInference"], fits["DefaultInference"], strict=True):
        flags = ["_genewise_converged", "_MAP_converged"]
        failed = ~theirs.var[flags].fillna(True).astype(bool).all(axis=1)
        flipped = ours.var["_outlier_genes"] != theirs.var["_outlier_genes"]
        apart |= set(theirs.var_names[failed.to_numpy() | flipped.to_numpy()])
    return apart


def test_r_agreement_data_gives_pydeseq2s_results(fits):
    counts, design = _r_agreement_data()
    ours, theirs = (
        de.deseq2_paired(counts, design, inference=name).set_index("gene")
        for name in ("vectorised", "pydeseq2")
    )
    _agree(ours, theirs, _decided_apart(fits), lfc_tol=1e-4)
    np.testing.assert_allclose(
        ours["log2FoldChange_shrunk"], theirs["log2FoldChange_shrunk"], atol=1e-2
    )


@pytest.fixture(scope="module")
def cohort():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        bench = importlib.import_module("de")
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    profiles, n_cells, samples, patients = bench.cohort_profiles(14)
    universe = next(iter(profiles.values())).index
    kept = universe[np.linspace(0, len(universe) - 1, 1500).round().astype(int)]
    profiles = {sample: table.loc[kept] for sample, table in profiles.items()}
    settings = de.DESettings(group_columns=("dosing",))
    design = de.paired_design(samples, patients, settings.group_columns)
    return profiles, n_cells, design, settings


@pytest.mark.parametrize("cell_type", ["cd8_t", "macrophage_m1", "all"])
def test_synthetic_cohort_profiles_give_pydeseq2s_results(cohort, cell_type, fits):
    profiles, n_cells, design, settings = cohort
    ours, theirs = (
        de.de_cell_type(profiles, n_cells, design, cell_type, settings, inference=name)
        for name in ("vectorised", "pydeseq2")
    )
    apart = _decided_apart(fits)
    _agree(ours.results.set_index("gene"), theirs.results.set_index("gene"), apart, lfc_tol=1e-4)
    if cell_type == "all":
        keys = ["group_column", "group", "gene"]
        _agree(ours.interaction.set_index(keys), theirs.interaction.set_index(keys), apart, 1e-4)


def test_unknown_inference_is_refused():
    with pytest.raises(ValueError, match="inference must be one of vectorised, pydeseq2"):
        de_model.make_inference("fast")
