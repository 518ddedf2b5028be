"""Fuzz: precond.linalg under bad and edge-case inputs (issue #19's contract, fuzz_contract).

Every solve uses n = 6 and one rank / step count, so each (dtype, preconditioner) pair
compiles once and hypothesis varies only the values.
"""

import jax
import numpy as np
from fuzz_contract import (
    DTYPES,
    POISONS,
    N,
    assert_honest,
    budget,
    matrices,
    np_dtype,
    outcome,
    rounding_slack,
    scalars,
    vectors,
)
from hypothesis import given
from hypothesis import strategies as st

import precond.linalg as L
from precond.linalg import Status

KEY = jax.random.key(0)
RANK, STEPS = 3, 4


def _f64(x):
    return np.asarray(x, np.float64)


def _true_relres(A, x, b, mu=0.0):
    A, x, b = _f64(A), _f64(x), _f64(b)
    return np.linalg.norm(b - A @ x - mu * x), np.linalg.norm(b)


def _check_solve(res, A, b, tol, atol=0.0, mu=0.0):
    """converged ⇒ the float64 residual of (A + μI)x = b meets max(tol‖b‖, atol) + rounding."""
    s = assert_honest(res.status, res.x, res.residual_norm)
    assert np.all(np.isfinite(_f64(res.x))), f"{s}: x not finite (documented always finite)"
    if s == Status.CONVERGED:
        r, bn = _true_relres(A, res.x, b, mu)
        anorm = np.linalg.norm(_f64(A), 2) + mu
        slack = rounding_slack(res.x.dtype, N, bn, anorm * np.linalg.norm(_f64(res.x)))
        assert r <= max(tol * bn, atol) + slack, f"claims converged at true residual {r:.3g}"
    return s


@budget(40)
@given(Ak=matrices(), b=vectors(), tol=scalars(0.0, 1e-3),
       M=st.sampled_from([None, "jacobi", "indefinite", "nan", "wrong-shape"]),
       maxiter=st.sampled_from([None, None, 3, 0, -1, 2.5]))
def test_cg(Ak, b, tol, M, maxiter):
    A, kind, poisoned = Ak
    Mop = {None: None, "jacobi": np.diag(1.0 / np.maximum(np.abs(np.diag(_f64(A))), 1.0)),
           "indefinite": -np.eye(N), "nan": np.full((N, N), np.nan),
           "wrong-shape": np.eye(N + 1)}[M]
    kind_, res = outcome(lambda: L.cg(A, b, M=Mop, tol=tol, maxiter=maxiter),
                         "A", "b", "matrix", "tol", "maxiter", "M", "symmetric", "scalar")
    if kind_ == "ok":
        assert not poisoned and np.all(np.isfinite(_f64(b)))
        _check_solve(res, A, b, tol)
    elif poisoned or kind == "nonsymmetric":
        pass  # expected: NaN/inf in A, or the symmetry probe


@budget(30)
@given(Ak=matrices(dtypes=("int", "float32", "float64", "float16")), b=vectors(),
       mu=scalars(0.0, 1.0), rank=st.sampled_from([RANK] * 4 + [0, N + 1, 2.5, "full"]),
       tol=st.sampled_from([1e-6, 1e-10, 0.0]))
def test_nystrom_pcg(Ak, b, mu, rank, tol):
    A, kind, poisoned = Ak
    kind_, res = outcome(lambda: L.nystrom_pcg(A, b, mu, rank, KEY, tol=tol),
                         "A", "b", "mu", "rank", "matrix", "tol", "symmetric")
    if kind_ == "ok":
        _check_solve(res, A, b, tol, mu=float(mu))


@budget(25)
@given(Ak=matrices(), tol=st.sampled_from([1e-6, 1e-3, float("nan"), -1.0]),
       maxiter=st.sampled_from([100, 100, 0, 1.5]))
def test_power_iteration(Ak, tol, maxiter):
    """converged ⇒ the eigenpair residual ‖Av − λv‖ ≤ tol·|λ| (float64, + rounding)."""
    A, kind, _ = Ak
    kind_, res = outcome(lambda: L.power_iteration(A, KEY, tol=tol, maxiter=maxiter),
                         "A", "matrix", "tol", "maxiter")
    if kind_ == "ok":
        s = assert_honest(res.status, res.eigenvalue, res.vector)
        if s == Status.CONVERGED:
            A64, v, lam = _f64(A), _f64(res.vector), float(res.eigenvalue)
            slack = rounding_slack(res.vector.dtype, N, np.linalg.norm(A64, 2))
            assert np.linalg.norm(A64 @ v - lam * v) <= tol * abs(lam) * (1 + 1e-6) + slack


@budget(25)
@given(Ak=matrices(dtypes=("int", "bool", "float64")),
       steps=st.sampled_from([STEPS] * 4 + [0, N + 1]))
