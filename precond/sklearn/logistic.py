"""ℓ1 / elastic-net LogisticRegression solved by NysADMM, one-vs-rest for k > 2 classes."""

from __future__ import annotations

import numpy as np
from scipy.special import expit
from sklearn.utils.validation import check_is_fitted, validate_data

from precond.composite import data_operator, l1_logistic
from precond.validation import check_fraction, check_positive

from ._base import (
    OneVsRestBase,
    check_sample_weight,
    check_solver,
    compute_dtype,
    in_precision,
    pad,
    pad_rows,
    solve,
    solve_sapphire,
)

__all__ = ["LogisticRegression"]


def _zero_optimal_intercept(X, y, sample_weight, C: float, l1: float, fit_intercept: bool):
    """The intercept c* if w = 0 minimizes the binary problem, else None.

    w = 0 is optimal iff ‖∇_w f(0, c*)‖∞ ≤ λ₁ (λ₁ = ``l1``; the ℓ2 term's gradient vanishes at
    0), where c* minimizes the loss at w = 0: log(S₊/S₋), S± the weight of the ±1 samples.  A
    fit so strongly regularized then needs no iterations, and ADMM is spared the problem it
    converges slowest on (a zero solution leaves its residual balancing without a scale).

    Args:
      X: (n, d) data, dense or sparse.
      y: (n,) labels ±1.
      sample_weight: (n,) weights s, or None.
      C: the loss weight.
      l1: λ₁.
      fit_intercept: whether c is fitted (else c = 0).
    """
    s = np.ones(y.shape[0]) if sample_weight is None else sample_weight
    c = 0.0
    if fit_intercept:
        pos, neg = s[y > 0].sum(), s[y < 0].sum()
        if pos == 0 or neg == 0:
            return None
        c = float(np.log(pos / neg))
    grad = -C * np.asarray(X.T @ (s * y * expit(-y * c))).ravel()
    return c if np.max(np.abs(grad)) <= l1 else None


