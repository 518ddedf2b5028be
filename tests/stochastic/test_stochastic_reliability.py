"""Issue 19 regressions for the stochastic solvers: an exploding objective is DIVERGED."""

import jax
import numpy as np

import precond.stochastic as ps
from precond.linalg import Status


def test_sketchy_saga_duplicated_columns_mu_zero_reports_diverged_not_max_iterations():
    """Least squares with duplicated columns and μ = 0: H is singular, the step estimate
    explodes (η ~ 1e14) and the objective with it; the status must say so (it said
    max_iterations: divergence was flagged only on non-finite values)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4))
    X = np.hstack([X, X])  # every column twice: H = XᵀX/n is singular
    y = X @ rng.standard_normal(8) + 0.1 * rng.standard_normal(64)
    res = ps.sketchy_saga(ps.least_squares(X, y, 0.0), epochs=5, key=jax.random.key(0))
    assert res.status == Status.DIVERGED
    assert len(res.objective) < 6  # stopped at the epoch that blew up
    assert np.all(np.isfinite(np.asarray(res.x)))
    assert not bool(res.converged)