def test_lanczos_and_extreme_eigenvalues(Ak, steps):
    """Ritz values lie in [λ_min, λ_max] (up to rounding); non-symmetric A is an error."""
    A, kind, poisoned = Ak
    kind_, out = outcome(lambda: L.extreme_eigenvalues(A, KEY, num_steps=steps),
                         "A", "matrix", "num_steps", "symmetric")
    if kind == "nonsymmetric" or poisoned:
        assert kind_ == "error"
    if kind_ == "ok":
        lo, hi = float(out[0]), float(out[1])
        eig = np.linalg.eigvalsh(_f64(A))
        slack = rounding_slack(np.float32 if A.dtype == np.float16 else A.dtype, N,
                               np.abs(eig).max())
        if A.dtype == np.float16:
            slack += 1e-2 * np.abs(eig).max()  # A's entries themselves are rounded to float16
        assert eig[0] - slack <= lo <= hi <= eig[-1] + slack
        kind2, res = outcome(lambda: L.lanczos(A, steps, KEY), "A", "num_steps")
        assert kind2 == "ok" and assert_honest(res.status, res.alpha, res.beta) in (
            Status.SUCCESS, Status.NONFINITE)


@budget(25)
@given(Ak=matrices(dtypes=("int", "float16", "float64")),
       rank=st.sampled_from([RANK] * 5 + [0, N + 1, 1.0]))
def test_nystrom_approximation(Ak, rank):
    """PSD A: Â = U diag(λ̂) Uᵀ with λ̂ ≥ 0 finite and Â ⪯ A (up to rounding)."""
    A, kind, poisoned = Ak
    kind_, approx = outcome(lambda: L.nystrom(A, rank, KEY), "A", "matrix", "rank",
                            "symmetric")
    if kind_ == "ok":
        lam, U = _f64(approx.eigenvalues), _f64(approx.U)
        assert np.all(np.isfinite(lam)) and np.all(np.isfinite(U)) and np.all(lam >= 0)
        if kind in ("spd", "psd") and A.dtype != np.float16:
            gap = np.linalg.eigvalsh(_f64(A) - (U * lam) @ U.T)[0]
            assert gap >= -rounding_slack(A.dtype, N, 100 * np.linalg.norm(_f64(A), 2))


@budget(20)
@given(Ak=matrices(dtypes=("int", "bool", "float64")),
       m=st.sampled_from([6, 6, 6, 1, 2.0]), which=st.sampled_from(["hutchinson", "hutchpp"]))
def test_traces(Ak, m, which):
    """A success status comes with a finite estimate; NaN/inf A is an error."""
    A, kind, poisoned = Ak
    fn = L.hutchinson_trace if which == "hutchinson" else L.hutchpp_trace
    kind_, est = outcome(lambda: fn(A, KEY, m), "A", "matrix", "num_probes", "num_matvecs")
    if poisoned:
        assert kind_ == "error"
    if kind_ == "ok":
        assert_honest(est.status, est.value, est.stderr)


def _matvec(v, M):
    return M @ v


@budget(40)
@given(dtype=st.sampled_from(DTYPES), scalar=st.one_of(st.floats(-3, 3), st.sampled_from(
       POISONS + (True, np.ones(2)))), size=st.sampled_from([N, N, N - 1, 0, 2.0]),
       op_dtype=st.sampled_from((None,) + DTYPES))
def test_operator_arithmetic_and_from_matvec(dtype, scalar, size, op_dtype):
    """s·A, A·s, A.shift(s), A + A and from_matvec match numpy in the promoted float dtype
    (an integer or boolean operator never truncates a scalar); bad scalars name themselves."""
    base = (np.arange(N * N).reshape(N, N) % 5 == 0) if dtype == "bool" else (
        np.arange(N * N).reshape(N, N) % 7)
    A = base.astype(np_dtype(dtype))
    op = L.DenseOperator(A)
    assert np.issubdtype(op.dtype, np.floating)
    tol = 1e-2 if dtype == "float16" else 1e-5
    for build, expect, names in (
            (lambda: scalar * op, lambda s: s * _f64(A), ("scalar",)),
            (lambda: op * scalar, lambda s: s * _f64(A), ("scalar",)),
            (lambda: op.shift(scalar), lambda s: _f64(A) + s * np.eye(N), ("mu",)),
            (lambda: op + op * scalar, lambda s: (1 + s) * _f64(A), ("scalar",))):
        kind_, out = outcome(build, *names)
        if kind_ == "ok":
            s = float(scalar)
            np.testing.assert_allclose(_f64(L.to_dense(out)), expect(s), rtol=tol, atol=tol)
    kind_, fm = outcome(lambda: L.from_matvec(_matvec, A, size=size, dtype=op_dtype),
                        "size", "dtype")
    if kind_ == "ok":
        assert size == N and np.issubdtype(fm.dtype, np.floating)
    kind_, _ = outcome(lambda: L.DenseOperator(A) + L.DenseOperator(np.eye(N + 1)), "shape")
    assert kind_ == "error"
