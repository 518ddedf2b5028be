"""Composite problems min f(x) + r(x) for NysADMM: lasso, elastic net, ℓ1-logistic, SVM dual, boxes.

Two kinds of smooth part f:

* :class:`LossProblem` — f(x) = ℓ(Ax) with a separable loss ℓ and a data operator A (m, d)
  from :mod:`precond.glm`; its Hessian AᵀH_ℓ(Ax)A is a :class:`precond.glm.GramOperator`,
  applied as Aᵀ(D(Av)), never formed.
* :class:`QuadraticProblem` — f(x) = ½xᵀQx + qᵀx for a PSD operator Q (the SVM dual, whose Q is
  diag(y)K diag(y) with a kernel operator K that is never formed when n is large).

Data may be numpy/jax dense arrays or scipy.sparse matrices; sparse data stays sparse (a
:class:`precond.linalg.SparseOperator`), and centering for an intercept is applied implicitly,
A v − (x̄ᵀv)1 (:class:`precond.glm.CenteredOperator`), so it never densifies.  The data
operators, losses, Gram operator and penalties are :mod:`precond.glm`'s; their old names here
(``data_operator``, ``CenteredOperator``, ``AppendOnesOperator``, ``GramOperator``,
``dense_gram``, ``has_dense_gram``) are re-exports.

Intercepts: least-squares problems (lasso, elastic net, box/NNLS) center X and b implicitly and
recover c = b̄ − x̄ᵀx (as scikit-learn does); ℓ1-logistic appends a column of ones whose
coefficient is not penalized; the SVM dual keeps the constraint yᵀx = 0 of the dual with an
unpenalized intercept (LIBSVM's formulation) in its prox, and recovers the intercept from the
free support vectors (:func:`svm_intercept`).
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax import lax
from jax.tree_util import register_pytree_node_class

from precond.glm import AppendOnesOperator as AppendOnesOperator
from precond.glm import Box, BoxHyperplane, ElasticNetPenalty, LogisticLoss, SquaredLoss
from precond.glm import CenteredOperator as CenteredOperator
from precond.glm import GramOperator as GramOperator
from precond.glm import data_operator as data_operator
from precond.glm import dense_gram as dense_gram
from precond.glm import has_dense_gram as has_dense_gram
from precond.linalg import DenseOperator, LinearOperator, as_operator
from precond.validation import check_finite_array, check_nonnegative, check_positive, float_dtype

__all__ = [
    "LossProblem",
    "QuadraticProblem",
    "lasso",
    "elastic_net",
    "l1_logistic",
    "box_least_squares",
    "nonnegative_least_squares",
    "svm_dual",
    "svm_intercept",
    "linear_kernel",
    "rbf_kernel",
    "has_dense_quadratic",
    "dense_quadratic",
    "low_rank_quadratic",
]


# ----------------------------------------------------------------------------- kernels


@register_pytree_node_class
class LabeledOperator(LinearOperator):
    """diag(y) K diag(y) for a symmetric operator K."""

    def __init__(self, K, labels):
        self.K, self.labels = K, labels
        self.shape, self.dtype = K.shape, K.dtype

    def matvec(self, v):
        return self.labels * self.K.matvec(self.labels * v)

    def matmat(self, V):
        return self.labels[:, None] * self.K.matmat(self.labels[:, None] * V)

    @property
    def T(self):
        return self

    def tree_flatten(self):
        return (self.K, self.labels), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


@register_pytree_node_class
class RBFKernelOperator(LinearOperator):
    """K_ij = exp(−γ‖xᵢ − xⱼ‖²) applied block by block: memory O(n·block), never n×n."""

    def __init__(self, X, gamma, block=1024):
        self.X, self.gamma, self.block = X, gamma, int(block)
        n = X.shape[0]
        self.shape, self.dtype = (n, n), X.dtype

    def _rows(self, Xb):
        sq = jnp.sum(self.X**2, 1)
        d2 = jnp.sum(Xb**2, 1)[:, None] + sq[None] - 2 * Xb @ self.X.T
        return jnp.exp(-self.gamma * jnp.maximum(d2, 0.0))

    def matmat(self, V):
        n, b = self.shape[0], self.block
        nb = -(-n // b)
        Xp = jnp.pad(self.X, ((0, nb * b - n), (0, 0))).reshape(nb, b, -1)
        out = lax.map(lambda Xb: self._rows(Xb) @ V, Xp)
        return out.reshape(nb * b, -1)[:n]

    def matvec(self, v):
        return self.matmat(v[:, None])[:, 0]

    @property
    def T(self):
        return self

    def tree_flatten(self):
        return (self.X, self.gamma), self.block

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, aux)


def linear_kernel(X) -> LinearOperator:
    """K = XXᵀ (n, n) applied as X(Xᵀv), never formed: a :class:`precond.glm.GramOperator`.

    Args:
      X: (n, p) dense array or scipy.sparse matrix (kept sparse).
    """
    A = data_operator(X)
    return GramOperator(A.T, jnp.ones(A.shape[1], A.dtype))


def rbf_kernel(X, gamma: float, *, dense_max: int = 4000, block: int = 1024) -> LinearOperator:
    """The RBF kernel K_ij = exp(−γ‖xᵢ − xⱼ‖²) (n, n) as an operator.

    For n ≤ ``dense_max`` (a 4000² float64 matrix is 128 MB) K is formed once, so each matvec is
    a GEMV; above it K is applied block by block (O(n²·p) work, O(n·block) memory per matvec),
    so n×n is never stored.

    Args:
      X: (n, p) samples (sparse rows are densified: their RBF kernel is dense anyway).
      gamma: γ > 0.
      dense_max: the largest n for which K is formed.
      block: rows per block of the matrix-free product.
    """
    gamma = check_positive(gamma, "gamma")
    if sp.issparse(X):
        X = X.toarray()  # the RBF kernel of sparse rows is dense anyway
    X = jnp.asarray(X)
    X = X.astype(float_dtype(X))
    op = RBFKernelOperator(X, jnp.asarray(gamma, X.dtype), block)
    if X.shape[0] <= dense_max:
        return DenseOperator(op._rows(X))  # all rows at once (n·n·p work, not K @ I's n³)
    return op


# ----------------------------------------------------------------------------- problems


@partial(jax.tree_util.register_dataclass,
         data_fields=["A", "loss", "reg", "x_mean", "y_mean"],
         meta_fields=["intercept_mode"])
@dataclasses.dataclass(frozen=True)
class LossProblem:
    """min_x ℓ(Ax) + r(x).  ``intercept_mode``: "none", "centered" (c = ȳ − x̄ᵀx) or "column"
    (c = x[-1])."""

    A: LinearOperator
    loss: object
    reg: object
    x_mean: jax.Array
    y_mean: jax.Array
    intercept_mode: str = "none"

    @property
    def dim(self) -> int:
        return self.A.shape[1]

    @property
    def quadratic(self) -> bool:
        return bool(self.loss.quadratic)

    def smooth_value(self, x):
        return self.loss.value(self.A.matvec(x))

    def smooth_grad(self, x):
        return self.A.T.matvec(self.loss.grad(self.A.matvec(x)))

    def objective(self, x):
        return self.smooth_value(x) + self.reg.value(x)

    def linearize(self, x):
        """(H, Hx − ∇f(x)) with H = AᵀH_ℓ(Ax)A: the x-step solves (H + ρI)x⁺ = ρ(z − u) + that."""
        t = self.A.matvec(x)
        w = self.loss.hess_diag(t)
        return GramOperator(self.A, w), self.A.T.matvec(w * t - self.loss.grad(t))

    def criterion(self, z):
        """‖z − prox_r(z − ∇f(z))‖ / (1 + ‖z‖ + ‖∇ℓ(Az)‖): seed 004's lasso rule
        (‖∇ℓ(Az)‖ = ‖Az − b‖ for the squared loss), used as is for the other losses."""
        return self.criterion_and_objective(z)[0]

    def criterion_and_objective(self, z):
        """(:meth:`criterion`, :meth:`objective`) at z from one product with A and one with Aᵀ."""
        t = self.A.matvec(z)
        g_t = self.loss.grad(t)
        step = z - self.reg.prox(z - self.A.T.matvec(g_t), 1.0)
        crit = jnp.linalg.norm(step) / (1.0 + jnp.linalg.norm(z) + jnp.linalg.norm(g_t))
        return crit, self.loss.value(t) + self.reg.value(z)

    def intercept(self, x):
        if self.intercept_mode == "centered":
            return self.y_mean - jnp.vdot(self.x_mean, x)
        if self.intercept_mode == "column":
            return x[-1]
        return jnp.zeros((), x.dtype)


@partial(jax.tree_util.register_dataclass, data_fields=["Q", "q", "reg"], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class QuadraticProblem:
    """min_x ½xᵀQx + qᵀx + r(x) for a PSD operator Q (n, n)."""

    Q: LinearOperator
    q: jax.Array
    reg: object

    @property
    def dim(self) -> int:
        return self.Q.shape[0]

    quadratic = True

    def smooth_value(self, x):
        return 0.5 * jnp.vdot(x, self.Q.matvec(x)) + jnp.vdot(self.q, x)

    def smooth_grad(self, x):
        return self.Q.matvec(x) + self.q

    def objective(self, x):
        return self.smooth_value(x) + self.reg.value(x)

    def linearize(self, x):
        return self.Q, -self.q

    def criterion(self, z):
        return self.criterion_and_objective(z)[0]

    def criterion_and_objective(self, z):
        """(:meth:`criterion`, :meth:`objective`) at z from one product with Q."""
        g = self.smooth_grad(z)
        step = z - self.reg.prox(z - g, 1.0)
        crit = jnp.linalg.norm(step) / (1.0 + jnp.linalg.norm(z) + jnp.linalg.norm(g))
        return crit, 0.5 * jnp.vdot(z, g + self.q) + self.reg.value(z)  # ½zᵀQz + qᵀz + r(z)


# ----------------------------------------------------------------------------- builders


def _check_xy(X, y, *, name_y: str = "y"):
    A = data_operator(X)
    if 0 in A.shape:
        raise ValueError(f"X must have at least one row and one column, got shape {A.shape}")
    y = jnp.asarray(y)
    if y.ndim != 1 or y.shape[0] != A.shape[0]:
        raise ValueError(f"{name_y} has shape {tuple(y.shape)}; expected ({A.shape[0]},) to match "
                         f"X with {A.shape[0]} rows")
    y = y.astype(A.dtype)
    check_finite_array(y, name_y)
    return A, y


def _check_labels(y, where=None):
    """Raise unless every label y (where ``where``) is −1 or +1: a reduction on y's devices, so
    row-sharded y (precond.distributed), on other processes' devices too, is never gathered."""
    with jax.ensure_compile_time_eval():
        ok = jnp.abs(y) == 1
        if bool(jnp.all(ok if where is None else ok | ~where)):
            return
    vals = np.unique(np.asarray(y if where is None else y[where]))  # the error's values only
    raise ValueError(f"labels must be −1/+1 (binary), got values {vals[:5].tolist()}")


