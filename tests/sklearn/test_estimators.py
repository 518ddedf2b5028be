"""precond.sklearn estimators: objectives equal scikit-learn's, API conformance, bad input."""

import os

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import linear_model, svm
from sklearn.utils.estimator_checks import check_estimator

from precond.sklearn import SVC, ElasticNet, Lasso, LogisticRegression, Ridge

N, D = 200, 30  # padded to the (256, 32) bucket shared with tests/composite


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)) * np.linspace(0.3, 2.0, D)
    w = np.zeros(D)
    w[:5] = 2 * rng.standard_normal(5)
    y = X @ w + 0.3 * rng.standard_normal(N) + 1.0
    return X, y


def _rel(a, b):
    return abs(a - b) / abs(b)


def test_lasso_and_elastic_net_objectives_match_sklearn():
    X, y = _data()
    for ours, theirs, l1r in [
        (Lasso(alpha=0.1, tol=1e-10), linear_model.Lasso(alpha=0.1, tol=1e-12, max_iter=10**5),
         1.0),
        (ElasticNet(alpha=0.1, l1_ratio=0.3, tol=1e-10),
         linear_model.ElasticNet(alpha=0.1, l1_ratio=0.3, tol=1e-12, max_iter=10**5), 0.3),
    ]:
        ours.fit(X, y)
        theirs.fit(X, y)

        def obj(m, l1r=l1r):
            r = y - X @ m.coef_ - m.intercept_
            return (0.5 / N * r @ r + 0.1 * l1r * np.abs(m.coef_).sum()
                    + 0.05 * (1 - l1r) * m.coef_ @ m.coef_)

        assert _rel(obj(ours), obj(theirs)) < 1e-6
        assert np.count_nonzero(ours.coef_) <= np.count_nonzero(theirs.coef_)
        assert ours.n_iter_ > 0
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), atol=1e-4)


def test_lasso_sparse_input_equals_dense():
    X, y = _data(1)
    X[np.abs(X) < 0.8] = 0.0
    dense = Lasso(alpha=0.05, tol=1e-10).fit(X, y)
    sparse = Lasso(alpha=0.05, tol=1e-10).fit(sp.csr_matrix(X), y)
    np.testing.assert_allclose(sparse.coef_, dense.coef_, atol=1e-6)
    np.testing.assert_allclose(sparse.predict(sp.csr_matrix(X)), dense.predict(X), atol=1e-5)


@pytest.mark.parametrize("l1_ratio", [1.0, 0.5])
def test_logistic_objective_matches_saga(l1_ratio):
    X, y = _data(2)
    labels = np.where(y > np.median(y), "b", "a")
    C = 0.05
    ours = LogisticRegression(C=C, l1_ratio=l1_ratio, tol=1e-9).fit(X, labels)
    theirs = linear_model.LogisticRegression(C=C, l1_ratio=l1_ratio, solver="saga", tol=1e-12,
                                             max_iter=200_000).fit(X, labels)
    yb = np.where(labels == "b", 1.0, -1.0)

    def obj(m):
        w, c = m.coef_[0], m.intercept_[0]
        return (C * np.sum(np.logaddexp(0, -yb * (X @ w + c))) + l1_ratio * np.abs(w).sum()
                + 0.5 * (1 - l1_ratio) * w @ w)

    assert _rel(obj(ours), obj(theirs)) < 1e-6
    assert list(ours.classes_) == ["a", "b"]
    assert (ours.predict(X) == theirs.predict(X)).mean() > 0.98
    np.testing.assert_allclose(ours.predict_proba(X).sum(1), 1.0)


def test_svc_dual_objective_matches_libsvm():
    X, y = _data(3)
    labels = (y > np.median(y)).astype(int)
    ours = SVC(C=1.0, kernel="rbf", gamma=0.02, tol=1e-9).fit(X, labels)
    theirs = svm.SVC(C=1.0, kernel="rbf", gamma=0.02, tol=1e-10).fit(X, labels)
    yb = np.where(labels == 1, 1.0, -1.0)

    def dual_obj(support, dual_coef):
        a = np.zeros(N)
        a[support] = np.abs(dual_coef[0])
        K = np.exp(-0.02 * ((X[:, None] - X[None]) ** 2).sum(-1))
        return 0.5 * (a * yb) @ K @ (a * yb) - a.sum()

    assert _rel(dual_obj(ours.support_, ours.dual_coef_),
                dual_obj(theirs.support_, theirs.dual_coef_)) < 1e-6
    assert abs(ours.intercept_[0] - theirs.intercept_[0]) < 1e-3
    assert (ours.predict(X) == theirs.predict(X)).mean() > 0.99


def test_ridge_matches_sklearn():
    X, y = _data(4)
    ours = Ridge(alpha=3.0).fit(X, y)
    theirs = linear_model.Ridge(alpha=3.0).fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-8)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, atol=1e-8)


@pytest.mark.parametrize("est", [Lasso(), LogisticRegression(), SVC(), Ridge()])
def test_bad_input_gives_clear_errors(est):
    X, y = _data(5)
    y = (y > np.median(y)).astype(float)
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(Xn, y)
    with pytest.raises(ValueError, match="NaN|infinity"):
        est.fit(X, np.where(np.arange(N) == 0, np.inf, y))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.fit(X, y[:-1])
    bad = est.get_params()
    key = "C" if "C" in bad else "alpha"
    with pytest.raises(ValueError, match=key):
        type(est)(**{key: -1.0}).fit(X, y)
    if isinstance(est, (LogisticRegression, SVC)):
        with pytest.raises(ValueError, match="binary"):
            est.fit(X, np.arange(N) % 3)


# Checks expected to fail, with the reason.  All other checks of check_estimator pass.
EXPECTED_FAILED = {
    "SVC": {
        name: "an iterative dual solver (tol 1e-6) does not reproduce decision_function to "
              "scikit-learn's rtol 1e-7 between weighted and repeated-sample fits; "
              "scikit-learn's own SVC is also listed as expected-failing here"
        for name in ("check_sample_weight_equivalence_on_dense_data",
                     "check_sample_weight_equivalence_on_sparse_data")
    },
}


# The full check_estimator suite compiles the solvers for many input kinds and takes ~45–80 s
# per estimator on the shared 2-core machine, beyond this area's test budget; it runs when
# PRECOND_SKLEARN_CHECKS=1 (last run: all five pass, with the SVC exceptions listed above).
@pytest.mark.skipif(os.environ.get("PRECOND_SKLEARN_CHECKS") != "1",
                    reason="slow: set PRECOND_SKLEARN_CHECKS=1 to run check_estimator")
@pytest.mark.parametrize("est", [Lasso(), ElasticNet(), Ridge(), LogisticRegression(), SVC()],
                         ids=lambda e: type(e).__name__)
def test_check_estimator(est):
    results = check_estimator(est, on_fail=None, on_skip=None)
    failed = {r["check_name"]: str(r["exception"])[:200] for r in results
              if r["status"] == "failed"}
    expected = EXPECTED_FAILED.get(type(est).__name__, {})
    print(type(est).__name__, failed)
    assert set(failed) <= set(expected), failed
