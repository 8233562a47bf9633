"""pydeseq2's per-gene fits, vectorised over genes: the same models, one NumPy pass for all.

Measured reason (the project's rule for hand-written numerics)
    pydeseq2 0.5.4's ``DefaultInference`` fits every gene on its own in a Python loop: each
    gene is a GLM of 28 samples and 15-30 coefficients, so the cost is Python and SciPy call
    overhead, not arithmetic. cProfile of one profile of the 14-patient benchmark
    (``benchmarks/de.py de --patients 14 --profiles cd8_t``, 6,173 genes, three models, 73 s of
    CPU): ``utils.irls_solver`` 37,038 calls (25 s), ``utils.fit_alpha_mle`` 37,038 L-BFGS-B
    runs (32 s), ``utils.wald_test`` one call per gene and contrast. :class:`VectorisedInference`
    runs the same iterations for all genes at once (batched ``np.linalg.solve``/``einsum`` over a
    genes axis); the whole DE step's CPU time before and after is in docs/expression.md (8).

What is the same as pydeseq2 (``pydeseq2.utils``), and where the reference itself is used
    ``irls``
        ``irls_solver``'s iteration exactly (least-squares start, ridge 1e-6, ``min_mu`` floor,
        stop on the relative deviance change ``beta_tol``, hat diagonals of the final weights).
        Genes whose update leaves ``|beta| <= max_beta`` or that reach ``maxiter`` are re-fitted
        one by one by ``irls_solver`` itself, which takes its L-BFGS-B path for them.
    ``alpha_mle``
        ``fit_alpha_mle``'s objective (negative binomial log-likelihood in log alpha, Cox-Reid
        term, optional log-normal prior) minimised by Newton steps with an Armijo backtracking
        line search, projected on ``[log min_disp, log max_disp]`` (DESeq2's own ``fitDisp``
        is a line search on log alpha too), to a gradient of 1e-9 or a step of 1e-10. As
        L-BFGS-B, a start whose projected gradient is already at most 1e-5 (SciPy's ``pgtol``)
        is returned as is. Genes that do not converge in 100 steps, or whose loss is flat or
        concave at the start or at a step (second derivative below :data:`FLAT_CURVATURE`,
        near ``min_disp``: there where L-BFGS-B stops, and which minimum it reaches, depend on
        its own path), are fitted by ``fit_alpha_mle`` itself.
    ``wald_test``
        ``wald_test``'s formulas (ridge, every ``alt_hypothesis``), the normal tail from SciPy.
    ``lfc_shrink_nbinom_glm``
        ``nbinomGLM``'s apeglm posterior (:mod:`carmscope.expression.de_apeglm`).

Measured after (the whole 14-patient step, both inferences in one run): 592.5 s of CPU with
``DefaultInference``, 85.8 s with this class (6.9x), the same genes called in every profile.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydeseq2 import utils
from pydeseq2.default_inference import DefaultInference
from scipy.special import gammaln, polygamma
from scipy.stats import norm

from carmscope.expression.de_apeglm import apeglm_map

PGTOL = 1e-5
"""SciPy's L-BFGS-B projected-gradient tolerance: a start this flat is returned unchanged."""
GRADIENT_TOL = 1e-9
"""Newton on log alpha stops when the projected gradient is below this."""
FLAT_CURVATURE = 1e-2
"""Second derivative in log alpha below which (at the start or at any step) a gene is fitted
by pydeseq2 itself: where the loss is this flat L-BFGS-B may stop up to ``PGTOL / curvature``
= 1e-3 from the optimum, and where it is concave it may reach another minimum."""
NEWTON_RANGE = 1e-4
"""Newton steps in log alpha this small (convex side) are taken without a line search."""
STEP_TOL = 1e-10
"""... or when the Newton step in log alpha is below this (alpha to 1e-10 relative)."""
MAX_NEWTON = 100


def _gram(X: np.ndarray, W: np.ndarray) -> np.ndarray:
    """``X.T @ diag(w) @ X`` for every gene: ``W`` samples x genes, result genes x p x p."""
    p = X.shape[1]
    outer = (X[:, :, None] * X[:, None, :]).reshape(X.shape[0], p * p)
    return (W.T @ outer).reshape(W.shape[1], p, p)


