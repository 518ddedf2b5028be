"""Shampoo against a dense numpy computation; training through the optax convention."""

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
from precond.curvature import get_output_loss
from precond.linalg import to_dense

EPS = 0.1


def _root(A, p):
    lam, V = np.linalg.eigh(A)
    return V @ np.diag(lam ** -p) @ V.T


def _blocks(G, bs):
    """numpy: the (i, j) blocks of G (m, n) of at most bs × bs, unpadded."""
    m, n = G.shape
    return {(i, j): G[i * bs:(i + 1) * bs, j * bs:(j + 1) * bs]
            for i in range(-(-m // bs)) for j in range(-(-n // bs))}


def _dense_direction(grads, bs):
    """numpy Shampoo without grafting after the steps ``grads`` (a list of (m, n) arrays):
    per block (ΣGGᵀ + εI)^{-1/4} G (ΣGᵀG + εI)^{-1/4}, or (ΣGGᵀ + εI)^{-1/2} G for n = 1."""
    last = grads[-1]
    out = np.zeros_like(last)
    for (i, j), Gb in _blocks(last, bs).items():
        past = [_blocks(g, bs)[i, j] for g in grads]
        L = sum(g @ g.T for g in past) + EPS * np.eye(Gb.shape[0])
        R = sum(g.T @ g for g in past) + EPS * np.eye(Gb.shape[1])
        D = (_root(L, 0.5) @ Gb if last.shape[1] == 1
             else _root(L, 0.25) @ Gb @ _root(R, 0.25))
        out[i * bs:i * bs + Gb.shape[0], j * bs:j * bs + Gb.shape[1]] = D
    return out


def test_factors_roots_and_operator_match_dense_numpy():
    """Factors, roots, M⁻¹g and the flat operator against numpy for blocks of 2: a 2 × 2 leaf
    (one block), a 3 × 5 one (blocked, the last blocks padded), a vector (one-sided), a rank-3
    leaf (merged to 2 × 3) and a scalar."""
    rng = np.random.default_rng(0)
    params = {"u": jnp.zeros((2, 2)), "w": jnp.zeros((3, 5)), "b": jnp.zeros(3),
              "k": jnp.zeros((2, 1, 3)), "s": jnp.zeros(())}
    M = pc.shampoo(epsilon=EPS, block_size=2, grafting=None, update_every=1)
    steps = [jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), params)
             for _ in range(3)]
    update = jax.jit(lambda s, g: M.update(s, params, grads=g))
    state = M.init(params)
    for g in steps:
        state = update(state, g)
    leaves = dict(zip(sorted(params), state.blocks, strict=True))  # dict leaves: sorted keys
    U = [np.asarray(g["u"]) for g in steps]
    np.testing.assert_allclose(leaves["u"].left[0, 0], sum(u @ u.T for u in U), atol=1e-12)
    np.testing.assert_allclose(leaves["u"].right_root[0, 0],
                               _root(sum(u.T @ u for u in U) + EPS * np.eye(2), 0.25),
                               atol=1e-10)
    d = jax.jit(M.apply)(state, steps[-1])
    views = {"u": lambda x: x, "w": lambda x: x, "b": lambda x: x[:, None],
             "k": lambda x: x.reshape(2, 3), "s": lambda x: x.reshape(1, 1)}
    for name, view in views.items():
        expect = _dense_direction([view(np.asarray(g[name])) for g in steps], 2)
        np.testing.assert_allclose(view(np.asarray(d[name])), expect, atol=1e-10)
    D = np.asarray(to_dense(M.inverse_operator(state)))  # SPD, and the map apply uses
    flat = ravel_pytree(steps[-1])[0]
    np.testing.assert_allclose(D @ np.asarray(flat), ravel_pytree(d)[0], atol=1e-10)
    np.testing.assert_allclose(D, D.T, atol=1e-12)
    assert np.linalg.eigvalsh(D).min() > 0


def test_grafting_scales_each_block_to_the_grafted_norm():
    """sgd grafting: every block of the step has the gradient block's norm; the operator is the
    same linear map (the scales are frozen at the update)."""
    G = jnp.asarray(np.random.default_rng(1).normal(size=(4, 3)))
    params = {"w": jnp.zeros((4, 3))}
    M = pc.shampoo(epsilon=EPS, block_size=2, grafting="sgd")
    state, d = jax.jit(lambda g: (s := M.update(M.init(params), params, grads=g),
                                  M.apply(s, g)))({"w": G})
    d = np.asarray(d["w"])
    for (i, j), Gb in _blocks(np.asarray(G), 2).items():
        np.testing.assert_allclose(np.linalg.norm(_blocks(d, 2)[i, j]), np.linalg.norm(Gb))
    np.testing.assert_allclose(M.inverse_operator(state).matvec(G.ravel()), d.ravel(),
                               atol=1e-12)


def test_bad_arguments_and_nonfinite_factors():
    for eps in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="epsilon"):
            pc.shampoo(epsilon=eps)
    with pytest.raises(ValueError, match="grafting"):
        pc.shampoo(grafting="adagrad")
    with pytest.raises(ValueError, match="block_size"):
        pc.shampoo(block_size=0)
    params = {"w": jnp.zeros((2, 2))}
    M = pc.shampoo(epsilon=EPS, grafting=None, update_every=1)
    with pytest.raises(TypeError, match="grads"):
        M.update(M.init(params), params)
    update = jax.jit(lambda s, g: M.update(s, params, grads=g))
    good = update(M.init(params), {"w": jnp.eye(2)})
    bad = update(good, {"w": jnp.array([[jnp.nan, 1.0], [0.0, 1.0]])})
    assert int(good.nonfinite) == 0 and int(bad.nonfinite) == 1  # recorded
    for old, new in zip(jax.tree.leaves(good.blocks), jax.tree.leaves(bad.blocks), strict=True):
        np.testing.assert_array_equal(old, new)  # factors and roots kept