def _sample_weight(sample_weight, m, dtype):
    if sample_weight is None:
        return jnp.ones(m, dtype)
    w = jnp.asarray(sample_weight, dtype)
    if w.shape != (m,):
        raise ValueError(f"sample_weight has shape {tuple(w.shape)}; expected ({m},)")
    if not bool(jnp.all(jnp.isfinite(w) & (w >= 0))) or not bool(jnp.any(w > 0)):
        raise ValueError("sample_weight must be finite, ≥ 0 and not all zero")
    return w


def _least_squares(X, b, reg_builder, fit_intercept, sample_weight):
    A, b = _check_xy(X, b, name_y="b")
    m, d = A.shape
    w = _sample_weight(sample_weight, m, A.dtype)
    if fit_intercept:
        mean = A.T.matvec(w / jnp.sum(w))
        b_mean = jnp.vdot(w, b) / jnp.sum(w)
        A, b = CenteredOperator(A, mean), b - b_mean
        mode = "centered"
    else:
        mean, b_mean, mode = jnp.zeros(d, A.dtype), jnp.zeros((), A.dtype), "none"
    return LossProblem(A, SquaredLoss(b, w), reg_builder(d, A.dtype), mean, b_mean, mode)


def lasso(X, b, lam: float, *, fit_intercept: bool = False, sample_weight=None) -> LossProblem:
    """The lasso ½Σᵢwᵢ(xᵢᵀx − bᵢ)² + λ‖x‖₁.

    Args:
      X: (m, d) data, dense or scipy.sparse (kept sparse).
      b: (m,) targets.
      lam: λ ≥ 0.
      fit_intercept: center X and b (weighted means, implicitly); the intercept is
        c = b̄ − x̄ᵀx (``problem.intercept(x)``).
      sample_weight: w (m,) ≥ 0, default all ones.
    """
    check_nonnegative(lam, "lam")
    # The ℓ1 prox is the elastic-net prox with λ₂ = 0; one regularizer type means lasso and
    # elastic net share one compiled solver.
    return elastic_net(X, b, lam, 0.0, fit_intercept=fit_intercept, sample_weight=sample_weight)


