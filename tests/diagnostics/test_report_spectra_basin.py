"""diagnose (with duck-typed preconditioners), spectral densities, basin stability."""

import inspect
import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from precond import preconditioners as pc
from precond.curvature import minibatch_gradients
from precond.diagnostics import (
    DesignReport,
    basin_stability,
    diagnose,
    local_conditioning,
    m_distances,
    noise_level,
    plot_spectral_densities,
    spectral_densities,
)
from precond.linalg import DenseOperator, DiagonalOperator

KEY = jax.random.key(0)
B, M_, P = 4, 16, 6  # mini-batches, examples per batch, parameters


def _problem():
    """Least squares with badly scaled features: H = XᵀX/N exactly (the loss is quadratic)."""
    rng = np.random.default_rng(0)
    scales = np.geomspace(0.1, 10, P)
    X = rng.standard_normal((B, M_, P)) * scales
    y = X @ rng.standard_normal(P) + rng.standard_normal((B, M_))
    params = {"a": jnp.zeros(P - 2), "b": jnp.zeros(2)}  # ravel_pytree order: a, then b

    def loss_fn(p, batch):
        x, t = batch
        w = jnp.concatenate([p["a"], p["b"]])
        return 0.5 * jnp.mean((x @ w - t) ** 2)

    batches = (jnp.asarray(X), jnp.asarray(y))
    H = np.einsum("bmi,bmj->ij", X, X) / (B * M_)
    return loss_fn, params, batches, H


class _Jacobi:
    """A stand-in for precond.preconditioners (issue 4): init/update/inverse_operator."""

    name = "jacobi"

    def __init__(self, H):
        self.diag = jnp.asarray(np.diag(H))

    def init(self, params):
        return {"d": jnp.ones_like(self.diag)}

    def update(self, state, params, *, batch=None, key=None, grads=None):
        return {"d": self.diag}

    def inverse_operator(self, state):
        return DiagonalOperator(1.0 / state["d"])


def test_diagnose_matches_dense_references_and_roundtrips_json(tmp_path):
    loss_fn, params, batches, H = _problem()
    G = minibatch_gradients(loss_fn, params, batches)
    for kwargs, M_inv in (
        (dict(preconditioner=_Jacobi(H)), np.diag(1 / np.diag(H))),
        (dict(M_inv=DenseOperator(jnp.asarray(np.linalg.inv(H + np.eye(P))))),
         np.linalg.inv(H + np.eye(P))),
    ):
        rep = diagnose(loss_fn, params, batches, key=KEY, alpha=0.01, **kwargs)
        ev = np.linalg.eigvalsh(H)
        gev = scipy.linalg.eigh(H, np.linalg.inv(M_inv), eigvals_only=True)
        assert rep.L_hat_before == pytest.approx(ev[-1], rel=1e-8)
        assert rep.c_hat_before == pytest.approx(ev[0], rel=1e-8)
        assert rep.L_hat_after == pytest.approx(gev[-1], rel=1e-8)
        assert rep.c_hat_after == pytest.approx(gev[0], rel=1e-8)
        assert rep.K_before == pytest.approx(noise_level(G).K, rel=1e-12)
        assert rep.K_after == pytest.approx(noise_level(G, M_inv).K, rel=1e-10)
        assert rep.floor_after == pytest.approx(
            0.01 * rep.L_hat_after * rep.K_after / (2 * rep.c_hat_after))
        assert rep.reductions["kappa"] == pytest.approx(rep.kappa_before / rep.kappa_after)
        assert rep.recommended_alpha == pytest.approx(1 / rep.L_hat_after)
        assert rep.n_params == P and rep.num_batches == B
        assert rep.kappa_after < rep.kappa_before  # both preconditioners help here
        path = tmp_path / "r.json"
        rep.to_json(path)
        assert DesignReport.from_json(path) == rep
        assert DesignReport.from_json(rep.to_json()) == rep
        assert json.loads(rep.to_json())["K_after"] == rep.K_after
        text = str(rep)
        assert "κ̂" in text and "K = tr(M⁻¹Σ)" in text
        assert rep.preconditioner == ("jacobi" if "preconditioner" in kwargs else "M_inv")
    # A list of batches works like the stacked form; default α is the recommended one.
    listed = [jax.tree.map(lambda a, i=i: a[i], batches) for i in range(B)]
    rep = diagnose(loss_fn, params, listed, M_inv=np.eye(P), key=KEY)
    assert rep.alpha == rep.recommended_alpha
    assert rep.reductions["K"] == pytest.approx(1.0)