class _Linen(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(jnp.tanh(nn.Dense(4)(x)))


def _model(kind):
    if kind == "plain":
        k1, k2 = jax.random.split(jax.random.key(2))
        params = {"W1": 0.8 * jax.random.normal(k1, (2, 4)), "b1": jnp.zeros(4),
                  "W2": 0.5 * jax.random.normal(k2, (4, 1)), "b2": jnp.zeros(1)}
        return params, lambda p, x: jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
    if kind == "flax":
        m = _Linen()
        return (m.init(jax.random.key(3), jnp.zeros((1, 2)))["params"],
                lambda p, x: m.apply({"params": p}, x))
    mlp = eqx.nn.MLP(2, 1, 4, 1, activation=jnp.tanh, key=jax.random.key(4))
    params, static = eqx.partition(mlp, eqx.is_array)
    return params, lambda p, x: jax.vmap(eqx.combine(p, static))(x)


@pytest.mark.parametrize("mode, kinds", [("train", ("plain",)), ("chain", ("flax", "equinox"))])
def test_trains_mlps(mode, kinds):
    """A plain MLP trained by ``train``; a flax and an equinox one (one parameter tree, the sum
    of their losses) by a user's jitted loop on ``optax.chain(clip, shampoo)``."""
    models = {k: _model(k) for k in kinds}
    params = {k: p for k, (p, _) in models.items()}
    x = jax.random.uniform(jax.random.key(1), (16, 2), minval=-1, maxval=1)
    batch = (x, jnp.sin(2 * x[:, :1]) + x[:, 1:] ** 2)
    mse = get_output_loss("mse")

    @jax.jit
    def losses(p):  # one compiled evaluation (eager flax/equinox calls compile op by op)
        return jnp.stack([mse.value(models[k][1](p[k], batch[0]), batch[1]) for k in kinds])

    def loss_fn(p, b):
        return sum(mse.value(models[k][1](p[k], b[0]), b[1]) for k in kinds)

    opt = optim.get_optimizer("shampoo", 0.05, loss_fn=loss_fn, update_every=2, block_size=4)
    start, steps = losses(params), 8
    if mode == "train":
        data = jax.tree.map(lambda a: jnp.stack([a] * steps), batch)
        params = optim.train(loss_fn, params, opt, data).check().params
    else:
        opt = optax.chain(optax.clip_by_global_norm(1.0), opt)
        step = jax.jit(lambda p, s: opt.update(jax.grad(loss_fn)(p, batch), s, p, batch=batch))
        state = opt.init(params)
        for _ in range(steps):
            u, state = step(params, state)
            params = optax.apply_updates(params, u)
    assert np.all(np.asarray(losses(params)) < 0.7 * np.asarray(start)), kinds


def test_diagnose_accepts_shampoo():
    from precond.diagnostics import diagnose

    A = jnp.asarray(np.random.default_rng(2).normal(size=(12, 3)))
    loss_fn = lambda p, b: 0.5 * jnp.mean((b @ p["w"] - 1.0) ** 2)  # noqa: E731
    batches = [A[:6], A[6:]]
    rep = diagnose(loss_fn, {"w": jnp.ones((3, 2))}, batches,
                   pc.shampoo(epsilon=1e-2, update_every=1), key=jax.random.key(0))
    assert np.isfinite(rep.L_hat_after) and rep.K_after > 0 and rep.preconditioner == "shampoo"