class LogisticRegression(OneVsRestBase):
    """scikit-learn's LogisticRegression with ℓ1 / elastic-net penalty, solved by NysADMM or
    SAPPHIRE.

    For two classes, with labels yᵢ = ±1 (``classes_[1]`` is +1),

    minimize C Σᵢ sᵢ log(1 + exp(−yᵢ(xᵢᵀw + c))) + l1_ratio‖w‖₁ + ½(1 − l1_ratio)‖w‖²,

    the objective of ``sklearn.linear_model.LogisticRegression(C=C, l1_ratio=l1_ratio,
    solver="saga")`` (s is ``sample_weight``; the intercept c is not penalized).  For k > 2
    classes one such problem per class, that class against the rest (one-vs-rest, as
    ``sklearn.multiclass.OneVsRestClassifier`` of the binary model; scikit-learn's own
    LogisticRegression is multinomial there, a different model).  No ``penalty`` parameter:
    scikit-learn 1.8 deprecated it for ``C``/``l1_ratio``.

    Args:
      C: inverse regularization strength, > 0.
      l1_ratio: the penalty's ℓ1 share in [0, 1]; defaults to 1 (the ℓ1 problem NysADMM is for;
        scikit-learn's default is 0).
      fit_intercept: fit the unpenalized intercept c.
      max_iter: NysADMM's iteration cap, or SAPPHIRE's epoch cap (per binary problem).
      tol: NysADMM: the Boyd eps_abs = eps_rel tolerance of the ADMM residuals; SAPPHIRE: the
        natural residual ‖z − prox(z − ∇F(z))‖ relative to its start.
      rank: the Nyström sketch size of NysADMM's x-step (SAPPHIRE keeps its own default).
      rho: NysADMM's initial penalty ρ > 0, or "auto".
      random_state: seeds the sketch and SAPPHIRE's minibatches (None: a fixed seed).
      dtype: ``np.float64`` (default, whatever ``jax_enable_x64`` says) or ``np.float32``.
      solver: "nysadmm" (default) or "sapphire" (:func:`precond.stochastic.sapphire`, no
        ``sample_weight``): SAPPHIRE was measured faster than NysADMM on dense data with many
        more samples than features and slower on sparse rows with tens of thousands of
        columns (docs/results/promise.md, "SAPPHIRE").

    Attributes:
      classes_: the k sorted class labels.
      coef_: w, float64 (1, d) for two classes, (k, d) one-vs-rest.
      intercept_: c, float64 (1,) or (k,).
      n_iter_: NysADMM iterations (SAPPHIRE epochs) of each binary problem, (1,) or (k,).

    Example:
      >>> from sklearn.datasets import load_iris
      >>> from precond.sklearn import LogisticRegression
      >>> X, y = load_iris(return_X_y=True)
      >>> m = LogisticRegression(C=10.0).fit(X, y)
      >>> m.coef_.shape, m.coef_.dtype, m.score(X, y) > 0.9
      ((3, 4), dtype('float64'), True)
      >>> m.predict_proba(X[:2]).sum(axis=1).round(12).tolist()
      [1.0, 1.0]
    """

    def __init__(self, C=1.0, *, l1_ratio=1.0, fit_intercept=True, max_iter=2000, tol=1e-6,
                 rank=50, rho="auto", random_state=None, dtype=np.float64, solver="nysadmm"):
        self.C = C
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.rank = rank
        self.rho = rho
        self.random_state = random_state
        self.dtype = dtype
        self.solver = solver

    @in_precision
    def fit(self, X, y, sample_weight=None):
        """Fit on X (n, d) (dense or sparse), labels y (n,), optional sample_weight (n,)."""
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64)
        C = check_positive(self.C, "C")
        l1_ratio = check_fraction(self.l1_ratio, "l1_ratio", closed_high=True)
        solver = check_solver(self)
        targets = self._binary_targets(y)
        dtype = compute_dtype(self)
        sw = check_sample_weight(sample_weight, X.shape[0])
        if solver == "sapphire" and sw is not None:
            raise ValueError("solver='sapphire' takes no sample_weight; use solver='nysadmm'")
        if solver == "nysadmm":
            Xp, wp = pad(X, sw, dtype)
            A = data_operator(Xp)  # converted once, shared by the k problems
        d = X.shape[1]
        coef, intercept, iterations = [], [], []
        for yb in targets:  # same shapes: the solver compiles once for all k problems
            c0 = _zero_optimal_intercept(X, yb, sw, C, l1_ratio, self.fit_intercept)
            if c0 is not None:  # w = 0 is the minimizer: nothing to iterate
                coef.append(np.zeros(d))
                intercept.append(c0)
                iterations.append(0)
                continue
            if solver == "sapphire":  # Φ/(Cn): (1/n)Σ log-loss + λ₁‖w‖₁ + (λ₂/2)‖w‖²
                w, c, epochs = solve_sapphire(self, X, yb, "logistic",
                                              l1_ratio / (C * X.shape[0]),
                                              (1.0 - l1_ratio) / (C * X.shape[0]), dtype)
                coef.append(w)
                intercept.append(c)
                iterations.append(epochs)
                continue
            problem = l1_logistic(A, pad_rows(yb, Xp.shape[0], dtype, value=1.0), l1_ratio,
                                  l2=1.0 - l1_ratio, C=C, fit_intercept=self.fit_intercept,
                                  sample_weight=wp)
            result = solve(self, problem)
            z = np.asarray(result.z, np.float64)
            coef.append(z[:d])
            intercept.append(z[-1] if self.fit_intercept else 0.0)
            iterations.append(int(result.iterations))
        self.coef_ = np.stack(coef)
        self.intercept_ = np.asarray(intercept, np.float64)
        self.n_iter_ = np.asarray(iterations)
        return self

    def decision_function(self, X):
        """Scores xᵀw + c of X (n, d): (n,) for two classes, else (n, k)."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        scores = np.asarray(X @ self.coef_.T) + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores

    def predict_proba(self, X):
        """Class probabilities (n, k), rows summing to 1.

        Two classes: σ(score) for ``classes_[1]``.  One-vs-rest: the k sigmoids σ(score_j)
        normalized to sum 1, as scikit-learn's one-vs-rest models do.
        """
        p = expit(self.decision_function(X))
        if p.ndim == 1:
            return np.column_stack([1.0 - p, p])
        return p / p.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X):
        """log of :meth:`predict_proba`."""
        return np.log(self.predict_proba(X))
