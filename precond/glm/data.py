"""GLM data: the feature matrix X (m, d) as an operator, checked once.

Two storage forms, for two access patterns:

* :func:`data_operator` — X as a :class:`precond.linalg` operator for full products Xv, Xᵀr
  (NysADMM, kernels): dense data becomes a ``DenseOperator``, scipy.sparse stays sparse (a
  ``SparseOperator``, BCOO).  :class:`CenteredOperator` (X − 1x̄ᵀ, for an intercept by centering)
  and :class:`AppendOnesOperator` ([X, 1], for an intercept column) wrap either, never densifying.
* :func:`row_storage` — X as rows that a jitted epoch can sample: :class:`DenseRows` (a row
  gather ``X[idx]``) or :class:`EllRows` for sparse X.  EllRows stores padded rows (ELLPACK):
  ``cols`` and ``vals`` of shape (m, k), k the longest row, short rows padded with column 0 and
  value 0.  A minibatch is then two fixed-shape gathers, X_S w is ``Σ_j vals·w[cols]`` and X_Sᵀr
  a scatter-add — static shapes, so an epoch compiles into one ``lax.scan`` at O(|S|·k) per
  product.  (CSR row slices have data-dependent lengths, which jit cannot express, and a BCOO
  matrix has no fixed-shape row gather.)  The price is memory m·k instead of nnz: cheap when the
  longest row is a small multiple of the mean (text, click data), costly for a few heavy rows.

Both row stores are :class:`precond.linalg.LinearOperator` s (with ``.T``), so the Gram operator
of :mod:`precond.glm.gram` and the solvers of :mod:`precond.linalg` apply to them.

Row-sharded data (:mod:`precond.distributed`): a row store built from row-sharded arrays — X, or
an ``EllRows`` passed through ``shard_rows`` — records their mesh (static data), and its
mini-batch ``take`` is then :func:`precond.distributed.take_rows`, which never gathers X.

Example:
  >>> import numpy as np, scipy.sparse as sp
  >>> from precond.glm import data_operator, row_storage
  >>> X = sp.random(6, 4, density=0.5, format="csr", random_state=0)
  >>> type(data_operator(X)).__name__, type(row_storage(X)).__name__
  ('SparseOperator', 'EllRows')
  >>> rows = row_storage(X.toarray())
  >>> bool(np.allclose(rows.T.matvec(np.ones(6)), X.sum(0)))
  True
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax.experimental import sparse as jsparse
from jax.tree_util import register_pytree_node_class

from precond.distributed import row_mesh, take_rows
from precond.linalg import LinearOperator, SparseOperator, as_operator
from precond.linalg._checks import as_array
from precond.validation import check_finite_array, float_dtype

__all__ = [
    "data_operator",
    "row_storage",
    "CenteredOperator",
    "AppendOnesOperator",
    "DenseRows",
    "EllRows",
]


# ----------------------------------------------------------------------------- checks


def _checked(X, dtype=None, *, keep_coo: bool = False):
    """X as a finite scipy.sparse matrix (CSR; COO kept with ``keep_coo``) or a finite 2-D jax
    float array, in ``dtype`` (default: X's float dtype; integers become float).

    Raises ``ValueError`` for NaN/inf or a rank other than 2, ``TypeError`` for non-numbers.
    """
    if sp.issparse(X):
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D, got shape {X.shape}")
        dt = np.dtype(dtype) if dtype is not None else np.result_type(X.dtype, np.float32)
        # COO input may be kept as given (duplicates and explicit zeros included: padding uses
        # them to give the BCOO a bucketed number of stored entries).
        X = X.astype(dt) if keep_coo and X.format == "coo" else sp.csr_matrix(X, dtype=dt)
        if not np.all(np.isfinite(X.data)):
            raise ValueError("X contains NaN or inf")
        return X
    X = as_array(X) if dtype is None else jnp.asarray(X, dtype=dtype)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (m samples, d features), got shape {X.shape}")
    if not (jnp.issubdtype(X.dtype, jnp.number) or X.dtype == bool):
        raise TypeError(f"X must be numeric, got dtype {X.dtype}")
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(float_dtype(X))
    check_finite_array(X, "X")
    return X


def data_operator(X) -> LinearOperator:
    """X (m, d) as an operator for full products Xv and Xᵀr.

    Args:
      X: (m, d) numpy/jax array, scipy.sparse matrix (kept sparse: a BCOO ``SparseOperator``) or
        a precond ``LinearOperator`` (returned as is).

    Returns:
      a ``DenseOperator`` or ``SparseOperator`` of shape (m, d), in X's float dtype (integers:
      the default float; sparse integers: float64).
    """
    if isinstance(X, LinearOperator):
        return X
    X = _checked(X, keep_coo=True)
    return SparseOperator(X) if sp.issparse(X) else as_operator(X)


def row_storage(X, dtype=None) -> DenseRows | EllRows:
    """X (m, d) as rows a jitted epoch can sample: :class:`DenseRows` or :class:`EllRows`.

    Args:
      X: (m, d) dense array, scipy.sparse matrix, BCOO or ``SparseOperator`` (sparse becomes
        padded rows, never dense), or a row store (e.g. an ``EllRows`` row-sharded by
        ``precond.distributed.shard_rows``: returned in ``dtype``, its mesh recorded).
      dtype: the float dtype to store (default: X's, integers → float).
    """
    if isinstance(X, DenseRows) and not X.transposed:
        return DenseRows(_checked(X.X, dtype))
    if isinstance(X, EllRows) and not X.transposed:
        vals = _checked(X.vals, dtype)
        return EllRows(X.cols, vals, X.d, mesh=row_mesh(vals) if row_mesh(X.cols) else None)
    if isinstance(X, SparseOperator):
        X = X.matrix
    if isinstance(X, jsparse.BCOO):
        X = sp.coo_matrix((np.asarray(X.data), tuple(np.asarray(X.indices).T)), shape=X.shape)
    if isinstance(X, LinearOperator):
        raise TypeError("X must be an array, a scipy.sparse matrix or a SparseOperator; got "
                        f"{type(X).__name__}")
    X = _checked(X, dtype)
    return _ell_from_csr(X) if sp.issparse(X) else DenseRows(X)


# ----------------------------------------------------------------------------- intercepts


@register_pytree_node_class
class CenteredOperator(LinearOperator):
    """A − 1x̄ᵀ (m, d) applied as Av − (x̄ᵀv)1 (transpose: Aᵀw − x̄(1ᵀw)), so sparse A stays
    sparse.  ``mean`` is x̄ (d,)."""

    def __init__(self, A, mean, transposed=False):
        self.A, self.mean, self.transposed = A, mean, transposed
        m, d = A.shape
        self.shape = (d, m) if transposed else (m, d)
        self.dtype = A.dtype

    def matvec(self, v):
        if self.transposed:
            return self.A.T.matvec(v) - self.mean * jnp.sum(v)
        return self.A.matvec(v) - jnp.vdot(self.mean, v)

    def matmat(self, V):
        if self.transposed:
            return self.A.T.matmat(V) - self.mean[:, None] * jnp.sum(V, 0)[None]
        return self.A.matmat(V) - (self.mean @ V)[None]

    @property
    def T(self):
        return CenteredOperator(self.A, self.mean, not self.transposed)

    def tree_flatten(self):
        return (self.A, self.mean), self.transposed

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, aux)


@register_pytree_node_class
class AppendOnesOperator(LinearOperator):
    """[A, 1] (m, d+1): the last coefficient is an intercept.  Transpose: [Aᵀw; 1ᵀw]."""

    def __init__(self, A, transposed=False):
        self.A, self.transposed = A, transposed
        m, d = A.shape
        self.shape = (d + 1, m) if transposed else (m, d + 1)
        self.dtype = A.dtype

    def matvec(self, v):
        if self.transposed:
            return jnp.concatenate([self.A.T.matvec(v), jnp.sum(v)[None]])
        return self.A.matvec(v[:-1]) + v[-1]

    def matmat(self, V):
        if self.transposed:
            return jnp.concatenate([self.A.T.matmat(V), jnp.sum(V, 0)[None]], 0)
        return self.A.matmat(V[:-1]) + V[-1][None]

    @property
    def T(self):
        return AppendOnesOperator(self.A, not self.transposed)

    def tree_flatten(self):
        return (self.A,), self.transposed

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], aux)


# ----------------------------------------------------------------------------- sampled rows


@register_pytree_node_class
class DenseRows(LinearOperator):
    """Dense X (m, d) whose rows a minibatch gathers (``take``); ``.T`` applies Xᵀr as
    ``X.T @ r``.  ``mesh``: the mesh X's rows are sharded on (default: read from a concrete X;
    None when X is on one device), so that ``take`` never gathers X."""

    def __init__(self, X, transposed: bool = False, mesh=None):
        self.X, self.transposed = X, bool(transposed)
        self.mesh = mesh if mesh is not None else row_mesh(X)
        self.shape = tuple(X.shape[::-1]) if transposed else tuple(X.shape)
        self.dtype = X.dtype

    def take(self, idx) -> DenseRows:
        """The rows ``idx`` (b,) as a (b, d) store (replicated when X is row-sharded)."""
        if self.mesh is not None:
            return DenseRows(take_rows(self.X, idx, self.mesh))
        return DenseRows(self.X[idx])

    def matvec(self, v):
        return self.X.T @ v if self.transposed else self.X @ v

    def matmat(self, V):
        return self.X.T @ V if self.transposed else self.X @ V

    @property
    def T(self) -> DenseRows:
        return DenseRows(self.X, not self.transposed, self.mesh)

    def tree_flatten(self):
        return (self.X,), (self.transposed, self.mesh)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], *aux)


@register_pytree_node_class
class EllRows(LinearOperator):
    """Sparse X (m, d) as padded rows: X[i, cols[i, j]] += vals[i, j]; ``cols``, ``vals`` (m, k).
    ``mesh``: the mesh their rows are sharded on (as for :class:`DenseRows`)."""

    def __init__(self, cols, vals, d: int, transposed: bool = False, mesh=None):
        self.cols, self.vals, self.d, self.transposed = cols, vals, int(d), bool(transposed)
        self.mesh = mesh
        m = cols.shape[0]
        self.shape = (self.d, m) if transposed else (m, self.d)
        self.dtype = vals.dtype

    def take(self, idx) -> EllRows:
        """The rows ``idx`` (b,) as a (b, d) store (replicated when the rows are sharded)."""
        if self.mesh is not None:
            return EllRows(take_rows(self.cols, idx, self.mesh),
                           take_rows(self.vals, idx, self.mesh), self.d)
        return EllRows(self.cols[idx], self.vals[idx], self.d)

    def matvec(self, v):
        if self.transposed:  # Xᵀr: scatter-add each stored entry's vals·r into its column
            return jnp.zeros(self.d, self.vals.dtype).at[self.cols].add(self.vals * v[:, None])
        return jnp.sum(self.vals * v[self.cols], axis=1)

    def matmat(self, V):
        if self.transposed:
            out = jnp.zeros((self.d, V.shape[1]), self.vals.dtype)
            return out.at[self.cols].add(self.vals[:, :, None] * V[:, None, :])
        return jnp.einsum("ik,ikr->ir", self.vals, V[self.cols])

    @property
    def T(self) -> EllRows:
        return EllRows(self.cols, self.vals, self.d, not self.transposed, self.mesh)

    def tree_flatten(self):
        return (self.cols, self.vals), (self.d, self.transposed, self.mesh)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], children[1], *aux)


def _ell_from_csr(A: sp.csr_matrix) -> EllRows:
    A = A.tocsr()
    A.sum_duplicates()
    n, d = A.shape
    lengths = np.diff(A.indptr)
    k = max(int(lengths.max()) if n else 0, 1)
    cols = np.zeros((n, k), np.int32)
    vals = np.zeros((n, k), A.dtype)
    rows = np.repeat(np.arange(n), lengths)
    pos = np.arange(A.nnz) - np.repeat(A.indptr[:-1], lengths)
    cols[rows, pos] = A.indices
    vals[rows, pos] = A.data
    return EllRows(jnp.asarray(cols), jnp.asarray(vals), d)
