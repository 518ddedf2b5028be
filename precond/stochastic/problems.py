"""Finite-sum generalized linear models: least squares and ℓ2-regularized logistic regression.

    F(w) = (1/n) Σᵢ φ(xᵢᵀw, yᵢ) + (μ/2)‖w‖²

with φ(z, y) = ½(z − y)² (``least_squares``) or φ(z, y) = log(1 + exp(−yz)) (``logistic``).
Every quantity the PROMISE solvers need is a function of the rows of X:

    ∇F_S(w) = (1/|S|) X_Sᵀ φ′(X_S w, y_S) + μw,      H_S(w) = (1/|S|) X_Sᵀ D_S X_S + μI,

D_S = diag(φ″(X_S w, y_S)).  The subsampled Hessian is a matrix-free ``LinearOperator``
(:class:`GLMHessian`), so ``precond.linalg``'s Nyström, Lanczos and power iteration apply to it.

Row storage.  Dense X is a (n, d) jax array and a minibatch is a row gather ``X[idx]``.  Sparse X
(scipy.sparse or a ``precond.linalg.SparseOperator``/BCOO) is stored in padded-row (ELLPACK)
form: ``cols`` and ``vals`` of shape (n, k) with k the largest row length, short rows padded with
column 0 and value 0.  A minibatch is then two fixed-shape gathers ``cols[idx]``, ``vals[idx]``,
X_S w is ``Σ_j vals·w[cols]`` and X_Sᵀr a scatter-add — static shapes, so a whole epoch compiles
into one ``lax.scan`` with no densification and cost O(|S|·k) per product.  (CSR row slices have
data-dependent lengths, which jit cannot express, and a BCOO matrix has no fixed-shape row
gather.)  The price is memory n·k instead of nnz: padding is cheap when the longest row is a small
multiple of the mean (text and click data), and costly for a few very heavy rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax.experimental import sparse as jsparse
from jax.tree_util import register_pytree_node_class

from ..linalg.operators import LinearOperator, SparseOperator

__all__ = ["GLMProblem", "GLMHessian", "least_squares", "logistic"]

_KINDS = ("least_squares", "logistic")


# --------------------------------------------------------------------------------------------
# Row storage: dense rows, or padded sparse rows (ELLPACK).


@register_pytree_node_class
class DenseRows:
    """Dense X (n, d)."""

    def __init__(self, X):
        self.X = X

    @property
    def shape(self):
        return self.X.shape

    def take(self, idx):
        return DenseRows(self.X[idx])

    def matvec(self, w):
        return self.X @ w

    def matmat(self, W):
        return self.X @ W

    def rmatvec(self, r):
        return self.X.T @ r

    def rmatmat(self, R):
        return self.X.T @ R

    def tree_flatten(self):
        return (self.X,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


@register_pytree_node_class
class EllRows:
    """Sparse X (n, d) as padded rows: X[i, cols[i, j]] += vals[i, j]."""

    def __init__(self, cols, vals, d: int):
        self.cols, self.vals, self.d = cols, vals, int(d)

    @property
    def shape(self):
        return (self.cols.shape[0], self.d)

    def take(self, idx):
        return EllRows(self.cols[idx], self.vals[idx], self.d)

    def matvec(self, w):
        return jnp.sum(self.vals * w[self.cols], axis=1)

    def matmat(self, W):
        return jnp.einsum("ik,ikr->ir", self.vals, W[self.cols])

    def rmatvec(self, r):
        return jnp.zeros(self.d, self.vals.dtype).at[self.cols].add(self.vals * r[:, None])

    def rmatmat(self, R):
        out = jnp.zeros((self.d, R.shape[1]), self.vals.dtype)
        return out.at[self.cols].add(self.vals[:, :, None] * R[:, None, :])

    def tree_flatten(self):
        return (self.cols, self.vals), self.d

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], children[1], aux)


def _ell_from_csr(A: sp.csr_matrix, dtype) -> EllRows:
    A = A.tocsr()
    A.sum_duplicates()
    n, d = A.shape
    lengths = np.diff(A.indptr)
    k = max(int(lengths.max()) if n else 0, 1)
    cols = np.zeros((n, k), np.int32)
    vals = np.zeros((n, k), dtype)
    rows = np.repeat(np.arange(n), lengths)
    pos = np.arange(A.nnz) - np.repeat(A.indptr[:-1], lengths)
    cols[rows, pos] = A.indices
    vals[rows, pos] = A.data
    return EllRows(jnp.asarray(cols), jnp.asarray(vals), d)


def _rows_from(X, dtype):
    """(row storage, n, d) from dense or sparse X; raises on NaN/inf, wrong rank."""
    if isinstance(X, SparseOperator):
        X = X.matrix
    if isinstance(X, jsparse.BCOO):
        X = sp.coo_matrix((np.asarray(X.data), tuple(np.asarray(X.indices).T)), shape=X.shape)
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D, got shape {X.shape}")
        X = sp.csr_matrix(X)
        if not np.all(np.isfinite(X.data)):
            raise ValueError("X contains NaN or inf")
        dt = np.dtype(dtype) if dtype is not None else np.result_type(X.dtype, np.float32)
        return _ell_from_csr(X, dt), X.shape[0], X.shape[1]
    if isinstance(X, LinearOperator):
        raise TypeError("X must be an array, a scipy.sparse matrix or a SparseOperator; got "
                        f"{type(X).__name__}")
    X = np.asarray(X) if not isinstance(X, jax.Array) else X
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n samples, d features), got shape {X.shape}")
    if not jnp.issubdtype(X.dtype, jnp.number):
        raise TypeError(f"X must be numeric, got dtype {X.dtype}")
    if not bool(np.all(np.isfinite(np.asarray(X)))):
        raise ValueError("X contains NaN or inf")
    Xj = jnp.asarray(X, dtype=dtype)
    if not jnp.issubdtype(Xj.dtype, jnp.floating):
        Xj = Xj.astype(jnp.result_type(float))
    return DenseRows(Xj), X.shape[0], X.shape[1]


# --------------------------------------------------------------------------------------------
# Losses φ(z, y) and their first two derivatives in z.


def _phi(kind, z, y):
    if kind == "least_squares":
        return 0.5 * (z - y) ** 2
    return jax.nn.softplus(-y * z)  # log(1 + exp(−yz)) without overflow


def _dphi(kind, z, y):
    if kind == "least_squares":
        return z - y
    return -y * jax.nn.sigmoid(-y * z)


def _d2phi(kind, z, y):
    if kind == "least_squares":
        return jnp.ones_like(z)
    s = jax.nn.sigmoid(z)
    return s * (1.0 - s)


@register_pytree_node_class
class GLMHessian(LinearOperator):
    """H = (1/|S|) X_Sᵀ diag(h) X_S + μI on the rows ``rows`` = X_S, curvatures ``h`` (|S|,)."""

    def __init__(self, rows, h, mu):
        self.rows, self.h, self.mu = rows, h, mu
        d = rows.shape[1]
        self.shape = (d, d)
        self.dtype = h.dtype

    def matvec(self, v):
        m = self.h.shape[0]
        return self.rows.rmatvec(self.h * self.rows.matvec(v)) / m + self.mu * v

    def matmat(self, V):
        m = self.h.shape[0]
        return self.rows.rmatmat(self.h[:, None] * self.rows.matmat(V)) / m + self.mu * V

    @property
    def T(self):
        return self

    def tree_flatten(self):
        return (self.rows, self.h, self.mu), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


@register_pytree_node_class
class GLMProblem:
    """F(w) = (1/n) Σᵢ φ(xᵢᵀw, yᵢ) + (μ/2)‖w‖²; build with :func:`least_squares` or
    :func:`logistic`.  A pytree, so it passes through ``jit`` (``kind`` is static).

    ``n``, ``d``: samples and features; ``y``: targets (logistic: mapped to ±1); ``mu``: μ.
    """

    def __init__(self, rows, y, mu, kind: str):
        self.rows, self.y, self.mu, self.kind = rows, y, mu, kind

    @property
    def n(self) -> int:
        return self.rows.shape[0]

    @property
    def d(self) -> int:
        return self.rows.shape[1]

    @property
    def dtype(self):
        return self.y.dtype

    def value(self, w) -> jax.Array:
        """F(w) on all n samples."""
        z = self.rows.matvec(w)
        return jnp.mean(_phi(self.kind, z, self.y)) + 0.5 * self.mu * jnp.vdot(w, w)

    def value_and_grad(self, w) -> tuple[jax.Array, jax.Array]:
        """(F(w), ∇F(w)) with one pass over the data."""
        z = self.rows.matvec(w)
        f = jnp.mean(_phi(self.kind, z, self.y)) + 0.5 * self.mu * jnp.vdot(w, w)
        g = self.rows.rmatvec(_dphi(self.kind, z, self.y)) / self.n + self.mu * w
        return f, g

    def grad(self, w, idx=None) -> jax.Array:
        """∇F_S(w) = (1/|S|) X_Sᵀ φ′(X_S w, y_S) + μw; ``idx=None`` is the full gradient."""
        if idx is None:
            return self.value_and_grad(w)[1]
        return self.loss_grad(w, idx) + self.mu * w

    def residuals(self, w, idx) -> jax.Array:
        """φ′(X_S w, y_S) (|S|,): the GLM gradient is X_Sᵀ of these over |S| (SAGA stores them)."""
        return _dphi(self.kind, self.rows.take(idx).matvec(w), self.y[idx])

    def loss_grad(self, w, idx) -> jax.Array:
        """(1/|S|) X_Sᵀ φ′(X_S w, y_S), the data term of a minibatch gradient (no μw)."""
        rows = self.rows.take(idx)
        r = _dphi(self.kind, rows.matvec(w), self.y[idx])
        return rows.rmatvec(r) / idx.shape[0]

    def hessian(self, w, idx=None, *, shift: bool = True) -> GLMHessian:
        """H_S(w) = (1/|S|) X_Sᵀ D_S X_S + μI as an operator (``shift=False`` drops μI)."""
        rows = self.rows if idx is None else self.rows.take(idx)
        y = self.y if idx is None else self.y[idx]
        h = _d2phi(self.kind, rows.matvec(w), y)
        mu = self.mu if shift else jnp.zeros_like(self.mu)
        return GLMHessian(rows, h, mu)

    def tree_flatten(self):
        return (self.rows, self.y, self.mu), self.kind

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, aux)

    def __repr__(self) -> str:
        storage = "sparse" if isinstance(self.rows, EllRows) else "dense"
        return (f"GLMProblem({self.kind}, n={self.n}, d={self.d}, mu={float(self.mu):.3g}, "
                f"{storage}, dtype={jnp.dtype(self.dtype).name})")


def _build(kind, X, y, mu, dtype) -> GLMProblem:
    rows, n, d = _rows_from(X, dtype)
    if n == 0 or d == 0:
        raise ValueError(f"X must have at least one row and one column, got shape {(n, d)}")
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y has shape {y.shape}; expected ({n},) to match X's {n} rows")
    if not np.issubdtype(y.dtype, np.number) and y.dtype != bool:
        raise TypeError(f"y must be numeric, got dtype {y.dtype}")
    if not np.all(np.isfinite(y.astype(np.float64))):
        raise ValueError("y contains NaN or inf")
    try:
        mu_f = float(mu)
    except (TypeError, ValueError):
        raise TypeError(f"mu must be a real number, got {type(mu).__name__}") from None
    if not np.isfinite(mu_f) or mu_f < 0:
        raise ValueError(f"mu must be a finite number ≥ 0, got {mu_f}")
    ftype = rows.X.dtype if isinstance(rows, DenseRows) else rows.vals.dtype
    y = y.astype(np.float64)
    if kind == "logistic":
        labels = set(np.unique(y).tolist())
        if labels <= {0.0, 1.0}:
            y = 2.0 * y - 1.0
        elif not labels <= {-1.0, 1.0}:
            shown = sorted(labels)[:6]
            raise ValueError(f"logistic labels must be {{0, 1}} or {{-1, +1}}; got values {shown}")
    return GLMProblem(rows, jnp.asarray(y, ftype), jnp.asarray(mu_f, ftype), kind)


def least_squares(X, y, mu, *, dtype=None) -> GLMProblem:
    """F(w) = (1/2n)‖Xw − y‖² + (μ/2)‖w‖²  (ridge regression; μ ≥ 0 is ``mu``).

    X: (n, d) dense array, scipy.sparse matrix or ``SparseOperator``; y: (n,).  No implicit
    intercept — append a column of ones to fit one.  A common choice is μ = 1e-2/n.
    """
    return _build("least_squares", X, y, mu, dtype)


def logistic(X, y, mu, *, dtype=None) -> GLMProblem:
    """F(w) = (1/n) Σᵢ log(1 + exp(−yᵢxᵢᵀw)) + (μ/2)‖w‖²  (μ ≥ 0 is ``mu``).

    Labels y ∈ {0, 1} or {−1, +1} (both accepted; {0, 1} is mapped to ±1).  X: (n, d) dense
    array, scipy.sparse matrix or ``SparseOperator``.  No implicit intercept.  A common choice
    is μ = 1e-2/n.
    """
    return _build("logistic", X, y, mu, dtype)