def _nb_nll(counts: np.ndarray, mu: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``utils.nb_nll`` for each gene (columns), one dispersion per gene."""
    n = counts.shape[0]
    inv = 1.0 / alpha
    logbinom = gammaln(counts + inv) - gammaln(counts + 1) - gammaln(inv)
    return n * inv * np.log(alpha) + (
        -logbinom + (counts + inv) * np.log(inv + mu) - counts * np.log(mu)
    ).sum(axis=0)


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.solve(A, b[..., None])[..., 0]


class VectorisedInference(DefaultInference):
    """``DefaultInference`` whose IRLS, dispersion fits, Wald tests and apeglm shrinkage run
    over all genes at once.

    Parameters are those of :class:`pydeseq2.default_inference.DefaultInference`; ``n_cpus``
    only reaches the steps left to pydeseq2 (``lin_reg_mu``); the vectorised paths and their
    per-gene fallbacks run in the calling process.
    """

    def irls(
        self,
        counts: np.ndarray,
        size_factors: np.ndarray,
        design_matrix: np.ndarray,
        disp: np.ndarray,
        min_mu: float,
        beta_tol: float,
        min_beta: float = -30,
        max_beta: float = 30,
        optimizer: Literal["BFGS", "L-BFGS-B"] = "L-BFGS-B",
        maxiter: int = 250,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        counts = np.asarray(counts, dtype=float)
        X = np.asarray(design_matrix, dtype=float)
        sf = np.asarray(size_factors, dtype=float)[:, None]
        disp = np.asarray(disp, dtype=float)
        n_genes, p = counts.shape[1], X.shape[1]
        ridge = np.diag(np.repeat(1e-6, p))
        with np.errstate(divide="ignore", invalid="ignore"):
            if np.linalg.matrix_rank(X) == p:
                Q, R = np.linalg.qr(X)
                beta = np.linalg.solve(R, Q.T @ np.log(counts / sf + 0.1)).T
            else:
                beta = np.zeros((n_genes, p))
                beta[:, 0] = np.log(counts / sf).mean(axis=0)
        mu = np.maximum(sf * np.exp(X @ beta.T), min_mu)
        dev = np.full(n_genes, 1000.0)
        active = np.ones(n_genes, dtype=bool)
        fallback = np.zeros(n_genes, dtype=bool)
        i = 0
        while active.any():
            idx = np.flatnonzero(active)
            m, y, d = mu[:, idx], counts[:, idx], disp[idx]
            W = m / (1.0 + m * d)
            z = np.log(m / sf) + (y - m) / m
            beta_hat = _solve(_gram(X, W) + ridge, (X.T @ (W * z)).T)
            i += 1
            diverged = (np.abs(beta_hat) > max_beta).any(axis=1) | (i >= maxiter)
            fallback[idx[diverged]] = True
            active[idx[diverged]] = False
            keep, beta_hat = idx[~diverged], beta_hat[~diverged]
            beta[keep] = beta_hat
            mu[:, keep] = np.maximum(sf * np.exp(X @ beta_hat.T), min_mu)
            old = dev[keep]
            dev[keep] = -2 * _nb_nll(counts[:, keep], mu[:, keep], disp[keep])
            ratio = np.abs(dev[keep] - old) / (np.abs(dev[keep]) + 0.1)
            active[keep[~(ratio > beta_tol)]] = False
        W = mu / (1.0 + mu * disp)
        inverse = np.linalg.inv(_gram(X, W) + ridge)
        hat = np.einsum("ni,gij,nj->ng", X, inverse, X) * W
        mu = sf * np.exp(X @ beta.T)
        converged = np.ones(n_genes, dtype=bool)
        for g in np.flatnonzero(fallback):  # pydeseq2's own path (L-BFGS-B) for hard genes
            beta[g], mu[:, g], hat[:, g], converged[g] = utils.irls_solver(
                counts=counts[:, g],
                size_factors=sf[:, 0],
                design_matrix=X,
                disp=disp[g],
                min_mu=min_mu,
                beta_tol=beta_tol,
                min_beta=min_beta,
                max_beta=max_beta,
                optimizer=optimizer,
                maxiter=maxiter,
            )
        return beta, mu, hat, converged

    def alpha_mle(
        self,
        counts: np.ndarray,
        design_matrix: np.ndarray,
        mu: np.ndarray,
        alpha_hat: np.ndarray,
        min_disp: float,
        max_disp: float,
        prior_disp_var: float | None = None,
        cr_reg: bool = True,
        prior_reg: bool = False,
        optimizer: Literal["BFGS", "L-BFGS-B"] = "L-BFGS-B",
    ) -> tuple[np.ndarray, np.ndarray]:
        if prior_reg and prior_disp_var is None:
            raise ValueError("Sigma_prior is required for prior regularization")
        counts = np.asarray(counts, dtype=float)
        mu = np.asarray(mu, dtype=float)
        X = np.asarray(design_matrix, dtype=float)
        start = np.log(np.asarray(alpha_hat, dtype=float))
        low, high = np.log(min_disp), np.log(max_disp)
        objective = _DispersionObjective(counts, mu, X, start, cr_reg, prior_reg, prior_disp_var)
        n_genes = counts.shape[1]
        x = np.clip(start, low, high)
        f, g, h = objective(x, np.arange(n_genes))
        # L-BFGS-B stops at once where the projected gradient of the start is <= pgtol
        active = _projected(x, g, low, high) > PGTOL
        done_at_start = ~active
        failed = np.zeros(n_genes, dtype=bool)
        # where the loss is flat or concave (near alpha = min_disp), where L-BFGS-B stops and
        # which minimum it reaches depend on its own path: those genes are its to fit
        curved = h >= FLAT_CURVATURE
        for _ in range(MAX_NEWTON):
            idx = np.flatnonzero(active)
            if idx.size == 0:
                break
            step = np.where(h[idx] > 0, -g[idx] / np.where(h[idx] > 0, h[idx], 1.0), -g[idx])
            step = np.clip(step, -2.0, 2.0)
            # in Newton's quadratic range a step decreases the loss by less than its rounding:
            # take it whole (the gradient is what shrinks); elsewhere an Armijo line search
            accepted = (h[idx] > 0) & (np.abs(step) <= NEWTON_RANGE)
            new_x = np.where(accepted, np.clip(x[idx] + step, low, high), x[idx])
            new_f = f[idx].copy()
            scale = np.ones(idx.size)
            for _halving in range(40):
                trial = np.clip(x[idx] + scale * step, low, high)
                trial_f = objective(trial, idx, value_only=True)
                ok = ~accepted & (trial_f <= f[idx] + 1e-4 * g[idx] * (trial - x[idx]))
                new_x[ok], new_f[ok] = trial[ok], trial_f[ok]
                accepted |= ok
                if accepted.all():
                    break
                scale = np.where(accepted, scale, scale / 2)
            x[idx] = new_x
            f[idx], g[idx], h[idx] = objective(x[idx], idx)
            curved[idx] &= h[idx] >= FLAT_CURVATURE
            stalled = ~accepted
            newton = np.abs(g[idx]) / np.where(h[idx] > 0, h[idx], np.inf)
            finished = (_projected(x[idx], g[idx], low, high) <= GRADIENT_TOL) | (
                newton <= STEP_TOL
            )
            # no decrease left to find in floating point: converged if the gradient is small
            finished |= stalled & (np.abs(g[idx]) <= PGTOL / 10)
            active[idx[finished | stalled]] = False
            failed[idx[stalled & ~finished]] = True
        fallback = ~done_at_start & (active | failed | ~curved | ~np.isfinite(x))
        alpha = np.exp(x)
        converged = np.ones(n_genes, dtype=bool)
        for gene in np.flatnonzero(fallback):
            alpha[gene], converged[gene] = utils.fit_alpha_mle(
                counts=counts[:, gene],
                design_matrix=X,
                mu=mu[:, gene],
                alpha_hat=float(np.exp(start[gene])),
                min_disp=min_disp,
                max_disp=max_disp,
                prior_disp_var=prior_disp_var,
                cr_reg=cr_reg,
                prior_reg=prior_reg,
                optimizer=optimizer,
            )
        return alpha, converged

    def wald_test(
        self,
        design_matrix: np.ndarray,
        disp: np.ndarray,
        lfc: np.ndarray,
        mu: np.ndarray,
        ridge_factor: np.ndarray,
        contrast: np.ndarray,
        lfc_null: np.ndarray,
        alt_hypothesis: Literal["greaterAbs", "lessAbs", "greater", "less"] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        X, contrast = np.asarray(design_matrix, float), np.asarray(contrast, float)
        mu, lfc = np.asarray(mu, dtype=float), np.asarray(lfc, dtype=float)
        W = mu / (1 + mu * np.asarray(disp, dtype=float))
        M = _gram(X, W)
        Hc = np.linalg.inv(M + ridge_factor) @ contrast
        se = np.sqrt(np.einsum("gi,gij,gj->g", Hc, M, Hc))
        scaled = lambda shift: (lfc - shift) / se[:, None]  # noqa: E731

        def greater(null):
            stat = np.fmax(scaled(null), 0) @ contrast
            return stat, norm.sf(stat)

        def less(null):
            stat = np.fmin(scaled(null), 0) @ contrast
            return stat, norm.sf(np.abs(stat))

        if alt_hypothesis is None:
            stat = scaled(lfc_null) @ contrast
            pvalue = 2 * norm.sf(np.abs(stat))
        elif alt_hypothesis == "greater":
            stat, pvalue = greater(lfc_null)
        elif alt_hypothesis == "less":
            stat, pvalue = less(lfc_null)
        elif alt_hypothesis == "greaterAbs":
            shifted = np.fmax((np.abs(lfc) - lfc_null) / se[:, None], 0)
            stat = (np.sign(lfc) * shifted) @ contrast
            pvalue = 2 * norm.sf(np.abs(stat))
        else:  # lessAbs: the smaller statistic in absolute value, the larger p-value
            stat_above, p_above = greater(-abs(lfc_null))
            stat_below, p_below = less(abs(lfc_null))
            stat = np.where(np.abs(stat_below) < np.abs(stat_above), stat_below, stat_above)
            pvalue = np.maximum(p_above, p_below)
        return pvalue, stat, se

    lfc_shrink_nbinom_glm = staticmethod(apeglm_map)  # type: ignore[assignment]
    """apeglm shrinkage for all genes at once (:func:`de_apeglm.apeglm_map`)."""


def _projected(x, g, low, high):
    """Size of the gradient projected on the bounds (what L-BFGS-B tests against pgtol)."""
    step = np.clip(x - g, low, high) - x
    return np.abs(step)


class _DispersionObjective:
    """``fit_alpha_mle``'s loss in log alpha, its first and second derivatives, per gene."""

    def __init__(self, counts, mu, X, log_alpha_hat, cr_reg, prior_reg, prior_disp_var):
        self.counts, self.mu, self.X = counts, mu, X
        self.log_alpha_hat = log_alpha_hat
        self.cr_reg, self.prior_reg, self.prior_disp_var = cr_reg, prior_reg, prior_disp_var
        self.constant = gammaln(counts + 1).sum(axis=0)

    def __call__(self, x, idx, value_only=False):
        y, mu = self.counts[:, idx], self.mu[:, idx]
        alpha = np.exp(x)
        inv = 1.0 / alpha
        n = y.shape[0]
        value = (
            n * inv * np.log(alpha)
            - (gammaln(y + inv) - gammaln(inv)).sum(axis=0)
            + self.constant[idx]
            + ((y + inv) * np.log(inv + mu) - y * np.log(mu)).sum(axis=0)
        )
        if self.cr_reg:
            W = mu / (1 + mu * alpha)
            A = _gram(self.X, W)
            sign, logdet = np.linalg.slogdet(A)
            # a singular X'WX (a gene's means all but zero): no value, so pydeseq2 fits it
            singular = ~(sign > 0) | ~np.isfinite(logdet)
            value = np.where(singular, np.nan, value + 0.5 * logdet)
            A = np.where(singular[:, None, None], np.eye(A.shape[1]), A)
        if self.prior_reg:
            value = value + (x - self.log_alpha_hat[idx]) ** 2 / (2 * self.prior_disp_var)
        if value_only:
            return value
        # derivatives in alpha (utils.dnb_nll and its derivative), then in log alpha
        s = (
            polygamma(0, inv) - polygamma(0, y + inv) + np.log1p(mu * alpha) + (y - mu) / (mu + inv)
        ).sum(axis=0)
        ds = (
            -(inv**2) * (polygamma(1, inv) - polygamma(1, y + inv))
            + (mu / (1 + mu * alpha) + (y - mu) * inv**2 / (mu + inv) ** 2)
        ).sum(axis=0)
        grad_a = -(inv**2) * s
        hess_a = 2 * inv**3 * s - inv**2 * ds
        if self.cr_reg:
            A_inv = np.linalg.inv(A)
            dA = _gram(self.X, -(W**2))
            d2A = _gram(self.X, 2 * W**3)
            AdA = A_inv @ dA
            grad_a = grad_a + 0.5 * np.einsum("gii->g", AdA)
            hess_a = hess_a + 0.5 * (
                np.einsum("gij,gji->g", A_inv, d2A) - np.einsum("gij,gji->g", AdA, AdA)
            )
        grad = alpha * grad_a
        hess = alpha**2 * hess_a + grad
        if self.prior_reg:
            grad = grad + (x - self.log_alpha_hat[idx]) / self.prior_disp_var
            hess = hess + 1.0 / self.prior_disp_var
        return value, grad, hess
