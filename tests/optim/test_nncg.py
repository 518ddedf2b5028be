"""NNCG: the Newton step against a dense solve, line-search monotonicity on a tiny PINN,
negative curvature, NaN handling, the μ guards and bad arguments (every mode of use, with
the no-recompile check: test_convention.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from precond.linalg import Status
from precond.optim import nncg
from precond.problems.pinn import pinn_problem


def _step_fn(opt, f):
    """A jitted step of ``opt`` built with ``loss_fn=f`` (a loss of w alone: no batch)."""
    @jax.jit
    def step(w, state):
        u, state = opt.update(jax.grad(f)(w), state, w)
        return optax.apply_updates(w, u), state
    return step


def _quadratic(n=12, low=-1.0, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.geomspace(1e-2, 1e2, n)
    lam[0] = low
    A = (Q * lam) @ Q.T
    b = rng.standard_normal(n)
    return jnp.asarray(A), jnp.asarray(b), lam


def test_newton_step_matches_dense_solve():
    A, b, _ = _quadratic(low=0.05)
    f = lambda w: 0.5 * w @ A @ w - b @ w  # noqa: E731
    mu = 1e-3
    opt = nncg(loss_fn=f, rank=6, mu=mu, cg_tol=1e-12, cg_maxiter=200, key=jax.random.key(1))
    w0 = jnp.zeros(12)
    v, g = jax.value_and_grad(f)(w0)
    u, state = jax.jit(lambda w: opt.update(g, opt.init(w), w, value=v, grad=g))(w0)
    d = np.linalg.solve(np.asarray(A) + mu * np.eye(12), np.asarray(g))
    t = float(state.info.step_size)
    assert t == 1.0  # the full Newton step satisfies Armijo on a convex quadratic
    np.testing.assert_allclose(np.asarray(u), -d, rtol=1e-8, atol=1e-10)
    assert int(state.info.cg_status) == Status.CONVERGED
    assert int(state.info.status) == Status.STEP_ACCEPTED


def test_never_increases_loss_on_tiny_pinn():
    # The smallest PINN that still has all three loss terms: compile time dominates here.
    problem = pinn_problem("reaction", width=8, depth=1, num_x=9, num_t=5, num_res=20)
    batch = problem.sample_batch(None)
    params = problem.init_params(jax.random.key(0))
    f = problem.loss  # f(params, batch): the points are an argument, not a constant
    opt = nncg(loss_fn=f, rank=10, mu=1e-2, update_every=3, cg_maxiter=30,
               key=jax.random.key(2))

    @jax.jit
    def step(w, state, batch):
        v, g = jax.value_and_grad(f)(w, batch)
        u, state = opt.update(g, state, w, value=v, grad=g, batch=batch)
        return optax.apply_updates(w, u), state

    state = opt.init(params)
    losses = [float(f(params, batch))]
    for _ in range(8):
        params, state = step(params, state, batch)
        losses.append(float(f(params, batch)))
        assert int(state.info.status) in (Status.STEP_ACCEPTED, Status.STALLED)
        assert float(state.info.new_value) <= float(state.info.value)
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < 0.5 * losses[0]


def test_negative_curvature_gives_finite_descent_step():
    A, b, lam = _quadratic(low=-5.0)
    # Indefinite quadratic plus a quartic so the line search has a bounded objective.
    f = lambda w: 0.5 * w @ A @ w - b @ w + 0.25 * jnp.sum(w**4)  # noqa: E731
    opt = nncg(loss_fn=f, rank=4, mu=1e-6, cg_maxiter=50, key=jax.random.key(3))
    step = _step_fn(opt, f)
    w = jnp.zeros(12)
    state = opt.init(w)
    seen_negative = False
    for _ in range(6):
        w_new, state = step(w, state)
        assert bool(jnp.all(jnp.isfinite(w_new)))
        assert float(f(w_new)) <= float(f(w))
        seen_negative |= int(state.info.cg_status) == Status.NEGATIVE_CURVATURE
        w = w_new
    assert seen_negative  # the solve did meet H + μI indefinite, and the step survived it
    assert float(f(w)) < float(f(jnp.zeros(12)))


def test_nan_loss_stops_with_status():
    f = lambda w: jnp.sum(w**2) + jnp.where(w[0] > 0.5, jnp.nan, 0.0)  # noqa: E731
    opt = nncg(loss_fn=f, rank=2, mu=1e-2, key=jax.random.key(0))
    step = _step_fn(opt, f)
    w = jnp.array([1.0, 2.0, 3.0])
    state = opt.init(w)
    w_new, state = step(w, state)
    assert int(state.info.status) == Status.NONFINITE
    np.testing.assert_array_equal(np.asarray(w_new), np.asarray(w))  # zero step


def test_line_search_failure_is_stalled_zero_step():
    # A loss that is NaN everywhere except at w: no trial point is acceptable.
    w0 = jnp.array([0.3, -0.2])
    f = lambda w: jnp.where(jnp.all(w == w0), jnp.sum(w**2), jnp.nan)  # noqa: E731
    opt = nncg(rank=1, mu=1e-2, max_linesearch_steps=5, key=jax.random.key(0))
    v, g = jax.value_and_grad(lambda w: jnp.sum(w**2))(w0)
    # value_fn at update (optax.lbfgs's extra argument) in place of loss_fn
    u, state = jax.jit(lambda w: opt.update(g, opt.init(w), w, value=v, grad=g,
                                            value_fn=f))(w0)
    assert int(state.info.status) == Status.STALLED
    np.testing.assert_array_equal(np.asarray(u), 0.0)


def test_mu_guards_clamp_to_sketch_scale():
    A, b, lam = _quadratic(low=0.1)
    f = lambda w: 0.5 * w @ A @ w - b @ w  # noqa: E731
    w = jnp.zeros(12)
    v, g = jax.value_and_grad(f)(w)

    @jax.jit
    def sketch_and_mu(mu):  # μ traced: one compilation for the whole sweep
        opt = nncg(rank=12, mu=mu, key=jax.random.key(0))
        _, state = opt.update(g, opt.init(w), w, value=v, grad=g, value_fn=f)
        return state.approx.eigenvalues[0], state.info.mu

    for mu, expect in [(1e6, "high"), (1e-30, "low"), (1e-1, "same")]:
        lam1, mu_eff = map(float, sketch_and_mu(mu))
        np.testing.assert_allclose(lam1, lam.max(), rtol=1e-6)
        if expect == "high":
            np.testing.assert_allclose(mu_eff, lam1)
        elif expect == "low":
            np.testing.assert_allclose(mu_eff, np.sqrt(np.finfo(np.float64).eps) * lam1)
        else:
            assert mu_eff == pytest.approx(1e-1)


@pytest.mark.parametrize("kwargs", [
    {"mu": 0.0}, {"mu": -1.0}, {"mu": float("nan")}, {"learning_rate": 0.0}, {"rank": 0},
    {"update_every": 0}, {"cg_maxiter": 0}, {"cg_tol": 1.0}, {"armijo_alpha": 1.0},
    {"armijo_beta": 0.0}, {"max_linesearch_steps": 0}, {"mu_min_ratio": 2.0},
])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        nncg(**kwargs)


def test_missing_objective_key_and_rank_too_large():
    key = jax.random.key(0)
    opt = nncg(rank=2, key=key)
    w = jnp.zeros(3)
    with pytest.raises(TypeError, match="loss_fn"):
        opt.update(w, opt.init(w), w)
    with pytest.raises(TypeError, match="key"):  # no hidden key(0)
        nncg(loss_fn=lambda w: jnp.sum(w**2), rank=2)
    with pytest.raises(ValueError, match="rank"):
        nncg(rank=5, key=key).init(w)
    assert nncg(key=key).init(w).approx.U.shape == (3, 3)  # default rank min(60, n)
