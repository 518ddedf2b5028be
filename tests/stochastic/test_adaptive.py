"""Adaptive defaults of the PROMISE family (issue 22): the rank follows the spectrum, the
minibatch the estimated costs, the result records what was used, and SketchySGD's stall
schedule gets below its constant step's noise floor.  Tiny sizes: the whole file is a few
CPU-seconds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_promise import _reference  # the tight L-BFGS reference solve

import precond.stochastic as ps
from precond.linalg import IdentityOperator, Status
from precond.stochastic._common import _sample


def _problem(n, d, scales, seed=0, mu=1e-3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * scales
    w = rng.standard_normal(d) / np.maximum(scales, 1e-3)
    y = (X @ w + 0.5 * rng.standard_normal(n) > 0).astype(float)
    return ps.logistic(X, y, mu), X, y


def test_adaptive_rank_grows_on_a_spread_spectrum_and_stays_small_on_a_decaying_one():
    d = 16
    spread, _, _ = _problem(400, d, np.ones(d))  # H ≈ I/4 at w = 0: every direction > ρ
    fast, _, _ = _problem(400, d, 10.0 ** (-np.arange(d) / 2))  # λ_k ≈ 10^{-k}/4
    key, w0 = jax.random.key(0), np.zeros(d)
    kw = dict(hessian_batch_size=64, initial_rank=4)
    assert ps.adaptive_rank(spread, w0, key, 1e-3, **kw) == d  # doubled 4 → 8 → 16 = d
    assert ps.adaptive_rank(fast, w0, key, 1e-3, **kw) == 4  # the sketch already covers it
    # The caps: max_rank and the memory budget for U (d × r); b_H caps through the same min.
    assert ps.adaptive_rank(spread, w0, key, 1e-3, max_rank=6, **kw) == 6
    assert ps.adaptive_rank(spread, w0, key, 1e-3, memory=8 * d * 3, **kw) == 3


def test_adaptive_batch_size_follows_the_smoothness_ratio_and_the_rank():
    """P = I, every row of norm 2 and φ″ = ¼ at w = 0: L̂_max = 1, so b_g = 2^⌈log₂ L̂_max/L̂⌉."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((500, 6))
    X = 2 * X / np.linalg.norm(X, axis=1, keepdims=True)
    p = ps.logistic(X, (X[:, 0] > 0).astype(float), 1e-3)
    w, key = jnp.zeros(6), jax.random.key(0)

    def b(L, rank=1):
        curv = ps.Curvature(IdentityOperator(6, p.dtype), jnp.asarray(L, p.dtype))
        return ps.adaptive_batch_size(p, w, curv, key, rank=rank, hessian_batch_size=50)

    assert b(1 / 40) == 64
    assert b(1 / 40, rank=100) == 128  # b_g ≥ r: P⁻¹ at most half of a step's work
    assert b(1 / 4000) == 500  # capped by n
    assert b(10.0) == 1


def test_results_record_the_hyperparameters_used():
    p, _, _ = _problem(1024, 8, np.logspace(0, -1, 8))
    n = p.n
    res = ps.sketchy_saga(p, epochs=1, key=jax.random.key(0))
    b = res.batch_size
    assert res.rank == 8 and res.rho == pytest.approx(1e-3)  # r: the adaptive search's cap d
    assert b & (b - 1) == 0 and b >= res.rank  # a power of two, ≥ r
    assert res.hessian_batch_size == 32 and res.steps_per_epoch == n // b
    assert res.grad_evals[1] == n + res.steps_per_epoch * b  # SAGA's table, then the steps
    given = ps.sketchy_saga(p, epochs=1, key=jax.random.key(0), rank=3, batch_size=100, rho=0.5)
    assert (given.rank, given.rho, given.batch_size, given.hessian_batch_size,
            given.steps_per_epoch) == (3, 0.5, 100, 32, n // 100)
    plain = ps.saga(p, epochs=1, key=jax.random.key(0))
    assert plain.rank == 0 and np.isnan(plain.rho) and plain.batch_size == 256


def test_sketchy_sgd_stall_schedule_beats_its_constant_step():
    """b_g = 16 < n: the constant step stalls at its noise floor; the default halves η whenever
    an epoch does not improve F and ends far below it."""
    p, X, y = _problem(1024, 8, np.logspace(0, -1, 8), mu=1e-2)
    f_star = _reference(X, y, 1e-2)[1]
    kw = dict(epochs=20, key=jax.random.key(0), batch_size=16)
    default = ps.sketchy_sgd(p, **kw)
    constant = ps.sketchy_sgd(p, schedule="constant", **kw)
    gap_default = default.objective[-1] - f_star
    gap_constant = np.min(constant.objective[5:]) - f_star  # its best after the transient
    assert gap_default < 0.1 * gap_constant
    assert default.lr[-1] < 0.1 * np.nanmax(default.lr)  # the step did shrink (stalls happened)


def test_stall_schedule_scale_is_exact_with_a_given_step():
    p, _, _ = _problem(1024, 8, np.ones(8))
    res = ps.sgd(p, epochs=12, key=jax.random.key(3), batch_size=8, lr=4.0, schedule="stall")
    f, lr = res.objective, res.lr
    expected = [4.0]
    for k in range(1, 12):
        expected.append(expected[-1] * (0.5 if not f[k] < np.min(f[:k]) else 1.0))
    np.testing.assert_allclose(lr[1:], expected, rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(schedule="cosine"), "schedule"),
    (dict(max_rank=0), "max_rank"),
])
def test_bad_adaptive_arguments(kwargs, match):
    p, _, _ = _problem(64, 4, np.ones(4))
    with pytest.raises(ValueError, match=match):
        ps.sketchy_sgd(p, epochs=1, key=jax.random.key(0), **kwargs)


