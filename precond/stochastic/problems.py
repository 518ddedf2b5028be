"""Finite-sum generalized linear models: least squares and ℓ2-regularized logistic regression.

    F(w) = (1/n) Σᵢ φ(xᵢᵀw, yᵢ) + (μ/2)‖w‖²

with φ(z, y) = ½(z − y)² (``least_squares``) or φ(z, y) = log(1 + exp(−yz)) (``logistic``).
Every quantity the PROMISE solvers need is a function of the rows of X:

    ∇F_S(w) = (1/|S|) X_Sᵀ φ′(X_S w, y_S) + μw,      H_S(w) = (1/|S|) X_Sᵀ D_S X_S + μI,

D_S = diag(φ″(X_S w, y_S)).  The subsampled Hessian is a matrix-free ``LinearOperator``
(:class:`GLMHessian`), so ``precond.linalg``'s Nyström, Lanczos and power iteration apply to it.

The data, losses and the Hessian operator are :mod:`precond.glm`'s: X is stored as rows a
jitted epoch can sample (:func:`precond.glm.row_storage`: dense rows, or padded sparse rows so a
minibatch is a fixed-shape gather and an epoch compiles into one ``lax.scan``), φ is a
:class:`precond.glm.SquaredLoss` or :class:`precond.glm.LogisticLoss`, and H_S is a
:class:`precond.glm.GramOperator` (``mean=True``, ``mu=μ``).

Example:
  >>> import numpy as np
  >>> from precond.stochastic import logistic
  >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]); y = np.array([1, 0, 1])
  >>> p = logistic(X, y, 0.1)
  >>> round(float(p.value(np.zeros(2))), 4)     # log 2
  0.6931
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import register_pytree_node_class

from ..glm import EllRows, GramOperator, LogisticLoss, SquaredLoss, row_storage
from ..validation import check_finite_array, check_nonnegative

__all__ = ["GLMProblem", "GLMHessian", "least_squares", "logistic"]

_LOSSES = {"least_squares": SquaredLoss, "logistic": LogisticLoss}


def GLMHessian(rows, h, mu) -> GramOperator:  # noqa: N802 - the old class name, kept callable
    """H = (1/|S|) X_Sᵀ diag(h) X_S + μI: the :class:`precond.glm.GramOperator` of the rows
    ``rows`` = X_S with curvatures ``h`` (|S|,) (the old name of that operator)."""
    return GramOperator(rows, h, mu, mean=True)


@register_pytree_node_class
class GLMProblem:
    """F(w) = (1/n) Σᵢ φ(xᵢᵀw, yᵢ) + (μ/2)‖w‖²; build with :func:`least_squares` or
    :func:`logistic`.  A pytree, so it passes through ``jit`` (``kind`` is static).

    ``n``, ``d``: samples and features; ``rows``: X's row storage; ``y``: targets (logistic:
    mapped to ±1); ``mu``: μ; ``loss``: the :mod:`precond.glm` loss Σᵢ φ(tᵢ, yᵢ).
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

    @property
    def loss(self) -> SquaredLoss | LogisticLoss:
        """φ summed over the samples, as a :mod:`precond.glm` loss of the predictions Xw."""
        return _LOSSES[self.kind](self.y)

    def _batch(self, idx):
        """(X_S, the loss on S): the rows ``idx``, or all rows when ``idx`` is None."""
        if idx is None:
            return self.rows, self.loss
        return self.rows.take(idx), self.loss.take(idx)

    def value(self, w) -> jax.Array:
        """F(w) on all n samples."""
        z = self.rows.matvec(w)
        return jnp.mean(self.loss.terms(z)) + 0.5 * self.mu * jnp.vdot(w, w)

    def value_and_grad(self, w) -> tuple[jax.Array, jax.Array]:
        """(F(w), ∇F(w)) with one pass over the data."""
        z = self.rows.matvec(w)
        f = jnp.mean(self.loss.terms(z)) + 0.5 * self.mu * jnp.vdot(w, w)
        g = self.rows.T.matvec(self.loss.grad(z)) / self.n + self.mu * w
        return f, g

    def grad(self, w, idx=None) -> jax.Array:
        """∇F_S(w) = (1/|S|) X_Sᵀ φ′(X_S w, y_S) + μw; ``idx=None`` is the full gradient."""
        if idx is None:
            return self.value_and_grad(w)[1]
        return self.loss_grad(w, idx) + self.mu * w

    def residuals(self, w, idx) -> jax.Array:
        """φ′(X_S w, y_S) (|S|,): the GLM gradient is X_Sᵀ of these over |S| (SAGA stores them)."""
        rows, loss = self._batch(idx)
        return loss.grad(rows.matvec(w))

    def loss_grad(self, w, idx) -> jax.Array:
        """(1/|S|) X_Sᵀ φ′(X_S w, y_S), the data term of a minibatch gradient (no μw)."""
        rows, loss = self._batch(idx)
        return rows.T.matvec(loss.grad(rows.matvec(w))) / idx.shape[0]

    def hessian(self, w, idx=None, *, shift: bool = True) -> GramOperator:
        """H_S(w) = (1/|S|) X_Sᵀ D_S X_S + μI, D_S = diag(φ″(X_S w)), as a
        :class:`precond.glm.GramOperator` (``shift=False`` drops μI).

        Args:
          w: the point (d,).
          idx: the sample indices S (|S|,), or None for all n.
          shift: add μI.
        """
        rows, loss = self._batch(idx)
        return GramOperator(rows, loss.hess_diag(rows.matvec(w)), self.mu if shift else None,
                            mean=True)

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
    rows = row_storage(X, dtype)
    n, d = rows.shape
    if n == 0 or d == 0:
        raise ValueError(f"X must have at least one row and one column, got shape {(n, d)}")
    # A jax.Array y stays where it is (row-sharded y with row-sharded X: checked and mapped by
    # reductions on its devices, never gathered to the host); anything else is host data.
    if not isinstance(y, jax.Array):
        y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"y has shape {y.shape}; expected ({n},) to match X's {n} rows")
    if not np.issubdtype(y.dtype, np.number) and y.dtype != bool:
        raise TypeError(f"y must be numeric, got dtype {y.dtype}")
    mu_f = check_nonnegative(mu, "mu")
    ftype = rows.dtype
    y = jnp.asarray(y).astype(ftype)
    check_finite_array(y, "y")
    if kind == "logistic":
        with jax.ensure_compile_time_eval():
            zero_one = bool(jnp.all((y == 0) | (y == 1)))
            plus_minus = bool(jnp.all(jnp.abs(y) == 1))
        if zero_one:
            y = 2 * y - 1
        elif not plus_minus:
            shown = np.unique(np.asarray(y)).tolist()[:6]
            raise ValueError(f"logistic labels must be {{0, 1}} or {{-1, +1}}; got values {shown}")
    return GLMProblem(rows, y, jnp.asarray(mu_f, ftype), kind)


