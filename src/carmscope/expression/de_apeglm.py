"""pydeseq2's apeglm shrinkage (``utils.nbinomGLM``) for all genes at once.

The same maximum a posteriori problem as ``pydeseq2.utils.nbinomGLM`` (Zhu et al. 2019):
negative binomial log-likelihood with the gene's dispersion, a normal prior of scale
``prior_no_shrink_scale`` on every coefficient but the shrunk one, and a Cauchy prior of scale
``prior_scale`` on it; solved by Newton steps (Armijo backtracking) for all genes together
instead of one L-BFGS-B run per gene (6,173 runs, about 7 s of CPU of one benchmark profile;
docs/expression.md, section 8). The Cauchy prior makes the problem non-convex: where the
Hessian is indefinite the Newton step is shifted (Levenberg-Marquardt), and a gene whose
Hessian is not positive definite at the optimum, or that does not converge, is solved by
``nbinomGLM`` itself.
"""

from __future__ import annotations

import numpy as np
from pydeseq2 import utils

GRADIENT_TOL = 1e-10
"""Converged when the largest gradient entry, scaled as nbinomGLM scales it, is below this
(nbinomGLM's L-BFGS-B stops at 1e-8)."""
NEWTON_RANGE = 1e-4
"""Newton steps whose largest entry is this small are taken without a line search."""
MAX_NEWTON = 100


class _Posterior:
    """Negative log-posterior of ``nbinomFn``, its gradient and Hessian, for chosen genes."""

    def __init__(self, X, counts, size, offset, no_shrink_scale, scale, shrink_index):
        self.X, self.counts, self.size, self.offset = X, counts, size, offset
        self.no_shrink_scale, self.scale, self.k = no_shrink_scale, scale, shrink_index
        self.mask = np.ones(X.shape[1], dtype=bool)
        self.mask[shrink_index] = False

    def value(self, beta, idx):
        xbeta = beta @ self.X.T  # genes x samples
        y, size = self.counts[:, idx].T, self.size[idx, None]
        prior = (beta[:, self.mask] ** 2).sum(axis=1) / (2 * self.no_shrink_scale**2) + np.log1p(
            (beta[:, self.k] / self.scale) ** 2
        )
        nll = (y * xbeta - (y + size) * np.logaddexp(xbeta + self.offset, np.log(size))).sum(1)
        return prior - nll

    def derivatives(self, beta, idx):
        xbeta = beta @ self.X.T
        y, size = self.counts[:, idx].T, self.size[idx, None]
        b_k = beta[:, self.k]
        d_prior = np.where(self.mask, beta / self.no_shrink_scale**2, 0.0)
        d_prior[:, self.k] = 2 * b_k / (self.scale**2 + b_k**2)
        d_nll = (y - (y + size) / (1 + size * np.exp(-xbeta - self.offset))) @ self.X
        e = np.exp(xbeta + self.offset)
        frac = (y + size) * size * e / (size + e) ** 2
        h = np.where(self.mask, 1 / self.no_shrink_scale**2, 0.0) * np.ones_like(beta)
        h[:, self.k] = 2 * (self.scale**2 - b_k**2) / (self.scale**2 + b_k**2) ** 2
        p = self.X.shape[1]
        outer = (self.X[:, :, None] * self.X[:, None, :]).reshape(len(self.X), p * p)
        gram = (frac @ outer).reshape(len(idx), p, p)
        return d_prior - d_nll, gram, h


def _lowest_eigenvalue(hessian: np.ndarray) -> np.ndarray:
    """Smallest eigenvalue of each symmetric matrix; NaN where an entry is not finite."""
    finite = np.isfinite(hessian).all(axis=(1, 2))
    safe = np.where(finite[:, None, None], hessian, np.eye(hessian.shape[1]))
    return np.where(finite, np.linalg.eigvalsh(safe)[:, 0], np.nan)


