"""Randomized Nyström: Â ⪯ A, error bounds, the preconditioner, Nyström PCG."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from precond.linalg import (
    NystromApprox,
    NystromPreconditioner,
    Status,
    cg,
    from_matvec,
    nystrom,
    nystrom_adaptive,
    nystrom_pcg,
    to_dense,
)


def _psd(eigs, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((len(eigs), len(eigs))))
    return (Q * eigs) @ Q.T


def _dense_approx(approx: NystromApprox):
    U, lam = np.asarray(approx.U), np.asarray(approx.eigenvalues)
    return (U * lam) @ U.T


# (n, rank) pairs are few so that each compiles once; hypothesis varies the spectra and sketches.
@settings(max_examples=12, deadline=None)
@given(shape=st.sampled_from([(2, 1), (7, 3), (25, 10), (25, 25)]),
       decay=st.floats(0.0, 3.0), zeros=st.integers(0, 5), seed=st.integers(0, 2**16))
def test_structure_and_loewner_order(shape, decay, zeros, seed):
    n, rank = shape
    eigs = np.arange(1, n + 1, dtype=float) ** -decay
    eigs[n - min(zeros, n - 1):] = 0.0  # PSD, possibly singular
    A = _psd(eigs, seed)
    approx = nystrom(A, rank, jax.random.key(seed))
    U, lam = np.asarray(approx.U), np.asarray(approx.eigenvalues)
    assert U.shape == (n, rank) and lam.shape == (rank,)
    np.testing.assert_allclose(U.T @ U, np.eye(rank), atol=1e-10)
    assert np.all(lam >= 0)
    assert np.all(np.diff(lam) <= 1e-12 * lam[0])
    # Â ⪯ A: A − Â is PSD up to rounding
    gap = np.linalg.eigvalsh(A - _dense_approx(approx))
    assert gap.min() >= -1e-10 * eigs[0]
    # matvec agrees with the dense Â
    v = np.random.default_rng(seed).standard_normal(n)
    np.testing.assert_allclose(approx.matvec(v), _dense_approx(approx) @ v, atol=1e-12)


def test_full_rank_sketch_is_exact():
    eigs = np.logspace(0, -4, 20)
    A = _psd(eigs, 1)
    approx = nystrom(A, 20, jax.random.key(0))
    np.testing.assert_allclose(_dense_approx(approx), A, atol=1e-10)
    np.testing.assert_allclose(approx.eigenvalues, eigs, rtol=1e-6, atol=1e-12)


def test_nuclear_error_within_tropp_bound():
    # E‖A − Â_s‖_* ≤ (1 + r/(s − r − 1)) Σ_{i>r} λ_i  (Tropp et al. 2017, Thm. 4.1), averaged
    n, s = 80, 24
    eigs = np.arange(1, n + 1, dtype=float) ** -2.0
    A = _psd(eigs, 2)
    errors = []
    for seed in range(20):
        approx = nystrom(A, s, jax.random.key(seed))
        errors.append(np.trace(A - _dense_approx(approx)))  # A − Â ⪰ 0: nuclear = trace
    mean_err = np.mean(errors)
    for r in (4, 8, 12, 16):
        bound = (1 + r / (s - r - 1)) * eigs[r:].sum()
        assert mean_err <= bound, (r, mean_err, bound)
    # and it is not trivially satisfied: the error exceeds the best rank-s error
    assert mean_err >= eigs[s:].sum()


def test_spectral_error_close_to_best_on_fast_decay():
    # with p = 5 columns of oversampling, ‖A − Â_s‖ is within a small factor of λ_{s−p+1}
    n, s, p = 60, 20, 5
    eigs = 0.5 ** np.arange(n)  # fast (geometric) decay
    A = _psd(eigs, 3)
    errors = []
    for seed in range(8):
        approx = nystrom(A, s, jax.random.key(seed))
        errors.append(np.linalg.eigvalsh(A - _dense_approx(approx)).max())
    assert np.min(errors) >= eigs[s] * (1 - 1e-6)  # never better than the best rank-s
    assert np.mean(errors) <= 2 * eigs[s - p], (np.mean(errors), eigs[s - p])


def test_nystrom_matrix_free_matches_dense():
    A = _psd(np.logspace(0, -3, 30), 4)
    op = from_matvec(lambda v, M: M @ v, A, size=30)
    a = nystrom(A, 10, jax.random.key(5))
    b = nystrom(op, 10, jax.random.key(5))
    np.testing.assert_allclose(_dense_approx(a), _dense_approx(b), atol=1e-12)


def test_nystrom_bad_arguments():
    A = np.eye(5)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="rank"):
        nystrom(A, 0, key)
    with pytest.raises(ValueError, match="rank"):
        nystrom(A, -2, key)
    with pytest.raises(ValueError, match="rank"):
        nystrom(A, 6, key)
    with pytest.raises(TypeError, match="rank"):
        nystrom(A, 2.5, key)
    with pytest.raises(TypeError, match="key"):
        nystrom(A, 2, None)
    with pytest.raises(ValueError, match="square"):
        nystrom(np.ones((4, 5)), 2, key)
    with pytest.raises(ValueError, match="NaN"):
        nystrom(np.full((3, 3), np.nan), 2, key)
    approx = nystrom(A, 2, key)
    with pytest.raises(ValueError, match="mu"):
        NystromPreconditioner(approx, -1e-3)
    with pytest.raises(ValueError, match="mu"):
        nystrom_pcg(A, np.ones(5), -1.0, 2, key)
    with pytest.raises(ValueError, match="rank"):
        nystrom_pcg(A, np.ones(5), 1.0, 0, key)
    with pytest.raises(ValueError, match="rank"):
        nystrom_pcg(A, np.ones(5), 1.0, "big", key)
    with pytest.raises(ValueError, match="b has shape"):
        nystrom_pcg(A, np.ones(4), 1.0, 2, key)


def _preconditioner_formula(approx, mu):
    U, lam = np.asarray(approx.U), np.asarray(approx.eigenvalues)
    n = U.shape[0]
    return (lam[-1] + mu) * (U / (lam + mu)) @ U.T + np.eye(n) - U @ U.T


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 12), data=st.data(), mu=st.sampled_from([0.0, 1e-8, 1e-3, 1.0]),
       zeros=st.integers(0, 3), seed=st.integers(0, 2**16))
def test_preconditioner_spd_for_every_rank(n, data, mu, zeros, seed):
    # Any Nyström approximation is (U orthonormal, λ̂ ≥ 0 descending); build one per rank from
    # A's truncated eigendecomposition (cheap: no sketch to compile), zeros included.
    rank = data.draw(st.integers(1, n))
    eigs = np.logspace(0, -6, n)
    eigs[n - min(zeros, n - 1):] = 0.0  # singular A: with μ = 0 some λ̂ are 0
    A = _psd(eigs, seed)
    lam, V = np.linalg.eigh(A)
    approx = NystromApprox(jnp.asarray(V[:, ::-1][:, :rank]),
                           jnp.asarray(np.maximum(lam[::-1][:rank], 0.0)))
    P_inv = NystromPreconditioner(approx, mu)
    D = np.asarray(to_dense(P_inv))
    assert np.all(np.isfinite(D))
    np.testing.assert_allclose(D, D.T, atol=1e-12)
    w = np.linalg.eigvalsh(D)
    assert w.min() > 0, w.min()
    assert w.max() <= 1 + 1e-10
    if float(approx.eigenvalues[-1]) + mu > 1e-10:
        np.testing.assert_allclose(D, _preconditioner_formula(approx, mu), atol=1e-10)
    # P applies the inverse of P⁻¹
    v = np.random.default_rng(seed).standard_normal(n)
    np.testing.assert_allclose(P_inv.forward_matvec(P_inv.matvec(v)), v, rtol=1e-6, atol=1e-8)


def test_preconditioner_from_a_sketch_is_spd():
    A = _psd(np.concatenate([np.logspace(0, -6, 8), np.zeros(4)]), 11)
    for mu in (0.0, 1e-3):
        D = np.asarray(to_dense(NystromPreconditioner(nystrom(A, 10, jax.random.key(2)), mu)))
        w = np.linalg.eigvalsh(D)
        assert w.min() > 0 and w.max() <= 1 + 1e-10


def test_preconditioned_spectrum_is_clustered():
    # Frangella et al. 2023: with ‖A − Â‖ ≲ μ, κ(P^{-1/2}(A + μI)P^{-1/2}) is O(1)
    n, mu = 120, 1e-4
    eigs = np.arange(1, n + 1, dtype=float) ** -3.0
    A = _psd(eigs, 6)
    approx = nystrom(A, 40, jax.random.key(0))
    D = np.asarray(to_dense(NystromPreconditioner(approx, mu)))
    w, V = np.linalg.eigh(D)
    half = (V * np.sqrt(w)) @ V.T
    kappa = np.linalg.cond(half @ (A + mu * np.eye(n)) @ half)
    assert np.linalg.cond(A + mu * np.eye(n)) > 1e3
    assert kappa < 100, kappa


def test_nystrom_pcg_beats_cg():
    n, mu = 120, 1e-6
    eigs = np.arange(1, n + 1, dtype=float) ** -2.0
    A = _psd(eigs, 7)
    x_true = np.random.default_rng(7).standard_normal(n)
    b = (A + mu * np.eye(n)) @ x_true
    plain = cg(jnp.asarray(A + mu * np.eye(n)), b, tol=1e-8)
    pre = nystrom_pcg(A, b, mu, 60, jax.random.key(1), tol=1e-8)
    assert pre.reason == Status.CONVERGED
    rel = np.linalg.norm(b - (A + mu * np.eye(n)) @ np.asarray(pre.x)) / np.linalg.norm(b)
    assert rel <= 1e-7
    assert int(pre.iterations) * 4 <= int(plain.iterations), (pre.iterations, plain.iterations)
    # jit end to end (set-up included)
    jres = jax.jit(lambda b: nystrom_pcg(A, b, mu, 60, jax.random.key(1), tol=1e-8))(b)
    assert int(jres.status) == Status.CONVERGED
    assert abs(int(jres.iterations) - int(pre.iterations)) <= 2  # same method, other rounding
    np.testing.assert_allclose(jres.x, pre.x, rtol=1e-4, atol=1e-6)


def test_adaptive_rank():
    n, mu = 64, 1e-2
    eigs = 0.6 ** np.arange(n)
    A = _psd(eigs, 8)
    approx = nystrom_adaptive(A, mu, jax.random.key(0), initial_rank=4, tolerance=10.0)
    r = approx.rank
    assert 4 < r < n  # rank 4 leaves error ≥ λ₅ = 0.13 > 10μ: it must grow, but not to n
    err = np.linalg.eigvalsh(A - _dense_approx(approx)).max()
    assert err <= 2 * 10 * mu  # power iteration may underestimate the error, not by 2×
    P = NystromPreconditioner.adaptive(A, mu, jax.random.key(0), initial_rank=4)
    assert P.approx.rank == r
    capped = nystrom_adaptive(A, mu, jax.random.key(0), initial_rank=4, max_rank=8)
    assert capped.rank == 8
    res = cg(A + mu * np.eye(n), np.ones(n), M=P, tol=1e-8)
    assert res.reason == Status.CONVERGED and int(res.iterations) <= 15
    # rank="adaptive" in nystrom_pcg (on a tiny system: its initial rank 10 is capped at n)
    small = _psd(0.6 ** np.arange(6), 9)
    res = nystrom_pcg(small, np.ones(6), mu, "adaptive", jax.random.key(0), tol=1e-10)
    assert res.reason == Status.CONVERGED and int(res.iterations) <= 2


def _gram(v, X):
    return (X @ v) @ X


def test_eager_nystrom_pcg_on_new_from_matvec_operators_compiles_once():
    # Three operators of one function with new arrays: one compiled sketch-and-solve program.
    import contextlib
    import logging

    @contextlib.contextmanager
    def compiles():
        names = []

        class Handler(logging.Handler):
            def emit(self, record):
                if record.getMessage().startswith("Compiling "):
                    names.append(record.getMessage().split()[1])

        handler = Handler(logging.WARNING)
        logging.getLogger("jax").addHandler(handler)
        try:
            with jax.log_compiles():
                yield names
        finally:
            logging.getLogger("jax").removeHandler(handler)

    rng = np.random.default_rng(12)
    Xs = [jnp.asarray(rng.standard_normal((60, 20))) for _ in range(3)]
    b, key = jnp.ones(20), jax.random.key(0)
    per_call, solutions = [], []
    with compiles() as names:
        for X in Xs:
            before = len(names)
            A = from_matvec(_gram, X, size=20, rmatvec=_gram)
            solutions.append(nystrom_pcg(A, b, 1e-2, 8, key, tol=1e-10))
            per_call.append(names[before:])
    assert sum(n == "jit(_nystrom_pcg)" for n in names) == 1, names
    assert per_call[1] == [] and per_call[2] == [], per_call
    for X, res in zip(Xs, solutions, strict=True):
        assert res.check().status == Status.CONVERGED
        X = np.asarray(X)
        np.testing.assert_allclose(res.x, np.linalg.solve(X.T @ X + 1e-2 * np.eye(20), b),
                                   rtol=1e-7)
