"""Operators against their dense matrices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.experimental import sparse as jsparse

import precond.linalg.operators as operators
from precond.linalg import (
    CongruenceOperator,
    DenseOperator,
    DiagonalOperator,
    IdentityOperator,
    LowRankPlusIdentity,
    SparseOperator,
    as_operator,
    as_scipy,
    cg,
    congruence,
    from_matvec,
    to_dense,
)


def _spd(n, seed=0):
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, n))
    return G @ G.T + n * np.eye(n)


def test_dense_matvec_matmat_and_transpose():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 3))
    op = DenseOperator(A)
    v, V = rng.standard_normal(3), rng.standard_normal((3, 4))
    np.testing.assert_allclose(op.matvec(v), A @ v, rtol=1e-12)
    np.testing.assert_allclose(op @ V, A @ V, rtol=1e-12)
    u = rng.standard_normal(5)
    np.testing.assert_allclose(op.T.matvec(u), A.T @ u, rtol=1e-12)
    assert op.shape == (5, 3) and op.dtype == jnp.float64
    # the transpose applies the same stored matrix from the left, also under jit and twice over
    At = op.T
    assert At.shape == (3, 5)
    np.testing.assert_allclose(At.matrix, A.T)
    np.testing.assert_allclose(At.matmat(np.eye(5)), A.T, rtol=1e-12)
    np.testing.assert_allclose(jax.jit(lambda o, x: o.matvec(x))(At, u), A.T @ u, rtol=1e-12)
    np.testing.assert_allclose(to_dense(At.T), A, rtol=1e-12)


@pytest.mark.parametrize("m", [1200, 997, 96])
def test_transposed_matvec_in_row_blocks_is_v_times_matrix(m, monkeypatch):
    """The blocked vᵀM (blocks of ~1 MiB, here shrunk to 2 KiB) equals the plain product.

    m = 1200 is cut into blocks, m = 997 (prime) and m = 96 (under four blocks) take the plain
    path; all three, and the jitted and vmapped forms, must give the same vᵀM.
    """
    monkeypatch.setattr(operators, "_BLOCK_BYTES", 2048)
    rng = np.random.default_rng(m)
    M = rng.standard_normal((m, 7))
    rows = operators._row_block(m, 7 * 8)
    assert (rows is not None) == (m == 1200)
    if rows is not None:
        assert m % rows == 0 and 16 <= rows <= 2 * (2048 // 56)
    At = DenseOperator(M).T
    u, U = rng.standard_normal(m), rng.standard_normal((3, m))
    np.testing.assert_allclose(At.matvec(u), M.T @ u, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jax.jit(lambda o, x: o.matvec(x))(At, u), M.T @ u,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jax.vmap(At.matvec)(U), U @ M, rtol=1e-12, atol=1e-12)
    # differentiable in both arguments, forward and reverse (the blocked form has custom rules)
    f = lambda x, Mx: jnp.sum(DenseOperator(Mx).T.matvec(x) ** 3)  # noqa: E731
    g = lambda x, Mx: jnp.sum((x @ Mx) ** 3)  # noqa: E731
    for argnums in (0, 1):
        np.testing.assert_allclose(jax.grad(f, argnums)(u, M), jax.grad(g, argnums)(u, M),
                                   rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(jax.jacfwd(At.matvec)(u), M.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(jax.vmap(jax.grad(f), (0, None))(U, M),
                               jax.vmap(jax.grad(g), (0, None))(U, M), rtol=1e-10, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 600), n=st.integers(1, 9), block_bytes=st.sampled_from([256, 1024, 4096]))
def test_row_blocks_divide_m_and_keep_v_times_matrix(m, n, block_bytes):
    """Any shape: the chosen block divides m, is within 2× of the target (or the plain product is
    used), and vᵀM is unchanged."""
    target = max(32, block_bytes // (8 * n))
    rng = np.random.default_rng(m * 10 + n)
    M, v = rng.standard_normal((m, n)), rng.standard_normal(m)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(operators, "_BLOCK_BYTES", block_bytes)
        rows = operators._row_block(m, 8 * n)
        got = operators._vector_times_matrix(jnp.asarray(v), jnp.asarray(M))
    if rows is not None:
        assert m % rows == 0 and max(16, target // 2) <= rows <= 2 * target and m >= 4 * target
    np.testing.assert_allclose(got, v @ M, rtol=1e-10, atol=1e-10)


def test_sparse_is_kept_sparse():
    M = sp.random(50, 50, density=0.05, format="csr", random_state=0) + sp.eye(50)
    op = as_operator(M)
    assert isinstance(op, SparseOperator)
    assert isinstance(op.matrix, jsparse.BCOO)
    assert op.matrix.nse == M.nnz  # stored entries only, not n² of them
    v = np.random.default_rng(1).standard_normal(50)
    np.testing.assert_allclose(op.matvec(v), M @ v, rtol=1e-12)
    np.testing.assert_allclose(op.T.matvec(v), M.T @ v, rtol=1e-12)
    with pytest.raises(TypeError, match="SparseOperator"):
        DenseOperator(M)


def test_sparse_nonfinite_rejected():
    M = sp.eye(4, format="csr")
    M.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        as_operator(M)


def test_diagonal_and_inverse():
    d = np.array([1.0, 2.0, 4.0])
    op = DiagonalOperator(d)
    np.testing.assert_allclose(to_dense(op), np.diag(d))
    np.testing.assert_allclose(to_dense(op.inverse()), np.diag(1 / d))
    with pytest.raises(ValueError, match="diagonal"):
        DiagonalOperator(np.ones((2, 2)))
    with pytest.raises(ValueError, match="NaN"):
        DiagonalOperator(np.array([1.0, np.inf]))


@pytest.mark.parametrize("p", [1.0, -1.0, 0.5, -0.5, 2.0])
def test_low_rank_plus_identity_power_matches_numpy(p):
    rng = np.random.default_rng(2)
    n, r = 12, 4
    U, _ = np.linalg.qr(rng.standard_normal((n, r)))
    d = rng.uniform(0.5, 3.0, r)
    s = 0.7
    op = LowRankPlusIdentity(U, d, s)
    dense = s * np.eye(n) + U @ np.diag(d) @ U.T
    w, Q = np.linalg.eigh(dense)
    expected = Q @ np.diag(w**p) @ Q.T
    np.testing.assert_allclose(to_dense(op.power(p)), expected, atol=1e-12)
    if p == -1.0:
        np.testing.assert_allclose(to_dense(op.inverse()), np.linalg.inv(dense), atol=1e-12)
    np.testing.assert_allclose(np.sort(np.asarray(op.eigenvalues)), np.sort(s + d))


def test_low_rank_bad_shapes():
    with pytest.raises(ValueError, match="U"):
        LowRankPlusIdentity(np.ones((4, 2)), np.ones(3))


def test_from_matvec_and_compositions_vs_dense():
    A = _spd(6)
    B = np.diag(np.arange(1.0, 7.0))
    opA = from_matvec(lambda v, M: M @ v, A, size=6)
    opB = DiagonalOperator(np.arange(1.0, 7.0))
    combos = {
        "sum": (opA + opB, A + B),
        "scaled": (2.5 * opA, 2.5 * A),
        "rscaled": (opA * -1.5, -1.5 * A),
        "shift": (opA.shift(0.3), A + 0.3 * np.eye(6)),
        "nested": ((opA + opB).shift(1.0) + 0.5 * opB, A + B + np.eye(6) + 0.5 * B),
        "identity": (IdentityOperator(6, jnp.float64) * 3.0, 3 * np.eye(6)),
    }
    for name, (op, dense) in combos.items():
        np.testing.assert_allclose(to_dense(op), dense, rtol=1e-12, err_msg=name)
    with pytest.raises(ValueError, match="shape"):
        _ = opA + DiagonalOperator(np.ones(3))
    with pytest.raises(ValueError, match="size"):
        from_matvec(lambda v: v, size=0)
    with pytest.raises(TypeError, match="size=n"):
        from_matvec(lambda v: v, 6)  # the old positional size
    with pytest.raises(TypeError, match="from_matvec"):
        as_operator(lambda v: v)


def test_dense_rejects_nonfinite_and_non_2d():
    with pytest.raises(ValueError, match="NaN"):
        DenseOperator(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        DenseOperator(np.ones(3))


def test_as_scipy_works_with_scipy_cg():
    A = _spd(30, seed=3)
    b = np.random.default_rng(4).standard_normal(30)
    for op in (DenseOperator(A), as_operator(sp.csr_matrix(A)), DenseOperator(A).shift(1.0)):
        lin = as_scipy(op)
        x, info = spla.cg(lin, b, rtol=1e-10, maxiter=500)
        assert info == 0
        np.testing.assert_allclose(to_dense(op) @ x, b, atol=1e-7)


def test_pytree_round_trip_through_jit():
    rng = np.random.default_rng(5)
    U, _ = np.linalg.qr(rng.standard_normal((8, 2)))
    ops = [
        DenseOperator(_spd(8)),
        as_operator(sp.csr_matrix(_spd(8))),
        DiagonalOperator(np.arange(1.0, 9.0)),
        LowRankPlusIdentity(U, np.array([1.0, 2.0]), 0.5),
        DenseOperator(_spd(8)).shift(2.0) + 3.0 * DiagonalOperator(np.ones(8)),
    ]
    v = jnp.asarray(rng.standard_normal(8))
    for op in ops:
        leaves, treedef = jax.tree_util.tree_flatten(op)
        back = jax.tree_util.tree_unflatten(treedef, leaves)
        assert type(back) is type(op) and back.shape == op.shape
        out = jax.jit(lambda o, x: o.matvec(x))(op, v)
        np.testing.assert_allclose(out, op.matvec(v), rtol=1e-12)


def _gram(v, X):
    return (X @ v) @ X


def test_from_matvec_is_closure_free():
    X = np.random.default_rng(6).standard_normal((7, 4))
    op = from_matvec(_gram, X, size=4, rmatvec=_gram)
    leaves, treedef = jax.tree_util.tree_flatten(op)
    assert len(leaves) == 1 and isinstance(leaves[0], jax.Array)  # numpy moved to the device
    other = from_matvec(_gram, 2 * X, size=4, rmatvec=_gram)
    assert jax.tree_util.tree_structure(other) == treedef  # same static data: no recompile
    np.testing.assert_allclose(to_dense(op), X.T @ X, rtol=1e-12)
    np.testing.assert_allclose(to_dense(op.T), X.T @ X, rtol=1e-12)
    # dtype from the params (float32 here, although x64 is on), or the default float
    assert from_matvec(_gram, X.astype(np.float32), size=4).dtype == jnp.float32
    assert from_matvec(lambda v, idx: v[idx], np.arange(4), size=4).dtype == jnp.float64
    with pytest.raises(TypeError, match="pytrees of arrays"):
        from_matvec(lambda v, f: f(v), np.sin, size=4)
    with pytest.raises(NotImplementedError, match="rmatvec"):
        _ = from_matvec(_gram, X, size=4).T


def test_congruence_is_s_a_s():
    A = _spd(6, 7)
    d = np.linspace(0.5, 2.0, 6)
    C = congruence(A, DiagonalOperator(d))
    assert isinstance(C, CongruenceOperator) and C.shape == (6, 6)
    np.testing.assert_allclose(to_dense(C), np.diag(d) @ A @ np.diag(d), rtol=1e-12)
    np.testing.assert_allclose(to_dense(C.T), to_dense(C), rtol=1e-12)
    back = jax.tree_util.tree_unflatten(*reversed(jax.tree_util.tree_flatten(C)))
    np.testing.assert_allclose(to_dense(back), to_dense(C), rtol=1e-12)
    with pytest.raises(ValueError, match="congruence"):
        congruence(A, np.eye(5))


def test_scipy_linear_operator_runs_as_a_host_callback():
    A = _spd(12, 8)
    b = np.random.default_rng(9).standard_normal(12)
    lin = spla.aslinearoperator(A)
    op = as_operator(lin)
    assert op.shape == (12, 12) and op.dtype == np.float64
    np.testing.assert_allclose(op @ b, A @ b, rtol=1e-12)
    np.testing.assert_allclose(to_dense(op), A, rtol=1e-12)  # matmat: one host call
    res = cg(lin, b, tol=1e-10)  # accepted wherever an operator is, also inside cg's jit
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), rtol=1e-8)
    V = np.random.default_rng(10).standard_normal((3, 12))
    np.testing.assert_allclose(jax.vmap(op.matvec)(V), V @ A.T, rtol=1e-12)  # sequential
    np.testing.assert_allclose(op.T @ b, A.T @ b, rtol=1e-12)
    with pytest.raises(TypeError, match=r"from_matvec\(fn, \*params, size=n\)"):
        as_operator(lambda v: v)  # a bare function still gets the from_matvec hint


def test_identity_defaults_to_the_default_float():
    assert IdentityOperator(3).dtype == jnp.float64  # x64 is on in the tests
