"""Binary ℓ1 / elastic-net LogisticRegression solved by NysADMM."""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from precond.composite import l1_logistic

from ._base import check_param, check_sample_weight, pad, solve

__all__ = ["LogisticRegression", "binary_labels"]


def binary_labels(est, y):
    """Set ``classes_`` and return y as ±1 (classes_[1] ↦ +1); non-binary y → ValueError."""
    check_classification_targets(y)
    classes = np.unique(y)
    if classes.shape[0] != 2:
        raise ValueError(f"Only binary classification is supported. {type(est).__name__} "
                         f"handles binary labels only; y has {classes.shape[0]} class(es): "
                         f"{classes[:5].tolist()}")
    est.classes_ = classes
    return np.where(y == classes[1], 1.0, -1.0)


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """scikit-learn's binary LogisticRegression with ℓ1 / elastic-net penalty, solved by NysADMM.

    minimize C Σᵢ sᵢ log(1 + exp(−yᵢ(xᵢᵀw + c))) + l1_ratio‖w‖₁ + ½(1 − l1_ratio)‖w‖²,

    the objective of ``sklearn.linear_model.LogisticRegression(C=C, l1_ratio=l1_ratio,
    solver="saga")`` (s is ``sample_weight``; the intercept c is not penalized).  No ``penalty``
    parameter: scikit-learn 1.8 deprecated it for ``C``/``l1_ratio``.  ``l1_ratio`` defaults to 1
    (the ℓ1 problem NysADMM is for; scikit-learn's default is 0).  ``tol`` is the Boyd
    eps_abs = eps_rel tolerance of the ADMM residuals.
    """

    def __init__(self, C=1.0, *, l1_ratio=1.0, fit_intercept=True, max_iter=2000, tol=1e-6,
                 rank=50, rho="auto", random_state=None):
        self.C = C
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.rank = rank
        self.rho = rho
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64)
        C = check_param(self.C, "C", strict=True)
        l1_ratio = check_param(self.l1_ratio, "l1_ratio", high=1.0)
        yb = binary_labels(self, y)
        sw = check_sample_weight(sample_weight, X.shape[0])
        d = X.shape[1]
        Xp, yp, wp = pad(X, yb, sw)
        yp = np.where(wp > 0, yp, 1.0)
        problem = l1_logistic(Xp, yp, l1_ratio, l2=1.0 - l1_ratio, C=C,
                              fit_intercept=self.fit_intercept, sample_weight=wp)
        result = solve(self, problem)
        z = np.asarray(result.z)
        self.coef_ = z[None, :d]
        self.intercept_ = np.array([z[-1] if self.fit_intercept else 0.0])
        return self

    def decision_function(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        return np.asarray(X @ self.coef_[0]).ravel() + self.intercept_[0]

    def predict(self, X):
        scores = self.decision_function(X)  # checks fitted first
        return self.classes_[(scores > 0).astype(int)]

    def predict_proba(self, X):
        p = expit(self.decision_function(X))
        return np.column_stack([1 - p, p])

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_class = False
        return tags