def elastic_net(X, b, l1: float, l2: float, *, fit_intercept: bool = False,
                sample_weight=None) -> LossProblem:
    """The elastic net ½Σᵢwᵢ(xᵢᵀx − bᵢ)² + λ₁‖x‖₁ + (λ₂/2)‖x‖².

    Args:
      X, b, fit_intercept, sample_weight: as for :func:`lasso`.
      l1: λ₁ ≥ 0.
      l2: λ₂ ≥ 0.
    """
    l1, l2 = check_nonnegative(l1, "l1"), check_nonnegative(l2, "l2")
    return _least_squares(X, b, lambda d, dt: ElasticNetPenalty(
        jnp.asarray(l1, dt), jnp.asarray(l2, dt), jnp.ones(d, dt)), fit_intercept, sample_weight)


def box_least_squares(X, b, lower, upper, *, fit_intercept: bool = False) -> LossProblem:
    """½‖Xx − b‖² subject to lower ≤ x ≤ upper.

    Args:
      X: (m, d) data, dense or scipy.sparse.
      b: (m,) targets.
      lower, upper: scalars or (d,) bounds (±inf allowed), lower ≤ upper.
      fit_intercept: center X and b implicitly, as for :func:`lasso`.
    """
    def reg(d, dt):
        lo = jnp.broadcast_to(jnp.asarray(lower, dt), (d,))
        hi = jnp.broadcast_to(jnp.asarray(upper, dt), (d,))
        if bool(jnp.any(lo > hi)) or bool(jnp.any(jnp.isnan(lo) | jnp.isnan(hi))):
            raise ValueError("lower must be ≤ upper (and not NaN) in every coordinate")
        return Box(lo, hi)
    return _least_squares(X, b, reg, fit_intercept, None)


