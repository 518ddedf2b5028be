"""PROMISE solvers: GLM oracles against numpy, default-hyperparameter convergence against a tight
reference solve, dense = sparse, bookkeeping, divergence status and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as so
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import precond.stochastic as ps
from precond.linalg import Status, to_dense


def _logistic_data(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) @ np.diag(np.logspace(0, -1, d))
    w = 2 * rng.standard_normal(d)
    y = (X @ w + 0.5 * rng.standard_normal(n) > 0).astype(float)
    return X, y


def _reference(X, y, mu):
    """Tight L-BFGS solve of the logistic objective (numpy, float64), gtol 1e-12."""
    s = 2 * y - 1
    n = X.shape[0]

    def f(w):
        z = s * (X @ w)
        return (np.mean(np.logaddexp(0, -z)) + 0.5 * mu * w @ w,
                -X.T @ (s / (1 + np.exp(z))) / n + mu * w)

    res = so.minimize(f, np.zeros(X.shape[1]), jac=True, method="L-BFGS-B",
                      options=dict(gtol=1e-12, ftol=1e-16, maxiter=10_000))
    assert np.linalg.norm(res.jac) < 1e-7
    return res.x, res.fun


@pytest.fixture(scope="module")
def medium():
    """n = 4096 > b_g = 256, so every method really is stochastic (16 steps per epoch)."""
    X, y = _logistic_data(4096, 20)
    mu = 1e-3
    return ps.logistic(X, y, mu), _reference(X, y, mu)[1]


# ------------------------------------------------------------------ problems


def test_oracles_match_numpy():
    rng = np.random.default_rng(1)
    X, y = _logistic_data(60, 7, seed=1)
    mu = 0.03
    p = ps.logistic(X, y, mu)
    w = rng.standard_normal(7)
    s = 2 * y - 1
    z = X @ w
    f = np.mean(np.log1p(np.exp(-s * z))) + 0.5 * mu * w @ w
    g = -X.T @ (s / (1 + np.exp(s * z))) / 60 + mu * w
    sig = 1 / (1 + np.exp(-z))
    H = X.T @ (X * (sig * (1 - sig))[:, None]) / 60 + mu * np.eye(7)
    np.testing.assert_allclose(p.value(w), f, rtol=1e-12)
    np.testing.assert_allclose(p.grad(w), g, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(to_dense(p.hessian(w)), H, rtol=1e-10, atol=1e-14)
    idx = jnp.array([3, 10, 11, 40])
    Hs = X[idx].T @ (X[idx] * (sig * (1 - sig))[idx, None]) / 4 + mu * np.eye(7)
    np.testing.assert_allclose(to_dense(p.hessian(w, idx)), Hs, rtol=1e-10, atol=1e-14)
    gs = -X[idx].T @ (s[idx] / (1 + np.exp(s[idx] * z[idx]))) / 4 + mu * w
    np.testing.assert_allclose(p.grad(w, idx), gs, rtol=1e-10, atol=1e-14)
    # least squares: (1/2n)‖Xw − y‖² + (μ/2)‖w‖²
    q = ps.least_squares(X, y, mu)
    np.testing.assert_allclose(q.value(w), 0.5 * np.mean((z - y) ** 2) + 0.5 * mu * w @ w)
    np.testing.assert_allclose(q.grad(w), X.T @ (z - y) / 60 + mu * w, rtol=1e-10)
    np.testing.assert_allclose(to_dense(q.hessian(w)), X.T @ X / 60 + mu * np.eye(7), rtol=1e-10)


def test_label_conventions_agree():
    X, y = _logistic_data(50, 4)
    w = np.linspace(-1, 1, 4)
    assert float(ps.logistic(X, y, 0.1).value(w)) == pytest.approx(
        float(ps.logistic(X, 2 * y - 1, 0.1).value(w)), rel=1e-14)


@settings(max_examples=5, deadline=None)
@given(shape=st.sampled_from([(1, 3), (17, 6)]), density=st.floats(0.0, 0.6),
       seed=st.integers(0, 10_000))
def test_sparse_rows_equal_dense(shape, density, seed):
    """Padded sparse rows (any density, empty rows included) agree with dense rows; two shapes
    only, since every new shape recompiles."""
    n, d = shape
    rng = np.random.default_rng(seed)
    A = sp.random(n, d, density=density, format="csr", random_state=seed)
    y = rng.integers(0, 2, n).astype(float)
    dense, sparse = ps.logistic(A.toarray(), y, 0.1), ps.logistic(A, y, 0.1)
    w = rng.standard_normal(d)
    idx = jnp.asarray(rng.integers(0, n, 5))
    np.testing.assert_allclose(sparse.value(w), dense.value(w), rtol=1e-12)
    np.testing.assert_allclose(sparse.grad(w), dense.grad(w), rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(sparse.grad(w, idx), dense.grad(w, idx), rtol=1e-10, atol=1e-14)
    V = rng.standard_normal((d, 3))
    np.testing.assert_allclose(sparse.hessian(w, idx).matmat(V), dense.hessian(w, idx).matmat(V),
                               rtol=1e-10, atol=1e-13)



@pytest.mark.parametrize("kind", ["logistic", "least_squares"])
@pytest.mark.parametrize("sparse", [False, True])
def test_variance_reduced_grad_from_the_table_equals_two_minibatch_gradients(kind, sparse):
    """The snapshot's table of φ′ gives SVRG's estimator without the second pass over B."""
    rng = np.random.default_rng(3)
    X = sp.random(40, 7, density=0.4, format="csr", random_state=3) if sparse else \
        rng.standard_normal((40, 7))
    y = rng.integers(0, 2, 40).astype(float)
    p = getattr(ps, kind)(X, y, 0.1)
    w, w_snap = rng.standard_normal(7), rng.standard_normal(7)
    idx = jnp.asarray(rng.choice(40, 8, replace=False))
    table, full = ps.snapshot(p, w_snap)
    np.testing.assert_allclose(full, p.grad(w_snap), rtol=1e-12, atol=1e-15)
    two_pass = p.loss_grad(w, idx) - p.loss_grad(w_snap, idx) + full + 0.1 * (w - w_snap)
    np.testing.assert_allclose(ps.variance_reduced_grad(p, w, idx, w_snap, table, full),
                               two_pass, rtol=1e-12, atol=1e-14)

# ------------------------------------------------------------------ the must-show


@pytest.mark.parametrize("solver", [ps.sketchy_svrg, ps.sketchy_saga, ps.sketchy_katyusha])
def test_defaults_reach_1e6_gap_stochastic(medium, solver):
    """Defaults, no tuning: the variance-reduced Sketchy methods reach F − F* ≤ 1e-6 with real
    minibatches (b_g = 256 of n = 4096) within 30 epochs."""
    p, f_star = medium
    res = solver(p, epochs=30, key=jax.random.key(0), target=f_star + 1e-6)
    assert res.status == Status.CONVERGED and res.converged
    assert res.objective[-1] - f_star <= 1e-6
    assert len(res.objective) <= 21  # measured: 9–14 epochs


def test_sketchy_sgd_defaults_reach_1e6_gap_small():
    """b_g = n = 200, so SketchySGD's minibatch is the whole data set (preconditioned gradient
    descent with the default η): it reaches 1e-6 with no tuning.  With a constant step and
    b_g < n it has a noise floor instead (next test; the default stall schedule lowers it,
    tests/stochastic/test_adaptive.py)."""
    X, y = _logistic_data(200, 10, seed=3)
    mu = 1e-2
    _, f_star = _reference(X, y, mu)
    res = ps.sketchy_sgd(ps.logistic(X, y, mu), epochs=60, key=jax.random.key(1),
                         batch_size=200, target=f_star + 1e-6)
    assert res.converged, res.objective[-1] - f_star


def test_sketchy_sgd_stalls_at_noise_floor(medium):
    """Constant-step SketchySGD with b_g < n stops improving at a noise floor (measured ≈ 3e-4
    here, with PROMISE's r = 10 and b_g = 256) — the reason PROMISE adds variance reduction."""
    p, f_star = medium
    res = ps.sketchy_sgd(p, epochs=12, key=jax.random.key(0), schedule="constant", rank=10,
                         batch_size=256)
    gap = res.objective - f_star
    assert gap[-1] < 1e-2 * gap[0]
    assert gap[-1] > 1e-6


# ------------------------------------------------------------------ Katyusha parameters


def _nearly_separable(n=4096, cols=12, levels=4, seed=0):
    """One-hot categorical rows (+ intercept) with a noisy linear rule: the KEEL-mushroom regime
    (sparse, nearly separable, μ = 1e-2/n tiny)."""
    rng = np.random.default_rng(seed)
    C = rng.integers(0, levels, (n, cols))
    X = np.zeros((n, cols * levels + 1))
    X[np.arange(n)[:, None], C + levels * np.arange(cols)] = 1.0
    X[:, -1] = 1.0
    y = (X @ (2 * rng.standard_normal(X.shape[1])) + 0.3 * rng.standard_normal(n) > 0)
    return X, y.astype(float)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(300, 10**6), b_frac=st.floats(1e-3, 1.0), mu=st.floats(1e-9, 1e-1),
       L=st.floats(1e-4, 1e3))
