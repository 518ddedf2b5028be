"""precond.glm against dense references: data operators, losses, the Gram operator, penalties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from precond.glm import (
    L1,
    AppendOnesOperator,
    Box,
    CenteredOperator,
    DenseRows,
    ElasticNetPenalty,
    EllRows,
    GramOperator,
    LogisticLoss,
    SquaredLoss,
    data_operator,
    dense_gram,
    project_box_hyperplane,
    row_storage,
    soft_threshold,
)
from precond.linalg import DenseOperator, SparseOperator, to_dense

M, D = 9, 5  # one shape for the operator tests: each new shape compiles anew


def _sparse(seed=0, density=0.4):
    return sp.random(M, D, density=density, format="csr", random_state=seed)


# ------------------------------------------------------------------ data operators


_STORES = {
    "dense": lambda X: data_operator(X.toarray()),
    "sparse": lambda X: data_operator(X),
    "centered": lambda X: CenteredOperator(data_operator(X), jnp.arange(D) / D),
    "append_ones": lambda X: AppendOnesOperator(data_operator(X)),
    "dense_rows": lambda X: row_storage(X.toarray()),
    "ell_rows": lambda X: row_storage(X),
}


def _matrix(kind, X):
    X = X.toarray()
    if kind == "centered":
        return X - np.arange(D)[None] / D
    if kind == "append_ones":
        return np.hstack([X, np.ones((M, 1))])
    return X


@pytest.mark.parametrize("kind", list(_STORES))
def test_data_operators_and_their_transposes_match_the_matrix(kind):
    X = _sparse(1)
    A, Ad = _STORES[kind](X), _matrix(kind, X)
    rng = np.random.default_rng(0)
    v, r = rng.standard_normal(Ad.shape[1]), rng.standard_normal(M)
    V, R = rng.standard_normal((Ad.shape[1], 3)), rng.standard_normal((M, 3))
    assert A.shape == Ad.shape and A.T.shape == Ad.T.shape
    np.testing.assert_allclose(A.matvec(v), Ad @ v, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(A.T.matvec(r), Ad.T @ r, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(A.matmat(V), Ad @ V, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(A.T.matmat(R), Ad.T @ R, rtol=1e-12, atol=1e-14)


@settings(max_examples=8, deadline=None)
@given(density=st.floats(0.0, 0.8), seed=st.integers(0, 10_000))
def test_padded_rows_and_their_minibatches_equal_dense_rows(density, seed):
    """Any density (empty rows, an empty matrix) and a minibatch with repeated rows."""
    X = _sparse(seed, density)
    ell, dense = row_storage(X), row_storage(X.toarray())
    assert isinstance(ell, EllRows) and isinstance(dense, DenseRows)
    rng = np.random.default_rng(seed)
    idx = jnp.asarray(rng.integers(0, M, 6))
    w, r = rng.standard_normal(D), rng.standard_normal(6)
    np.testing.assert_allclose(ell.take(idx).matvec(w), dense.take(idx).matvec(w), atol=1e-14)
    np.testing.assert_allclose(ell.take(idx).T.matvec(r), dense.take(idx).T.matvec(r),
                               atol=1e-14)


def test_data_checks_and_dtypes():
    X = np.arange(M * D).reshape(M, D)
    assert jnp.issubdtype(data_operator(X).dtype, jnp.floating)  # integers become float
    assert row_storage(X).dtype == jnp.float64
    assert row_storage(X, jnp.float32).dtype == jnp.float32
    assert isinstance(data_operator(_sparse()), SparseOperator)
    assert isinstance(data_operator(_sparse().toarray()), DenseOperator)
    coo = sp.coo_matrix(([1.0, 0.0], ([0, 0], [1, 1])), shape=(2, 2))  # duplicate kept as COO
    assert data_operator(coo).matrix.nse == 2
    bad = X.astype(float)
    bad[2, 3] = np.nan
    for make in (data_operator, row_storage):
        with pytest.raises(ValueError, match="X contains NaN or inf"):
            make(bad)
        with pytest.raises(ValueError, match="X contains NaN or inf"):
            make(sp.csr_matrix(np.where(np.isnan(bad), np.inf, bad)))
        with pytest.raises(ValueError, match="X must be 2-D"):
            make(np.ones(3))
        with pytest.raises(TypeError, match="numeric"):
            make(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="SparseOperator"):
        row_storage(GramOperator(data_operator(bad[:, :2] * 0), jnp.ones(M)))


# ------------------------------------------------------------------ losses


_LOSSES = [
    SquaredLoss(jnp.linspace(-1, 1, M)),
    SquaredLoss(jnp.linspace(-1, 1, M), jnp.linspace(0, 2, M)),
    LogisticLoss(jnp.where(jnp.arange(M) % 3 == 0, -1.0, 1.0)),
    LogisticLoss(jnp.where(jnp.arange(M) % 3 == 0, -1.0, 1.0), jnp.linspace(0, 2, M)),
]


@pytest.mark.parametrize("loss", _LOSSES, ids=["squared", "squared-w", "logistic", "logistic-w"])
def test_loss_derivatives_match_autodiff(loss):
    t = jnp.linspace(-8.0, 3.0, M)
    np.testing.assert_allclose(loss.value(t), jnp.sum(loss.terms(t)), rtol=1e-14)
    np.testing.assert_allclose(loss.grad(t), jax.grad(loss.value)(t), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(loss.hess_diag(t), jnp.diag(jax.hessian(loss.value)(t)),
                               rtol=1e-10, atol=1e-300)
    idx = jnp.array([1, 4, 4])
    np.testing.assert_allclose(loss.take(idx).grad(t[idx]), loss.grad(t)[idx], rtol=1e-14)
    assert loss.quadratic == isinstance(loss, SquaredLoss)
    far = jnp.array([-800.0, 800.0])  # far into the logistic tails: finite, no overflow
    assert bool(jnp.all(jnp.isfinite(jnp.stack([loss.take(jnp.arange(2)).grad(far),
                                                 loss.take(jnp.arange(2)).hess_diag(far)]))))


# ------------------------------------------------------------------ the Gram operator


@pytest.mark.parametrize("kind", list(_STORES))
@pytest.mark.parametrize("mean, mu", [(False, None), (True, 0.3)])
def test_gram_operator_matches_dense(kind, mean, mu):
    X = _sparse(2)
    A, Ad = _STORES[kind](X), _matrix(kind, X)
    w = np.linspace(0.0, 2.0, M)
    G = GramOperator(A, jnp.asarray(w), mu, mean=mean)
    ref = Ad.T @ (w[:, None] * Ad) / (M if mean else 1) + (mu or 0.0) * np.eye(Ad.shape[1])
    np.testing.assert_allclose(to_dense(G), ref, rtol=1e-12, atol=1e-14)
    v = np.linspace(1.0, 2.0, Ad.shape[1])
    np.testing.assert_allclose(G.matvec(v), ref @ v, rtol=1e-12, atol=1e-14)
    assert G.T is G and G.plain == (mu is None and not mean)


def test_gram_operator_is_closure_free():
    """Weights and μ are leaves: new values of the same shapes reuse one compiled product."""
    A = data_operator(_sparse(3).toarray())
    apply = jax.jit(lambda G, v: G.matvec(v))
    v = jnp.ones(D)
    for k in range(3):
        apply(GramOperator(A, jnp.full(M, 1.0 + k), jnp.asarray(0.1 * k)), v)
    assert apply._cache_size() == 1


def _gram(A, w, traced):
    """dense_gram eagerly (concrete CPU data: the host BLAS) or under jit (XLA's GEMM)."""
    if traced:
        return np.asarray(jax.jit(dense_gram)(A, w))
    return np.asarray(dense_gram(A, w))


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 40), st.integers(1, 12), st.booleans(), st.integers(0, 10_000),
       st.booleans())
