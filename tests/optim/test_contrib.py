"""optax.contrib's Sophia and MUON through precond's convention (get_optimizer, batch=…)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.flatten_util import ravel_pytree

from precond import optim
from precond import preconditioners as pc

KEY = jax.random.key(0)


def _mlp():
    k1, k2 = jax.random.split(jax.random.key(2))
    params = {"W1": jax.random.normal(k1, (2, 6)), "b1": jnp.zeros(6),
              "W2": 0.5 * jax.random.normal(k2, (6, 1)), "b2": jnp.zeros(1)}
    x = jax.random.uniform(jax.random.key(1), (24, 2), minval=-1, maxval=1)
    batch = (x, jnp.sin(2 * x[:, :1]) + x[:, 1:] ** 2)

    def loss_fn(p, b):
        return jnp.mean((jnp.tanh(b[0] @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"] - b[1]) ** 2)

    return params, batch, loss_fn


@pytest.mark.parametrize("name, lr", [("sophia", 0.05), ("muon", 0.02)])
def test_trains_a_tiny_mlp(name, lr):
    params, batch, loss_fn = _mlp()
    opt = optim.get_optimizer(name, lr, loss_fn=loss_fn, model_fn=None, key=KEY)
    step = jax.jit(lambda p, s: opt.update(jax.grad(loss_fn)(p, batch), s, p, batch=batch))
    state, start = opt.init(params), float(loss_fn(params, batch))
    for _ in range(15):
        u, state = step(params, state)
        params = optax.apply_updates(params, u)
    assert float(loss_fn(params, batch)) < 0.7 * start
    if name == "sophia":  # its diagonal M⁻¹ = 1/max(γĥ, ε), read from the state
        M_inv = optim.sophia_inverse_operator(state)
        h = ravel_pytree(state[0].nu)[0]
        np.testing.assert_allclose(M_inv.diagonal, 1 / np.maximum(0.01 * h, 1e-8))


def test_sophia_needs_the_objective_and_a_key():
    params, batch, loss_fn = _mlp()
    with pytest.raises(TypeError, match="needs key"):
        optim.get_optimizer("sophia", 0.1, loss_fn=loss_fn)
    opt = optim.sophia(0.1, key=KEY)  # no loss_fn: update needs obj_fn=
    with pytest.raises(TypeError, match="loss_fn"):
        opt.update(params, opt.init(params), params, batch=batch)
    with pytest.raises(ValueError, match="one Sophia state"):
        optim.sophia_inverse_operator(optax.adam(0.1).init(params))


def test_sophia_preconditioner_is_the_optimizers_diagonal():
    """pc.sophia's ĥ is optax's nu: z ⊙ Hz is exact for a diagonal Hessian, so after one refresh
    M = max(γ(1 − β₂)·diag H, ε), and the next update (inside the interval) keeps it."""
    d = jnp.array([1.0, 4.0, 100.0])
    loss_fn = lambda w: 0.5 * jnp.sum(d * w**2)  # noqa: E731  (batch=None: loss_fn(params))
    M = pc.sophia(loss_fn, gamma=1.0, update_interval=2)
    w = jnp.ones(3)
    state = M.update(M.init(w), w, key=KEY)
    state = M.update(state, w, key=jax.random.key(5))
    np.testing.assert_allclose(M.apply(state, jnp.ones(3)), 1 / np.maximum(0.01 * d, 1e-8))
    with pytest.raises(TypeError, match="key"):
        M.update(state, w)