def test_katyusha_parameters_follow_promise(n, b_frac, mu, L):
    """θ₁ = min(½, √(2nσ/3)) with σ = μ/L̂ and the full n (PROMISE's code), θ₂ = ½,
    η = θ₂/((1 + θ₂)θ₁), p = b_g/n: whatever b_g, the mirror step η/L = 1/(3θ₁L) is the
    single-sample one, not √b_g times longer."""
    from precond.stochastic._common import Defaults
    from precond.stochastic._katyusha import _hyper

    b = max(1, int(b_frac * n))
    hp = _hyper(jnp.asarray(L), None, Defaults(b, 1, 1, mu, 1), _FakeProblem(n, mu))
    sigma = mu / L
    theta1 = min(0.5, np.sqrt(2 * n * sigma / 3))
    np.testing.assert_allclose(float(hp.theta1), theta1, rtol=1e-12)
    np.testing.assert_allclose(float(hp.eta), 0.5 / (1.5 * theta1), rtol=1e-12)
    np.testing.assert_allclose(float(hp.p), b / n, rtol=1e-12)
    assert 0 < float(hp.theta1) <= 0.5 and float(hp.theta2) == 0.5


class _FakeProblem:
    """A stand-in with a chosen n (``_hyper`` reads only n, mu and dtype)."""

    def __init__(self, n, mu):
        self.n, self.mu, self.dtype = n, jnp.asarray(mu), jnp.float64


