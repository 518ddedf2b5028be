"""Lanczos with full reorthogonalization, extreme eigenvalues, power iteration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from precond.linalg import (
    SolverError,
    Status,
    extreme_eigenvalues,
    from_matvec,
    lanczos,
    power_iteration,
)


def _sym(eigs, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((len(eigs), len(eigs))))
    return (Q * eigs) @ Q.T


def _check_relation(A, res, atol):
    Q, T = np.asarray(res.Q), np.asarray(res.tridiagonal())
    k = Q.shape[1]
    np.testing.assert_allclose(Q.T @ Q, np.eye(k), atol=atol)
    R = A @ Q - Q @ T  # = β_k q_{k+1} e_kᵀ: zero but for the last column
    scale = np.abs(np.linalg.eigvalsh(A)).max()
    np.testing.assert_allclose(R[:, :-1], 0, atol=atol * scale)
    np.testing.assert_allclose(np.linalg.norm(R[:, -1]), float(res.residual_beta),
                               rtol=1e-6, atol=atol * scale)
    np.testing.assert_allclose(Q.T @ R[:, -1], 0, atol=atol * scale)  # q_{k+1} ⟂ Q


def test_lanczos_relation_and_orthonormality():
    A = _sym(np.linspace(-3, 10, 50), 1)
    res = lanczos(A, 20, jax.random.key(0))
    assert res.Q.shape == (50, 20) and res.alpha.shape == (20,) and res.beta.shape == (19,)
    _check_relation(A, res, 1e-10)
    assert np.all(np.asarray(res.beta) > 0)
    assert res.status == Status.SUCCESS and res.check() is res


def test_full_length_gives_exact_eigenvalues():
    eigs = np.logspace(-2, 2, 24)
    A = _sym(eigs, 2)
    res = lanczos(A, 24, jax.random.key(1))
    np.testing.assert_allclose(res.ritz_values(), eigs, rtol=1e-8)
    assert float(res.residual_beta) <= 1e-8 * eigs[-1]


def test_invariant_subspace_restart():
    # 3 distinct eigenvalues: the Krylov space from one vector has dimension 3, so β₃ = 0 and
    # Lanczos must restart to keep going; all n steps still give the full spectrum.
    eigs = np.repeat([1.0, 4.0, 9.0], [6, 4, 2])
    A = _sym(eigs, 3)
    res = lanczos(A, 12, jax.random.key(2))
    beta = np.asarray(res.beta)
    assert np.all(np.isfinite(np.asarray(res.Q)))
    assert beta[2] == 0.0  # the invariant subspace found after 3 steps
    _check_relation(A, res, 1e-9)
    np.testing.assert_allclose(res.ritz_values(), eigs, atol=1e-9)


def test_lanczos_v0_and_bad_arguments():
    A = _sym(np.arange(1.0, 9.0))
    v0 = np.ones(8)
    res = lanczos(A, 3, jax.random.key(0), v0=v0)
    np.testing.assert_allclose(res.Q[:, 0], v0 / np.sqrt(8), rtol=1e-12)
    with pytest.raises(ValueError, match="num_steps"):
        lanczos(A, 0, jax.random.key(0))
    with pytest.raises(ValueError, match="num_steps"):
        lanczos(A, 9, jax.random.key(0))
    with pytest.raises(ValueError, match="v0"):
        lanczos(A, 3, jax.random.key(0), v0=np.ones(7))
    with pytest.raises(TypeError, match="key"):
        lanczos(A, 3, None)
    # a matrix-free operator that overflows: the status says so, check() raises
    inf_op = from_matvec(lambda v: v * jnp.where(jnp.arange(8) == 2, jnp.inf, 1.0), size=8)
    bad = lanczos(inf_op, 3, jax.random.key(0))
    assert bad.status == Status.NONFINITE
    with pytest.raises(SolverError, match="nonfinite"):
        bad.check()


def test_extreme_eigenvalues_vs_eigh():
    rng = np.random.default_rng(4)
    eigs = np.concatenate([[-2.0], rng.uniform(0.1, 50.0, 58), [100.0]])
    A = _sym(eigs, 5)
    lo, hi = extreme_eigenvalues(A, jax.random.key(3), num_steps=40)
    w = np.linalg.eigvalsh(A)
    np.testing.assert_allclose([float(lo), float(hi)], [w[0], w[-1]], rtol=1e-6)
    # Ritz values err inwards
    lo5, hi5 = extreme_eigenvalues(A, jax.random.key(3), num_steps=5)
    assert w[0] - 1e-9 <= float(lo5) and float(hi5) <= w[-1] + 1e-9


def test_power_iteration_dominant_eigenvalue():
    eigs = np.concatenate([np.linspace(0.1, 1.0, 30), [3.0]])
    A = _sym(eigs, 6)
    res = power_iteration(A, jax.random.key(0), maxiter=200, tol=1e-12)
    assert int(res.status) == Status.CONVERGED
    np.testing.assert_allclose(float(res.eigenvalue), 3.0, rtol=1e-8)
    assert res.check() is res
    short = power_iteration(A, jax.random.key(0), maxiter=2, tol=0.0)
    assert int(short.status) == Status.MAX_ITERATIONS and int(short.iterations) == 2
    with pytest.raises(SolverError, match="max_iterations"):
        short.check()
