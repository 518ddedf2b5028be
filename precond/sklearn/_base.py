"""Shared pieces of the estimators: precision, input checks, shape buckets, the NysADMM call.

Precision: scikit-learn computes in float64, so the estimators do too, whatever the global
``jax_enable_x64`` says.  Every public method that reaches JAX runs inside
``jax.enable_x64(True)`` (or ``False`` for ``dtype=np.float32``), a thread-local configuration
context entered by the method itself — so it also holds in threads and in the fresh processes of
joblib's loky backend (``GridSearchCV(n_jobs=2)``), which never see a global switch made by the
caller.  Fitted attributes and outputs are float64 numpy arrays.
"""

from __future__ import annotations

import functools
import warnings

import jax
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_random_state

from precond.composite import nysadmm
from precond.linalg import Status
from precond.stochastic import L1, ElasticNetPenalty, least_squares, logistic, sapphire
from precond.validation import check_int, check_positive

# Small problems are zero-padded to a few bucket shapes (rows of weight 0, columns of zeros — the
# solution does not change) so that each estimator compiles its jitted solver once for all small
# data sets instead of once per shape; larger problems run at their exact shape.
_MIN_ROWS, _MAX_PAD_ROWS = 256, 4096
_MIN_COLS, _MAX_PAD_COLS = 32, 1024
# Sparse X whose padded dense form has at most this many entries is densified: at that size a
# dense product costs no more, and the fit reuses the dense data's compiled solver.
_DENSIFY_MAX = 1 << 16
_DTYPES = {np.dtype(np.float64): True, np.dtype(np.float32): False}  # dtype → x64 switch


def compute_dtype(est) -> np.dtype:
    """The estimator's ``dtype`` parameter as a numpy dtype (float64 or float32)."""
    try:
        dtype = np.dtype(est.dtype)
    except TypeError:
        dtype = None
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be np.float64 or np.float32, got {est.dtype!r}")
    return dtype


def in_precision(method):
    """Run an estimator method with ``jax_enable_x64`` set for the estimator's ``dtype``.

    ``jax.enable_x64`` is a thread-local configuration context: it applies to whatever JAX does
    inside the method (arrays created, functions traced and compiled — the jit cache keys on it)
    and is undone on return, so the caller's setting is untouched.
    """
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with jax.enable_x64(_DTYPES[compute_dtype(self)]):
            return method(self, *args, **kwargs)

    return wrapper


def _bucket(n: int, low: int, high: int) -> int:
    if n > high:
        return n
    return max(low, 1 << (int(n) - 1).bit_length())


def pad(X, sample_weight, dtype):
    """X (rows and columns) and sample_weight (with zeros) zero-padded to the bucket shape.

    Args:
      X: (n, d) numpy array or scipy.sparse matrix.
      sample_weight: (n,) weights or None (ones).
      dtype: the float dtype the solver computes in.

    Returns:
      (X, w) of shapes (n₂, d₂) and (n₂,), n₂ ≥ n, d₂ ≥ d, in ``dtype`` (X sparse only if it
      was and its dense form would exceed ``_DENSIFY_MAX`` entries); pad targets to n₂ rows
      with :func:`pad_rows`.
    """
    n, d = X.shape
    n2, d2 = _bucket(n, _MIN_ROWS, _MAX_PAD_ROWS), _bucket(d, _MIN_COLS, _MAX_PAD_COLS)
    if sp.issparse(X) and n2 * d2 <= _DENSIFY_MAX:
        X = X.toarray()
    if sp.issparse(X):
        # Also bucket the number of stored entries (explicit zeros at (0, 0), kept by COO), since
        # it is part of the sparse array's shape for jit.
        X = sp.coo_matrix(X)
        nnz = X.nnz
        nnz2 = max(1024, 1 << max(nnz - 1, 0).bit_length()) if nnz <= 1 << 22 else nnz
        extra = nnz2 - nnz
        X = sp.coo_matrix((np.concatenate([X.data, np.zeros(extra)]).astype(dtype),
                           (np.concatenate([X.row, np.zeros(extra, X.row.dtype)]),
                            np.concatenate([X.col, np.zeros(extra, X.col.dtype)]))),
                          shape=(n2, d2))
    else:
        X = np.pad(np.asarray(X, dtype), ((0, n2 - n), (0, d2 - d)))
    w = np.ones(n, dtype) if sample_weight is None else sample_weight
    return X, pad_rows(w, n2, dtype)


def pad_rows(v, n2: int, dtype, value: float = 0.0) -> np.ndarray:
    """A (n,) vector padded with ``value`` to (n₂,), in ``dtype``."""
    v = np.asarray(v, dtype)
    return np.pad(v, (0, n2 - v.shape[0]), constant_values=value)


def check_sample_weight(sample_weight, n: int):
    """``sample_weight`` as a float64 (n,) array (a scalar is broadcast), or None.

    Raises ``ValueError`` unless finite, ≥ 0 and not all zero.
    """
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight has shape {w.shape}; expected ({n},)")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and ≥ 0")
    if not np.any(w > 0):
        raise ValueError("sample_weight has only zero weights; at least one must be > 0")
    return w


def seed_key(random_state) -> jax.Array:
    """A jax key from scikit-learn's random_state (None → a fixed seed 0, for reproducibility)."""
    if random_state is None:
        return jax.random.key(0)
    rs = check_random_state(random_state)
    return jax.random.key(int(rs.randint(0, 2**31 - 1)))


