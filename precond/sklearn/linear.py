"""Lasso, ElasticNet (NysADMM) and Ridge (Nyström PCG) with scikit-learn's objectives."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from precond.composite import data_operator, elastic_net
from precond.composite.problems import CenteredOperator, GramOperator
from precond.linalg import nystrom_pcg

from ._base import check_param, check_sample_weight, pad, seed_key, solve

__all__ = ["Lasso", "ElasticNet", "Ridge"]


class _LinearRegressor(RegressorMixin, BaseEstimator):
    def _validate(self, X, y, sample_weight):
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64, y_numeric=True)
        sw = check_sample_weight(sample_weight, X.shape[0])
        if sw is not None:
            sw = sw * (X.shape[0] / sw.sum()) if sw.sum() > 0 else sw  # sklearn's rescaling
        return X, y, sw

    def predict(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        return np.asarray(X @ self.coef_).ravel() + self.intercept_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


class ElasticNet(_LinearRegressor):
    """scikit-learn's ElasticNet solved by NysADMM.

    minimize (1/(2n))‖y − Xw − c‖² + α·l1_ratio‖w‖₁ + ½α(1 − l1_ratio)‖w‖²  (α is ``alpha``),

    solved as NysADMM on ½‖·‖² + nα(…) with X and y centered implicitly (sparse X stays
    sparse).  ``tol`` is seed 004's natural-residual tolerance (not sklearn's duality gap);
    ``rank`` the Nyström sketch size (used by the PCG x-step: sparse X, or more columns than
    rows; dense X with d ≤ min(n, 4096) takes nysadmm's Cholesky x-step on the Gram matrix);
    ``rho`` NysADMM's initial penalty.  ``coef_`` is the prox iterate, so it is exactly sparse.
    """

    def __init__(self, alpha=1.0, *, l1_ratio=0.5, fit_intercept=True, max_iter=2000,
                 tol=1e-6, rank=50, rho="auto", random_state=None):
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.rank = rank
        self.rho = rho
        self.random_state = random_state

    def _penalties(self, n):
        alpha = check_param(self.alpha, "alpha")
        l1_ratio = check_param(self.l1_ratio, "l1_ratio", high=1.0)
        return n * alpha * l1_ratio, n * alpha * (1.0 - l1_ratio)

    def fit(self, X, y, sample_weight=None):
        X, y, sw = self._validate(X, y, sample_weight)
        n, d = X.shape
        l1, l2 = self._penalties(n)
        Xp, yp, wp = pad(X, y, sw)
        problem = elastic_net(Xp, yp, l1, l2, fit_intercept=self.fit_intercept, sample_weight=wp)
        result = solve(self, problem)
        self.coef_ = np.asarray(result.z[:d])
        self.intercept_ = float(problem.intercept(result.z)) if self.fit_intercept else 0.0
        self.dual_gap_ = None
        return self


class Lasso(ElasticNet):
    """scikit-learn's Lasso, (1/(2n))‖y − Xw − c‖² + α‖w‖₁, solved by NysADMM (see ElasticNet)."""

    def __init__(self, alpha=1.0, *, fit_intercept=True, max_iter=2000, tol=1e-6, rank=50,
                 rho="auto", random_state=None):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.rank = rank
        self.rho = rho
        self.random_state = random_state

    def _penalties(self, n):
        return n * check_param(self.alpha, "alpha"), 0.0


class Ridge(_LinearRegressor):
    """scikit-learn's Ridge, ‖y − Xw − c‖² + α‖w‖², solved by Nyström PCG.

    Solves (X_cᵀWX_c + αI)w = X_cᵀW(y − ȳ) with X_c = X − 1x̄ᵀ applied implicitly (sparse X stays
    sparse) by :func:`precond.linalg.nystrom_pcg` with a rank-``rank`` sketch; ``tol`` is CG's
    relative residual tolerance and ``max_iter`` its iteration cap (None: 10·d).
    """

    def __init__(self, alpha=1.0, *, fit_intercept=True, max_iter=None, tol=1e-8, rank=50,
                 random_state=None):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.rank = rank
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        X, y, sw = self._validate(X, y, sample_weight)
        alpha = check_param(self.alpha, "alpha")
        tol = check_param(self.tol, "tol", strict=True)
        if not isinstance(self.rank, (int, np.integer)) or self.rank < 1:
            raise ValueError(f"rank must be an int ≥ 1, got {self.rank!r}")
        n, d = X.shape
        if sw is None:
            sw = np.ones(n)  # ridge does not rescale weights (sklearn.linear_model.Ridge)
        elif sample_weight is not None:
            sw = check_sample_weight(sample_weight, n)
        Xp, yp, wp = pad(X, y, sw)
        A = data_operator(Xp)
        w = jnp.asarray(wp, A.dtype)
        if self.fit_intercept:
            mean = A.T.matvec(w / jnp.sum(w))
            ymean = jnp.vdot(w, yp) / jnp.sum(w)
            A = CenteredOperator(A, mean)
        else:
            mean, ymean = jnp.zeros(A.shape[1], A.dtype), 0.0
        rhs = A.T.matvec(w * (jnp.asarray(yp) - ymean))
        H = GramOperator(A, w)
        # An exact zero-alpha system is singular on padded columns; a tiny floor keeps PCG SPD.
        mu = max(alpha, 1e-12 * float(jnp.max(jnp.abs(rhs))) + 1e-300)
        res = nystrom_pcg(H, rhs, mu, min(int(self.rank), A.shape[1]), seed_key(self.random_state),
                          tol=tol, maxiter=self.max_iter)
        coef = res.x
        self.coef_ = np.asarray(coef[:d])
        self.intercept_ = float(ymean - jnp.vdot(mean, coef)) if self.fit_intercept else 0.0
        self.n_iter_ = int(res.iterations)
        self.status_ = res.reason
        return self
