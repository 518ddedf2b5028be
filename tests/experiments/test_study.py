"""Seed 002 studies: Adam's second moments on a diagonal quadratic, the z-space regularized
Hessians and updates against dense formulas / jax.hessian, κ helpers, and each study end to end
at a tiny size."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from precond.cli import main as cli_main
from precond.experiments.study import common, diagonal, kronecker, normalization, regularization

# --------------------------------------------------------------- mechanism 1 on a quadratic
_OPTS = {"adam": optax.adam(1e-3), "rmsprop": optax.rmsprop(1e-3),
         "adagrad": optax.adagrad(1e-3)}


def _fifteen_steps(opt):
    def run(h):
        params = {"w": jnp.ones(h.shape[0])}

        def step(carry, _):
            p, s = carry
            u, s = opt.update({"w": h * p["w"]}, s, p)  # ∇ ½ Σ h_i p_i²
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(step, (params, opt.init(params)), None, length=15)[0]

    return jax.jit(run)


_RUNS = {k: _fifteen_steps(o) for k, o in _OPTS.items()}


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_adam_second_moment_orders_like_inverse_hessian_diagonal(seed):
    """f(p) = ½ Σ h_i p_i², p₀ = 1: larger curvature h_i → larger v_i → smaller step 1/D_i, i.e.
    1/D orders the coordinates exactly like diag(H⁻¹) = 1/h."""
    h = 10.0 ** np.random.default_rng(seed).uniform(-2, 2, 12)
    for kind, run in _RUNS.items():
        params, state = run(jnp.asarray(h))
        D = common.preconditioner_diagonal(kind, state, params)
        np.testing.assert_array_equal(np.argsort(1.0 / D), np.argsort(1.0 / h), err_msg=kind)


def test_adam_diagonal_matches_optax_step():
    """The D read from the state is the divisor optax used: with b1 = 0 the update is −α g / D."""
    g = {"w": jnp.array([3.0, -0.5, 1e-3])}
    opt = optax.adam(0.1, b1=0.0)
    state = opt.init({"w": jnp.zeros(3)})
    u, state = opt.update(g, state)
    D = common.preconditioner_diagonal("adam", state, g)
    np.testing.assert_allclose(np.asarray(u["w"]), -0.1 * np.asarray(g["w"]) / D, rtol=1e-12)


# --------------------------------------------------------------- mechanism 2
def _spd(rng, n):
    A = rng.standard_normal((n, n))
    return A @ A.T / n + 1e-3 * np.eye(n)


def test_regularized_hessians_equal_dense_formulas_and_jax_hessian():
    rng = np.random.default_rng(0)
    n, lam = 7, 0.3
    H = _spd(rng, n)
    d = 10.0 ** rng.uniform(-3, 1, n)
    A_w, A_l2 = common.regularized_hessians(H, d, lam)
    P = np.diag(d ** -0.5)
    np.testing.assert_allclose(A_w, P.T @ H @ P + lam * np.eye(n), rtol=1e-12)
    np.testing.assert_allclose(A_l2, P.T @ H @ P + lam * P.T @ P, rtol=1e-12)
    # ... and they are the z-Hessians of L(Pz) + (λ/2)‖z‖² and of L(Pz) + (λ/2)‖Pz‖².
    L = lambda p: 0.5 * p @ jnp.asarray(H) @ p + jnp.sin(p[0])  # noqa: E731
    z0 = jnp.asarray(rng.standard_normal(n))
    Pj = jnp.asarray(P)
    Hz = np.asarray(jax.hessian(lambda z: L(Pj @ z) + 0.5 * lam * z @ z)(z0))
    Hp = np.asarray(jax.hessian(lambda z: L(Pj @ z) + 0.5 * lam * (Pj @ z) @ (Pj @ z))(z0))
    curv = np.asarray(jax.hessian(L)(Pj @ z0))
    A_w2, A_l22 = common.regularized_hessians(curv, d, lam)
    np.testing.assert_allclose(Hz, A_w2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(Hp, A_l22, rtol=1e-10, atol=1e-12)


def test_adamw_step_is_l2_step_on_intrinsic_parameters():
    """b1 = 0: optax.adamw's step p ← p − α(D⁻¹g + λp) equals P(z − α(Pᵀg + λz)), z = P⁻¹p."""
    rng = np.random.default_rng(1)
    p = jnp.asarray(rng.standard_normal(5))
    g = jnp.asarray(rng.standard_normal(5))
    lr, lam = 0.05, 0.2
    opt = optax.adamw(lr, b1=0.0, weight_decay=lam)
    u, state = opt.update({"w": g}, opt.init({"w": p}), {"w": p})
    D = common.preconditioner_diagonal("adamw", state, {"w": p})
    P = D ** -0.5
    z = np.asarray(p) / P
    expected = P * (z - lr * (P * np.asarray(g) + lam * z))
    np.testing.assert_allclose(np.asarray(p + u["w"]), expected, rtol=1e-12)


