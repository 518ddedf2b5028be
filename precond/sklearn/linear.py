"""Lasso, ElasticNet (NysADMM) and Ridge (Nyström PCG) with scikit-learn's objectives."""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from precond.composite import elastic_net
from precond.linalg import Status, nystrom_pcg
from precond.validation import check_fraction, check_int, check_nonnegative, check_positive

from ._base import (
    check_sample_weight,
    check_solver,
    compute_dtype,
    in_precision,
    pad,
    pad_rows,
    seed_key,
    solve,
    solve_sapphire,
)

__all__ = ["Lasso", "ElasticNet", "Ridge"]


class _LinearRegressor(RegressorMixin, BaseEstimator):
    def _validate(self, X, y):
        return validate_data(self, X, y, accept_sparse="csr", dtype=np.float64, y_numeric=True)

    def predict(self, X):
        """Xw + c for X (n, d) (dense or sparse): float64 (n,)."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        return np.asarray(X @ self.coef_).ravel() + self.intercept_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class ElasticNet(_LinearRegressor):
    """scikit-learn's ElasticNet solved by NysADMM or SAPPHIRE.

    minimize (1/(2n))‖y − Xw − c‖² + α·l1_ratio‖w‖₁ + ½α(1 − l1_ratio)‖w‖²,

    solved as NysADMM on ½‖·‖² + nα(…) with X and y centered implicitly (sparse X stays
    sparse).  ``coef_`` is the prox iterate, so it is exactly sparse.

    Args:
      alpha: α ≥ 0, the penalty's overall weight.
      l1_ratio: its ℓ1 share, in [0, 1].
      fit_intercept: fit the unpenalized intercept c.
      max_iter: NysADMM's iteration cap, or SAPPHIRE's epoch cap.
      tol: seed 004's natural-residual tolerance (not scikit-learn's duality gap); SAPPHIRE:
        the natural residual relative to its start.
      rank: the Nyström sketch size of the PCG x-step (sparse X, or more columns than rows;
        dense X with d ≤ min(n, 4096) takes nysadmm's Cholesky x-step on the Gram matrix).
      rho: NysADMM's initial penalty ρ > 0, or "auto".
      random_state: seeds the sketch (None: a fixed seed).
      dtype: the float dtype of the solve, ``np.float64`` (as scikit-learn, whatever
        ``jax_enable_x64`` says) or ``np.float32``.
      solver: "nysadmm" (default) or "sapphire" (:func:`precond.stochastic.sapphire`, no
        ``sample_weight``; measured against NysADMM in docs/results/promise.md, "SAPPHIRE").

    Attributes:
      coef_: w (d,), float64.
      intercept_: c, a float.
      n_iter_: NysADMM iterations (SAPPHIRE epochs).

    Example:
      >>> import numpy as np
      >>> from precond.sklearn import ElasticNet
      >>> X = np.random.default_rng(0).standard_normal((50, 3))
      >>> m = ElasticNet(alpha=0.1, l1_ratio=0.5).fit(X, X @ [1.0, 0.0, -2.0] + 1.0)
      >>> m.coef_.dtype, np.round(m.coef_, 2).tolist(), round(m.intercept_, 2)
      (dtype('float64'), [0.89, 0.0, -1.78], 0.91)
    """

    def __init__(self, alpha=1.0, *, l1_ratio=0.5, fit_intercept=True, max_iter=2000,
                 tol=1e-6, rank=50, rho="auto", random_state=None, dtype=np.float64,
                 solver="nysadmm"):
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.rank = rank
        self.rho = rho
        self.random_state = random_state
        self.dtype = dtype
        self.solver = solver

    def _penalties(self, n):
        alpha = check_nonnegative(self.alpha, "alpha")
        l1_ratio = check_fraction(self.l1_ratio, "l1_ratio", closed_high=True)
        return n * alpha * l1_ratio, n * alpha * (1.0 - l1_ratio)

    @in_precision
    def fit(self, X, y, sample_weight=None):
        """Fit on X (n, d) (dense or sparse), y (n,), optional sample_weight (n,)."""
        X, y = self._validate(X, y)
        n, d = X.shape
        solver = check_solver(self)
        sw = check_sample_weight(sample_weight, n)
        if sw is not None:
            if solver == "sapphire":
                raise ValueError("solver='sapphire' takes no sample_weight; use solver='nysadmm'")
            sw = sw * (n / sw.sum())  # scikit-learn's ElasticNet rescales weights to sum n
        l1, l2 = self._penalties(n)
        dtype = compute_dtype(self)
        if solver == "sapphire":  # Φ/n: (1/(2n))‖y − Xw − c‖² + α(ρ₁‖w‖₁ + (1 − ρ₁)‖w‖²/2)
            self.coef_, self.intercept_, self.n_iter_ = solve_sapphire(
                self, X, y, "least_squares", l1 / n, l2 / n, dtype)
            return self
        Xp, wp = pad(X, sw, dtype)
        problem = elastic_net(Xp, pad_rows(y, Xp.shape[0], dtype), l1, l2,
                              fit_intercept=self.fit_intercept, sample_weight=wp)
        result = solve(self, problem)
        self.coef_ = np.asarray(result.z[:d], np.float64)
        self.intercept_ = float(problem.intercept(result.z)) if self.fit_intercept else 0.0
        self.n_iter_ = int(result.iterations)
        return self


class Lasso(ElasticNet):
    """scikit-learn's Lasso, (1/(2n))‖y − Xw − c‖² + α‖w‖₁, solved by NysADMM or SAPPHIRE.

    :class:`ElasticNet` with ``l1_ratio=1``; the same arguments and attributes otherwise.

    Example:
      >>> import numpy as np
      >>> from precond.sklearn import Lasso
      >>> X = np.random.default_rng(0).standard_normal((50, 3))
      >>> m = Lasso(alpha=0.1).fit(X, X @ [1.0, 0.0, -2.0] + 1.0)
      >>> np.round(m.coef_, 2).tolist(), round(m.intercept_, 2)
      ([0.9, 0.0, -1.84], 0.93)
    """

    def __init__(self, alpha=1.0, *, fit_intercept=True, max_iter=2000, tol=1e-6, rank=50,
                 rho="auto", random_state=None, dtype=np.float64, solver="nysadmm"):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.rank = rank
        self.rho = rho
        self.random_state = random_state
        self.dtype = dtype
        self.solver = solver

    def _penalties(self, n):
        return n * check_nonnegative(self.alpha, "alpha"), 0.0


class Ridge(_LinearRegressor):
    """scikit-learn's Ridge, ‖y − Xw − c‖² + α‖w‖², solved by Nyström PCG.

    Solves (X_cᵀWX_c + αI)w = X_cᵀW(y − ȳ) — NysADMM's x-step system at x = 0 with ρ = α —
    with X_c = X − 1x̄ᵀ applied implicitly (sparse X stays sparse) by
    :func:`precond.linalg.nystrom_pcg`.

    Args:
      alpha: α ≥ 0.
      fit_intercept: fit the unpenalized intercept c.
      max_iter: CG's iteration cap (None: 10·d).
      tol: CG's relative residual tolerance.
      rank: the Nyström sketch size (clipped to d).
      random_state: seeds the sketch (None: a fixed seed).
      dtype: ``np.float64`` (default, whatever ``jax_enable_x64`` says) or ``np.float32``.

    Attributes:
      coef_: w (d,), float64.
      intercept_: c, a float.
      n_iter_: CG iterations.
      status_: CG's :class:`precond.linalg.Status`.

    Example:
      >>> import numpy as np
      >>> from precond.sklearn import Ridge
      >>> X = np.random.default_rng(0).standard_normal((50, 3))
      >>> m = Ridge(alpha=1.0).fit(X, X @ [1.0, 0.0, -2.0] + 1.0)
      >>> m.coef_.dtype, np.round(m.coef_, 2).tolist(), round(m.intercept_, 2)
      (dtype('float64'), [0.98, 0.01, -1.94], 0.98)
    """

    def __init__(self, alpha=1.0, *, fit_intercept=True, max_iter=None, tol=1e-8, rank=50,
                 random_state=None, dtype=np.float64):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.rank = rank
        self.random_state = random_state
        self.dtype = dtype

    @in_precision
    def fit(self, X, y, sample_weight=None):
        """Fit on X (n, d) (dense or sparse), y (n,), optional sample_weight (n,)."""
        X, y = self._validate(X, y)
        alpha = check_nonnegative(self.alpha, "alpha")
        tol = check_positive(self.tol, "tol")
        rank = check_int(self.rank, "rank", low=1)
        max_iter = None if self.max_iter is None else check_int(self.max_iter, "max_iter", low=1)
        dtype = compute_dtype(self)
        n, d = X.shape
        # Ridge does not rescale its weights (sklearn.linear_model.Ridge).
        Xp, wp = pad(X, check_sample_weight(sample_weight, n), dtype)
        problem = elastic_net(Xp, pad_rows(y, Xp.shape[0], dtype), 0.0, 0.0,
                              fit_intercept=self.fit_intercept, sample_weight=wp)
        H, rhs = problem.linearize(jnp.zeros(problem.dim, dtype))
        # α = 0 is singular on the padded columns: a floor relative to the right-hand side keeps
        # the system SPD without moving the solution measurably.
        mu = max(alpha, 1e-12 * float(jnp.max(jnp.abs(rhs))) + float(np.finfo(dtype).tiny))
        res = nystrom_pcg(H, rhs, mu, min(rank, problem.dim), seed_key(self.random_state),
                          tol=tol, maxiter=max_iter)
        self.coef_ = np.asarray(res.x[:d], np.float64)
        self.intercept_ = float(problem.intercept(res.x)) if self.fit_intercept else 0.0
        self.n_iter_ = int(res.iterations)
        self.status_ = res.reason
        if self.status_ not in (Status.CONVERGED, Status.STALLED):  # stalled: at rounding level
            warnings.warn(f"Nyström PCG stopped after {self.n_iter_} iterations: "
                          f"{self.status_.message}", ConvergenceWarning, stacklevel=3)
        return self
