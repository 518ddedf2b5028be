"""Dense-layer capture from the jaxpr: which leaves are found, and a, g reproduce the gradients."""

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from precond.curvature import capture_dense_layers, find_dense_layers

X = jax.random.normal(jax.random.key(0), (6, 3))
COT = jax.random.normal(jax.random.key(4), (6, 2))


class _Linen(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.Dense(4, name="hidden")(x)
        return nn.Dense(2, name="out", use_bias=False)(jnp.tanh(h))


def _plain():
    k1, k2 = jax.random.split(jax.random.key(1))
    params = {"W1": jax.random.normal(k1, (3, 4)), "b1": jnp.ones(4),
              "W2": jax.random.normal(k2, (4, 2)), "b2": jnp.ones(2)}
    return params, lambda p, x: jax.nn.relu(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]


def _flax():
    m = _Linen()
    params = jax.tree.map(lambda a: a.astype(X.dtype), m.init(jax.random.key(2), X)["params"])
    return params, lambda p, x: m.apply({"params": p}, x)


def _equinox():
    mlp = eqx.nn.MLP(3, 2, 4, 1, activation=jnp.tanh, key=jax.random.key(3))
    params, static = eqx.partition(mlp, eqx.is_array)
    params = jax.tree.map(lambda a: a.astype(X.dtype), params)
    return params, lambda p, x: jax.vmap(eqx.combine(p, static))(x)


@jax.jit
def _inner_dense(W, b, x):
    return x @ W + b


def _nested():
    """Layers inside a jax.jit call and a jax.checkpoint, a custom_jvp activation between."""
    k = jax.random.split(jax.random.key(6), 2)
    params = {"W1": jax.random.normal(k[0], (3, 4)), "b1": jnp.ones(4),
              "W2": jax.random.normal(k[1], (4, 2)), "b2": jnp.ones(2)}

    def model(p, x):
        h = jax.nn.relu(_inner_dense(p["W1"], p["b1"], x))
        return jax.checkpoint(lambda h: jnp.tanh(h @ p["W2"] + p["b2"]))(h)

    return params, model


def _summary(params, layers):
    paths = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    return [(paths[L.kernel], None if L.bias is None else paths[L.bias], L.in_axis)
            for L in layers]


def test_finds_the_layers_of_plain_flax_and_equinox_mlps():
    expected = {
        _plain: [("['W1']", "['b1']", 0), ("['W2']", "['b2']", 0)],
        _flax: [("['hidden']['kernel']", "['hidden']['bias']", 0), ("['out']['kernel']", None, 0)],
        _equinox: [(".layers[0].weight", ".layers[0].bias", 1),
                   (".layers[1].weight", ".layers[1].bias", 1)],
        _nested: [("['W1']", "['b1']", 0), ("['W2']", "['b2']", 0)],
    }
    for make, want in expected.items():
        params, model = make()
        assert _summary(params, find_dense_layers(model, params, X)) == want, make.__name__
        # on tracers (as inside jit): the same layers, from shapes alone
        found = []
        jax.make_jaxpr(lambda p, x, model=model, found=found: found.append(
            find_dense_layers(model, p, x)))(params, X)
        assert _summary(params, found[0]) == want


def test_activations_and_output_gradients_give_the_parameter_gradients():
    """gᵀã = ∇[W, b] for every layer, and vjp's parameter gradients are jax.grad's."""
    for make in (_plain, _flax, _equinox, _nested):
        params, model = make()
        cap = capture_dense_layers(model, params, X)
        np.testing.assert_allclose(cap.outputs, model(params, X), rtol=1e-12)
        grads, gs = cap.vjp(COT)
        ref = jax.grad(lambda p, model=model: jnp.sum(COT * model(p, X)))(params)
        for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(ref), strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        leaves = jax.tree.leaves(ref)
        for L, a, g in zip(cap.layers, cap.activations, gs, strict=True):
            W = g.T @ a  # (d_out, d_in)
            np.testing.assert_allclose(W.T if L.in_axis == 0 else W, leaves[L.kernel],
                                       rtol=1e-10, atol=1e-12)
            if L.bias is not None:
                np.testing.assert_allclose(g.sum(0), leaves[L.bias], rtol=1e-10, atol=1e-12)


def test_shared_convolution_and_elementwise_parameters_are_no_dense_layers():
    k = jax.random.split(jax.random.key(5), 3)
    params = {"W": jax.random.normal(k[0], (3, 3)), "tied": jax.random.normal(k[1], (3, 3)),
              "scale": jnp.ones(3), "b": jnp.ones(3), "conv": jax.random.normal(k[2], (2, 1, 3))}

    def model(p, x):
        h = x @ p["W"] + p["b"]  # a dense layer, but b is used twice: no bias
        h = (h @ p["tied"]) @ p["tied"].T  # a shared weight: no layer
        h = h * p["scale"] + p["b"]  # elementwise: no layer
        c = jax.lax.conv_general_dilated(h[:, None, :], p["conv"], (1,), "SAME")
        return jnp.sum(c, axis=1)

    layers = find_dense_layers(model, params, X)
    assert _summary(params, layers) == [("['W']", None, 0)]
