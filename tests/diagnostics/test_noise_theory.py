"""noise_level (K̂ and its standard error) and the theory formulas, incl. the Lyapunov floor."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from precond.diagnostics import (
    harmonic_constant,
    lyapunov_floor,
    max_stable_step,
    noise_floor,
    noise_level,
    recommended_step,
    stack_gradients,
)
from precond.linalg import DiagonalOperator, from_matvec
from precond.problems.quadratic import (
    constants,
    deflate_bottom,
    deflate_top,
    identity_preconditioner,
    make_quadratic,
    stationary_loss,
)


@pytest.mark.parametrize("noise", ["paper", "talk"])
def test_noise_level_matches_closed_form_within_3_stderr(noise):
    quad = make_quadratic(40, jax.random.key(2), noise=noise)
    w = jnp.ones(40)
    G = quad.stochastic_gradients(w, 500, jax.random.key(3))
    for pre in (identity_preconditioner(), deflate_top(quad, 10), deflate_bottom(quad, 10)):
        K = constants(quad, pre).K
        M_inv = None if pre.indices.size == 0 else pre.inverse_operator(quad)
        est = noise_level(G, M_inv)
        assert est.num_samples == 500
        assert abs(est.K - K) <= 3 * est.stderr, (pre.label, est, K)
        assert est.stderr < 0.1 * K


def test_noise_level_equals_trace_formula_and_accepts_pytrees():
    rng = np.random.default_rng(0)
    G = rng.standard_normal((7, 5)) @ rng.standard_normal((5, 5))
    M_inv = np.diag(rng.uniform(0.5, 2.0, 5))
    ref = np.trace(M_inv @ np.cov(G, rowvar=False, ddof=1))
    est = noise_level(jnp.asarray(G), DiagonalOperator(jnp.diag(jnp.asarray(M_inv))))
    assert est.K == pytest.approx(ref, rel=1e-12)
    assert noise_level(G, M_inv).K == pytest.approx(ref, rel=1e-12)  # a dense array works too
    # A stacked pytree (leaves (B, …)) flattens row by row in ravel_pytree order.
    tree = {"a": jnp.asarray(G[:, :2]), "b": jnp.asarray(G[:, 2:]).reshape(7, 3, 1)}
    np.testing.assert_array_equal(stack_gradients(tree), G)
    assert noise_level(tree).K == pytest.approx(np.trace(np.cov(G, rowvar=False)), rel=1e-12)
    # A callable M⁻¹ (an inexact solve) is applied row by row.
    op = from_matvec(lambda v, M: M @ v, M_inv, size=5)
    assert noise_level(G, op).K == pytest.approx(ref, rel=1e-12)


def test_noise_level_bad_inputs():
    G = np.ones((4, 3)) + np.arange(12.0).reshape(4, 3) ** 0.5
    with pytest.raises(ValueError, match="at least 2"):
        noise_level(G[:1])
    bad = G.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        noise_level(bad)
    with pytest.raises(ValueError, match="positive semi-definite"):
        noise_level(G, np.diag([1.0, -5.0, 1.0]))
    with pytest.raises(ValueError, match="size 2"):
        noise_level(G, np.eye(2))
    with pytest.raises(ValueError, match=r"\(B, n\)"):
        noise_level(np.ones(5))
    with pytest.raises(ValueError, match="leading"):
        noise_level({"a": np.ones((3, 2)), "b": np.ones((4, 2))})


def test_floor_step_and_harmonic_formulas():
    assert noise_floor(0.1, 10.0, 0.5, 3.0) == pytest.approx(0.1 * 10 * 3 / (2 * 0.5))
    assert noise_floor(0.1, 10.0, 0.5, 3.0, mu=2.0) == pytest.approx(1.5)
    assert max_stable_step(4.0) == 0.25 and max_stable_step(4.0, rule="quadratic") == 0.5
    assert max_stable_step(4.0, mu=0.5, M_G=2.0) == pytest.approx(1 / 16)
    assert recommended_step(4.0, 1.0, 2.0) == 0.25
    # target floor 0.1: α = 2ĉμ·0.1/(L̂K) = 0.025, below 1/L̂
    assert recommended_step(4.0, 1.0, 2.0, target_floor=0.1) == pytest.approx(0.025)
    # ν = max{β²L̂K/(2(βĉμ − 1)), (γ + 1)·gap}
    assert harmonic_constant(2.0, 1.0, 4.0, 1.0, 3.0, 0.5) == pytest.approx(4 * 4 * 3 / 2)
    assert harmonic_constant(2.0, 99.0, 4.0, 1.0, 3.0, 0.5) == pytest.approx(50.0)
    for bad in (lambda: noise_floor(-1, 1, 1, 1), lambda: noise_floor(0.1, 1, 0, 1),
                lambda: noise_floor(0.1, 1, 1, np.nan), lambda: max_stable_step(0.0),
                lambda: max_stable_step(1.0, rule="x"),
                lambda: harmonic_constant(0.5, 1.0, 4.0, 1.0, 3.0, 0.5)):
        with pytest.raises(ValueError):
            bad()


def test_lyapunov_floor_matches_vectorized_solve_for_non_commuting_m():
    rng = np.random.default_rng(3)
    n = 5
    A_ = rng.standard_normal((n, n))
    H = A_ @ A_.T + np.eye(n)
    B_ = rng.standard_normal((n, n))
    Sigma = B_ @ B_.T
    C_ = rng.standard_normal((n, n))
    M_inv = np.linalg.inv(C_ @ C_.T + np.eye(n))
    alpha = 0.5 / np.max(scipy.linalg.eigh(H, np.linalg.inv(M_inv), eigvals_only=True))
    A = np.eye(n) - alpha * M_inv @ H
    Q = alpha**2 * M_inv @ Sigma @ M_inv.T
    V = np.linalg.solve(np.eye(n * n) - np.kron(A, A), Q.reshape(-1)).reshape(n, n)
    assert lyapunov_floor(alpha, H, Sigma, M_inv) == pytest.approx(0.5 * np.trace(H @ V),
                                                                   rel=1e-10)
    with pytest.raises(ValueError, match="unstable"):
        lyapunov_floor(10.0, H, Sigma, M_inv)
    with pytest.raises(ValueError, match="same size"):
        lyapunov_floor(alpha, H, Sigma[:2, :2])


def test_lyapunov_on_the_quadratic_and_the_looseness_of_the_bound():
    # DESIGN.md's example: d = 20, Σ = 0.25 H, M = I, α = 0.1/L̂.
    quad = make_quadratic(20, jax.random.key(5), sigma=0.5)
    pre = identity_preconditioner()
    c = constants(quad, pre)
    alpha = 0.1 / c.L_hat
    exact = lyapunov_floor(alpha, quad.H, quad.noise_covariance())
    assert exact == pytest.approx(stationary_loss(quad, pre, alpha), rel=1e-9)
    assert exact == pytest.approx(alpha * c.K / 4, rel=0.05)  # ≈ αK/4 for αL̂ ≪ 1
    bound = noise_floor(alpha, c.L_hat, c.c_hat, c.K)
    assert bound / exact == pytest.approx(2 * c.kappa, rel=0.05)  # loose by ≈ 2κ̂
    # With a deflation preconditioner too (M does not commute with Σ in general; here it does).
    pre = deflate_top(quad, 5)
    M_inv = np.asarray(pre.inverse_operator(quad).matmat(jnp.eye(20)))
    assert lyapunov_floor(alpha, quad.H, quad.noise_covariance(), M_inv) == pytest.approx(
        stationary_loss(quad, pre, alpha), rel=1e-9)