def test_bad_stall_decay():
    p, _, _ = _problem(64, 4, np.ones(4))
    with pytest.raises(ValueError, match="stall_decay"):
        ps.solve(ps.SGD, p, epochs=1, key=jax.random.key(0), stall_decay=1.0)


def test_step_safeguard_undoes_bad_epochs_and_halves_the_step():
    """A method whose estimated step is 64× too long: each epoch that gives back more than a
    tenth of the progress (or blows up) is undone and the step halved, until the run descends;
    with the same step given as ``lr`` (no safeguard) it diverges."""
    from precond.stochastic._common import constant_rate

    rng = np.random.default_rng(0)
    X = rng.standard_normal((512, 6)) * np.logspace(0, -1, 6)
    p = ps.least_squares(X, X @ rng.standard_normal(6), 1e-3)  # L̂ fixed: one refresh

    def too_long(L, lr, defaults, problem, epoch=0):
        return 64.0 * constant_rate(L, lr, defaults, problem, epoch)

    method = ps.SketchySVRG._replace(name="too long", hyper=too_long)
    res = ps.solve(method, p, epochs=30, key=jax.random.key(0), batch_size=32)
    f, lr = res.objective, res.lr[1:]
    assert np.all(np.isfinite(f)) and np.all(f[1:] <= f[0])  # undone epochs keep the state
    steps = lr[1:] / lr[:-1]
    assert np.all(np.isclose(steps, 1.0) | np.isclose(steps, 0.5))  # only halvings
    assert 1 <= np.sum(np.isclose(steps, 0.5)) <= ps._common.SAFEGUARD_HALVINGS
    n = X.shape[0]
    w_star = np.linalg.solve(X.T @ X / n + 1e-3 * np.eye(6), X.T @ np.asarray(p.y) / n)
    f_star = float(p.value(w_star))
    assert f[-1] - f_star < 1e-6 * (f[0] - f_star)  # then it converges
    assert res.status != Status.DIVERGED
    fixed = ps.solve(method, p, epochs=30, key=jax.random.key(0), batch_size=32, lr=lr[0])
    assert fixed.status == Status.DIVERGED


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 60), frac=st.floats(0.0, 1.2), seed=st.integers(0, 2**31 - 1))
def test_hessian_subsample_is_a_set_of_distinct_indices(n, frac, seed):
    size = max(1, int(frac * n))
    idx = np.asarray(_sample(jax.random.key(seed), n, size))
    assert len(idx) == min(size, n) and len(set(idx.tolist())) == len(idx)
    assert idx.min() >= 0 and idx.max() < n


def test_hessian_subsample_is_uniform():
    """Each of n = 10 indices lands in a 3-subset with probability 3/10 (2000 draws: 600
    expected per index, standard deviation ≈ 20)."""
    draw = jax.jit(jax.vmap(lambda k: _sample(k, 10, 3)))
    counts = np.bincount(np.asarray(draw(jax.random.split(jax.random.key(0), 2000))).ravel(),
                         minlength=10)
    assert np.all(np.abs(counts - 600) < 100)