def nonnegative_least_squares(X, b) -> LossProblem:
    """½‖Xx − b‖² subject to x ≥ 0 (scipy.optimize.nnls's problem).

    Args:
      X: (m, d) data, dense or scipy.sparse.
      b: (m,) targets.
    """
    return box_least_squares(X, b, 0.0, jnp.inf)


def l1_logistic(X, y, lam: float, *, l2: float = 0.0, C: float = 1.0,
                fit_intercept: bool = True, sample_weight=None) -> LossProblem:
    """ℓ1-regularized logistic regression C Σᵢ sᵢ log(1 + exp(−yᵢ(xᵢᵀw + c))) + λ‖w‖₁ +
    (λ₂/2)‖w‖² with y ∈ {−1, +1}.

    scikit-learn's LogisticRegression(C, l1_ratio) is lam = l1_ratio, l2 = 1 − l1_ratio.  With
    ``fit_intercept`` the variable is x = (w, c), A = [X, 1], and c is not penalized.

    Args:
      X: (m, d) data, dense or scipy.sparse.
      y: (m,) labels ±1.
      lam: λ ≥ 0.
      l2: λ₂ ≥ 0.
      C: the loss weight C ≥ 0.
      fit_intercept: append the intercept column (x has d + 1 entries).
      sample_weight: s (m,) ≥ 0, multiplying each row's loss (rows of weight 0 may carry any
        label).
    """
    lam, l2 = check_nonnegative(lam, "lam"), check_nonnegative(l2, "l2")
    C = check_nonnegative(C, "C")
    A, y = _check_xy(X, y)
    w = _sample_weight(sample_weight, A.shape[0], A.dtype)
    _check_labels(jnp.where(w > 0, y, 1.0))
    d = A.shape[1]
    if fit_intercept:
        A = AppendOnesOperator(A)
    weights = jnp.ones(A.shape[1], A.dtype)
    if fit_intercept:
        weights = weights.at[-1].set(0.0)
    dt = A.dtype
    reg = ElasticNetPenalty(jnp.asarray(lam, dt), jnp.asarray(l2, dt), weights)
    loss = LogisticLoss(y, C * w)
    return LossProblem(A, loss, reg, jnp.zeros(d, dt), jnp.zeros((), dt),
                       "column" if fit_intercept else "none")


