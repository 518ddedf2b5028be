"""K-FAC: exact on one dense layer under a squared loss, trains flax/equinox/plain MLPs in the
ways a user drives optax, falls back to a damped diagonal, and rejects bad input."""

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from precond import optim
from precond import preconditioners as pc
from precond.diagnostics import diagnose
from precond.linalg import Status

N, D_IN, D_OUT = 40, 3, 2
X = jax.random.normal(jax.random.key(0), (N, D_IN)) + 0.5
Y = jax.random.normal(jax.random.key(1), (N, D_OUT))
KEY = jax.random.key(7)


def _dense(bias_flag, layout):
    """λ ↦ (M⁻¹ dense in ravel_pytree order, the GGN) for one linear layer, one compile."""
    if layout == "plain":  # x @ W + b, W (d_in, d_out)
        params = {"W": jnp.zeros((D_IN, D_OUT))}
        model = lambda p, x: x @ p["W"] + p.get("b", 0.0)  # noqa: E731
    else:  # equinox-style W @ x + b under vmap, W (d_out, d_in)
        params = {"W": jnp.zeros((D_OUT, D_IN))}
        model = lambda p, x: jax.vmap(lambda xi: p["W"] @ xi + p.get("b", 0.0))(x)  # noqa: E731
    if bias_flag:
        params["b"] = jnp.zeros(D_OUT)
    flat, unravel = ravel_pytree(params)

    @jax.jit
    def dense(damping):  # a traced damping: both λ from one compile
        M = pc.kfac(model, "mse", damping=damping, update_every=1, fisher="ggn")
        state = M.update(M.init(params), params, batch=(X, Y))
        minv = jax.vmap(M.inverse_operator(state).matvec)(jnp.eye(flat.size)).T
        J = jax.jacobian(lambda w: model(unravel(w), X).ravel())(flat)
        return minv, J.T @ J / N, state.status

    return lambda damping: [np.asarray(r) for r in dense(damping)]


@pytest.mark.parametrize("bias_flag, layout", [(True, "plain"), (False, "plain"),
                                               (True, "equinox")])
def test_one_dense_layer_squared_loss_is_the_exact_ggn(bias_flag, layout):
    """The Kronecker factorization is exact there: M⁻¹ = GGN⁻¹ as λ → 0 (π-damping perturbs
    by O(√λ)); at λ = 0.1, M⁻¹ = ((A + π√λI) ⊗ (G + √λ/π I))⁻¹ with A = E[ããᵀ], G = I."""
    Xt = np.hstack([X, np.ones((N, 1))]) if bias_flag else np.asarray(X)
    A, G = Xt.T @ Xt / N, np.eye(D_OUT)
    dense = _dense(bias_flag, layout)
    minv, ggn, status = dense(1e-20)
    assert status == Status.SUCCESS
    np.testing.assert_allclose(minv, np.linalg.inv(ggn), atol=1e-8)
    lam = 0.1
    minv, ggn, _ = dense(lam)
    pi = np.sqrt((np.trace(A) / len(A)) / (np.trace(G) / len(G)))
    Ad, Gd = A + pi * np.sqrt(lam) * np.eye(len(A)), G + np.sqrt(lam) / pi * np.eye(len(G))
    if layout == "plain":  # ravel order: [W (d_in, d_out); bᵀ] row-major, so kron(A, G)
        np.testing.assert_allclose(ggn, np.kron(A, G), atol=1e-12)
        np.testing.assert_allclose(minv, np.linalg.inv(np.kron(Ad, Gd)), atol=1e-10)
    else:  # [W, b] (d_out, d_in + 1) row-major is kron(G, A); ravel order: W, then b
        ref = np.linalg.inv(np.kron(Gd, Ad))
        d = D_IN + 1
        order = [o * d + i for o in range(D_OUT) for i in range(D_IN)]
        order += [o * d + D_IN for o in range(D_OUT)]
        np.testing.assert_allclose(minv, ref[np.ix_(order, order)], atol=1e-10)


