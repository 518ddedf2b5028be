"""Issue 19 regressions for the stochastic solvers: a sane step on a rank-deficient H, and an
exploding objective is DIVERGED."""

import jax
import numpy as np

import precond.stochastic as ps
from precond.linalg import Status


def _duplicated_columns():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 4))
    X = np.hstack([X, X])  # every column twice: H = XᵀX/n is singular (rank 4 of 8)
    y = X @ rng.standard_normal(8) + 0.1 * rng.standard_normal(64)
    return X, y


def test_sketchy_saga_duplicated_columns_mu_zero_takes_a_sane_step():
    """Least squares with duplicated columns and μ = 0: the rank-8 sketch of the rank-4 H has
    four λ̂ ≈ 0, and P⁻¹'s scale λ̂_r + ρ was ~eps, so η was 7.7e13 and the objective went
    from 2.76 to 9.2e141 (reported max_iterations).  The sketch is now cut at its numerical
    rank: η is O(1/λ̂_k) and the objective decreases (not monotonically on every key: with b_H = 8
    one epoch may rise, and the step safeguard undoes the ones that rise far)."""
    X, y = _duplicated_columns()
    res = ps.sketchy_saga(ps.least_squares(X, y, 0.0), epochs=5, key=jax.random.key(0))
    assert res.status == Status.MAX_ITERATIONS
    assert np.nanmax(res.lr) < 10.0
    f = res.objective
    assert np.all(f[1:] < f[0]) and f[-1] < 0.1 * f[0]
    assert np.all(np.isfinite(np.asarray(res.x)))


def test_sgd_exploding_objective_reports_diverged_not_max_iterations():
    """A finite objective that grows past DIVERGENCE_FACTOR × its start is DIVERGED (it was
    flagged only on non-finite values)."""
    X, y = _duplicated_columns()
    res = ps.sgd(ps.least_squares(X, y, 0.0), epochs=5, key=jax.random.key(0), lr=1e3)
    assert res.status == Status.DIVERGED
    assert len(res.objective) < 6  # stopped at the epoch that blew up
    assert np.all(np.isfinite(np.asarray(res.x)))
    assert not bool(res.converged)