def test_dense_gram_equals_dense_reference(m, d, centered, seed, traced):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, d))
    w = rng.uniform(0, 2, m) * (rng.uniform(size=m) > 0.2)
    A = data_operator(X)
    M = X
    if centered:
        mean = rng.standard_normal(d)
        A, M = CenteredOperator(A, jnp.asarray(mean)), X - mean
    G = _gram(A, jnp.asarray(w), traced)
    np.testing.assert_allclose(G, M.T @ (w[:, None] * M), atol=1e-12 * (1 + np.abs(M).max()**2 * m))
    np.testing.assert_array_equal(G, G.T)


@pytest.mark.parametrize("traced", [False, True])
def test_dense_gram_blocked_path_equals_dense_reference(traced):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 1030))  # 4 column blocks under jit, the last one short
    w = rng.uniform(0, 2, 60)
    G = _gram(data_operator(X), jnp.asarray(w), traced)
    np.testing.assert_allclose(G, X.T @ (w[:, None] * X), atol=1e-11)


# ------------------------------------------------------------------ penalties


def test_soft_threshold_matches_numpy():
    v = np.linspace(-2, 2, 9)
    np.testing.assert_allclose(soft_threshold(jnp.asarray(v), 0.5),
                               np.sign(v) * np.maximum(np.abs(v) - 0.5, 0))