class _Linen(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(jnp.tanh(nn.Dense(4)(x)))


def _models():
    k1, k2 = jax.random.split(jax.random.key(2))
    plain = ({"W1": 0.8 * jax.random.normal(k1, (2, 4)), "b1": jnp.zeros(4),
              "W2": 0.5 * jax.random.normal(k2, (4, 1)), "b2": jnp.zeros(1)},
             lambda p, x: jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"])
    m = _Linen()
    flax = (m.init(jax.random.key(3), jnp.zeros((1, 2)))["params"],
            lambda p, x: m.apply({"params": p}, x))
    mlp = eqx.nn.MLP(2, 1, 4, 1, activation=jnp.tanh, key=jax.random.key(4))
    params, static = eqx.partition(mlp, eqx.is_array)
    return {"plain": plain, "flax": flax,
            "equinox": (params, lambda p, x: jax.vmap(eqx.combine(p, static))(x))}


def _scanned(opt, params, loss_fn, batch, steps=4):
    """A user's loop: ``steps`` optimizer steps in one jitted ``lax.scan``."""

    def body(carry, _):
        p, s = carry
        u, s = opt.update(jax.grad(loss_fn)(p, batch), s, p, batch=batch)
        return (optax.apply_updates(p, u), s), None

    return jax.jit(lambda p: jax.lax.scan(body, (p, opt.init(p)), None, steps)[0])(params)


@pytest.mark.parametrize("model, mode, dtype", [("plain", "train", jnp.float64),
                                                ("flax", "jit", jnp.float32),
                                                ("equinox", "chain", jnp.float64)])
def test_kfac_trains_mlps(model, mode, dtype):
    """Each model type in one way of driving it: precond.optim.train, a user's jitted loop
    (GGN, float32), optax.chain after gradient clipping; the loss falls.  diagnose accepts the
    trained state."""
    params, model_fn = _models()[model]
    params = jax.tree.map(lambda a: a.astype(dtype), params)
    x = jax.random.uniform(jax.random.key(1), (16, 2), minval=-1, maxval=1)
    batch = (x.astype(dtype), (jnp.sin(2 * x[:, :1]) + x[:, 1:] ** 2).astype(dtype))
    loss_fn = lambda p, b: 0.5 * jnp.mean(jnp.sum((model_fn(p, b[0]) - b[1]) ** 2, -1))  # noqa: E731
    start = float(loss_fn(params, batch))
    opt = optim.kfac(0.5, model_fn, "mse", key=KEY, damping=0.1, update_every=2,
                     fisher="ggn" if mode == "jit" else "sampled")
    if mode == "train":  # the same optimizer, built from the preconditioner to diagnose it
        M = pc.kfac(model_fn, "mse", damping=0.1, update_every=2)
        opt = optim.preconditioned_sgd(0.5, M, key=KEY)
        data = jax.tree.map(lambda a: jnp.stack([a] * 4), batch)
        res = optim.train(loss_fn, params, opt, data).check()
        params, state = res.params, res.opt_state
        two = jax.tree.map(lambda a: a[:2], data)  # B = 2 mini-batches: the cheapest diagnose
        report = diagnose(loss_fn, params, two, M, state=state[0].precond_state, key=KEY,
                          method="power", num_steps=4)
        assert np.isfinite(report.L_hat_after) and np.isfinite(report.K_after)
    elif mode == "jit":
        params, state = _scanned(opt, params, loss_fn, batch)
    else:
        params, state = _scanned(optax.chain(optax.clip_by_global_norm(1.0), opt), params,
                                 loss_fn, batch)
    assert {a.dtype for a in jax.tree.leaves(params)} == {jnp.dtype(dtype)}
    assert float(loss_fn(params, batch)) < 0.9 * start, (model, mode)


def test_registry_builds_kfac():
    params, model_fn = _models()["plain"]
    opt = optim.get_optimizer("kfac", 0.1, model_fn=model_fn, output_loss="mse", key=KEY,
                              loss_fn=None, update_every=1)
    assert opt.init(params) is not None
    assert optim.OPTIMIZERS["kfac"] is optim.kfac


def test_fallback_nonfinite_and_errors():
    params = {"W": jnp.ones((D_IN, D_OUT)), "s": jnp.ones(D_OUT)}
    model = lambda p, x: (x @ p["W"]) * p["s"]  # noqa: E731  (s: an elementwise scale)
    M = pc.kfac(model, "mse", damping=0.1, update_every=1, fisher="ggn")
    with pytest.raises(ValueError, match="call update"):
        M.apply(M.init(params), params)
    with pytest.raises(TypeError, match="key"):  # GGN mode: the fallback's diagonal is random
        M.update(M.init(params), params, batch=(X, Y))
    update = jax.jit(lambda s, b: M.update(s, params, batch=b, key=KEY))
    state = update(M.init(params), (X, Y))
    g = jax.tree.map(jnp.ones_like, params)
    out = M.apply(state, g)
    assert np.all(np.asarray(state.diagonal["s"]) > 0)
    np.testing.assert_allclose(out["s"], 1.0 / (state.diagonal["s"] + 0.1))
    # non-finite statistics: the previous inverses are kept and the status says so
    bad = update(state, (X.at[0, 0].set(jnp.nan), Y))
    assert int(bad.status) == Status.NONFINITE
    for a, b in zip(jax.tree.leaves(bad.inverses), jax.tree.leaves(state.inverses), strict=True):
        np.testing.assert_array_equal(a, b)
    assert all(np.all(np.isfinite(a)) for a in jax.tree.leaves(M.apply(bad, g)))
    # norm_constraint c: d ↦ min(1, √(c / gᵀd))·d, so the same step as without it, scaled
    @jax.jit
    def step(c):  # one compile for both constraints (c = 1e30: inactive)
        opt = optim.kfac(1.0, model, "mse", key=KEY, fisher="ggn", damping=0.1,
                         norm_constraint=c)
        return opt.update(g, opt.init(params), params, batch=(X, Y))[0]

    free, clipped = step(1e30), step(1e-4)
    q = -sum(float(jnp.vdot(free[k], g[k])) for k in g)
    for k in g:
        np.testing.assert_allclose(clipped[k], min(1, np.sqrt(1e-4 / q)) * free[k], rtol=1e-10)
    assert q > 1e-4  # so the constraint was active
    for v in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="damping"):
            pc.kfac(model, "mse", damping=v)
    with pytest.raises(ValueError, match="fisher"):
        pc.kfac(model, "mse", fisher="empirical")
    with pytest.raises(ValueError, match="ggn"):  # no sampler for a custom loss
        pc.kfac(model, lambda f, y: jnp.mean(jnp.abs(f - y)))
    with pytest.raises(TypeError, match="key"):
        optim.kfac(0.1, model, "mse")
    with pytest.raises(TypeError, match="batch"):
        M.update(state, params, key=KEY)