class OneVsRestBase(ClassifierMixin, BaseEstimator):
    """A classifier made of binary problems, one-vs-rest: shared label handling and predict.

    Subclasses fit one binary problem per column of :meth:`_binary_targets` and define
    ``decision_function`` returning (n,) scores for two classes (> 0: ``classes_[1]``), else
    (n, k) scores, one per class.
    """

    def _binary_targets(self, y) -> np.ndarray:
        """Set ``classes_``; return the ±1 targets of each binary problem, shape (k', n).

        Two classes give one problem (``classes_[1]`` ↦ +1); k > 2 classes give k problems,
        problem j labelling ``classes_[j]`` +1 and every other class −1.  A single class is a
        ``ValueError``.
        """
        check_classification_targets(y)
        classes = np.unique(y)
        if classes.shape[0] < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes; y has "
                             f"one class: {classes.tolist()}")
        self.classes_ = classes
        positive = classes[1:] if classes.shape[0] == 2 else classes
        return np.where(y[None, :] == positive[:, None], 1.0, -1.0)

    def predict(self, X):
        """The class of each row of X (n, d): the sign of the score, or its argmax over classes."""
        scores = self.decision_function(X)  # checks fitted first
        index = (scores > 0).astype(int) if scores.ndim == 1 else np.argmax(scores, axis=1)
        return self.classes_[index]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def check_solver(est) -> str:
    """The estimator's ``solver``, "nysadmm" or "sapphire", or a clear error."""
    if est.solver not in ("nysadmm", "sapphire"):
        raise ValueError(f"solver must be 'nysadmm' or 'sapphire', got {est.solver!r}")
    return est.solver


def solve_sapphire(est, X, y, kind: str, l1: float, l2: float, dtype):
    """SAPPHIRE on (1/n)Σφ(xᵢᵀw + c, yᵢ) + l1‖w‖₁ + (l2/2)‖w‖² (the intercept c, a column of
    ones, unpenalized); warns if it did not converge.  Returns (w, c, epochs).

    ``max_iter`` caps the epochs and ``tol`` is relative to the natural residual
    ‖z − prox_r(z − ∇F(z))‖ at the start (:func:`precond.stochastic.sapphire`).  Raises
    ``FloatingPointError`` if the objective became non-finite.

    Args:
      est: the estimator (``fit_intercept``, ``max_iter``, ``tol``, ``random_state``).
      X: (n, d) data, dense or CSR.
      y: (n,) targets (labels ±1 for ``kind="logistic"``).
      kind: "logistic" or "least_squares".
      l1, l2: the penalty's weights λ₁, λ₂ ≥ 0.
      dtype: the compute dtype.
    """
    epochs = check_int(est.max_iter, "max_iter", low=1)
    tol = check_positive(est.tol, "tol")
    n, d = X.shape
    weights = np.ones(d + int(bool(est.fit_intercept)))
    if est.fit_intercept:
        ones = np.ones((n, 1))
        X = sp.hstack([X, ones], format="csr") if sp.issparse(X) else np.hstack([X, ones])
        weights[-1] = 0.0  # the intercept is not penalized
    problem = (logistic if kind == "logistic" else least_squares)(X, y, 0.0, dtype=dtype)
    penalty = (L1(l1, weights) if l2 == 0 else ElasticNetPenalty(l1, l2, weights))
    result = sapphire(problem, penalty, epochs=epochs, key=seed_key(est.random_state), tol=tol)
    z = np.asarray(result.x, np.float64)
    if not np.all(np.isfinite(z)) or result.status in (Status.NONFINITE, Status.DIVERGED):
        raise FloatingPointError("SAPPHIRE diverged; " + Status(int(result.status)).message)
    if result.status != Status.CONVERGED:
        warnings.warn(f"SAPPHIRE did not converge in {epochs} epochs (natural residual "
                      f"{float(result.grad_norm[-1]):.2e}); raise max_iter or loosen tol",
                      ConvergenceWarning, stacklevel=4)
    c = float(z[-1]) if est.fit_intercept else 0.0
    return z[:d], c, len(result.objective) - 1


def solve(est, problem):
    """nysadmm with the estimator's solver settings; warns if it did not converge.

    Raises ``FloatingPointError`` if the iterates became non-finite.
    """
    max_iter = check_int(est.max_iter, "max_iter", low=1)
    rank = check_int(est.rank, "rank", low=1)
    tol = check_positive(est.tol, "tol")
    result = nysadmm(problem, rho=est.rho, rank=rank, tol=tol, max_iter=max_iter,
                     key=seed_key(est.random_state))
    status = Status(int(result.status))
    if status == Status.NONFINITE:
        raise FloatingPointError("NysADMM produced non-finite values; " + status.message)
    if status != Status.CONVERGED:
        crit = float(result.criterion)
        detail = f", criterion {crit:.2e}" if np.isfinite(crit) else ""
        warnings.warn(f"NysADMM did not converge in {int(result.iterations)} iterations (primal "
                      f"residual {float(result.primal_residual):.2e}, dual residual "
                      f"{float(result.dual_residual):.2e}{detail}); raise max_iter or loosen "
                      "tol", ConvergenceWarning, stacklevel=4)
    return result
