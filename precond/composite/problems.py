"""Composite problems min f(x) + r(x) for NysADMM: lasso, elastic net, ℓ1-logistic, SVM dual, boxes.

Two kinds of smooth part f:

* :class:`LossProblem` — f(x) = ℓ(Ax) with a separable loss ℓ (losses.py) and a data operator
  A (m, d); its Hessian AᵀH_ℓ(Ax)A is applied as Aᵀ(D(Av)), never formed.
* :class:`QuadraticProblem` — f(x) = ½xᵀQx + qᵀx for a PSD operator Q (the SVM dual, whose Q is
  diag(y)K diag(y) with a kernel operator K that is never formed when n is large).

Data may be numpy/jax dense arrays or scipy.sparse matrices; sparse data stays sparse (a
:class:`precond.linalg.SparseOperator`), and centering for an intercept is applied implicitly,
A v − (x̄ᵀv)1, so it never densifies.

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

from precond.linalg import DenseOperator, LinearOperator, SparseOperator, as_operator
from precond.linalg._checks import as_array

from .losses import LogisticLoss, SquaredLoss
from .prox import Box, BoxHyperplane, ElasticNetPenalty

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
    "data_operator",
]


# ----------------------------------------------------------------------------- operators


def data_operator(X) -> LinearOperator:
    """X (m, d) as an operator: scipy.sparse stays sparse (BCOO), dense becomes a DenseOperator."""
    if isinstance(X, LinearOperator):
        return X
    if sp.issparse(X):
        # COO input is kept as given (duplicates and explicit zeros included: padding uses them
        # to give the BCOO a bucketed number of stored entries); other formats go through CSR.
        dt = np.result_type(X.dtype, np.float32)
        X = X.astype(dt) if X.format == "coo" else sp.csr_matrix(X, dtype=dt)
        if not np.all(np.isfinite(X.data)):
            raise ValueError("X contains NaN or inf")
        return SparseOperator(X)
    X = as_array(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(jnp.result_type(float))
    if not bool(jnp.all(jnp.isfinite(X))):
        raise ValueError("X contains NaN or inf")
    return as_operator(X)


@register_pytree_node_class
class CenteredOperator(LinearOperator):
    """(A − 1 x̄ᵀ) applied as Av − (x̄ᵀv)1 (or its transpose), so sparse A stays sparse."""

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


@register_pytree_node_class
class GramOperator(LinearOperator):
    """Aᵀ diag(w) A (d, d), applied as Aᵀ(w ⊙ (Av)); never formed."""

    def __init__(self, A, weights):
        self.A, self.weights = A, weights
        self.shape = (A.shape[1], A.shape[1])
        self.dtype = A.dtype

    def matvec(self, v):
        return self.A.T.matvec(self.weights * self.A.matvec(v))

    def matmat(self, V):
        return self.A.T.matmat(self.weights[:, None] * self.A.matmat(V))

    @property
    def T(self):
        return self

    def tree_flatten(self):
        return (self.A, self.weights), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


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
    """K = XXᵀ applied as X(Xᵀv) (X dense or sparse), never formed."""
    A = data_operator(X)
    return GramOperator(A.T, jnp.ones(A.shape[1], A.dtype))


def rbf_kernel(X, gamma: float, *, dense_max: int = 4000, block: int = 1024) -> LinearOperator:
    """RBF kernel operator.  For n ≤ ``dense_max`` (a 4000² float64 matrix is 128 MB) K is
    formed once, so each matvec is a GEMV; above it K is applied block by block (O(n²·p) work,
    O(n·block) memory per matvec), so n×n is never stored."""
    if sp.issparse(X):
        X = X.toarray()  # the RBF kernel of sparse rows is dense anyway
    X = jnp.asarray(X)
    if not jnp.issubdtype(X.dtype, jnp.floating):
        X = X.astype(jnp.result_type(float))
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
        H = GramOperator(self.A, w)
        return H, self.A.T.matvec(w * t - self.loss.grad(t))

    def criterion(self, z):
        """‖z − prox_r(z − ∇f(z))‖ / (1 + ‖z‖ + ‖∇ℓ(Az)‖): seed 004's lasso rule
        (‖∇ℓ(Az)‖ = ‖Az − b‖ for the squared loss), used as is for the other losses."""
        g_t = self.loss.grad(self.A.matvec(z))
        step = z - self.reg.prox(z - self.A.T.matvec(g_t), 1.0)
        return jnp.linalg.norm(step) / (1.0 + jnp.linalg.norm(z) + jnp.linalg.norm(g_t))

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
        g = self.smooth_grad(z)
        step = z - self.reg.prox(z - g, 1.0)
        return jnp.linalg.norm(step) / (1.0 + jnp.linalg.norm(z) + jnp.linalg.norm(g))


# ----------------------------------------------------------------------------- builders


def _check_xy(X, y, *, name_y: str = "y"):
    A = data_operator(X)
    y = jnp.asarray(y)
    if y.ndim != 1 or y.shape[0] != A.shape[0]:
        raise ValueError(f"{name_y} has shape {tuple(y.shape)}; expected ({A.shape[0]},) to match "
                         f"X with {A.shape[0]} rows")
    y = y.astype(A.dtype)
    if not bool(jnp.all(jnp.isfinite(y))):
        raise ValueError(f"{name_y} contains NaN or inf")
    return A, y


def _check_reg(value, name: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number ≥ 0, got {value}")
    return v


def _check_labels(y):
    vals = np.unique(np.asarray(y))
    if not np.all(np.isin(vals, [-1.0, 1.0])):
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
    """½Σᵢwᵢ(xᵢᵀx − bᵢ)² + λ‖x‖₁ (λ is ``lam``, w is ``sample_weight``, default 1); with
    ``fit_intercept`` X and b are centered (weighted means)."""
    _check_reg(lam, "lam")
    # The ℓ1 prox is the elastic-net prox with λ₂ = 0; one regularizer type means lasso and
    # elastic net share one compiled solver.
    return elastic_net(X, b, lam, 0.0, fit_intercept=fit_intercept, sample_weight=sample_weight)


def elastic_net(X, b, l1: float, l2: float, *, fit_intercept: bool = False,
                sample_weight=None) -> LossProblem:
    """½Σᵢwᵢ(xᵢᵀx − bᵢ)² + λ₁‖x‖₁ + (λ₂/2)‖x‖² (λ₁, λ₂ are ``l1``, ``l2``)."""
    l1, l2 = _check_reg(l1, "l1"), _check_reg(l2, "l2")
    return _least_squares(X, b, lambda d, dt: ElasticNetPenalty(
        jnp.asarray(l1, dt), jnp.asarray(l2, dt), jnp.ones(d, dt)), fit_intercept, sample_weight)


def box_least_squares(X, b, lower, upper, *, fit_intercept: bool = False) -> LossProblem:
    """½‖Xx − b‖² subject to lower ≤ x ≤ upper (scalars or (d,) arrays)."""
    def reg(d, dt):
        lo = jnp.broadcast_to(jnp.asarray(lower, dt), (d,))
        hi = jnp.broadcast_to(jnp.asarray(upper, dt), (d,))
        if bool(jnp.any(lo > hi)) or bool(jnp.any(jnp.isnan(lo) | jnp.isnan(hi))):
            raise ValueError("lower must be ≤ upper (and not NaN) in every coordinate")
        return Box(lo, hi)
    return _least_squares(X, b, reg, fit_intercept, None)


def nonnegative_least_squares(X, b) -> LossProblem:
    """½‖Xx − b‖² subject to x ≥ 0 (scipy.optimize.nnls's problem)."""
    return box_least_squares(X, b, 0.0, jnp.inf)


def l1_logistic(X, y, lam: float, *, l2: float = 0.0, C: float = 1.0,
                fit_intercept: bool = True, sample_weight=None) -> LossProblem:
    """C Σᵢ log(1 + exp(−yᵢ(xᵢᵀw + c))) + λ‖w‖₁ + (λ₂/2)‖w‖² with y ∈ {−1, +1}.

    scikit-learn's LogisticRegression(C, l1_ratio) is lam = l1_ratio, l2 = 1 − l1_ratio.  With
    ``fit_intercept`` the variable is x = (w, c), A = [X, 1], and c is not penalized.
    ``sample_weight`` multiplies each row's loss (rows of weight 0 may carry any label).
    """
    lam, l2 = _check_reg(lam, "lam"), _check_reg(l2, "l2")
    C = _check_reg(C, "C")
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

    ``K`` is a kernel operator (:func:`linear_kernel`, :func:`rbf_kernel`) or an (n, n) array;
    y ∈ {−1, +1}.  Without ``fit_intercept`` the constraint yᵀx = 0 is dropped (no bias term).
    ``sample_weight`` scales C per sample (LIBSVM's weighted C); a zero weight fixes xᵢ = 0 and
    removes the sample (its label is then ignored).
    """
    C = _check_reg(C, "C")
    if C == 0:
        raise ValueError("C must be > 0")
    K = as_operator(K)
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be square, got shape {K.shape}")
    y = jnp.asarray(y)
    if y.ndim != 1 or y.shape[0] != K.shape[0]:
        raise ValueError(f"y has shape {tuple(y.shape)}; expected ({K.shape[0]},)")
    y = y.astype(K.dtype)
    if not bool(jnp.all(jnp.isfinite(y))):
        raise ValueError("y contains NaN or inf")
    n, dt = K.shape[0], K.dtype
    w = _sample_weight(sample_weight, n, dt)
    y = jnp.where(w > 0, y, 0.0)
    _check_labels(y[w > 0])
    lo, hi = jnp.zeros(n, dt), C * w
    reg = BoxHyperplane(lo, hi, y) if fit_intercept else Box(lo, hi)
    return QuadraticProblem(LabeledOperator(K, y), -jnp.ones(n, dt), reg)


def svm_intercept(problem: QuadraticProblem, alpha) -> jax.Array:
    """LIBSVM's intercept from a dual solution: c = mean over free vectors (0 < αᵢ < C) of
    yᵢ − (K diag(y)α)ᵢ, or the midpoint of the feasible range when no vector is free."""
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


# ----------------------------------------------------------------------------- dense Gram


def _dense_matrix(A):
    """The explicit (m, d) matrix of a DenseOperator, else None (decided from the type alone)."""
    return A.matrix if isinstance(A, DenseOperator) else None


def has_dense_gram(A) -> bool:
    """Whether :func:`dense_gram` can form AᵀWA for this operator (dense data, maybe centered)."""
    if isinstance(A, CenteredOperator) and not A.transposed:
        return isinstance(A.A, DenseOperator)
    return isinstance(A, DenseOperator)


def dense_gram(A, w) -> jax.Array:
    """G = Aᵀdiag(w)A (d, d) formed once by one GEMM (n·d² work), for A dense (m, d) or
    centered dense A − 1x̄ᵀ (then G = MᵀWM − x̄sᵀ − sx̄ᵀ + (Σw)x̄x̄ᵀ with s = MᵀW1)."""
    mean = None
    if isinstance(A, CenteredOperator):
        A, mean = A.A, A.mean
    M = _dense_matrix(A)
    if M is None:
        raise TypeError(f"dense_gram needs dense data, got {type(A).__name__}")
    G = _host_gram(M, w)  # exactly symmetric (numpy's SYRK fills one triangle from the other)
    if G is None:
        G = _symmetric_gram(M * w[:, None], M)
        G = 0.5 * (G + G.T)  # exactly symmetric (the diagonal blocks are not, by rounding)
    if mean is not None:
        s = w @ M  # (vᵀM, not Mᵀv: XLA on CPU would copy the transpose)
        G = G - jnp.outer(mean, s) - jnp.outer(s, mean) + jnp.sum(w) * jnp.outer(mean, mean)
        G = 0.5 * (G + G.T)
    return G


def has_dense_quadratic(Q) -> bool:
    """Whether :func:`dense_quadratic` can form Q explicitly (a dense matrix, or diag(y)K diag(y)
    with K a dense or linear kernel on dense data)."""
    if isinstance(Q, LabeledOperator):
        Q = Q.K
    if isinstance(Q, GramOperator):
        return has_dense_gram(Q.A)
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
    if not isinstance(Q, LabeledOperator) or not isinstance(Q.K, GramOperator):
        return None
    B, w = Q.K.A, Q.K.weights  # K = BᵀWB with B (p, n) = Xᵀ
    if not isinstance(B, DenseOperator):
        return None
    if isinstance(w, jax.core.Tracer) or not bool(jnp.all(w >= 0)):
        return None
    X = B.T.matrix  # (n, p): the stored matrix itself when B is a lazy transpose of X
    return X, Q.labels, jnp.sqrt(w)


def _on_host_cpu(*arrays) -> bool:
    """Concrete (not traced) arrays that live in host memory: numpy, or jax arrays on the CPU."""
    for a in arrays:
        if isinstance(a, jax.core.Tracer):
            return False
        if isinstance(a, jax.Array) and any(dev.platform != "cpu" for dev in a.devices()):
            return False
    return True


def _host_gram(M, w):
    """MᵀWM by the host BLAS (numpy's ``Xᵀ @ X`` is a SYRK) when M and w are concrete CPU arrays,
    else None.  For a (10000, 2000) float64 M on the 2-core Xeon: 0.33 s, against 0.83 s for
    XLA's CPU GEMM in :func:`_symmetric_gram` (the lasso stage timings in
    docs/bench/nysadmm.md) — the Gram is the largest single cost of a lasso solved with the
    Cholesky x-step, so it is formed where the fast kernel is."""
    if not _on_host_cpu(M, w):
        return None
    M = np.asarray(M)
    w = np.asarray(w)
    if np.all(w == 1):
        G = M.T @ M
    elif np.all(w >= 0):
        S = M * np.sqrt(w)[:, None]
        G = S.T @ S
    else:
        G = (M * w[:, None]).T @ M
        G = 0.5 * (G + G.T)
    return as_array(G)


def _symmetric_gram(WM, M):
    """WMᵀM for symmetric WMᵀM, by column blocks: only the blocks on and above the diagonal are
    multiplied (about (1 + 1/nb)/2 of the GEMM work for nb blocks), the rest are transposes."""
    d = M.shape[1]
    nb = max(1, min(8, d // 256))
    b = -(-d // nb)
    dot = lambda P, Q: lax.dot_general(P, Q, (((0,), (0,)), ((), ())))  # noqa: E731  PᵀQ
    upper = [dot(WM[:, i * b:(i + 1) * b], M[:, i * b:]) for i in range(nb)]  # (b, d − ib)
    rows = []
    for i in range(nb):
        left = [upper[j][:, (i - j) * b:(i - j + 1) * b].T for j in range(i)]
        rows.append(jnp.concatenate(left + [upper[i]], 1) if left else upper[i])
    return jnp.concatenate(rows, 0)
