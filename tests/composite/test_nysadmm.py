"""NysADMM against scikit-learn / scipy references on small planted problems.

Shapes are (256, 32) with max_iter=2000 and rank 32, the bucket the precond.sklearn estimators
pad small data to, so these tests and tests/sklearn share compiled solvers.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp
from sklearn import linear_model, svm

from precond.composite import (
    elastic_net,
    l1_logistic,
    lasso,
    linear_kernel,
    nonnegative_least_squares,
    nysadmm,
    rbf_kernel,
    svm_dual,
    svm_intercept,
)
from precond.composite.nysadmm import _cholesky_parts, _gram_system
from precond.composite.problems import dense_quadratic, low_rank_quadratic
from precond.linalg import Status

N, D = 256, 32
KW = dict(max_iter=2000, rank=32, key=jax.random.key(0))


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)) @ np.diag(np.linspace(0.2, 2.0, D))  # unequal scales
    w = np.zeros(D)
    w[:6] = rng.standard_normal(6) * 2
    y = X @ w + 0.3 * rng.standard_normal(N) + 1.5
    return X, y, w


def _rel(a, b):
    return abs(a - b) / abs(b)


@pytest.mark.parametrize("sparse,x_solver", [(False, "auto"), (False, "pcg"), (True, "auto")])
def test_lasso_objective_and_sparsity_match_sklearn(sparse, x_solver):
    X, y, _ = _data()
    alpha = 0.05
    ref = linear_model.Lasso(alpha=alpha, tol=1e-12, max_iter=100_000).fit(X, y)
    Xin = sp.csr_matrix(X) if sparse else X
    problem = lasso(Xin, y, alpha * N, fit_intercept=True)
    res = nysadmm(problem, tol=1e-10, x_solver=x_solver, **KW)
    assert res.converged and res.status == Status.CONVERGED
    # "auto": the dense-Gram Cholesky x-step for dense data with d ≤ n, Nyström PCG for sparse.
    assert res.x_solver == ("pcg" if sparse or x_solver == "pcg" else "cholesky")
    assert (res.cg_iterations == 0) == (res.x_solver == "cholesky")
    z = np.asarray(res.z)
    c = float(problem.intercept(res.z))

    def obj(w, c):
        return 0.5 / N * np.sum((y - X @ w - c) ** 2) + alpha * np.abs(w).sum()

    assert _rel(obj(z, c), obj(ref.coef_, ref.intercept_)) < 1e-6
    assert np.count_nonzero(z) <= np.count_nonzero(ref.coef_)
    assert set(np.flatnonzero(z)) == set(np.flatnonzero(ref.coef_))
    assert res.history.primal_residual.shape == (res.iterations,)


def test_elastic_net_matches_sklearn():
    X, y, _ = _data(1)
    alpha, l1_ratio = 0.1, 0.4
    ref = linear_model.ElasticNet(alpha=alpha, l1_ratio=l1_ratio, tol=1e-12,
                                  max_iter=100_000).fit(X, y)
    problem = elastic_net(X, y, N * alpha * l1_ratio, N * alpha * (1 - l1_ratio),
                          fit_intercept=True)
    res = nysadmm(problem, tol=1e-10, **KW)
    z, c = np.asarray(res.z), float(problem.intercept(res.z))

    def obj(w, c):
        return (0.5 / N * np.sum((y - X @ w - c) ** 2) + alpha * l1_ratio * np.abs(w).sum()
                + 0.5 * alpha * (1 - l1_ratio) * w @ w)

    assert res.converged
    assert _rel(obj(z, c), obj(ref.coef_, ref.intercept_)) < 1e-6


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_l1_logistic_matches_sklearn_saga(l1_ratio):
    X, y, _ = _data(2)
    yb = np.where(y > np.median(y), 1.0, -1.0)
    C = 0.05
    ref = linear_model.LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-12,
                                          max_iter=200_000).fit(X, yb)
    problem = l1_logistic(X, yb, l1_ratio, l2=1 - l1_ratio, C=C)
    res = nysadmm(problem, tol=1e-9, **KW)
    z = np.asarray(res.z)

    def obj(w, c):
        return (C * np.sum(np.logaddexp(0, -yb * (X @ w + c))) + l1_ratio * np.abs(w).sum()
                + 0.5 * (1 - l1_ratio) * w @ w)

    assert res.converged
    assert _rel(obj(z[:-1], z[-1]), obj(ref.coef_[0], ref.intercept_[0])) < 1e-6


def test_rbf_svm_dual_objective_and_intercept_match_libsvm():
    X, y, _ = _data(3)
    yb = np.where(y > np.median(y), 1.0, -1.0)
    C, gamma = 1.0, 0.02
    ref = svm.SVC(C=C, kernel="rbf", gamma=gamma, tol=1e-10).fit(X, yb)
    problem = svm_dual(rbf_kernel(X, gamma), yb, C)
    res = nysadmm(problem, tol=1e-9, **KW)
    alpha_ref = np.zeros(N)
    alpha_ref[ref.support_] = np.abs(ref.dual_coef_[0])
    ours, theirs = float(problem.objective(res.z)), float(problem.objective(alpha_ref))
    assert res.converged
    assert _rel(ours, theirs) < 1e-6
    assert abs(float(jnp.vdot(problem.Q.labels, res.z))) < 1e-8  # yᵀα = 0 kept exactly
    assert abs(float(svm_intercept(problem, res.z)) - ref.intercept_[0]) < 1e-3


def test_nonnegative_least_squares_matches_scipy():
    X, y, _ = _data(4)
    problem = nonnegative_least_squares(X, y - 1.5)
    res = nysadmm(problem, tol=1e-10, **KW)
    ref, _ = scipy.optimize.nnls(X, y - 1.5)
    z = np.asarray(res.z)
    assert z.min() >= 0
    f = lambda w: 0.5 * np.sum((X @ w - y + 1.5) ** 2)  # noqa: E731
    assert _rel(f(z), f(ref)) < 1e-6


def test_max_iterations_status_and_same_key_same_answer():
    X, y, _ = _data()
    problem = lasso(X, y, 5.0, fit_intercept=True)  # same compiled solver as the lasso test
    r1 = nysadmm(problem, tol=1e-14, max_iter=3, rank=32, key=jax.random.key(1))
    r2 = nysadmm(problem, tol=1e-14, max_iter=3, rank=32, key=jax.random.key(1))
    assert not r1.converged and r1.status == Status.MAX_ITERATIONS and r1.iterations == 3
    np.testing.assert_array_equal(np.asarray(r1.z), np.asarray(r2.z))
    with pytest.raises(Exception, match="max_iterations"):
        r1.check()
    # The result convention: scalars are arrays (int()/float() work), the history is numpy.
    assert isinstance(r1.iterations, jax.Array) and int(r1.iterations) == 3
    assert isinstance(r1.history.rho, np.ndarray) and r1.history.rho.shape == (3,)
    assert float(r1.primal_residual) >= 0 and r1.reason == Status.MAX_ITERATIONS


def test_bad_input_raises():
    X, y, _ = _data()
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        lasso(Xn, y, 1.0)
    with pytest.raises(ValueError, match="y contains NaN|b contains NaN"):
        lasso(X, np.where(np.arange(N) == 3, np.inf, y), 1.0)
    with pytest.raises(ValueError, match="lam must be"):
        lasso(X, y, -1.0)
    with pytest.raises(ValueError, match="shape"):
        lasso(X, y[:-1], 1.0)
    with pytest.raises(ValueError, match="binary"):
        l1_logistic(X, np.arange(N) % 3 - 1.0, 1.0)
    with pytest.raises(ValueError, match="binary"):
        svm_dual(np.eye(N), np.arange(N) % 3, 1.0)
    with pytest.raises(ValueError, match="C must"):
        svm_dual(np.eye(N), np.where(y > 0, 1.0, -1.0), -1.0)
    problem = lasso(X, y, 1.0)
    with pytest.raises(ValueError, match="rho"):
        nysadmm(problem, rho=-1.0, key=jax.random.key(0))
    with pytest.raises(TypeError, match="key"):
        nysadmm(problem, key=None)


@pytest.mark.parametrize("weighted", [False, True])
def test_cholesky_x_step_equals_pcg_and_its_criterion_is_exact(weighted):
    X, y, _ = _data(5)
    sw = np.random.default_rng(1).uniform(0.2, 3.0, N) if weighted else None
    problem = elastic_net(X, y, 8.0, 2.0, fit_intercept=True, sample_weight=sw)
    chol = nysadmm(problem, tol=1e-10, x_solver="cholesky", **KW)
    pcg = nysadmm(problem, tol=1e-10, x_solver="pcg", **KW)
    assert chol.converged and pcg.converged and chol.x_solver == "cholesky"
    f = lambda z: float(problem.objective(z))  # noqa: E731
    assert _rel(f(chol.z), f(pcg.z)) < 1e-9
    # The ℝᵈ criterion (with the ‖w(Az − b)‖ branch for non-0/1 weights) is the problem's own.
    assert chol.criterion == pytest.approx(float(problem.criterion(chol.z)), rel=1e-6)
    assert chol.criterion <= 1e-10


def test_cholesky_x_step_with_rho_changes_matches_sklearn():
    X, y, _ = _data(6)
    alpha = 0.02
    ref = linear_model.Lasso(alpha=alpha, tol=1e-12, max_iter=100_000).fit(X, y)
    problem = lasso(X, y, alpha * N, fit_intercept=True)
    res = nysadmm(problem, tol=1e-10, rho=1e-3, x_solver="cholesky", **KW)  # far too small ρ
    assert res.converged
    assert len(np.unique(np.asarray(res.history.rho))) > 1  # ρ adapted (and L refactored)
    obj = lambda w, c: 0.5 / N * np.sum((y - X @ w - c) ** 2) + alpha * np.abs(w).sum()  # noqa
    assert _rel(obj(np.asarray(res.z), float(problem.intercept(res.z))),
                obj(ref.coef_, ref.intercept_)) < 1e-6


def test_x_solver_choice_and_errors():
    X, y, _ = _data()
    yb = np.where(y > np.median(y), 1.0, -1.0)
    with pytest.raises(ValueError, match="x_solver must be"):
        nysadmm(lasso(X, y, 1.0), x_solver="lu", key=jax.random.key(0))
    with pytest.raises(ValueError, match="needs a least-squares"):
        nysadmm(l1_logistic(X, yb, 1.0), x_solver="cholesky", key=jax.random.key(0))
    with pytest.raises(ValueError, match="needs a least-squares"):
        nysadmm(lasso(sp.csr_matrix(X), y, 1.0), x_solver="cholesky", key=jax.random.key(0))
    wide = lasso(X[:20], y[:20], 1.0)  # d > n: the Gram would be larger than the data
    assert nysadmm(wide, max_iter=2, rank=32, key=jax.random.key(0)).x_solver == "pcg"
    assert nysadmm(lasso(X, y, 1.0), max_iter=2, rank=32, gram_max_dim=16,
                   key=jax.random.key(0)).x_solver == "pcg"


def test_low_rank_svm_x_step_is_the_dense_solve():
    # Q = diag(y)XXᵀdiag(y) with p = 8 < n = 40: the x-step is solved in ℝᵖ by Woodbury.
    rng = np.random.default_rng(7)
    X = rng.standard_normal((40, 8))
    yb = np.where(rng.standard_normal(40) > 0, 1.0, -1.0)
    problem = svm_dual(linear_kernel(X), yb, 1.0)
    low = low_rank_quadratic(problem.Q)
    assert low is not None and low[0].shape == (40, 8)
    assert low_rank_quadratic(svm_dual(rbf_kernel(X, 0.1), yb, 1.0).Q) is None
    rho = 0.7
    xstep, measure, objective, refactor, _, L = _cholesky_parts(
        problem, _gram_system(problem, low), rho, jnp.float64)
    z, u = rng.standard_normal(40), rng.standard_normal(40)
    Q = yb[:, None] * (X @ X.T) * yb[None]
    for r, fac in ((rho, L), (5.0, refactor(5.0, L))):  # and after a ρ change
        x, _, _ = xstep(0, None, z, u, r, None, None, fac)
        np.testing.assert_allclose(x, np.linalg.solve(Q + r * np.eye(40), r * (z - u) + 1.0),
                                   rtol=1e-10)
    crit, obj = measure(z)
    assert float(crit) == pytest.approx(float(problem.criterion(z)), rel=1e-10)
    assert float(obj) == pytest.approx(float(problem.objective(z)), rel=1e-10)
    assert float(objective(z)) == pytest.approx(float(problem.objective(z)), rel=1e-10)


def test_natural_criterion_is_checked_every_check_every_iterations():
    X, y, _ = _data(8)
    problem = lasso(X, y, 20.0)
    for every in (1, 7):
        res = nysadmm(problem, tol=1e-8, check_every=every, **KW)
        crit = np.asarray(res.history.criterion)
        checked = np.flatnonzero(np.isfinite(crit)) + 1
        assert res.converged and res.iterations % every == 0
        np.testing.assert_array_equal(checked, np.arange(every, res.iterations + 1, every))
        assert res.criterion == crit[-1] <= 1e-8
    short = nysadmm(problem, tol=1e-8, check_every=7, max_iter=3, rank=32,
                    key=jax.random.key(0))
    assert np.isfinite(short.criterion)  # the last iteration is always checked
    with pytest.raises(ValueError, match="check_every"):
        nysadmm(problem, check_every=0, key=jax.random.key(0))


@pytest.mark.parametrize("kernel", ["rbf", "linear"])
def test_svm_dual_cholesky_equals_pcg_and_libsvm(kernel):
    X, y, _ = _data(3)
    yb = np.where(y > np.median(y), 1.0, -1.0)
    C = 1.0
    K = rbf_kernel(X, 0.02) if kernel == "rbf" else linear_kernel(X)
    problem = svm_dual(K, yb, C)
    Kd = np.exp(-0.02 * ((X[:, None] - X[None]) ** 2).sum(-1)) if kernel == "rbf" else X @ X.T
    np.testing.assert_allclose(np.asarray(dense_quadratic(problem.Q)),
                               yb[:, None] * Kd * yb[None], atol=1e-10)
    # The linear-kernel dual (rank-32 Q, n = 256) converges slowly under ADMM with either x-step.
    chol = nysadmm(problem, tol=1e-9 if kernel == "rbf" else 1e-6, x_solver="auto", **KW)
    assert chol.x_solver == "cholesky" and chol.converged
    ref = svm.SVC(C=C, kernel=kernel, gamma=0.02, tol=1e-10).fit(X, yb)
    a = np.zeros(N)
    a[ref.support_] = np.abs(ref.dual_coef_[0])
    assert _rel(float(problem.objective(chol.z)), float(problem.objective(a))) < 1e-6
    assert abs(float(jnp.vdot(problem.Q.labels, chol.z))) < 1e-8
    pcg = nysadmm(problem, tol=1e-9 if kernel == "rbf" else 1e-6, x_solver="pcg", **KW)
    assert _rel(float(problem.objective(chol.z)), float(problem.objective(pcg.z))) < 1e-8
    # A kernel applied block by block (never formed) keeps the PCG x-step.
    big = svm_dual(rbf_kernel(X, 0.02, dense_max=10), yb, C)
    assert nysadmm(big, max_iter=2, rank=32, key=jax.random.key(0)).x_solver == "pcg"


def test_nysadmm_exploding_objective_reports_diverged():
    """Issue 19: an objective that grows past DIVERGENCE_FACTOR × its start stops the loop with
    DIVERGED (a concave quadratic, unbounded below: ADMM runs off to −∞), not max_iterations."""
    from precond.composite.problems import QuadraticProblem
    from precond.glm.penalties import Box
    from precond.linalg import DenseOperator

    d = 4
    problem = QuadraticProblem(DenseOperator(-jnp.eye(d)), jnp.ones(d),
                               Box(jnp.full(d, -jnp.inf), jnp.full(d, jnp.inf)))
    # (the x-step solvers share the rule; one compiles faster than both)
    res = nysadmm(problem, rho=4.0, adapt_rho=False, max_iter=500, x_solver="cholesky",
                  key=jax.random.key(0))
    assert int(res.status) == Status.DIVERGED
    assert int(res.iterations) < 500
    assert bool(jnp.all(jnp.isfinite(res.z)))
