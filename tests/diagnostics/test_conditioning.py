"""local_conditioning against closed forms (the §4.1 quadratic) and dense generalized eigvals."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st

from precond.diagnostics import IndefiniteCurvatureWarning, local_conditioning
from precond.linalg import DenseOperator, DiagonalOperator, from_matvec
from precond.problems.quadratic import (
    constants,
    deflate_block,
    deflate_bottom,
    deflate_top,
    identity_preconditioner,
    make_quadratic,
)

KEY = jax.random.key(0)


@pytest.fixture(scope="module")
def quad():
    return make_quadratic(100, jax.random.key(1))


@pytest.mark.parametrize("make", [lambda p: identity_preconditioner(),
                                  lambda p: deflate_top(p, 10), lambda p: deflate_block(p, 24),
                                  lambda p: deflate_bottom(p, 20)])
def test_lanczos_matches_closed_forms_within_1_percent(quad, make):
    pre = make(quad)
    exact = constants(quad, pre)
    M_inv = None if pre.indices.size == 0 else pre.inverse_operator(quad)
    if pre.indices.size > 10:  # dense M⁻¹ (one shared compile) for the larger deflations
        M_inv = DenseOperator(M_inv.matmat(jnp.eye(quad.dim)))
    got = local_conditioning(quad.hessian(), M_inv, KEY)
    assert got.method == "lanczos" and got.proxy == ""
    assert got.L_hat == pytest.approx(exact.L_hat, rel=1e-2)
    assert got.c_hat == pytest.approx(exact.c_hat, rel=1e-2)
    assert got.kappa == pytest.approx(exact.kappa, rel=2e-2)


def _spd(n, rng, cond=10.0):
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (Q * np.geomspace(1, cond, n)) @ Q.T


def test_dense_and_diagonal_m_inv_match_generalized_eigenvalues():
    rng = np.random.default_rng(0)
    n = 30
    H = _spd(n, rng, 1e3)
    for M in (_spd(n, rng, 50.0), np.diag(rng.uniform(0.5, 5, n))):
        ref = scipy.linalg.eigh(H, M, eigvals_only=True)  # eigenvalues of M⁻¹H
        M_inv = np.linalg.inv(M)
        op = DiagonalOperator(jnp.diag(M_inv)) if np.allclose(M, np.diag(np.diag(M))) \
            else DenseOperator(M_inv)
        got = local_conditioning(H, op, KEY)
        np.testing.assert_allclose([got.c_hat, got.L_hat], [ref[0], ref[-1]], rtol=1e-8)


def test_power_iteration_for_matvec_only_m_inv():
    rng = np.random.default_rng(1)
    n = 25
    H = _spd(n, rng, 20.0)
    M_inv = np.linalg.inv(_spd(n, rng, 3.0))
    ref = scipy.linalg.eigh(H, np.linalg.inv(M_inv), eigvals_only=True)
    op = from_matvec(lambda v, M: M @ v, M_inv, size=n)  # "inexact": no sqrt
    got = local_conditioning(H, op, KEY, maxiter=20000)
    assert got.method == "power" and got.converged
    np.testing.assert_allclose([got.c_hat, got.L_hat], [ref[0], ref[-1]], rtol=1e-2)
    # Forcing Lanczos densifies the operator and is exact.
    lz = local_conditioning(H, op, KEY, method="lanczos")
    np.testing.assert_allclose([lz.c_hat, lz.L_hat], [ref[0], ref[-1]], rtol=1e-8)


def test_power_iteration_warns_when_not_converged():
    H = np.diag(np.geomspace(1e-2, 1e2, 40))
    op = from_matvec(lambda v: v, size=40)
    with pytest.warns(RuntimeWarning, match="maxiter"):
        got = local_conditioning(H, op, KEY, maxiter=5)
    assert not got.converged


def test_indefinite_h_warns_and_uses_pl_proxy():
    H = np.diag([5.0, 2.0, 0.5, -1.0, 1.0, 3.0, 4.0, 0.7])
    with pytest.warns(IndefiniteCurvatureWarning, match="not positive definite"):
        got = local_conditioning(H, None, KEY)
    assert got.lambda_min == pytest.approx(-1.0)
    assert got.c_hat == pytest.approx(0.5) and got.kappa == pytest.approx(10.0)
    assert "Ritz" in got.proxy
    with pytest.warns(IndefiniteCurvatureWarning):
        got = local_conditioning(H, None, KEY, pl_constant=0.1)
    assert got.c_hat == 0.1 and "pl_constant" in got.proxy
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        local_conditioning(np.diag(np.arange(1.0, 9.0)), None, KEY)  # SPD: no warning


@settings(max_examples=10, deadline=None)
@given(st.lists(st.floats(0.01, 100.0), min_size=8, max_size=8),
       st.lists(st.floats(0.1, 10.0), min_size=8, max_size=8))
def test_diagonal_problems_property(h, m):
    # One size, so Lanczos compiles once; the spectra vary.
    h, m = np.asarray(h), np.asarray(m)
    got = local_conditioning(np.diag(h), DiagonalOperator(jnp.asarray(1 / m)), KEY)
    p = h / m
    np.testing.assert_allclose([got.c_hat, got.L_hat], [p.min(), p.max()], rtol=1e-8)


def test_bad_inputs():
    H = np.diag([3.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="not positive definite"):
        local_conditioning(H, DenseOperator(np.diag([1.0, -1.0, 1.0])), KEY)
    with pytest.raises(ValueError, match="not positive definite"):
        local_conditioning(H, DiagonalOperator(jnp.asarray([1.0, 0.0, 1.0])), KEY)
    with pytest.raises(ValueError, match="not symmetric"):
        local_conditioning(H, np.array([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]]), KEY)
    with pytest.raises(ValueError, match="size 4"):
        local_conditioning(H, np.eye(4), KEY)
    with pytest.raises(ValueError, match="NaN"):
        local_conditioning(H, np.diag([1.0, np.nan, 1.0]), KEY)
    with pytest.raises(ValueError, match="square"):
        local_conditioning(np.ones((3, 2)), None, KEY)
    with pytest.raises(ValueError, match="method"):
        local_conditioning(H, None, KEY, method="qr")
    with pytest.raises(TypeError, match="key"):
        local_conditioning(H, None, None)
    with pytest.raises(ValueError, match="no positive eigenvalue"):
        local_conditioning(-H, None, KEY)
