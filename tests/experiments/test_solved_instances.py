"""The solved-instances harness on tiny problems: losses, baselines, bookkeeping, loader."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from precond.experiments.solved_instances import (
    METHODS,
    loss_value,
    make_problem,
    performance_profile,
    run_method,
    solved_counts,
)
from precond.problems.classification import load_classification_sets, normalize


def _data(n=60, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.where(X @ rng.standard_normal(d) + rng.standard_normal(n) > 0, 1.0, -1.0)
    return X, y


@pytest.mark.parametrize("loss", ["squared_hinge", "logistic"])
def test_padded_loss_matches_plain_formula(loss):
    X, y = _data()
    p = make_problem(X, y, loss)
    w = np.random.default_rng(1).standard_normal(p.d)
    z = y * (np.hstack([X, np.ones((60, 1))]) @ w)
    ref = 0.5 * np.sum(np.maximum(0, 1 - z) ** 2) if loss == "squared_hinge" \
        else np.sum(np.log1p(np.exp(-z)))
    wp = np.zeros(p.A.shape[1])
    wp[:p.d] = w
    assert float(loss_value(jnp.asarray(wp), p.A, p.y, p.mask, loss)) == pytest.approx(ref)
    assert np.linalg.norm(p.x0) == pytest.approx(1.0)


def test_every_method_solves_an_easy_problem_and_agrees_with_scipy():
    X, y = _data()
    p = make_problem(X, y, "logistic")
    ref = scipy.optimize.minimize(
        lambda w: float(loss_value(jnp.asarray(np.pad(w, (0, p.A.shape[1] - p.d))), p.A, p.y,
                                   p.mask, "logistic")), np.zeros(p.d), method="BFGS").fun
    for m in ("OSGM", "L-BFGS-M5", "BFGS", "GD-HB"):
        r = run_method(p, m)
        assert r.solved and r.grad_evals <= 1000, m
        assert r.fun == pytest.approx(ref, rel=1e-6), m


def test_budget_and_bookkeeping():
    X, y = _data()
    p = make_problem(X, y, "squared_hinge")
    r = run_method(p, "GD", max_grad_evals=5)
    assert not r.solved and r.grad_evals == 5
    rows = [{"problem": "a", "loss": "logistic", "method": "A", "solved": True, "grad_evals": 10},
            {"problem": "a", "loss": "logistic", "method": "B", "solved": True, "grad_evals": 20},
            {"problem": "b", "loss": "logistic", "method": "A", "solved": False,
             "grad_evals": 1000},
            {"problem": "b", "loss": "logistic", "method": "B", "solved": True, "grad_evals": 7}]
    assert solved_counts(rows)["A"]["logistic"] == 1
    prof = performance_profile(rows, "logistic", ["A", "B"], np.array([1.0, 2.0]))
    np.testing.assert_allclose(prof["A"], [0.5, 0.5])
    np.testing.assert_allclose(prof["B"], [0.5, 1.0])
    with pytest.raises(ValueError, match="method"):
        run_method(p, "Newton")
    with pytest.raises(ValueError, match="loss"):
        make_problem(X, y, "hinge")
    assert "OSGM" in METHODS


def test_loader_skips_and_normalizes():
    sets, skipped = load_classification_sets(("sklearn",))
    assert skipped == {} and len(sets) >= 4
    for s in sets:
        assert set(np.unique(s.y)) <= {-1.0, 1.0} and s.X.shape[0] == s.y.shape[0]
    Xn, yn = normalize(sets[0].X, y=sets[0].y, max_rows=50)
    assert Xn.shape[0] == 50 == yn.shape[0]
    assert Xn.min() >= -1 - 1e-12 and Xn.max() <= 1 + 1e-12
    with pytest.raises(ValueError, match="sources"):
        load_classification_sets(("nope",))