def test_sketchy_katyusha_does_not_run_away_when_nearly_separable():
    """Defaults on a nearly separable sparse problem with μ = 1e-2/n: with θ₁ from n/b_g
    (16× smaller) this run climbed back to F − F* ≈ 7e4 at epoch 30; with PROMISE's θ₁ it keeps
    decreasing (measured gap 8e-3 at epoch 30; every Sketchy method is slow on this problem)."""
    X, y = _nearly_separable()
    n = X.shape[0]
    mu = 1e-2 / n
    _, f_star = _reference(X, y, mu)
    res = ps.sketchy_katyusha(ps.logistic(sp.csr_matrix(X), y, mu), epochs=30,
                              key=jax.random.key(0))
    gap = res.objective - f_star
    assert np.all(np.isfinite(gap))
    assert gap[-1] < 2e-2 * gap[0]
    assert np.max(gap[10:]) < 0.1 * gap[0]  # no late climb


# ------------------------------------------------------------------ SGD step decay


@pytest.fixture(scope="module")
def small():
    X, y = _logistic_data(300, 6, seed=7)
    return ps.logistic(X, y, 1e-2)


@settings(max_examples=8, deadline=None)
@given(decay=st.floats(0.05, 1.0), lr=st.floats(1e-3, 2.0))
def test_lr_decay_is_geometric_per_epoch(small, decay, lr):
    """Epoch k (from 0) uses γᵏη, as ``lr`` reports; γ = 1 is the constant step."""
    res = ps.sgd(small, epochs=3, key=jax.random.key(0), batch_size=64, lr=lr, lr_decay=decay)
    np.testing.assert_allclose(res.lr[1:], lr * decay ** np.arange(3), rtol=1e-12)


def test_sketchy_sgd_lr_decay_scales_the_estimated_step(small):
    """With the estimated η̂ (refreshed every epoch for logistic) the decay multiplies it: the
    same key gives the same η̂ₖ, so the ratio is exactly γᵏ."""
    a = ps.sketchy_sgd(small, epochs=3, key=jax.random.key(1), batch_size=64)
    b = ps.sketchy_sgd(small, epochs=3, key=jax.random.key(1), batch_size=64, lr_decay=0.5)
    np.testing.assert_allclose(b.lr[1], a.lr[1], rtol=1e-12)  # epoch 0: same x, same η̂
    assert b.objective[-1] < b.objective[0]