def test_l1_intrinsic_step_is_l1_subgradient_step_on_z():
    rng = np.random.default_rng(2)
    p = jnp.asarray(rng.standard_normal(6))
    g = jnp.asarray(rng.standard_normal(6))
    lr, l1 = 0.05, 0.1
    opt = regularization.adam_l1_intrinsic(lr, l1, b1=0.0)
    u, state = opt.update({"w": g}, opt.init({"w": p}), {"w": p})
    D = common.preconditioner_diagonal("adam", state, {"w": p})
    P = D ** -0.5
    z = np.asarray(p) / P
    expected = P * (z - lr * (P * np.asarray(g) + l1 * np.sign(z)))
    np.testing.assert_allclose(np.asarray(p + u["w"]), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="l1"):
        regularization.adam_l1_intrinsic(lr, -1.0)


# --------------------------------------------------------------- helpers
def test_kappas_match_dense_eigenvalues_of_D_inv_A():
    rng = np.random.default_rng(3)
    n, delta = 9, 1e-3
    B = rng.standard_normal((n, 4))
    G = B @ B.T  # rank 4
    d = 10.0 ** rng.uniform(-2, 2, n)
    k = common.kappas(G, d, delta, rank=4)
    ev = np.sort(np.linalg.eigvals(np.diag(1 / d) @ (G + delta * np.eye(n))).real)
    assert k.kappa_damped == pytest.approx(ev[-1] / ev[0], rel=1e-8)
    ev0 = np.sort(np.linalg.eigvals(np.diag(1 / d) @ G).real)[::-1][:4]
    assert k.kappa_plus == pytest.approx(ev0[0] / ev0[-1], rel=1e-6)
    assert common.numerical_rank(G) == 4


def test_dense_ggn_equals_hessian_for_a_linear_model():
    """Without hidden layers the model is linear in its parameters, so GGN = Hessian of the CE."""
    rng = np.random.default_rng(4)
    X = jnp.asarray(rng.standard_normal((20, 3)))
    y = jnp.asarray(rng.integers(0, 4, 20))
    params = common.init_mlp(jax.random.key(0), (3, 4))
    flat, unravel = ravel_pytree(params)
    H = jax.hessian(lambda f: common.cross_entropy(common.mlp_apply(unravel(f), X), y))(flat)
    np.testing.assert_allclose(common.dense_ggn(params, X, y), np.asarray(H), atol=1e-12)


def test_bad_arguments():
    with pytest.raises(ValueError, match="dataset"):
        common.load_data("cifar")
    with pytest.raises(ValueError, match="norm"):
        common.init_mlp(jax.random.key(0), (3, 2), norm="group")
    with pytest.raises(ValueError, match="sizes"):
        common.init_mlp(jax.random.key(0), (3,))
    with pytest.raises(ValueError, match="kind"):
        common.preconditioner_diagonal("sgd", None, None)


def test_normalized_layers_standardize_hidden_variables():
    X = jnp.asarray(np.random.default_rng(5).standard_normal((30, 4)) * 5 + 3)
    for norm, axis in (("batch", 0), ("layer", 1)):
        params = common.init_mlp(jax.random.key(1), (4, 6, 2), norm)
        H = common.hidden_inputs(params, X, norm)[1]
        np.testing.assert_allclose(H.mean(axis=axis), 0.0, atol=1e-10)


# --------------------------------------------------------------- end to end (tiny)
@pytest.mark.parametrize("mod", [diagonal, regularization, normalization],
                         ids=["diagonal", "regularization", "normalization"])
