"""Curvature operators against dense autodiff references, on four model styles (float64)."""

import equinox as eqx
import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

from precond.curvature import (
    OutputLoss,
    empirical_fisher_operator,
    fisher_operator,
    flat_operator,
    get_output_loss,
    ggn_operator,
    ggn_vector_product,
    hessian_operator,
    hvp,
    minibatch_gradients,
    per_example_gradients,
    ravel,
)
from precond.linalg import to_dense

N, D_IN, D_HID, D_OUT = 6, 3, 5, 4
TOL = 1e-10


# --- four ways to write the same small MLP: (params, model_fn) -------------------------------

def _dict_mlp(key):
    rng = np.random.default_rng(int(jax.random.randint(key, (), 0, 1000)))
    params = {"w1": jnp.asarray(rng.standard_normal((D_IN, D_HID)) / 2),
              "b1": jnp.full((D_HID,), 0.1),
              "w2": jnp.asarray(rng.standard_normal((D_HID, D_OUT)) / 2), "b2": jnp.zeros((D_OUT,))}

    def model_fn(p, x):
        return jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    return params, model_fn


class _Linen(linen.Module):
    @linen.compact
    def __call__(self, x):
        return linen.Dense(D_OUT)(jnp.tanh(linen.Dense(D_HID)(x)))


def _linen_mlp(key):
    module = _Linen()
    params = module.init(key, jnp.zeros((1, D_IN)))
    return params, module.apply


class _Nnx(nnx.Module):
    def __init__(self, rngs):
        self.l1 = nnx.Linear(D_IN, D_HID, rngs=rngs)
        self.l2 = nnx.Linear(D_HID, D_OUT, rngs=rngs)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(x)))


def _nnx_mlp(key):
    graphdef, state = nnx.split(_Nnx(nnx.Rngs(int(jax.random.randint(key, (), 0, 1000)))))
    return state, lambda s, x: nnx.merge(graphdef, s)(x)


def _eqx_mlp(key):
    model = eqx.nn.MLP(D_IN, D_OUT, D_HID, depth=1, activation=jnp.tanh, key=key)
    params, static = eqx.partition(model, eqx.is_array)
    return params, lambda p, x: jax.vmap(eqx.combine(p, static))(x)


MODELS = {"dict": _dict_mlp, "flax_linen": _linen_mlp, "flax_nnx": _nnx_mlp, "equinox": _eqx_mlp}
LOSSES = ("mse", "softmax_cross_entropy", "sigmoid_cross_entropy")


def _data(loss, seed):
    # numpy draws: eager jax.random calls compile a kernel per shape, which dominates tiny tests.
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((N, D_IN)))
    if loss == "mse":
        y = jnp.asarray(rng.standard_normal((N, D_OUT)))
    elif loss == "softmax_cross_entropy":
        y = jnp.asarray(rng.integers(0, D_OUT, N))
    else:
        y = jnp.asarray(rng.integers(0, 2, (N, D_OUT)).astype(np.float64))
    return x, y


def _setup(model, loss, seed=0):
    params, model_fn = MODELS[model](jax.random.key(seed))
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
    batch = _data(loss, seed + 1)
    out = get_output_loss(loss)

    def loss_fn(p, b):
        return out.value(model_fn(p, b[0]), b[1])

    return params, model_fn, loss_fn, batch


def _dense_ggn(model_fn, loss, params, batch):
    """Jᵀ H_out J with J = jacfwd of the model, H_out = jax.hessian of the loss value."""
    flat, unravel = ravel_pytree(params)
    x, y = batch

    @jax.jit
    def dense(flat):
        f = model_fn(unravel(flat), x)
        J = jax.jacfwd(lambda t: model_fn(unravel(t), x))(flat).reshape(f.size, flat.size)
        Hout = jax.hessian(lambda g: get_output_loss(loss).value(g, y))(f).reshape(f.size, f.size)
        return J.T @ Hout @ J

    return dense(flat)


def _vectors(n, k, seed):
    return jnp.asarray(np.random.default_rng(seed).standard_normal((n, k)))


@pytest.mark.parametrize("model", list(MODELS))
def test_hvp_equals_dense_hessian(model):
    params, _, loss_fn, batch = _setup(model, "softmax_cross_entropy")
    flat, unravel = ravel_pytree(params)
    H = jax.jit(jax.hessian(lambda t: loss_fn(unravel(t), batch)))(flat)
    V = _vectors(flat.size, 3, 7)
    op = hessian_operator(loss_fn, params, batch)
    np.testing.assert_allclose(jax.jit(op.matmat)(V), H @ V, rtol=0, atol=TOL)
    # The pytree form returns the structure of params.
    hv = jax.jit(lambda v: hvp(loss_fn, params, batch, v))(unravel(V[:, 0]))
    assert jax.tree.structure(hv) == jax.tree.structure(params)
    np.testing.assert_allclose(ravel_pytree(hv)[0], H @ V[:, 0], rtol=0, atol=TOL)


@pytest.mark.parametrize("model,loss", [(m, "softmax_cross_entropy") for m in MODELS]
                         + [("dict", "mse"), ("dict", "sigmoid_cross_entropy")])
