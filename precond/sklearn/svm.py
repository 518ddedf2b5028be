"""Kernel SVC (RBF or linear kernel) solved in the dual by NysADMM, one-vs-rest for k > 2."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.validation import check_is_fitted, validate_data

from precond.composite import linear_kernel, rbf_kernel, svm_dual, svm_intercept
from precond.validation import check_positive

from ._base import (
    OneVsRestBase,
    check_sample_weight,
    compute_dtype,
    in_precision,
    pad,
    pad_rows,
    solve,
)

__all__ = ["SVC"]


class SVC(OneVsRestBase):
    """scikit-learn's SVC solved in the dual by NysADMM.

    For two classes, with labels yᵢ = ±1 (``classes_[1]`` is +1),

    minimize ½αᵀdiag(y)K diag(y)α − 1ᵀα  subject to 0 ≤ αᵢ ≤ C·sᵢ and yᵀα = 0,

    LIBSVM's dual with an unpenalized intercept (s is ``sample_weight``).  The constraint
    yᵀα = 0 stays in the prox (projection onto box ∩ hyperplane); the intercept is recovered from
    the free support vectors as LIBSVM does.  For k > 2 classes one such problem per class,
    that class against the rest (one-vs-rest; LIBSVM trains one-vs-one pairs and only shapes
    its scores one-vs-rest, so its multiclass attributes differ).  K is the RBF kernel
    exp(−γ‖x − x'‖²) or the linear kernel XXᵀ, applied as X(Xᵀv); an RBF kernel is formed for
    n ≤ 4000 and applied block by block above that.  When Q can be formed and n ≤ 4096 (a
    formed RBF kernel, or a linear kernel of dense X) nysadmm's x-step is a Cholesky solve with
    Q + ρI, and for a linear kernel of dense X with fewer features p ≤ 4096 than samples it
    factors the p×p ρI + VᵀV (Woodbury) for any n; then ``rank`` is unused.  Otherwise it is
    Nyström PCG of rank ``rank``.

    Args:
      C: the box bound, > 0.
      kernel: "rbf" or "linear".
      gamma: γ of the RBF kernel: "scale" (1/(d·Var X)), "auto" (1/d), or a number > 0.
      max_iter: NysADMM's iteration cap (per binary problem).
      tol: the Boyd eps_abs = eps_rel tolerance of the ADMM residuals.  ADMM converges slowly
        on the box-constrained dual, so the default 1e-4 trades accuracy for time: its dual
        objective is less exact than LIBSVM's at its default tol (the gaps at 1e-4 are in
        docs/bench/nysadmm.md), and 1e-5 may take thousands of iterations on small, hard
        problems.
      rank: the Nyström sketch size of a PCG x-step.
      rho: NysADMM's initial penalty ρ > 0, or "auto".
      random_state: seeds the sketch (None: a fixed seed).
      dtype: ``np.float64`` (default, whatever ``jax_enable_x64`` says) or ``np.float32``.

    Attributes:
      classes_: the k sorted class labels.
      support_: indices of the training rows that are support vectors of any binary problem.
      support_vectors_: those rows.
      dual_coef_: yᵢαᵢ of each binary problem on the support vectors (1 or k, n_SV), float64.
      intercept_: c of each binary problem, (1,) or (k,).
      n_support_: the number of support vectors of each class.
      coef_: (1 or k, d) primal weights, linear kernel only.
      objective_: the dual objective of each binary problem.
      n_iter_: NysADMM iterations of each binary problem.

    Example:
      >>> from sklearn.datasets import load_iris
      >>> from precond.sklearn import SVC
      >>> X, y = load_iris(return_X_y=True)
      >>> m = SVC(C=10.0).fit(X, y)
      >>> m.decision_function(X).shape, m.score(X, y) > 0.9
      ((150, 3), True)
    """

    def __init__(self, C=1.0, *, kernel="rbf", gamma="scale", max_iter=2000, tol=1e-4, rank=50,
                 rho="auto", random_state=None, dtype=np.float64):
        self.C = C
        self.kernel = kernel
        self.gamma = gamma
        self.max_iter = max_iter
        self.tol = tol
        self.rank = rank
        self.rho = rho
        self.random_state = random_state
        self.dtype = dtype

    def _gamma(self, X):
        if self.gamma == "scale":
            if sp.issparse(X):
                var = X.multiply(X).mean() - X.mean() ** 2
            else:
                var = X.var()
            return 1.0 / (X.shape[1] * var) if var > 0 else 1.0
        if self.gamma == "auto":
            return 1.0 / X.shape[1]
        return check_positive(self.gamma, "gamma")

    @in_precision
    def fit(self, X, y, sample_weight=None):
        """Fit on X (n, d) (dense or sparse), labels y (n,), optional sample_weight (n,)."""
        if self.kernel not in ("rbf", "linear"):
            raise ValueError(f"kernel must be 'rbf' or 'linear', got {self.kernel!r}")
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64)
        C = check_positive(self.C, "C")
        targets = self._binary_targets(y)
        self._gamma_ = self._gamma(X) if self.kernel == "rbf" else None
        dtype = compute_dtype(self)
        n = X.shape[0]
        Xp, wp = pad(X, check_sample_weight(sample_weight, n), dtype)
        K = linear_kernel(Xp) if self.kernel == "linear" else rbf_kernel(Xp, self._gamma_)
        alphas, intercepts, objectives, iterations = [], [], [], []
        for yb in targets:  # same shapes: the solver compiles once for all k problems
            problem = svm_dual(K, pad_rows(yb, Xp.shape[0], dtype, value=1.0), C,
                               sample_weight=wp)
            result = solve(self, problem)
            intercepts.append(float(svm_intercept(problem, result.z)))
            objectives.append(float(problem.objective(result.z)))
            iterations.append(int(result.iterations))
            alphas.append(np.asarray(result.z, np.float64)[:n])
        alpha = np.stack(alphas)  # (k', n)
        support = np.flatnonzero(np.any(alpha > 1e-8 * C, axis=0))
        self.support_ = support
        self.support_vectors_ = X[support]
        self.dual_coef_ = targets[:, support] * alpha[:, support]
        self.intercept_ = np.asarray(intercepts, np.float64)
        self.n_support_ = np.array([np.sum(y[support] == c) for c in self.classes_])
        self.objective_ = np.asarray(objectives, np.float64)
        self.n_iter_ = np.asarray(iterations)
        if self.kernel == "linear":
            self.coef_ = np.asarray(self.dual_coef_ @ self.support_vectors_)
        return self

    def decision_function(self, X):
        """Scores Σᵢ yᵢαᵢK(x, xᵢ) + c of X (n, d): (n,) for two classes, else (n, k)."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        S = self.support_vectors_
        if self.kernel == "linear":
            k = X @ S.T
            k = k.toarray() if sp.issparse(k) else np.asarray(k)
        else:
            Xd = X.toarray() if sp.issparse(X) else X
            Sd = S.toarray() if sp.issparse(S) else S
            d2 = np.sum(Xd**2, 1)[:, None] + np.sum(Sd**2, 1)[None] - 2 * Xd @ Sd.T
            k = np.exp(-self._gamma_ * np.maximum(d2, 0.0))
        scores = k @ self.dual_coef_.T + self.intercept_
        return scores.ravel() if scores.shape[1] == 1 else scores
