"""Curvature operators against dense autodiff references, on four model styles (float64)."""

import contextlib
import logging

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
    ggn_linear_map,
    ggn_operator,
    ggn_vector_product,
    hessian_linear_map,
    hessian_operator,
    hvp,
    minibatch_gradients,
    per_example_gradients,
    ravel,
)
from precond.linalg import cg, to_dense

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


# --- one linearization per solve, no recompiles ----------------------------------------------

@contextlib.contextmanager
def _compiles():
    """Yields a list that collects the names of the programs XLA compiles inside the block."""
    names = []

    class _Handler(logging.Handler):
        def emit(self, record):
            msg = record.getMessage()
            if msg.startswith("Compiling "):
                names.append(msg.split()[1])

    handler = _Handler(logging.WARNING)
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles():
            yield names
    finally:
        logger.removeHandler(handler)


def test_eager_cg_on_new_hessian_operators_compiles_once():
    # The case: cg(hessian_operator(loss, params, batch).shift(1e-2), g) eagerly at three
    # points.  The operator is a pytree (leaves: params, batch; static: loss_fn), so the three
    # solves share one compiled loop.
    # A convex loss (softmax regression), so H + 1e-2·I is SPD at every point.
    x, y = _data("softmax_cross_entropy", 0)
    batch = (x, y)
    params = {"W": _vectors(D_IN, D_OUT, 1), "b": jnp.zeros(D_OUT)}
    model_fn = lambda p, x: x @ p["W"] + p["b"]  # noqa: E731
    loss_fn = lambda p, b: get_output_loss("softmax_cross_entropy").value(  # noqa: E731
        model_fn(p, b[0]), b[1])
    points = [jax.tree.map(lambda a, s=s: a * (1.0 + 0.1 * s), params) for s in range(3)]
    g = jnp.ones(ravel_pytree(params)[0].size)
    per_call, solutions = [], []
    with _compiles() as names:
        for p in points:
            before = len(names)
            solutions.append(cg(hessian_operator(loss_fn, p, batch).shift(1e-2), g, tol=1e-10).x)
            per_call.append(names[before:])
    assert sum(n == "jit(_cg_body)" for n in names) == 1, names
    assert per_call[1] == [] and per_call[2] == [], per_call
    flat, unravel = ravel_pytree(params)
    hessian = jax.jit(jax.hessian(lambda t, b: loss_fn(unravel(t), b)))
    for p, x in zip(points, solutions, strict=True):
        H = hessian(ravel_pytree(p)[0], batch)
        np.testing.assert_allclose(x, np.linalg.solve(H + 1e-2 * np.eye(g.size), g), rtol=1e-8)
    # The same for a GGN with a custom output loss (a callable: its Hessian-vector product is
    # static data that compares equal across calls).
    huber = lambda f, y: jnp.sum(jnp.log(jnp.cosh(f - y))) / f.shape[0]  # noqa: E731
    regression = _data("mse", 2)
    cg(ggn_operator(model_fn, huber, points[0], regression).shift(1e-2), g, maxiter=5)
    with _compiles() as names:
        for p in points[1:]:
            cg(ggn_operator(model_fn, huber, p, regression).shift(1e-2), g, maxiter=5)
    assert names == [], names


def _count_in_while_bodies(jaxpr, primitive: str) -> tuple[int, int]:
    """(count of ``primitive`` inside while-loop bodies, count outside), recursively."""
    inside = outside = 0

    def visit(jx, in_loop):
        nonlocal inside, outside
        for eqn in jx.eqns:
            if eqn.primitive.name == primitive:
                inside, outside = inside + in_loop, outside + (not in_loop)
            for name, param in eqn.params.items():
                subs = param if isinstance(param, (tuple, list)) else (param,)
                for sub in subs:
                    inner = getattr(sub, "jaxpr", sub)
                    if hasattr(inner, "eqns"):
                        loop = in_loop or (eqn.primitive.name == "while" and name == "body_jaxpr")
                        visit(inner, loop)

    visit(jaxpr.jaxpr, False)
    return inside, outside


@pytest.mark.parametrize("kind", ["hessian", "ggn"])
def test_cg_loop_replays_the_linear_map_without_a_forward_pass(kind):
    # linearize once, before the loop: the model's tanh runs outside the while body only (the
    # body holds the linear map, whose tanh' factors are residuals computed once).
    params, model_fn, loss_fn, batch = _setup("dict", "mse")
    g = jnp.ones(ravel_pytree(params)[0].size)

    def solve(p):
        op = (hessian_operator(loss_fn, p, batch) if kind == "hessian"
              else ggn_operator(model_fn, "mse", p, batch))
        return cg(op.shift(1e-2), g, tol=0.0, maxiter=5).x

    inside, outside = _count_in_while_bodies(jax.make_jaxpr(solve)(params), "tanh")
    assert inside == 0 and outside >= 1, (inside, outside)


@pytest.mark.parametrize("kind", ["hessian", "ggn", "fisher"])
def test_linearized_operator_and_linear_maps_match_plain_products(kind):
    params, model_fn, loss_fn, batch = _setup("dict", "softmax_cross_entropy", seed=3)
    flat, _ = ravel_pytree(params)
    V = _vectors(flat.size, 2, 11)

    @jax.jit
    def products(params, V):
        if kind == "hessian":
            op = hessian_operator(loss_fn, params, batch)
            g, mv = hessian_linear_map(loss_fn, params, batch)
        else:
            op = (ggn_operator if kind == "ggn" else fisher_operator)(
                model_fn, "softmax_cross_entropy", params, batch)
            g, mv = ggn_linear_map(model_fn, "softmax_cross_entropy", params, batch)
        plain = jax.vmap(op.matvec, 1, 1)(V)
        return plain, op.linearize().matmat(V), jax.vmap(mv, 1, 1)(V), g, op

    plain, lin, replayed, g, op = products(params, V)
    np.testing.assert_allclose(lin, plain, atol=TOL)
    np.testing.assert_allclose(replayed, plain, atol=TOL)
    np.testing.assert_allclose(g, ravel_pytree(jax.grad(loss_fn)(params, batch))[0], atol=TOL)
    leaves = jax.tree.leaves(op)
    assert len(leaves) == len(jax.tree.leaves((params, batch)))  # arrays only: no closures


def test_full_batch_loss_with_batch_none():
    params, _, loss_fn, batch = _setup("dict", "mse")
    full = lambda p: loss_fn(p, batch)  # noqa: E731
    A = jax.jit(to_dense)(hessian_operator(full, params, None))
    B = jax.jit(to_dense)(hessian_operator(loss_fn, params, batch))
    np.testing.assert_allclose(A, B, atol=TOL)
    g, _ = hessian_linear_map(full, params, None)
    np.testing.assert_allclose(g, ravel_pytree(jax.grad(full)(params))[0], atol=TOL)


def test_curvature_operators_are_symmetric_by_construction_no_probe():
    # Hessian and Gauss–Newton operators declare symmetry, so cg and lanczos skip the probe
    # (an eager Hessian product would cost a linearization outside the compiled solver).
    def loss(w, X):
        return 0.5 * jnp.sum((X @ w) ** 2)

    X = jnp.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    H = hessian_operator(loss, jnp.zeros(2), X)
    G = ggn_operator(lambda w, x: x @ w, "mse", jnp.zeros(2), (X, jnp.zeros(3)))
    assert H.symmetric and H.shift(1e-3).symmetric and (2.0 * H).symmetric
    assert G.symmetric and G.shift(1e-3).symmetric
    assert cg(H.shift(1e-3), jnp.ones(2), tol=1e-10).check().converged
