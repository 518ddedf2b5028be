"""Fuzz: the layers above linalg under bad and edge-case inputs (fuzz_contract's contract).

Stochastic solvers, NysADMM and its problem builders, diagnostics, optim, the scikit-learn
estimators and classification.normalize.  Solves run on one tiny shape (8 samples, 3
features) in float64, so each compiled program serves every example; everything else is
expected to stop at the argument checks, before any compilation.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from fuzz_contract import POISONS, assert_honest, budget, np_dtype, outcome, scalars
from hypothesis import given
from hypothesis import strategies as st

import precond.composite as C
import precond.stochastic as ps
from precond import diagnostics as D
from precond import optim
from precond import sklearn as psk
from precond.linalg import Status
from precond.problems.classification import normalize

KEY = jax.random.key(0)
M, D_ = 8, 3  # samples, features of every solve


@st.composite
def data(draw, dtypes=("int", "bool", "float64", "float32", "float16")):
    """(X, y): X (m, d) of a drawn dtype, y (m,) — mostly (8, 3); sometimes empty, one sample,
    no feature, a y of the wrong length, or NaN/inf in X or y."""
    case = draw(st.sampled_from(["ok"] * 6 + ["empty", "one", "nofeat", "short-y", "nan-x",
                                              "nan-y"]))
    m, d = {"empty": (0, D_), "one": (1, D_), "nofeat": (M, 0)}.get(case, (M, D_))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    X = rng.standard_normal((m, d))
    y = X @ np.ones(d) + 0.1 * rng.standard_normal(m) if d else rng.standard_normal(m)
    dtype = draw(st.sampled_from(dtypes))
    X = (X > 0) if dtype == "bool" else np.round(2 * X) if dtype == "int" else X
    X = X.astype(np_dtype(dtype))
    if case == "nan-x" and X.dtype.kind != "f":
        case = "nan-y"  # an integer or boolean X holds no NaN: poison y instead
    if case == "short-y":
        y = y[:-1]
    if case in ("nan-x", "nan-y") and X.size:
        target = X if case == "nan-x" and X.dtype.kind == "f" else y
        target.flat[0] = draw(st.sampled_from(POISONS))
    return X, y, case


def _ls_grad64(X, y, mu, w):
    X, y, w = (np.asarray(a, np.float64) for a in (X, y, w))
    return X.T @ (X @ w - y) / X.shape[0] + mu * w


@budget(25)
@given(Xy=data(dtypes=("int", "bool", "float64")), mu=scalars(0.0, 1.0),
       lr=st.one_of(st.none(), st.none(), st.sampled_from([0.1, 1e8, math.nan, -1.0])),
       epochs=st.sampled_from([3, 3, 0]))
def test_stochastic_solvers(Xy, mu, lr, epochs):
    """converged ⇒ the float64 ‖∇F(x)‖ meets tol·max(1, ‖∇F(x₀)‖); a huge lr is DIVERGED."""
    X, y, case = Xy
    kind, problem = outcome(lambda: ps.least_squares(X, y, mu), "X", "y", "mu")
    if case not in ("ok", "one") or isinstance(mu, bool) or not (
            isinstance(mu, float) and math.isfinite(mu) and mu >= 0):
        assert kind == "error"
    if kind == "error" or case == "one":  # one sample: its own compiled program, left out
        return
    tol = 1e-6
    kind, res = outcome(lambda: ps.sketchy_saga(problem, epochs=epochs, key=KEY, lr=lr, tol=tol),
                        "lr", "epochs")
    if kind == "ok":
        s = assert_honest(res.status, res.x, res.objective[-1])
        assert np.all(np.isfinite(np.asarray(res.x))), "x is the last finite iterate"
        if s == Status.CONVERGED:
            g0 = np.linalg.norm(_ls_grad64(X, y, float(mu), np.zeros(D_)))
            g = np.linalg.norm(_ls_grad64(X, y, float(mu), res.x))
            assert g <= tol * max(1.0, g0) * (1 + 1e-6) + 1e-12
        if s != Status.DIVERGED:
            assert res.objective[-1] <= 1e6 * max(1.0, abs(res.objective[0]))


@budget(20)
@given(Xy=data(), lam=scalars(0.0, 1.0),
       builder=st.sampled_from(["lasso", "elastic_net", "box", "nnls", "l1_logistic"]))
def test_composite_builders(Xy, lam, builder):
    """Bad data or weights are errors naming them; empty data is an error (NysADMM ran on it
    and reported NONFINITE after a full compile)."""
    X, y, case = Xy
    yl = np.where(np.asarray(y) > np.median(y), 1.0, -1.0) if np.asarray(y).size else y
    build = {"lasso": lambda: C.lasso(X, y, lam),
             "elastic_net": lambda: C.elastic_net(X, y, lam, lam),
             "box": lambda: C.box_least_squares(X, y, -lam, lam),
             "nnls": lambda: C.nonnegative_least_squares(X, y),
             "l1_logistic": lambda: C.l1_logistic(X, yl, lam)}[builder]
    kind, _ = outcome(build, "X", "b", "y", "lam", "l1", "l2", "lower", "labels")
    if case in ("empty", "nofeat", "short-y") or (case == "nan-x" and X.dtype.kind == "f"):
        assert kind == "error"


def _lasso_optimality64(X, b, lam, x):
    """‖x − S_λ(x − ∇f(x))‖ (the prox-gradient step, 0 at the lasso's solution), float64."""
    X, b, x = (np.asarray(a, np.float64) for a in (X, b, x))
    z = x - X.T @ (X @ x - b)
    return np.linalg.norm(x - np.sign(z) * np.maximum(np.abs(z) - lam, 0.0))


@budget(10)
@given(seed=st.integers(0, 2**16), lam=st.floats(1e-3, 1.0),
       rho=st.sampled_from(["auto", "auto", 1.0, math.nan, 0.0]),
       rank=st.sampled_from([2, 2, 0, 9]), tol=st.sampled_from([1e-6, 1e-6, -1.0, math.inf]))
def test_nysadmm(seed, lam, rho, rank, tol):
    """converged ⇒ the float64 prox-gradient residual is small against the data's scale."""
    rng = np.random.default_rng(seed)
    X, b = rng.standard_normal((M, D_)), rng.standard_normal(M)
    kind, res = outcome(lambda: C.nysadmm(C.lasso(X, b, lam), key=KEY, rho=rho, rank=rank,
                                          tol=tol, max_iter=100),
                        "rho", "rank", "tol")
    if kind == "ok":
        s = assert_honest(res.status, res.x, res.z)
        if s == Status.CONVERGED:
            scale = 1 + np.linalg.norm(X.T @ b)
            assert _lasso_optimality64(X, b, lam, res.z) <= 1e-3 * scale


@budget(30)
@given(Hk=st.sampled_from(["spd", "indefinite", "nonsymmetric", "nan", "int", "zero",
                           "wrong-M", "nan-M"]),
       tol=st.one_of(st.just(1e-10), st.sampled_from(POISONS + (-1.0,))),
       samples=st.sampled_from(["list6", "array", "one", "empty-list", "empty-array",
                                "nan", "ragged"]))
def test_diagnostics(Hk, tol, samples):
    """local_conditioning: errors name the argument (H symmetric, M⁻¹ SPD, tol finite);
    a success has L̂ ≥ ĉ > 0 finite.  noise_level: a list is B samples; B < 2 is an error."""
    n = 4
    H = {"spd": np.diag([1.0, 2.0, 3.0, 4.0]), "indefinite": np.diag([-1.0, 2.0, 3.0, 4.0]),
         "nonsymmetric": np.diag([1.0, 2.0, 3.0, 4.0]) + 5 * np.triu(np.ones((n, n)), 1),
         "nan": np.full((n, n), np.nan), "int": np.diag([1, 2, 3, 4]),
         "zero": np.zeros((n, n))}.get(Hk, np.diag([1.0, 2.0, 3.0, 4.0]))
    M_inv = {"wrong-M": np.eye(n + 1), "nan-M": np.full((n, n), np.nan)}.get(Hk)
    kind, c = outcome(lambda: D.local_conditioning(H, M_inv, key=KEY, tol=tol),
                      "H", "M_inv", "tol", "matrix", "symmetric", "eigenvalue", "dtype")
    if Hk in ("nonsymmetric", "nan", "wrong-M", "nan-M") or not math.isfinite(tol) or tol < 0:
        assert kind == "error"
    if kind == "ok":
        assert_honest(c.status, c.L_hat, c.c_hat)
        assert math.isfinite(float(c.L_hat)) and float(c.L_hat) >= float(c.c_hat) > 0
    G = np.random.default_rng(0).standard_normal((6, n))
    grads = {"list6": [g for g in G], "array": G, "one": G[:1], "empty-list": [],
             "empty-array": G[:0], "nan": np.where(G > 1, np.nan, G),
             "ragged": [G[0], G[1][:2]]}[samples]
    kind, nl = outcome(lambda: D.noise_level(grads), "grad_samples", "gradient", "samples",
                       "size")
    if samples in ("list6", "array"):
        assert kind == "ok" and nl.num_samples == 6 and math.isfinite(float(nl.K))
    else:
        assert kind == "error"


def _loss(w, batch):
    return jnp.mean((batch[:, :D_] @ w - batch[:, D_]) ** 2)


_SGD = optax.sgd(0.05)


@budget(25)
@given(name=st.sampled_from(sorted(optim.OPTIMIZERS) + ["nope"]),
       lr=st.one_of(st.floats(1e-3, 1.0), st.sampled_from(POISONS + (-1.0, 0.0, True))),
       option=st.sampled_from([None, "dampng", "damping-nan"]))
def test_get_optimizer(name, lr, option):
    """Unknown names/options and bad learning rates are errors naming them."""
    kwargs = {"dampng": {"dampng": 1e-2}, "damping-nan": {"damping": math.nan}}.get(option, {})
    kind, _ = outcome(lambda: optim.get_optimizer(
        name, lr, loss_fn=_loss, key=KEY, model_fn=lambda p, x: x @ p, output_loss="mse",
        **kwargs), "learning_rate", "optimizer", "option", "damping", "dampng", "nope")
    if name == "nope" or option == "dampng" or isinstance(lr, bool) or not (
            math.isfinite(lr) and lr > 0):
        assert kind == "error"


@budget(4)
@given(params=st.sampled_from(["ok", "ok", "nan"]), batches=st.sampled_from(["ok", "nan"]),
       scale=st.sampled_from([1.0, 1.0, 1e3]), epochs=st.sampled_from([2, 2, 0]))
def test_train(params, batches, scale, epochs):
    """train reports DIVERGED (never SUCCESS) on NaN or exploding losses (data scaled by 10³
    makes SGD at α = 0.05 explode; one compiled step serves every example)."""
    rng = np.random.default_rng(0)
    data_ = scale * rng.standard_normal((4, 5, D_ + 1))
    if batches == "nan":
        data_[0, 0, 0] = np.nan
    w0 = jnp.full(D_, jnp.nan) if params == "nan" else jnp.zeros(D_)
    kind, res = outcome(lambda: optim.train(_loss, w0, _SGD, jnp.asarray(data_),
                                            num_epochs=epochs), "num_epochs")
    if kind == "ok":
        s = assert_honest(res.status, res.losses)
        if params == "nan" or batches == "nan" or scale > 1:
            assert s == Status.DIVERGED


@budget(25)
@given(Xy=data(), est=st.sampled_from(["Lasso", "Ridge", "ElasticNet", "LogisticRegression",
                                       "SVC"]))
def test_sklearn_estimators_reject_bad_data_before_fitting(Xy, est):
    """Empty, featureless, NaN/inf or mismatched data are sklearn's ValueErrors, raised
    before any compilation (well-formed data is fitted by tests/sklearn)."""
    X, y, case = Xy
    if case in ("ok", "one"):
        return  # fitting compiles NysADMM: tests/sklearn covers it
    yy = y if est in ("Lasso", "Ridge", "ElasticNet") else (np.nan_to_num(y) > 0).astype(int)
    if case == "nan-y" and est not in ("Lasso", "Ridge", "ElasticNet"):
        return  # labels built from y: no NaN left
    kind, _ = outcome(lambda: getattr(psk, est)().fit(X, yy), "sample", "feature", "NaN",
                      "infinity", "inconsistent", "Input")
    assert kind == "error"


@budget(30)
@given(Xy=data(), max_rows=st.sampled_from([None, None, 0, 2, 2.5]))
def test_normalize(Xy, max_rows):
    """NaN/inf names its column; no rows or a mismatched y is an error; nothing non-constant
    is dropped and the output lies in [−1, 1]."""
    X, y, case = Xy
    kind, out = outcome(lambda: normalize(X, max_rows=max_rows, y=y), "X", "y", "max_rows",
                        "column")
    if case in ("empty", "short-y") or (case == "nan-x" and X.dtype.kind == "f"):
        assert kind == "error"
    if kind == "ok":
        Xs, _ = out
        Xk = np.asarray(X, np.float64)
        assert np.all(np.abs(Xs) <= 1 + 1e-12)
        if max_rows is None:
            assert Xs.shape[1] == int(np.sum(np.ptp(Xk, axis=0) > 0)) if Xk.size else True


@budget(15)
@given(case=st.sampled_from(["one-batch", "no-batch", "empty-list", "mu", "alpha", "floor",
                             "both", "neither", "no-key", "no-params"]),
       bad=st.sampled_from(POISONS + (-1.0, 0.0)))
def test_diagnose_rejects_bad_arguments_before_any_work(case, bad):
    """diagnose's argument errors name the argument and come before any compilation."""
    batches = np.random.default_rng(0).standard_normal((3, 5, D_ + 1))
    kw = dict(M_inv=np.eye(D_), key=KEY)
    args = [_loss, jnp.zeros(D_), batches]
    if case == "one-batch":
        args[2] = batches[:1]
    elif case == "no-batch":
        args[2] = batches[:0]
    elif case == "empty-list":
        args[2] = []
    elif case in ("mu", "alpha", "target_floor"):
        kw[case] = bad
    elif case == "floor":
        kw["target_floor"] = bad
    elif case == "both":
        args.append(np.eye(D_))
    elif case == "neither":
        del kw["M_inv"]
    elif case == "no-key":
        del kw["key"]
    elif case == "no-params":
        args[1] = {}
    kind, _ = outcome(lambda: D.diagnose(*args, **kw), "batches", "mu", "alpha", "target_floor",
                      "preconditioner", "M_inv", "key", "params")
    assert kind == "error"