def test_diagnose_bad_inputs():
    loss_fn, params, batches, H = _problem()
    nan_batches = (batches[0].at[0, 0, 0].set(jnp.nan), batches[1])
    with pytest.raises(ValueError, match="NaN"):
        diagnose(loss_fn, params, nan_batches, M_inv=np.eye(P), key=KEY)
    with pytest.raises(ValueError, match="at least 2"):
        diagnose(loss_fn, params, [jax.tree.map(lambda a: a[0], batches)], M_inv=np.eye(P),
                 key=KEY)
    with pytest.raises(ValueError, match="at least 2"):
        diagnose(loss_fn, params, jax.tree.map(lambda a: a[:1], batches), M_inv=np.eye(P),
                 key=KEY)
    with pytest.raises(ValueError, match="either"):
        diagnose(loss_fn, params, batches, _Jacobi(H), M_inv=np.eye(P), key=KEY)
    with pytest.raises(ValueError, match="size 3"):
        diagnose(loss_fn, params, batches, M_inv=np.eye(3), key=KEY)
    with pytest.raises(ValueError, match="not positive definite"):
        diagnose(loss_fn, params, batches, M_inv=np.diag([1.0] * (P - 1) + [-1.0]), key=KEY)
    with pytest.raises(TypeError, match="inverse_operator"):
        diagnose(loss_fn, params, batches, preconditioner=3, key=KEY)
    with pytest.raises(ValueError, match="fields"):
        DesignReport.from_dict({"bogus": 1})


def test_spectral_densities_cluster_under_exact_preconditioner(tmp_path):
    rng = np.random.default_rng(1)
    n = 20
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    lam = np.geomspace(1e-2, 1e2, n)
    H = (Q * lam) @ Q.T
    M_inv = (Q / lam) @ Q.T  # M = H: M⁻¹H = I
    kw = dict(num_probes=2, num_steps=10)  # same settings below, so the plot reuses compiles
    dH, dP = spectral_densities(H, DenseOperator(M_inv), KEY, **kw)
    assert dH.log and dP.log
    assert abs(dH.integral() - 1) < 0.05 and abs(dP.integral() - 1) < 0.05
    # All mass of M⁻¹H sits at log10(1) = 0; H's spreads over four decades.
    assert float(jnp.max(jnp.abs(dP.nodes - 1.0))) < 1e-8
    assert float(dH.grid[-1] - dH.grid[0]) > 3.5
    fig = plot_spectral_densities(H, DenseOperator(np.diag(1 / np.diag(H))), KEY,
                                  path=tmp_path / "s.png", **kw)
    assert (tmp_path / "s.png").stat().st_size > 1000
    assert len(fig.axes[0].lines) == 2
    with pytest.raises(ValueError, match="square root"):
        from precond.linalg import from_matvec
        spectral_densities(H, from_matvec(lambda v: v, size=n), KEY)


def test_basin_stability_counts_and_intervals():
    d = np.array([[0.1, 0.2, 0.3], [0.1, 0.9, 0.2], [0.5, 0.5, 2.0], [0.1, np.nan, 0.1]])
    r = basin_stability(d, 1.0)
    assert (r.stayed, r.runs, r.horizon) == (2, 4, 3) and r.fraction == 0.5  # NaN = left
    assert r.low < 0.5 < r.high
    r2 = basin_stability(d, 1.0, horizon=2)
    assert r2.stayed == 3
    cp = basin_stability(d, 1.0, method="clopper-pearson")
    assert cp.low <= r.low and cp.high >= r.high  # Clopper–Pearson is the conservative one
    big = basin_stability(np.zeros((400, 2)), 1.0)
    assert big.fraction == 1 and big.low > 0.99
    for bad in (lambda: basin_stability(d, -1.0), lambda: basin_stability(d, 1.0, horizon=9),
                lambda: basin_stability(d[0], 1.0), lambda: basin_stability(d, 1.0, method="x"),
                lambda: basin_stability(d, 1.0, confidence=1.5)):
        with pytest.raises(ValueError):
            bad()