@pytest.mark.parametrize("decay", [0.0, 1.5, float("nan"), "fast"])
def test_bad_lr_decay(small, decay):
    with pytest.raises((ValueError, TypeError), match="lr_decay"):
        ps.sketchy_sgd(small, epochs=1, key=jax.random.key(0), lr_decay=decay)


# ------------------------------------------------------------------ behaviour


def test_result_bookkeeping_and_no_recompile(medium):
    p, _ = medium
    n, b = p.n, 256
    m = n // b
    r1 = ps.saga(p, epochs=3, key=jax.random.key(2), lr=0.5)
    np.testing.assert_array_equal(r1.grad_evals, [0, n + m * b, n + 2 * m * b, n + 3 * m * b])
    assert len(r1.objective) == len(r1.times) == len(r1.grad_norm) == 4
    assert np.all(np.diff(r1.times) > 0)
    assert r1.status == Status.MAX_ITERATIONS and not r1.converged
    r2 = ps.saga(p, epochs=3, key=jax.random.key(2), lr=0.5)
    np.testing.assert_array_equal(r1.objective, r2.objective)  # same key, same run
    assert r2.compile_time < 0.5 * max(r1.compile_time, 0.2)  # cached: no recompilation
    r3 = ps.svrg(p, epochs=2, key=jax.random.key(2), lr=0.5)
    np.testing.assert_array_equal(r3.grad_evals, [0, n + m * b, 2 * (n + m * b)])
    assert r3.objective[-1] < r3.objective[0]


@pytest.mark.parametrize("solver", [ps.sgd, ps.katyusha])
def test_plain_twins_make_progress(medium, solver):
    p, f_star = medium
    r = solver(p, epochs=3, key=jax.random.key(0), lr=1.0)
    assert r.objective[-1] - f_star < 0.2 * (r.objective[0] - f_star)


def test_huge_learning_rate_stops_with_diverged_status(medium):
    p, _ = medium
    res = ps.sketchy_sgd(p, epochs=20, key=jax.random.key(0), lr=1e300)
    assert res.status == Status.DIVERGED and not res.converged
    assert len(res.objective) < 21  # stopped early
    assert not np.isfinite(res.objective[-1])
    assert np.all(np.isfinite(np.asarray(res.x)))  # the last finite iterate, never NaN


def test_sparse_run_matches_dense():
    X, y = _logistic_data(300, 15, seed=4)
    X[np.abs(X) < 0.3] = 0.0
    # plain SAGA with a set step: the compiled sparse epoch without a second curvature compile
    dense = ps.saga(ps.logistic(X, y, 1e-2), epochs=3, key=jax.random.key(5), batch_size=64,
                    lr=0.5)
    sparse = ps.saga(ps.logistic(sp.csr_matrix(X), y, 1e-2), epochs=3, key=jax.random.key(5),
                     batch_size=64, lr=0.5)
    np.testing.assert_allclose(sparse.objective, dense.objective, rtol=1e-9)