def test_ggn_equals_dense_jt_hout_j(model, loss):
    params, model_fn, _, batch = _setup(model, loss)
    flat, unravel = ravel_pytree(params)
    G = _dense_ggn(model_fn, loss, params, batch)
    V = _vectors(flat.size, 2, 3)
    op = ggn_operator(model_fn, loss, params, batch)
    np.testing.assert_allclose(jax.jit(op.matmat)(V), G @ V, rtol=0, atol=TOL)
    gv = jax.jit(lambda v: ggn_vector_product(model_fn, loss, params, batch, v))(unravel(V[:, 1]))
    assert jax.tree.structure(gv) == jax.tree.structure(params)
    np.testing.assert_allclose(ravel_pytree(gv)[0], G @ V[:, 1], rtol=0, atol=TOL)


@pytest.mark.parametrize("loss", LOSSES)
def test_fisher_equals_ggn(loss):
    params, model_fn, _, batch = _setup("dict", loss, seed=4)
    F = jax.jit(to_dense)(fisher_operator(model_fn, loss, params, batch))
    G = jax.jit(to_dense)(ggn_operator(model_fn, loss, params, batch))
    np.testing.assert_allclose(F, G, rtol=0, atol=TOL)
    assert np.linalg.eigvalsh(np.asarray(G)).min() > -1e-12  # PSD, unlike the Hessian


def test_ggn_equals_hessian_for_linear_model_with_mse():
    # For a model linear in its parameters the residual term vanishes: GGN = Hessian exactly.
    x, y = _vectors(N, D_IN, 0), _vectors(N, 2, 1)
    params = {"W": _vectors(D_IN, 2, 2)}
    model_fn = lambda p, x: x @ p["W"]  # noqa: E731
    loss_fn = lambda p, b: get_output_loss("mse").value(model_fn(p, b[0]), b[1])  # noqa: E731
    np.testing.assert_allclose(jax.jit(to_dense)(ggn_operator(model_fn, "mse", params, (x, y))),
                               jax.jit(to_dense)(hessian_operator(loss_fn, params, (x, y))),
                               atol=TOL)


def test_custom_output_loss_uses_autodiff_hessian():
    def huberish(f, y):
        return jnp.sum(jnp.log(jnp.cosh(f - y))) / f.shape[0]

    params, model_fn, _, batch = _setup("dict", "mse", seed=2)
    G = _dense_ggn(model_fn, huberish, params, batch)
    np.testing.assert_allclose(jax.jit(to_dense)(ggn_operator(model_fn, huberish, params, batch)),
                               G, atol=TOL)
    with pytest.raises(ValueError, match="predictive distribution"):
        fisher_operator(model_fn, huberish, params, batch)
    # An OutputLoss passes through unchanged.
    assert isinstance(get_output_loss(get_output_loss("mse")), OutputLoss)


@pytest.mark.parametrize("model", ["dict", "equinox"])
def test_empirical_fisher_equals_dense_formula(model):
    params, _, loss_fn, batch = _setup(model, "mse", seed=5)
    flat, unravel = ravel_pytree(params)
    # Dense: (1/N) Σ_i ∇ℓ_i ∇ℓ_iᵀ with each gradient from jax.grad on a one-example batch.
    g1 = jax.jit(jax.grad(lambda t, b: loss_fn(unravel(t), b)))
    grads = np.stack([np.asarray(g1(flat, (batch[0][i:i + 1], batch[1][i:i + 1])))
                      for i in range(N)])
    F = grads.T @ grads / N
    np.testing.assert_allclose(jax.jit(to_dense)(empirical_fisher_operator(loss_fn, params,
                                                                           batch)), F, atol=TOL)
    np.testing.assert_allclose(per_example_gradients(loss_fn, params, batch), grads, atol=TOL)


def test_minibatch_gradients_list_and_stacked_agree():
    params, _, loss_fn, batch = _setup("dict", "mse", seed=6)
    x, y = batch
    batches = [(x[:3], y[:3]), (x[3:], y[3:])]
    G1 = minibatch_gradients(loss_fn, params, batches)
    G2 = minibatch_gradients(loss_fn, params, (x.reshape(2, 3, D_IN), y.reshape(2, 3, D_OUT)))
    ref = np.stack([ravel_pytree(jax.grad(loss_fn)(params, b))[0] for b in batches])
    np.testing.assert_allclose(G1, ref, atol=TOL)
    np.testing.assert_allclose(G2, ref, atol=TOL)
    # The mean of per-example gradients is the full-batch gradient.
    np.testing.assert_allclose(per_example_gradients(loss_fn, params, batch).mean(0),
                               ravel_pytree(jax.grad(loss_fn)(params, batch))[0], atol=TOL)


def test_ravel_roundtrip():
    params, *_ = _setup("flax_nnx", "mse")
    flat, unravel = ravel(params)
    back = unravel(flat)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(back), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bad_inputs():
    params, model_fn, loss_fn, batch = _setup("dict", "mse")
    with pytest.raises(TypeError, match="pair"):
        ggn_operator(model_fn, "mse", params, batch[0])
    with pytest.raises(ValueError, match="unknown output loss"):
        ggn_operator(model_fn, "hinge", params, batch)
    with pytest.raises(TypeError, match="output_loss"):
        get_output_loss(3)
    with pytest.raises(ValueError, match="empty"):
        minibatch_gradients(loss_fn, params, [])
    with pytest.raises(ValueError, match="no array leaves"):
        flat_operator(lambda v: v, {})