def apeglm_map(
    design_matrix: np.ndarray,
    counts: np.ndarray,
    size: np.ndarray,
    offset: np.ndarray,
    prior_no_shrink_scale: float,
    prior_scale: float,
    optimizer: str,
    shrink_index: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``nbinomGLM`` for every gene (columns of ``counts``): MAP coefficients, inverse
    Hessians (as ``nbinomGLM`` computes them) and convergence flags."""
    X = np.asarray(design_matrix, dtype=float)
    counts = np.asarray(counts, dtype=float)
    size, offset = np.asarray(size, dtype=float), np.asarray(offset, dtype=float)
    n_genes, p = counts.shape[1], X.shape[1]
    model = _Posterior(X, counts, size, offset, prior_no_shrink_scale, prior_scale, shrink_index)
    every = np.arange(n_genes)
    scale = np.maximum(model.value(np.zeros((n_genes, p)), every), 1)  # nbinomGLM's scaling
    beta = np.tile(0.1 * (-1.0) ** np.arange(p), (n_genes, 1))
    value = model.value(beta, every)
    active = np.ones(n_genes, dtype=bool)
    fallback = np.zeros(n_genes, dtype=bool)
    for _ in range(MAX_NEWTON):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        grad, gram, h = model.derivatives(beta[idx], idx)
        done = np.abs(grad).max(axis=1) / scale[idx] <= GRADIENT_TOL
        hessian = gram + h[:, :, None] * np.eye(p)
        lowest = _lowest_eigenvalue(hessian)
        active[idx[done]] = False
        idx, grad, hessian, lowest = idx[~done], grad[~done], hessian[~done], lowest[~done]
        if idx.size == 0:
            break
        # where the Cauchy prior makes the Hessian indefinite, a Levenberg-Marquardt shift
        convex = lowest > 0
        shift = np.where(convex, 0.0, 1.0 - lowest)
        step = -np.linalg.solve(hessian + shift[:, None, None] * np.eye(p), grad[..., None])[..., 0]
        accepted = convex & (np.abs(step).max(axis=1) <= NEWTON_RANGE)
        trial_beta = beta[idx] + step
        factor = 1.0
        for _halving in range(40):
            trial = beta[idx] + factor * step
            trial_value = model.value(trial, idx)
            ok = ~accepted & (trial_value <= value[idx] + 1e-4 * factor * (grad * step).sum(axis=1))
            trial_beta[ok] = trial[ok]
            accepted |= ok
            if accepted.all():
                break
            factor /= 2
        fallback[idx[~accepted]] = True
        active[idx[~accepted]] = False
        moved = idx[accepted]
        beta[moved] = trial_beta[accepted]
        value[moved] = model.value(beta[moved], moved)
    fallback |= active | ~np.isfinite(beta).all(axis=1)
    # nbinomGLM's inverse Hessian: ddf(beta, 1), whose prior term it adds to every row
    _, gram, h = model.derivatives(beta, every)
    # an optimum where the posterior is not convex (two modes possible): nbinomGLM decides
    fallback |= ~(_lowest_eigenvalue(gram + h[:, :, None] * np.eye(p)) > 0)
    inverse = np.full((n_genes, p, p), np.nan)
    try:
        inverse[:] = np.linalg.inv(gram + h[:, None, :])
    except np.linalg.LinAlgError:  # one singular matrix: the others one by one
        for gene in np.flatnonzero(~fallback):
            try:
                inverse[gene] = np.linalg.inv(gram[gene] + h[gene][None, :])
            except np.linalg.LinAlgError:
                fallback[gene] = True  # nbinomGLM decides (and raises as it would)
    converged = np.ones(n_genes, dtype=bool)
    for gene in np.flatnonzero(fallback):
        beta[gene], inverse[gene], converged[gene] = utils.nbinomGLM(
            design_matrix=X,
            counts=counts[:, gene],
            size=size[gene],
            offset=offset,
            prior_no_shrink_scale=prior_no_shrink_scale,
            prior_scale=prior_scale,
            optimizer=optimizer,
            shrink_index=shrink_index,
        )
    return beta, inverse, converged