@pytest.mark.parametrize("solver", [ps.sketchy_svrg, ps.sketchy_katyusha])
def test_least_squares_refreshes_once_and_solves_ridge(solver):
    rng = np.random.default_rng(6)
    X = rng.standard_normal((1024, 12)) @ np.diag(np.logspace(0, -1.5, 12))
    y = X @ rng.standard_normal(12) + 0.01 * rng.standard_normal(1024)
    mu = 1e-3
    w_star = np.linalg.solve(X.T @ X / 1024 + mu * np.eye(12), X.T @ y / 1024)
    # b_g = 64: 16 steps per epoch (the default 256 gives only 4 on n = 1024); r = 10 < d = 12
    # as when it was written (with the adaptive r = d, SketchyKatyusha's σ = μ/L̂ understates
    # the preconditioned strong convexity and it is at 1e-4 relative after 30 epochs)
    res = solver(ps.least_squares(X, y, mu), epochs=30, key=jax.random.key(0), batch_size=64,
                 rank=10)
    assert np.all(res.lr[1:] == res.lr[1])  # one refresh, one learning rate
    np.testing.assert_allclose(res.x, w_star, rtol=1e-5, atol=1e-7)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("make, match", [
    (lambda X, y: ps.logistic(np.where(X > 1, np.nan, X), y, 0.1), "X contains NaN"),
    (lambda X, y: ps.logistic(X, np.where(y > 0, np.inf, y), 0.1), "y contains NaN or inf"),
    (lambda X, y: ps.logistic(X, y + 2 * (np.arange(len(y)) == 0), 0.1),
     r"\{0, 1\} or \{-1, \+1\}"),
    (lambda X, y: ps.logistic(X, y, -1.0), "mu must be a finite number ≥ 0"),
    (lambda X, y: ps.least_squares(X, y[:-1], 0.1), "y has shape"),
    (lambda X, y: ps.least_squares(X[0], y, 0.1), "X must be 2-D"),
    (lambda X, y: ps.logistic(sp.csr_matrix(np.where(X > 1, np.inf, X)), y, 0.1), "NaN or inf"),
])
def test_bad_problem_input(make, match):
    X, y = _logistic_data(30, 3)
    with pytest.raises(ValueError, match=match):
        make(X, y)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(epochs=0), ValueError, "epochs"),
    (dict(epochs=1.5), TypeError, "epochs"),
    (dict(key=None), TypeError, "jax.random key"),
    (dict(batch_size=31), ValueError, "batch_size must satisfy 1 ≤ batch_size ≤ 30"),
    (dict(rank=4), ValueError, "rank must satisfy 1 ≤ rank ≤ 3"),
    (dict(lr=-1.0), ValueError, "lr must be"),
    (dict(rho=float("nan")), ValueError, "rho must be"),
    (dict(refresh=-1), ValueError, "refresh"),
    (dict(x0=np.ones(4)), ValueError, "x0 has shape"),
])
def test_bad_solver_arguments(kwargs, exc, match):
    X, y = _logistic_data(30, 3)
    args = dict(epochs=1, key=jax.random.key(0)) | kwargs
    with pytest.raises(exc, match=match):
        ps.sketchy_sgd(ps.logistic(X, y, 0.1), **args)
    with pytest.raises(TypeError, match="GLMProblem"):
        ps.sketchy_saga(X, epochs=1, key=jax.random.key(0))


# ------------------------------------------------------------------ the public pair, the driver


def test_public_init_epoch_pair_driven_by_hand_reproduces_solve(small):
    """``SAGA.init``/``SAGA.epoch`` are the pure pair under ``solve``: the same keys give the same
    iterate, bit for bit."""
    from precond.linalg import IdentityOperator

    res = ps.saga(small, epochs=2, key=jax.random.key(3), batch_size=64, lr=0.5)
    m = ps.SAGA
    state, _ = m.init(small, jnp.zeros(small.d))
    curv = ps.Curvature(IdentityOperator(small.d, small.dtype), jnp.asarray(jnp.nan))
    key, _ = jax.random.split(jax.random.key(3))  # solve's curvature key (unused with lr)
    for k in range(2):
        key, k_epoch, _ = jax.random.split(key, 3)
        hyper = m.hyper(curv.L, 0.5, None, small, k)
        state, _ = m.epoch(small, state, curv, hyper, k_epoch, batch_size=64)
    np.testing.assert_array_equal(m.iterate(state), res.x)
    assert res.status == Status.MAX_ITERATIONS
    with pytest.raises(Exception, match="max_iterations"):
        res.check()


def test_objective_growing_past_the_divergence_factor_stops_with_diverged():
    """A finite objective that grows past DIVERGENCE_FACTOR × its start stops the run too."""
    from precond.loop import DIVERGENCE_FACTOR

    rng = np.random.default_rng(6)
    X = rng.standard_normal((300, 6))
    p = ps.least_squares(X, X @ rng.standard_normal(6), 1e-3)
    res = ps.sgd(p, epochs=20, key=jax.random.key(0), batch_size=64, lr=3.0)
    assert res.status == Status.DIVERGED and not res.converged and len(res.objective) < 21
    assert np.isfinite(res.objective[-1])
    assert res.objective[-1] > DIVERGENCE_FACTOR * res.objective[0]
    assert np.all(np.isfinite(np.asarray(res.x)))
