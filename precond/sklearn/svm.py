"""Binary kernel SVC (RBF or linear kernel) solved in the dual by NysADMM."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from precond.composite import linear_kernel, rbf_kernel, svm_dual, svm_intercept

from ._base import check_param, check_sample_weight, pad, solve
from .logistic import binary_labels

__all__ = ["SVC"]


class SVC(ClassifierMixin, BaseEstimator):
    """scikit-learn's binary SVC solved in the dual by NysADMM.

    minimize ½αᵀdiag(y)K diag(y)α − 1ᵀα  subject to 0 ≤ αᵢ ≤ C·sᵢ and yᵀα = 0,

    LIBSVM's dual with an unpenalized intercept (s is ``sample_weight``).  The constraint
    yᵀα = 0 stays in the prox (projection onto box ∩ hyperplane); the intercept is recovered from
    the free support vectors as LIBSVM does.  K is the RBF kernel exp(−γ‖x − x'‖²) (γ is
    ``gamma``: "scale" = 1/(d·Var X), "auto" = 1/d, or a number) or the linear kernel XXᵀ,
    applied as X(Xᵀv) (formed only as said below); an RBF kernel is formed only for n ≤ 4000
    and applied block by block above that.  ``tol`` is the Boyd eps_abs = eps_rel tolerance.
    When Q can be formed and n ≤ 4096 (a formed RBF kernel, or a linear kernel of dense X)
    nysadmm's x-step is a Cholesky solve with Q + ρI, and for a linear kernel of dense X with
    fewer features p ≤ 4096 than samples it factors the p×p ρI + VᵀV (Woodbury) for any n; then
    ``rank`` is unused.  Otherwise it is Nyström PCG of rank ``rank``.
    """

    def __init__(self, C=1.0, *, kernel="rbf", gamma="scale", max_iter=2000, tol=1e-6, rank=50,
                 rho="auto", random_state=None):
        self.C = C
        self.kernel = kernel
        self.gamma = gamma
        self.max_iter = max_iter
        self.tol = tol
        self.rank = rank
        self.rho = rho
        self.random_state = random_state

    def _gamma(self, X):
        if self.gamma == "scale":
            if sp.issparse(X):
                var = X.multiply(X).mean() - X.mean() ** 2
            else:
                var = X.var()
            return 1.0 / (X.shape[1] * var) if var > 0 else 1.0
        if self.gamma == "auto":
            return 1.0 / X.shape[1]
        return check_param(self.gamma, "gamma", strict=True)

    def _kernel_op(self, X):
        if self.kernel == "linear":
            return linear_kernel(X)
        return rbf_kernel(X, self._gamma_)

    def fit(self, X, y, sample_weight=None):
        if self.kernel not in ("rbf", "linear"):
            raise ValueError(f"kernel must be 'rbf' or 'linear', got {self.kernel!r}")
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64)
        C = check_param(self.C, "C", strict=True)
        yb = binary_labels(self, y)
        sw = check_sample_weight(sample_weight, X.shape[0])
        self._gamma_ = self._gamma(X) if self.kernel == "rbf" else None
        n = X.shape[0]
        Xp, yp, wp = pad(X, yb, sw)
        yp = np.where(wp > 0, yp, 1.0)
        problem = svm_dual(self._kernel_op(Xp), yp, C, sample_weight=wp)
        result = solve(self, problem)
        alpha = result.z
        self.intercept_ = np.array([float(svm_intercept(problem, alpha))])
        alpha = np.asarray(alpha)[:n]
        support = np.flatnonzero(alpha > 1e-8 * C)
        self.support_ = support
        self.support_vectors_ = X[support]
        self.dual_coef_ = (yb[support] * alpha[support])[None, :]
        self.n_support_ = np.array([np.sum(yb[support] < 0), np.sum(yb[support] > 0)])
        self.objective_ = float(problem.objective(result.z))
        if self.kernel == "linear":
            self.coef_ = np.asarray(self.dual_coef_ @ self.support_vectors_).reshape(1, -1)
        return self

    def decision_function(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        S = self.support_vectors_
        if self.kernel == "linear":
            k = X @ S.T
            k = k.toarray() if sp.issparse(k) else np.asarray(k)
        else:
            Xd = X.toarray() if sp.issparse(X) else X
            Sd = S.toarray() if sp.issparse(S) else S
            d2 = (np.sum(Xd**2, 1)[:, None] + np.sum(Sd**2, 1)[None] - 2 * Xd @ Sd.T)
            k = np.asarray(jnp.exp(-self._gamma_ * jnp.maximum(d2, 0.0)))
        return k @ self.dual_coef_[0] + self.intercept_[0]

    def predict(self, X):
        scores = self.decision_function(X)  # checks fitted first
        return self.classes_[(scores > 0).astype(int)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_class = False
        return tags
