"""Preconditioners against dense numpy references with planted spectra and solutions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from precond import preconditioners as pc
from precond.linalg import Status, to_dense


def _quad(H):
    """loss(w, b) = ½ wᵀHw − bᵀw with params {"w": w}; its Hessian is H."""
    H = jnp.asarray(H)
    return lambda p, b: 0.5 * p["w"] @ (H @ p["w"]) - b @ p["w"]


def _spd(n, key, lo=1e-2, hi=1e2):
    Q, _ = np.linalg.qr(np.asarray(jax.random.normal(key, (n, n))))
    lam = np.logspace(np.log10(lo), np.log10(hi), n)
    return Q @ np.diag(lam) @ Q.T, lam, Q


def _run(p, params, g, *, batch=None, key=None):
    """init → update → solve under one jit (eager calls would recompile each inner solver)."""
    @jax.jit
    def run(params, g, batch, key):
        s = p.update(p.init(params), params, batch=batch, key=key)
        return p.solve(s, g), s

    return run(params, g, batch, key)


def _update(p, s, params, **kw):
    return jax.jit(lambda s, params, kw: p.update(s, params, **kw))(s, params, kw)


def test_identity():
    p = pc.identity()
    params = {"a": jnp.ones(3), "b": jnp.ones((2, 2))}
    g = jax.tree.map(lambda x: 2 * x, params)
    out, s = _run(p, params, g)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), out, g))
    np.testing.assert_array_equal(to_dense(p.inverse_operator(s)), np.eye(7))


def test_adagrad_rmsprop_adam_match_formulas():
    params = {"w": jnp.zeros(4)}
    gs = [jnp.array([1.0, -2.0, 0.5, 3.0]), jnp.array([0.5, 1.0, -1.0, 0.0])]
    eps = 1e-3
    for name, p, ref in [
        ("adagrad", pc.adagrad(eps=eps), lambda G: np.sqrt((G**2).sum(0)) + eps),
        ("rmsprop", pc.rmsprop(decay=0.9, eps=eps),
         lambda G: np.sqrt(0.9 * 0.1 * G[0] ** 2 + 0.1 * G[1] ** 2) + eps),
        ("adam", pc.adam(b2=0.99, eps=eps),
         lambda G: np.sqrt((0.99 * 0.01 * G[0] ** 2 + 0.01 * G[1] ** 2) / (1 - 0.99**2)) + eps),
    ]:
        s = p.init(params)
        for g in gs:
            s = p.update(s, params, grads={"w": g})
        m = ref(np.stack([np.asarray(g) for g in gs]))
        np.testing.assert_allclose(p.solve(s, {"w": jnp.ones(4)})["w"], 1 / m, rtol=1e-12,
                                   err_msg=name)
        np.testing.assert_allclose(np.diag(to_dense(p.inverse_operator(s))), 1 / m, rtol=1e-12)


def test_gradient_statistics_need_grads():
    p = pc.adagrad()
    with pytest.raises(TypeError, match="grads"):
        p.update(p.init({"w": jnp.zeros(2)}), {"w": jnp.zeros(2)})
    with pytest.raises(ValueError, match="decay"):
        pc.rmsprop(decay=1.0)


def test_jacobi_hutchinson_diagonal():
    n = 6
    D = np.diag(np.arange(1.0, n + 1))
    params, b = {"w": jnp.ones(n)}, jnp.zeros(n)
    p = pc.jacobi(_quad(D), num_samples=4, damping=1e-12)
    out, _ = _run(p, params, {"w": jnp.ones(n)}, batch=b, key=jax.random.key(0))
    # z ⊙ Dz = diag(D) exactly for Rademacher z when D is diagonal.
    np.testing.assert_allclose(out["w"], 1 / np.diag(D), rtol=1e-10)
    # Dense, diagonally dominant H: the estimate converges like 1/√s.
    H = D + 0.1 * np.ones((n, n))
    est = pc.hutchinson_diagonal(_quad(H), params, b, jax.random.key(1), 4000)
    np.testing.assert_allclose(est, np.diag(H), atol=0.05)


def test_diagonal_preconditioners_reduce_condition_number():
    """Seed 002: on least squares with badly scaled features, AdaGrad/RMSProp/Adam/Jacobi
    diagonals make M⁻¹H far better conditioned than H."""
    key = jax.random.key(0)
    kx, kw, kg = jax.random.split(key, 3)
    N, n = 200, 12
    scales = np.logspace(-2, 2, n)
    X = np.asarray(jax.random.normal(kx, (N, n))) * scales
    H = X.T @ X / N
    loss = lambda p, b: 0.5 * jnp.mean((b[0] @ p["w"] - b[1]) ** 2)  # noqa: E731
    w_star = np.asarray(jax.random.normal(kw, (n,)))
    batch = (jnp.asarray(X), jnp.asarray(X @ w_star))
    params = {"w": jnp.zeros(n)}
    # Gradient statistics at random points around w*: E g gᵀ ∝ H², so √E g² ∝ row norms of H.
    ws = np.asarray(jax.random.normal(kg, (30, n))) + w_star
    G = jax.vmap(lambda w: jax.grad(loss)({"w": w}, batch)["w"])(jnp.asarray(ws))
    try:
        from precond.diagnostics import local_conditioning
    except ImportError:  # pragma: no cover - diagnostics not installed
        local_conditioning = None

    def kappa(Minv):  # dense κ(D^{1/2} H D^{1/2}), D = M⁻¹ diagonal
        d = np.diag(to_dense(Minv))
        ev = np.linalg.eigvalsh(np.sqrt(d)[:, None] * H * np.sqrt(d)[None, :])
        return ev[-1] / ev[0]

    k0 = np.linalg.cond(H)
    assert k0 > 1e6
    kappas = {}
    for p in [pc.adagrad(eps=0.0), pc.rmsprop(decay=0.9, eps=0.0), pc.adam(eps=0.0)]:
        def accumulate(s, g, p=p):
            return p.update(s, params, grads={"w": g}), None

        s = jax.jit(lambda G, p=p, acc=accumulate: jax.lax.scan(acc, p.init(params), G)[0])(G)
        kappas[p.name] = (p.inverse_operator(s), kappa(p.inverse_operator(s)))
    pj = pc.jacobi(loss, num_samples=64, damping=1e-12)
    _, s = _run(pj, params, params, batch=batch, key=jax.random.key(5))
    kappas["jacobi"] = (pj.inverse_operator(s), kappa(pj.inverse_operator(s)))
    for name, (_, k1) in kappas.items():
        assert k1 < k0 / 1e3, (name, k0, k1)
    if local_conditioning is not None:  # the diagnostics agree with the dense numbers
        Minv, k1 = kappas["adagrad"]
        c = local_conditioning(H, Minv, jax.random.key(3))
        assert c.kappa == pytest.approx(k1, rel=1e-6)


@pytest.mark.parametrize("n, k, which", [(12, 3, "top"), (10, 2, "bottom")])
def test_spectral_moves_eigenvalues_to_targets(n, k, which):
    H, lam, _ = _spd(n, jax.random.key(n + k))
    params, b = {"w": jnp.zeros(n)}, jnp.zeros(n)
    p = pc.spectral(rank=k, loss_fn=_quad(H), which=which, num_steps=n, update_every=1)
    _, s = _run(p, params, params, batch=b, key=jax.random.key(1))
    Minv = np.asarray(to_dense(p.inverse_operator(s)))
    ev = np.sort(np.linalg.eigvals(Minv @ H).real)
    if which == "top":  # top k moved down to λ_{k+1}
        expect = np.sort(np.concatenate([lam[: n - k], np.full(k, lam[n - k - 1])]))
    else:  # bottom k moved to 1
        expect = np.sort(np.concatenate([lam[k:], np.ones(k)]))
    np.testing.assert_allclose(ev, expect, rtol=1e-6)


def test_spectral_explicit_target_and_bad_args():
    n = 10
    H, lam, _ = _spd(n, jax.random.key(0))
    params = {"w": jnp.zeros(n)}
    p = pc.spectral(rank=2, loss_fn=_quad(H), target=5.0, num_steps=n)
    _, s = _run(p, params, params, batch=jnp.zeros(n), key=jax.random.key(1))
    ev = np.sort(np.linalg.eigvals(np.asarray(to_dense(p.inverse_operator(s))) @ H).real)
    np.testing.assert_allclose(ev, np.sort(np.concatenate([lam[:-2], [5.0, 5.0]])), rtol=1e-6)
    with pytest.raises(ValueError, match="which"):
        pc.spectral(rank=2, loss_fn=_quad(H), which="middle")
    with pytest.raises(ValueError, match="loss_fn"):
        pc.spectral(rank=2)
    with pytest.raises(ValueError, match="num_steps"):
        pc.spectral(rank=4, loss_fn=_quad(H), num_steps=3).init(params)
    with pytest.raises(TypeError, match="key"):
        p.update(p.init(params), params, batch=jnp.zeros(n))


def test_nystrom_full_rank_is_damped_inverse_and_lazy():
    n, rho = 8, 0.1
    H, _, _ = _spd(n, jax.random.key(2))
    params, b = {"w": jnp.zeros(n)}, jnp.zeros(n)
    p = pc.nystrom(rank=n, loss_fn=_quad(H), damping=rho, update_every=3)
    _, s = _run(p, params, params, batch=b, key=jax.random.key(0))
    np.testing.assert_allclose(to_dense(p.inverse_operator(s)), np.linalg.inv(H + rho * np.eye(n)),
                               rtol=1e-6, atol=1e-8)
    # Lazy: steps 1, 2 keep the sketch even on another curvature; step 3 refreshes it.
    p2 = pc.nystrom(rank=n, loss_fn=lambda q, bb: 2.0 * _quad(H)(q, bb), damping=rho,
                    update_every=3)
    upd = jax.jit(lambda s, k: p2.update(s, params, batch=b, key=k))
    s1 = upd(s, jax.random.key(1))
    np.testing.assert_array_equal(s1.U, s.U)
    s2 = upd(upd(s1, jax.random.key(2)), jax.random.key(3))
    np.testing.assert_allclose(np.sort(s2.eigenvalues), np.sort(2 * np.linalg.eigvalsh(H)),
                               rtol=1e-6)
    with pytest.raises(ValueError, match="damping"):
        pc.nystrom(rank=2, loss_fn=_quad(H), damping=0.0)


def test_nystrom_relative_damping_is_the_smallest_retained_eigenvalue():
    # damping=None: ρ = λ̂_r at each refresh, so M⁻¹H does not change when the loss is scaled;
    # floored at 10⁻⁴λ̂₁ when the sketch is rank-deficient; identity before the first sketch.
    n = 8
    H, lam, _ = _spd(n, jax.random.key(2))
    params, b = {"w": jnp.zeros(n)}, jnp.zeros(n)
    p = pc.nystrom(rank=n, loss_fn=_quad(H), damping=None)
    np.testing.assert_allclose(to_dense(p.inverse_operator(p.init(params))), np.eye(n))
    _, s = _run(p, params, params, batch=b, key=jax.random.key(0))
    rho = np.min(lam)  # full rank: the sketch is exact, λ̂_r = λ_min
    np.testing.assert_allclose(to_dense(p.inverse_operator(s)),
                               np.linalg.inv(H + rho * np.eye(n)), rtol=1e-6, atol=1e-8)
    big = pc.nystrom(rank=n, loss_fn=lambda q, bb: 1e3 * _quad(H)(q, bb), damping=None)
    _, s_big = _run(big, params, params, batch=b, key=jax.random.key(0))
    np.testing.assert_allclose(1e3 * to_dense(big.inverse_operator(s_big)),
                               to_dense(p.inverse_operator(s)), rtol=1e-6)
    V = np.linalg.qr(np.asarray(jax.random.normal(jax.random.key(5), (n, 2))))[0]
    H2 = V @ np.diag([4.0, 1.0]) @ V.T  # rank 2, sketched at rank 4: λ̂₃ = λ̂₄ = 0
    low = pc.nystrom(rank=4, loss_fn=_quad(H2), damping=None)
    _, s_low = _run(low, params, params, batch=b, key=jax.random.key(0))
    ev = np.linalg.eigvalsh(np.asarray(to_dense(low.inverse_operator(s_low))))
    np.testing.assert_allclose(ev.max(), 1 / (1e-4 * 4.0), rtol=1e-6)


def _mlp(p, x):
    return jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"]


def test_cg_ggn_matches_dense_ggn_solve():
    from precond.curvature import ggn_operator

    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(k1, (20, 3))
    y = jax.random.normal(k2, (20, 2))
    params = {"W1": jax.random.normal(k3, (3, 4)), "b1": jnp.zeros(4), "W2": jnp.ones((4, 2))}
    n, lam = 3 * 4 + 4 + 8, 1e-2
    G = np.asarray(to_dense(ggn_operator(_mlp, "mse", params, (x, y))))
    g = jax.tree.map(lambda a: jnp.ones_like(a), params)
    p = pc.cg_ggn(_mlp, "mse", damping=lam, maxiter=4 * n)
    out, s = _run(p, params, g, batch=(x, y))
    flat = jax.flatten_util.ravel_pytree(out)[0]
    np.testing.assert_allclose(flat, np.linalg.solve(G + lam * np.eye(n), np.ones(n)), rtol=1e-6)
    assert p.release(s).batch is None
    # The state structure after release equals init's (needed by scan/jit).
    assert jax.tree.structure(p.release(s)) == jax.tree.structure(p.init(params))


def test_cg_hessian_convex_matches_newton_and_warm_start():
    n = 10
    H, _, _ = _spd(n, jax.random.key(4), 1.0, 10.0)
    params, b = {"w": jnp.zeros(n)}, jnp.zeros(n)
    g = {"w": jnp.arange(1.0, n + 1)}
    p = pc.cg_hessian(_quad(H), damping=1e-3, maxiter=n + 5)
    out, _ = _run(p, params, g, batch=b)
    np.testing.assert_allclose(out["w"], np.linalg.solve(H + 1e-3 * np.eye(n), g["w"]),
                               rtol=1e-8)
    # Warm start: with 2 iterations per solve, the second solve of the same system starts
    # from the first answer and gets closer.
    exact = np.linalg.solve(H + 1e-3 * np.eye(n), g["w"])
    pw = pc.cg_hessian(_quad(H), damping=1e-3, maxiter=2, warm_start=True)
    step = jax.jit(lambda s: pw.release(pw.solve_and_update(pw.update(s, params, batch=b), g)[1]))
    s = step(pw.init(params))
    d1 = s.x0
    s = step(s)
    d2 = s.x0
    assert np.linalg.norm(d2 - exact) < 0.5 * np.linalg.norm(d1 - exact)
    assert int(s.iterations) == 2


def test_cg_hessian_negative_curvature():
    """Truncated Newton-CG: stop at negative curvature, keep the last iterate, or fall back to
    the gradient when it is met before the first iterate."""
    H = np.diag([-1.0, 2.0, 3.0])
    params, b = {"w": jnp.zeros(3)}, jnp.zeros(3)
    p = pc.cg_hessian(_quad(H), damping=0.5, maxiter=10)
    s = p.update(p.init(params), params, batch=b)
    solve = jax.jit(lambda g: p.solve_and_update(s, g))
    g = {"w": jnp.array([1.0, 0.0, 0.0])}  # pᵀ(H + λI)p = −0.5 at the first direction
    d, s1 = solve(g)
    assert int(s1.status) == Status.NEGATIVE_CURVATURE and int(s1.iterations) == 0
    np.testing.assert_allclose(d["w"], g["w"])  # gradient fallback
    g = {"w": jnp.array([0.1, 1.0, 1.0])}  # positive curvature first, negative later
    d, s2 = solve(g)
    assert int(s2.status) == Status.NEGATIVE_CURVATURE and int(s2.iterations) >= 1
    assert bool(jnp.all(jnp.isfinite(d["w"])))
    assert float(d["w"] @ g["w"]) > 0  # still a descent direction for −d


@pytest.mark.parametrize("damping", [0.0, -1e-3, float("nan")])
def test_cg_hessian_rejects_nonpositive_damping(damping):
    with pytest.raises(ValueError, match="damping"):
        pc.cg_hessian(_quad(np.diag([-1.0, 1.0])), damping=damping)


def test_cg_bad_args():
    with pytest.raises(ValueError, match="maxiter"):
        pc.cg_ggn(_mlp, "mse", maxiter=0)
    with pytest.raises(ValueError, match="damping"):
        pc.cg_ggn(_mlp, "mse", damping=-1.0)
    with pytest.raises(ValueError, match="unknown output loss"):
        pc.cg_ggn(_mlp, "hinge")
    p = pc.cg_ggn(_mlp, "mse")
    with pytest.raises(TypeError, match="batch"):
        p.update(p.init({"w": jnp.zeros(2)}), {"w": jnp.zeros(2)})


def test_lbfgs_secant_and_spd():
    n = 6
    H, _, _ = _spd(n, jax.random.key(7), 0.5, 5.0)
    p = pc.lbfgs(memory_size=3)
    s = p.init({"w": jnp.zeros(n)})
    no_pairs = p.solve(s, {"w": jnp.ones(n)})["w"]
    np.testing.assert_allclose(no_pairs, np.ones(n))  # M = I before any pair
    ws = np.asarray(jax.random.normal(jax.random.key(8), (5, n)))
    upd = jax.jit(lambda s, w, g: p.update(s, {"w": w}, grads={"w": g}))
    for w in ws:
        s = upd(s, jnp.asarray(w), jnp.asarray(H @ w))
    assert int(s.valid.sum()) == 3
    s_new, y_new = ws[-1] - ws[-2], H @ (ws[-1] - ws[-2])
    Minv = np.asarray(jax.jit(lambda s: to_dense(p.inverse_operator(s)))(s))
    np.testing.assert_allclose(Minv @ y_new, s_new, rtol=1e-8)
    np.testing.assert_allclose(Minv, Minv.T, atol=1e-10)
    assert np.linalg.eigvalsh(0.5 * (Minv + Minv.T)).min() > 0
    # A pair violating sᵀy > 0 is skipped.
    s2 = upd(s, jnp.asarray(ws[-1] + 1.0), jnp.asarray(H @ ws[-1]) - 1.0)
    np.testing.assert_array_equal(s2.S, s.S)


def _all_preconditioners(loss, model_fn, n):
    return [pc.identity(), pc.jacobi(loss, num_samples=2), pc.adagrad(), pc.rmsprop(),
            pc.adam(), pc.spectral(rank=1, loss_fn=loss, num_steps=n),
            pc.nystrom(rank=2, loss_fn=loss), pc.lbfgs(memory_size=2),
            pc.cg_hessian(loss, maxiter=3), pc.cg_ggn(model_fn, "mse", maxiter=3)]


def test_one_protocol_for_every_preconditioner():
    # init → update (all three keywords, each ignoring what it does not use) → apply →
    # apply_and_update → inverse_operator → release, under one jit; apply is solve.
    n = 4
    X = jnp.asarray(np.random.default_rng(0).standard_normal((8, n)))
    batch = (X, jnp.ones(8))
    model_fn = lambda p, x: x @ p["w"]  # noqa: E731
    loss = lambda p, b: 0.5 * jnp.mean((model_fn(p, b[0]) - b[1]) ** 2)  # noqa: E731
    params = {"w": jnp.full(n, 0.1)}
    g = jax.grad(loss)(params, batch)
    for p in _all_preconditioners(loss, model_fn, n):
        assert p.solve is p.apply and p.solve_with_state is p.apply_with_state

        @jax.jit
        def step(params, g, key, p=p):
            s = p.update(p.init(params), params, batch=batch, key=key, grads=g)
            d, s = p.apply_and_update(s, g)
            flat = jax.flatten_util.ravel_pytree(g)[0]
            M_inv = p.inverse_operator(s)
            return p.apply(s, g), d, M_inv.matvec(flat), p.release(s), M_inv

        d1, d2, d3, s, M1 = step(params, g, jax.random.key(1))
        assert jax.tree.structure(d1) == jax.tree.structure(params), p.name
        np.testing.assert_allclose(d1["w"], d2["w"], rtol=1e-10, err_msg=p.name)
        np.testing.assert_allclose(d3, d1["w"], rtol=1e-10, err_msg=p.name)
        assert jax.tree.structure(s) == jax.tree.structure(p.init(params)), p.name
        # M⁻¹ is closure-free: built again at another point, it has the same static data
        M2 = step(jax.tree.map(lambda a: 2 * a, params), g, jax.random.key(2))[-1]
        assert jax.tree.structure(M1) == jax.tree.structure(M2), p.name