@pytest.mark.parametrize("t", [0.3, 2.0])
def test_elastic_net_prox_satisfies_its_optimality_condition(t):
    """z = prox_{t·r}(v) iff 0 ∈ (z − v)/t + w(λ₁∂|z| + λ₂z); a zero weight leaves zᵢ = vᵢ."""
    v = np.linspace(-3, 3, 13)
    w = np.where(np.arange(13) % 4 == 0, 0.0, 1.5)
    l1, l2 = 0.7, 0.4
    z = np.asarray(ElasticNetPenalty(l1, l2, jnp.asarray(w)).prox(jnp.asarray(v), t))
    r = (z - v) / t + w * l2 * z
    on = z != 0
    np.testing.assert_allclose(r[on], -w[on] * l1 * np.sign(z[on]), atol=1e-12)
    assert np.all(np.abs(r[~on]) <= w[~on] * l1 + 1e-12)
    np.testing.assert_allclose(z[w == 0], v[w == 0])
    np.testing.assert_allclose(L1(l1, jnp.asarray(w)).prox(jnp.asarray(v), t),
                               ElasticNetPenalty(l1, 0.0, jnp.asarray(w)).prox(jnp.asarray(v), t))
    np.testing.assert_allclose(Box(-1.0, 2.0).prox(jnp.asarray(v), t), np.clip(v, -1, 2))


_project = jax.jit(project_box_hyperplane)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000))
def test_box_hyperplane_projection_is_the_projection(seed):
    rng = np.random.default_rng(seed)
    n = 12
    v = 3 * rng.standard_normal(n)
    a = rng.choice([-1.0, 1.0], n)
    z, _ = _project(jnp.asarray(v), jnp.zeros(n), jnp.full(n, 1.0), jnp.asarray(a))
    z = np.asarray(z)
    assert abs(a @ z) < 1e-9 and z.min() >= 0 and z.max() <= 1
    # Variational inequality (v − z)ᵀ(w − z) ≤ 0 for feasible w.
    for _ in range(20):
        w = rng.uniform(0, 1, n)
        pos, neg = a > 0, a < 0
        s = w[pos].sum() - w[neg].sum()
        w[pos if s > 0 else neg] *= (w[neg].sum() / w[pos].sum()) if s > 0 else (
            w[pos].sum() / w[neg].sum())
        assert (v - z) @ (w - z) <= 1e-8