def svm_dual(K, y, C: float, *, fit_intercept: bool = True, sample_weight=None
             ) -> QuadraticProblem:
    """The kernel SVM dual ½xᵀdiag(y)K diag(y)x − 1ᵀx, 0 ≤ x ≤ C (and yᵀx = 0 with intercept).

    Args:
      K: a kernel operator (:func:`linear_kernel`, :func:`rbf_kernel`) or an (n, n) array.
      y: (n,) labels ±1.
      C: the box bound C > 0.
      fit_intercept: keep the constraint yᵀx = 0 (LIBSVM's bias term); without it, no bias.
      sample_weight: (n,) ≥ 0, scaling C per sample (LIBSVM's weighted C); a zero weight fixes
        xᵢ = 0 and removes the sample (its label is then ignored).
    """
    C = check_positive(C, "C")
    K = as_operator(K)
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be square, got shape {K.shape}")
    y = jnp.asarray(y)
    if y.ndim != 1 or y.shape[0] != K.shape[0]:
        raise ValueError(f"y has shape {tuple(y.shape)}; expected ({K.shape[0]},)")
    y = y.astype(K.dtype)
    check_finite_array(y, "y")
    n, dt = K.shape[0], K.dtype
    w = _sample_weight(sample_weight, n, dt)
    y = jnp.where(w > 0, y, 0.0)
    _check_labels(y, w > 0)
    lo, hi = jnp.zeros(n, dt), C * w
    reg = BoxHyperplane(lo, hi, y) if fit_intercept else Box(lo, hi)
    return QuadraticProblem(LabeledOperator(K, y), -jnp.ones(n, dt), reg)