def test_study_end_to_end_tiny(mod, tmp_path):
    payload = mod.run(tmp_path, mod.config(False, tiny=True))
    name = payload["study"]
    assert (tmp_path / "report.md").read_text().startswith(f"# Study `{name}`")
    data = json.loads((tmp_path / f"{name}.json").read_text())
    assert data["study"] == name
    pngs = list(tmp_path.glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)
    if name == "diagonal":
        for r in data["results"].values():
            c = r["checkpoints"][0]
            assert c["kappa_plus"]["none"] >= 1 and c["best_plus"] <= c["kappa_plus"]["opt"]
    elif name == "regularization":
        assert set(data["l1"]) == {"adam-l1-intrinsic"}
        for r in data["l2"].values():
            c = r["checkpoints"][0]
            assert c["kappa_adamw_form"] >= 1 and c["kappa_l2_form"] >= 1
    else:
        assert set(data["results"]) == {"none", "batch", "layer"}


def test_cli_study_registered(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(["study", "nosuch", "--out", str(tmp_path)])
    assert "invalid choice" in capsys.readouterr().err


# --------------------------------------------------------------- study kronecker
def test_muon_polar_gain_reproduces_newton_schulz():
    """m·R (a ≥ b) and L·m (a < b) equal optax's Frobenius-normalized quintic Newton–Schulz
    iteration X ← c₀X + c₁(XXᵀ)X + c₂(XXᵀ)²X, applied to the matrix itself."""
    rng = np.random.default_rng(6)
    c = (3.4445, -4.775, 2.0315)
    for shape in ((7, 4), (3, 5)):
        m = rng.standard_normal(shape)
        X = m / (np.linalg.norm(m) + 1e-8)
        for _ in range(5):
            A = X @ X.T
            X = c[0] * X + (c[1] * A + c[2] * A @ A) @ X
        R = kronecker.muon_polar_gain(m, c)
        got = m @ R if shape[0] >= shape[1] else R @ m
        np.testing.assert_allclose(got, X, rtol=1e-10, atol=1e-12)
        assert np.all(np.linalg.eigvalsh(R) > 0)


def test_kronecker_measure_matches_study_diagonal():
    """For a diagonal M, κ_δ (Lanczos in the M-geometry) and κ_+ equal study diagonal's dense
    numbers, and K = tr(M⁻¹Σ) the dense trace.  (Kronecker M⁻¹ are densified first; their
    own correctness is tested with the preconditioners.)"""
    from precond.linalg import DiagonalOperator

    n = 85  # the size of the tiny study below, so both share the compiled programs
    rng = np.random.default_rng(7)
    B = rng.standard_normal((n, 5))
    G, delta = B @ B.T, 1e-3
    grads = jnp.asarray(rng.standard_normal((4, n)))
    d = 10.0 ** rng.uniform(-1, 1, n)
    m = kronecker.measure(G, DiagonalOperator(jnp.asarray(1 / d)), grads, delta, 1e-9,
                          jax.random.key(0))
    k = common.kappas(G, d, delta, rank=5)
    assert m["kappa_damped"] == pytest.approx(k.kappa_damped, rel=1e-8)
    assert m["kappa_plus"] == pytest.approx(k.kappa_plus, rel=1e-8)
    Sigma = np.cov(np.asarray(grads).T)
    np.testing.assert_allclose(m["K"], np.sum(Sigma.diagonal() / d), rtol=1e-8)


def test_kronecker_study_tiny(tmp_path):
    """A tiny end-to-end run (SGD only, to stay cheap; the M⁻¹ paths are tested above):
    report, JSON and plots written, κ and K measured."""
    cfg = kronecker.config(False, tiny=True)
    cfg.update(methods=("sgd",), hidden=(1,), n_curv=20, n_noise=4)  # n = 85
    payload = kronecker.run(tmp_path, cfg)
    data = json.loads((tmp_path / "kronecker.json").read_text())
    assert set(data["results"]) == {"sgd"} and not data["skipped"]
    c = data["results"]["sgd"]["checkpoints"][0]
    for k in ("plain", "precond"):
        assert min(c[k]["kappa_damped"], c[k]["kappa_plus"]) >= 1 and c[k]["K"] > 0
    assert "Conclusion" in (tmp_path / "report.md").read_text()
    assert payload["study"] == "kronecker"
    assert all(p.stat().st_size > 1000 for p in tmp_path.glob("*.png"))
    with pytest.raises(ValueError, match="methods"):
        kronecker.methods(("lbfgs",), {}, jax.random.key(0))