def least_squares(X, y, mu, *, dtype=None) -> GLMProblem:
    """F(w) = (1/2n)‖Xw − y‖² + (μ/2)‖w‖² (ridge regression).

    No implicit intercept — append a column of ones to fit one.

    Args:
      X: (n, d) dense array, scipy.sparse matrix or ``SparseOperator`` (sparse stays sparse).
      y: (n,) targets.
      mu: μ ≥ 0 (a common choice is μ = 1e-2/n).
      dtype: the float dtype to compute in (default: X's; integer X → the default float).
    """
    return _build("least_squares", X, y, mu, dtype)


def logistic(X, y, mu, *, dtype=None) -> GLMProblem:
    """F(w) = (1/n) Σᵢ log(1 + exp(−yᵢxᵢᵀw)) + (μ/2)‖w‖² (ℓ2-regularized logistic regression).

    No implicit intercept.

    Args:
      X: (n, d) dense array, scipy.sparse matrix or ``SparseOperator`` (sparse stays sparse).
      y: (n,) labels in {0, 1} or {−1, +1} ({0, 1} is mapped to ±1).
      mu: μ ≥ 0 (a common choice is μ = 1e-2/n).
      dtype: the float dtype to compute in (default: X's; integer X → the default float).
    """
    return _build("logistic", X, y, mu, dtype)
