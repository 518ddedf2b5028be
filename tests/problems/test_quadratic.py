"""The §4.1 quadratic: closed forms against dense linear algebra and against simulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from precond.diagnostics import lyapunov_floor
from precond.problems.quadratic import (
    constants,
    deflate_block,
    deflate_bottom,
    deflate_top,
    expected_loss,
    identity_preconditioner,
    make_quadratic,
    panels,
    simulate,
    spectral_preconditioner,
    stationary_loss,
)

D = 24


@pytest.fixture(scope="module")
def quad():
    return make_quadratic(D, jax.random.key(0))


def test_problem_structure(quad):
    np.testing.assert_allclose(quad.eigenvalues, np.geomspace(1e2, 1e-2, D), rtol=1e-12)
    np.testing.assert_allclose(quad.Q.T @ quad.Q, np.eye(D), atol=1e-12)
    np.testing.assert_allclose(np.linalg.eigvalsh(np.asarray(quad.H))[::-1], quad.eigenvalues,
                               rtol=1e-9)
    np.testing.assert_allclose(quad.noise_covariance(), quad.H, atol=1e-12)  # paper: Σ = σ²H
    talk = make_quadratic(D, jax.random.key(0), noise="talk", sigma=2.0)
    np.testing.assert_allclose(talk.noise_covariance(), 4 * np.eye(D), atol=1e-12)
    C = quad.noise_factor()
    np.testing.assert_allclose(C @ C.T, quad.noise_covariance(), atol=1e-12)


@pytest.mark.parametrize("make", [lambda p: deflate_top(p, 5), lambda p: deflate_block(p, 6),
                                  lambda p: deflate_bottom(p, 4),
                                  lambda p: identity_preconditioner()])
def test_closed_forms_match_dense_linear_algebra(quad, make):
    pre = make(quad)
    c = constants(quad, pre)
    M = np.asarray(pre.operator(quad).matmat(jnp.eye(D)))
    M_inv = np.asarray(pre.inverse_operator(quad).matmat(jnp.eye(D)))
    np.testing.assert_allclose(M @ M_inv, np.eye(D), atol=1e-10)
    ev = scipy.linalg.eigh(np.asarray(quad.H), M, eigvals_only=True)  # eigenvalues of M⁻¹H
    assert c.L_hat == pytest.approx(ev[-1], rel=1e-9) and c.c_hat == pytest.approx(ev[0], rel=1e-9)
    assert c.K == pytest.approx(np.trace(M_inv @ np.asarray(quad.noise_covariance())), rel=1e-9)
    alpha = 1.0 / c.L_hat
    assert stationary_loss(quad, pre, alpha) == pytest.approx(
        lyapunov_floor(alpha, quad.H, quad.noise_covariance(), M_inv), rel=1e-9)


def test_panels_move_the_constants_as_designed(quad):
    pan = panels(quad, top=(0, 3, 6), block=(0, 4, 8), bottom=(0, 3, 6))
    top = [constants(quad, p) for p in pan["top"]]
    assert [t.L_hat for t in top] == sorted((t.L_hat for t in top), reverse=True)
    assert [t.K for t in top] == sorted((t.K for t in top), reverse=True)
    assert all(t.c_hat == pytest.approx(top[0].c_hat) for t in top)
    blk = [constants(quad, p) for p in pan["fixed_L_c"]]
    assert all(b.L_hat == pytest.approx(blk[0].L_hat) and b.c_hat == pytest.approx(blk[0].c_hat)
               for b in blk)
    assert [b.K for b in blk] == sorted((b.K for b in blk), reverse=True)
    bot = [constants(quad, p) for p in pan["bottom"]]
    assert [b.c_hat for b in bot] == sorted(b.c_hat for b in bot)
    assert [b.K for b in bot] == sorted(b.K for b in bot)  # K grows: the modest net gain
    assert pan["top"][0].label == "M = I"


def test_simulation_matches_exact_expected_loss():
    quad = make_quadratic(8, jax.random.key(1), lam_min=0.5, lam_max=4.0, sigma=0.5)
    pres = [identity_preconditioner(), deflate_top(quad, 2)]
    alpha, steps, runs = 0.1, 200, 300
    L = np.asarray(simulate(quad, pres, alpha, steps, runs, jax.random.key(2), record_every=10))
    assert L.shape == (2, steps // 10 + 1, runs)
    np.testing.assert_array_equal(L[0, 0], L[1, 0])  # shared w₀ (common random numbers)
    for i, pre in enumerate(pres):
        exact = np.asarray(expected_loss(quad, pre, alpha, steps))[::10]
        se = L[i].std(axis=1) / np.sqrt(runs)
        assert np.all(np.abs(L[i].mean(axis=1) - exact) <= 4 * se + 1e-12), pre.label
        assert exact[-1] == pytest.approx(stationary_loss(quad, pre, alpha), rel=1e-3)


def test_bad_inputs(quad):
    with pytest.raises(ValueError, match="alpha"):
        simulate(quad, [identity_preconditioner()], 0.05, 10, 2, jax.random.key(0))
    with pytest.raises(ValueError, match="alpha"):
        stationary_loss(quad, identity_preconditioner(), -1.0)
    with pytest.raises(ValueError, match="record_every"):
        simulate(quad, [identity_preconditioner()], 0.01, 10, 2, jax.random.key(0),
                 record_every=3)
    with pytest.raises(ValueError, match="record_every"):
        simulate(quad, [identity_preconditioner()], 0.01, 10, 2, jax.random.key(0),
                 record_every=0)
    with pytest.raises(TypeError, match="key"):
        simulate(quad, [identity_preconditioner()], 0.01, 10, 2, None)
    with pytest.raises(ValueError, match="empty"):
        simulate(quad, [], 0.01, 10, 2, jax.random.key(0))
    with pytest.raises(ValueError, match="SPD"):
        spectral_preconditioner([0, 1], [1.0, -2.0])
    with pytest.raises(ValueError, match="differ"):
        spectral_preconditioner([0, 1], [1.0])
    with pytest.raises(ValueError, match="k must"):
        deflate_top(quad, D)
    with pytest.raises(ValueError, match="target"):
        deflate_block(quad, 3, target=1e3)
    with pytest.raises(ValueError, match="noise"):
        make_quadratic(10, jax.random.key(0), noise="loud")
    with pytest.raises(TypeError, match="key"):
        make_quadratic(10)
    with pytest.raises(ValueError, match="sigma must be a finite number > 0"):
        make_quadratic(10, jax.random.key(0), sigma=0.0)
    with pytest.raises(ValueError, match="d must satisfy 2 ≤ d"):
        make_quadratic(1, jax.random.key(0))
