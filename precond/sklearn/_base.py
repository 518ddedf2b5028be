"""Shared pieces of the estimators: input checks, shape buckets, the NysADMM call."""

from __future__ import annotations

import numbers
import warnings

import jax
import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_random_state

from precond.composite import nysadmm

# Small problems are zero-padded to a few bucket shapes (rows of weight 0, columns of zeros — the
# solution does not change) so that each estimator compiles its jitted solver once for all small
# data sets instead of once per shape; larger problems run at their exact shape.
_MIN_ROWS, _MAX_PAD_ROWS = 256, 4096
_MIN_COLS, _MAX_PAD_COLS = 32, 1024


def _bucket(n: int, low: int, high: int) -> int:
    if n > high:
        return n
    return max(low, 1 << (int(n) - 1).bit_length())


def pad(X, y, sample_weight):
    """Zero-pad X (rows and columns), y and sample_weight (with zeros) to the bucket shape."""
    n, d = X.shape
    n2, d2 = _bucket(n, _MIN_ROWS, _MAX_PAD_ROWS), _bucket(d, _MIN_COLS, _MAX_PAD_COLS)
    if sp.issparse(X):
        # Also bucket the number of stored entries (explicit zeros at (0, 0), kept by COO), since
        # it is part of the sparse array's shape for jit.
        X = sp.coo_matrix(X)
        nnz = X.nnz
        nnz2 = max(1024, 1 << max(nnz - 1, 0).bit_length()) if nnz <= 1 << 22 else nnz
        extra = nnz2 - nnz
        X = sp.coo_matrix((np.concatenate([X.data, np.zeros(extra)]),
                           (np.concatenate([X.row, np.zeros(extra, X.row.dtype)]),
                            np.concatenate([X.col, np.zeros(extra, X.col.dtype)]))),
                          shape=(n2, d2))
    else:
        X = np.pad(X, ((0, n2 - n), (0, d2 - d)))
    y = np.pad(np.asarray(y, float), (0, n2 - n))
    w = np.ones(n) if sample_weight is None else np.asarray(sample_weight, float)
    return X, y, np.pad(w, (0, n2 - n))


def check_sample_weight(sample_weight, n: int):
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=float)
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.shape != (n,):
        raise ValueError(f"sample_weight has shape {w.shape}; expected ({n},)")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("sample_weight must be finite and ≥ 0")
    if not np.any(w > 0):
        raise ValueError("sample_weight has only zero weights; at least one must be > 0")
    return w


def check_param(value, name: str, *, low: float = 0.0, strict: bool = False,
                high: float | None = None) -> float:
    """A real hyperparameter in its range, else ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    bad = not np.isfinite(v) or v < low or (strict and v == low) or (high is not None and v > high)
    if bad:
        rng = f"{'(' if strict else '['}{low}, {high if high is not None else 'inf'}"
        rng += "]" if high is not None else ")"
        raise ValueError(f"{name} must be in {rng}, got {value!r}")
    return v


def seed_key(random_state) -> jax.Array:
    """A jax key from scikit-learn's random_state (None → a fixed seed 0, for reproducibility)."""
    if random_state is None:
        return jax.random.key(0)
    rs = check_random_state(random_state)
    return jax.random.key(int(rs.randint(0, 2**31 - 1)))


def solve(est, problem):
    """nysadmm with the estimator's solver settings; sets n_iter_ and returns the result."""
    if not isinstance(est.max_iter, numbers.Integral) or est.max_iter < 1:
        raise ValueError(f"max_iter must be an int ≥ 1, got {est.max_iter!r}")
    if not isinstance(est.rank, numbers.Integral) or est.rank < 1:
        raise ValueError(f"rank must be an int ≥ 1, got {est.rank!r}")
    check_param(est.tol, "tol", strict=True)
    result = nysadmm(problem, rho=est.rho, rank=int(est.rank), tol=float(est.tol),
                     max_iter=int(est.max_iter), key=seed_key(est.random_state))
    if result.status == 4:  # nonfinite
        raise FloatingPointError("NysADMM produced non-finite values; " + result.reason.message)
    if not result.converged:
        warnings.warn(f"NysADMM did not converge in {result.iterations} iterations (criterion "
                      f"{result.criterion:.2e}, primal residual {result.primal_residual:.2e}); "
                      "raise max_iter or loosen tol", ConvergenceWarning, stacklevel=3)
    est.n_iter_ = result.iterations
    return result