def svm_intercept(problem: QuadraticProblem, alpha) -> jax.Array:
    """LIBSVM's intercept from a dual solution: c = mean over free vectors (0 < αᵢ < C) of
    yᵢ − (K diag(y)α)ᵢ, or the midpoint of the feasible range when no vector is free.

    Args:
      problem: the :func:`svm_dual` problem.
      alpha: α (n,), its solution (``result.z``).
    """
    y, C = problem.Q.labels, problem.reg.upper
    grad = problem.Q.matvec(alpha) - 1.0  # = yᵢ(Kdiag(y)α)ᵢ − 1
    tol = 1e-8 * jnp.max(C)
    valid = C > 0  # samples of weight 0 are fixed at 0 and carry no information
    free = (alpha > tol) & (alpha < C - tol) & valid
    r = -y * grad  # yᵢ(1 − yᵢ f₀(xᵢ)) = yᵢ − f₀(xᵢ) with f₀ = K diag(y) α
    nfree = jnp.sum(free)
    mean_free = jnp.sum(jnp.where(free, r, 0.0)) / jnp.maximum(nfree, 1)
    # Bounds from the KKT conditions when no vector is free (LIBSVM's rule).
    up = valid & (((y > 0) & (alpha >= C - tol)) | ((y < 0) & (alpha <= tol)))  # c ≤ rᵢ
    lo = valid & (((y > 0) & (alpha <= tol)) | ((y < 0) & (alpha >= C - tol)))  # c ≥ rᵢ
    ub = jnp.min(jnp.where(up, r, jnp.inf))
    lb = jnp.max(jnp.where(lo, r, -jnp.inf))
    mid = jnp.where(jnp.isfinite(ub) & jnp.isfinite(lb), 0.5 * (ub + lb),
                    jnp.where(jnp.isfinite(ub), ub, jnp.where(jnp.isfinite(lb), lb, 0.0)))
    return jnp.where(nfree > 0, mean_free, mid)


# ----------------------------------------------------------------------------- dense Q


def has_dense_quadratic(Q) -> bool:
    """Whether :func:`dense_quadratic` can form Q explicitly (a dense matrix, or diag(y)K diag(y)
    with K a dense or linear kernel on dense data)."""
    if isinstance(Q, LabeledOperator):
        Q = Q.K
    if isinstance(Q, GramOperator):
        return Q.plain and has_dense_gram(Q.A)
    return isinstance(Q, DenseOperator)


def dense_quadratic(Q) -> jax.Array:
    """Q (n, n) as an explicit matrix: diag(y)K diag(y) for a LabeledOperator, K = BᵀWB formed by
    :func:`dense_gram` for a linear kernel (n²·p work), a DenseOperator's own matrix."""
    labels = None
    if isinstance(Q, LabeledOperator):
        Q, labels = Q.K, Q.labels
    K = dense_gram(Q.A, Q.weights) if isinstance(Q, GramOperator) else Q.matrix
    if labels is not None:
        K = labels[:, None] * K * labels[None, :]
    return K


def low_rank_quadratic(Q):
    """(X, y, s) with Q = VVᵀ, V = diag(y) X diag(s) (n, p), when Q is the labeled linear kernel
    of dense data (diag(y) X diag(w) Xᵀ diag(y), s = √w, w ≥ 0) — else None.  X is the stored
    (n, p) matrix, not a copy.  With p < n the x-step (Q + ρI)x = r is solved in ℝᵖ by
    Woodbury instead of factorizing the n×n Q (see :func:`precond.composite.nysadmm.nysadmm`)."""
    if (not isinstance(Q, LabeledOperator) or not isinstance(Q.K, GramOperator)
            or not Q.K.plain):
        return None
    B, w = Q.K.A, Q.K.weights  # K = BᵀWB with B (p, n) = Xᵀ
    if not isinstance(B, DenseOperator):
        return None
    if isinstance(w, jax.core.Tracer) or not bool(jnp.all(w >= 0)):
        return None
    X = B.T.matrix  # (n, p): the stored matrix itself when B is a lazy transpose of X
    return X, Q.labels, jnp.sqrt(w)