def test_m_distances():
    W = jnp.asarray(np.random.default_rng(2).standard_normal((3, 4, 2)))
    w_star = jnp.asarray([1.0, -1.0])
    M = np.array([[2.0, 0.5], [0.5, 1.0]])
    D = np.asarray(W - w_star)
    ref = np.sqrt(np.einsum("rti,ij,rtj->rt", D, M, D))
    np.testing.assert_allclose(m_distances(W, w_star, M), ref, rtol=1e-12)
    np.testing.assert_allclose(m_distances(W, w_star), np.linalg.norm(D, axis=-1), rtol=1e-12)
    with pytest.raises(ValueError, match="w_star"):
        m_distances(W, jnp.zeros(3))
    with pytest.raises(ValueError, match="positive semi-definite"):
        m_distances(W, w_star, -np.eye(2))


def test_local_conditioning_on_report_curvature_is_consistent():
    loss_fn, params, batches, H = _problem()
    c = local_conditioning(H, None, KEY)
    assert c.kappa == pytest.approx(np.linalg.cond(H), rel=1e-8)


def _model(p, x):
    return x @ jnp.concatenate([p["a"], p["b"]])


# Every preconditioner factory of precond.preconditioners, on _problem's least squares
# (loss_fn = mse of _model).  Keyword values keep each one small and quick.
_FACTORIES = {
    "identity": lambda loss: pc.identity(),
    "jacobi": lambda loss: pc.jacobi(loss, num_samples=4),
    "adagrad": lambda loss: pc.adagrad(),
    "rmsprop": lambda loss: pc.rmsprop(),
    "adam": lambda loss: pc.adam(),
    "spectral": lambda loss: pc.spectral(rank=2, loss_fn=loss, num_steps=P),
    "nystrom": lambda loss: pc.nystrom(rank=P, loss_fn=loss, damping=1e-2),
    "lbfgs": lambda loss: pc.lbfgs(memory_size=3),
    "cg_hessian": lambda loss: pc.cg_hessian(loss, damping=1e-2, maxiter=P),
    "cg_ggn": lambda loss: pc.cg_ggn(_model, "mse", damping=1e-2, maxiter=P),
    "sophia": lambda loss: pc.sophia(loss, update_interval=1),
}
_HELPERS = {"hutchinson_diagonal", "two_loop", "spectral_factors", "hessian_linear_map",
            "ggn_linear_map"}
# Diagnosed on the networks they are made for, in their own tests:
# test_kfac.py (train mode) and test_shampoo.py::test_diagnose_accepts_shampoo.
_DIAGNOSED_ELSEWHERE = {"kfac", "shampoo"}


def test_every_preconditioner_factory_is_covered():
    factories = {name for name, obj in vars(pc).items()
                 if inspect.isfunction(obj) and not name.startswith("_")} - _HELPERS
    assert factories == set(_FACTORIES) | _DIAGNOSED_ELSEWHERE


@pytest.mark.parametrize("name", list(_FACTORIES))
def test_diagnose_accepts_every_preconditioner(name):
    loss_fn, params, batches, H = _problem()
    prec = _FACTORIES[name](loss_fn)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a convex problem: no proxy, no cap reached …
        if name == "lbfgs":  # … but a matvec-only M⁻¹ takes power iterations, and ĉ of this
            # κ ≈ 10⁴ problem converges slowly: the warning says so, L̂ is still accurate.
            warnings.simplefilter("ignore", RuntimeWarning)
        rep = diagnose(loss_fn, params, batches, prec, key=KEY)
    assert rep.preconditioner == prec.name and rep.n_params == P and rep.num_batches == B
    values = [rep.L_hat_after, rep.c_hat_after, rep.K_after, rep.floor_after]
    assert all(np.isfinite(values)) and rep.L_hat_after > 0 and rep.K_after > 0
    if name in ("identity", "lbfgs"):  # L-BFGS: no curvature pair at a single point, M = I
        assert rep.L_hat_after == pytest.approx(rep.L_hat_before, rel=1e-8)
        assert rep.K_after == pytest.approx(rep.K_before, rel=1e-8)
    if name in ("jacobi", "adagrad", "adam", "nystrom", "cg_hessian", "cg_ggn"):
        assert rep.kappa_after < rep.kappa_before / 10, (rep.kappa_before, rep.kappa_after)
