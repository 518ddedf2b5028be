"""One calling convention: every optimizer of precond.optim trains a tiny regression in the four
ways a user drives an optax transformation.

Modes: (a) ``precond.optim.train``; (b) a hand-written ``jax.jit`` loop calling
``update(grads, state, params, batch=batch)`` and nothing else; (c) the same loop on
``optax.chain(optax.clip_by_global_norm(1.0), X)``; (d) ``optax.inject_hyperparams(X,
static_args=…)`` with the learning rate injected and changed between steps.

Rotation: optimizer i (its index in ``CASES``) in mode j (0–3 as above) trains the model
``MODELS[(i + j) % 3]`` (plain pytree, flax.linen, equinox) in ``DTYPES[(i + j) % 2]``
(float64, float32).  Over its four modes each optimizer meets all three model types and both
dtypes, and every mode meets every model type and dtype.  Models have 17 parameters; each run
takes 4 steps.  Loops (b)–(d) also check that the jitted step is traced once (no recompile),
and every run that the result keeps its dtype.
"""

from dataclasses import dataclass, field

import equinox as eqx
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
import pytest

from precond import optim
from precond import preconditioners as pc
from precond.curvature import get_output_loss
from precond.linalg import SolverError, Status

STEPS = 4
MODES = ("train", "jit", "chain", "inject")
DTYPES = (jnp.float64, jnp.float32)


def _data(dtype, n=16):
    x = jax.random.uniform(jax.random.key(1), (n, 2), minval=-1, maxval=1)
    y = jnp.sin(2 * x[:, :1]) + x[:, 1:] ** 2
    return x.astype(dtype), y.astype(dtype)


def _cast(params, dtype):
    return jax.tree.map(lambda a: a.astype(dtype), params)


def _plain(dtype):
    k1, k2 = jax.random.split(jax.random.key(2))
    params = {"W1": 0.8 * jax.random.normal(k1, (2, 4)), "b1": jnp.zeros(4),
              "W2": 0.5 * jax.random.normal(k2, (4, 1)), "b2": jnp.zeros(1)}
    return _cast(params, dtype), lambda p, x: jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]


class _Linen(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(jnp.tanh(nn.Dense(4)(x)))


def _flax(dtype):
    m = _Linen()
    params = m.init(jax.random.key(3), jnp.zeros((1, 2)))["params"]
    return _cast(params, dtype), lambda p, x: m.apply({"params": p}, x)


def _equinox(dtype):
    mlp = eqx.nn.MLP(2, 1, 4, 1, activation=jnp.tanh, key=jax.random.key(4))
    params, static = eqx.partition(mlp, eqx.is_array)
    return _cast(params, dtype), lambda p, x: jax.vmap(eqx.combine(p, static))(x)


MODELS = (_plain, _flax, _equinox)


@dataclass
class Case:
    """How to build optimizer ``name``: factory, rate, and the arguments a user would pass
    (``uses`` the problem's functions it needs; ``options`` the rest)."""

    name: str
    factory: object
    lr: float
    uses: tuple = ()
    options: dict = field(default_factory=dict)


KEY = jax.random.key(7)
CASES = [
    Case("sgd", optim.sgd, 0.3),
    Case("momentum", optim.momentum, 0.2),
    Case("adam", optim.adam, 0.05),
    Case("adagrad", optim.adagrad, 0.3),
    Case("rmsprop", optim.rmsprop, 0.02),
    Case("lbfgs", optim.lbfgs, 1.0, ("loss_fn",)),
    Case("cg_hessian", optim.cg_hessian, 0.5, ("loss_fn",), {"damping": 0.1, "maxiter": 3}),
    Case("cg_ggn", optim.cg_ggn, 0.7, ("model_fn", "output_loss"), {"maxiter": 3}),
    Case("nystrom_sgd", optim.nystrom_sgd, 0.5, ("model_fn", "output_loss"),
         {"key": KEY, "rank": 4, "damping": 0.1, "update_every": 2}),
    Case("spectral_sgd", optim.spectral_sgd, 0.3, ("loss_fn",),
         {"key": KEY, "rank": 2, "update_every": 2}),
    Case("nncg", optim.nncg, 1.0, ("loss_fn",),
         {"key": KEY, "rank": 4, "cg_maxiter": 5, "update_every": 2}),
    Case("osgm", optim.osgm, 0.5, ("loss_fn",), {"L": 10.0}),
    Case("preconditioned_sgd", optim.preconditioned_sgd, 0.3, (), {"key": KEY}),
]
NON_STATIC = {"damping", "L"}  # numbers the caller passed that inject_hyperparams may trace


def _problem(i, j):
    dtype = DTYPES[(i + j) % 2]
    params, model_fn = MODELS[(i + j) % 3](dtype)
    mse = get_output_loss("mse")

    def loss_fn(p, b):
        return mse.value(model_fn(p, b[0]), b[1])

    return params, model_fn, loss_fn, _data(dtype), dtype


def _kwargs(case, loss_fn, model_fn):
    ctx = {"loss_fn": loss_fn, "model_fn": model_fn, "output_loss": "mse"}
    kw = {k: ctx[k] for k in case.uses} | case.options
    if case.name == "preconditioned_sgd":  # a randomized preconditioner, so the key is used
        kw["preconditioner"] = pc.jacobi(loss_fn, num_samples=2, damping=0.1)
    return kw


def _assert_dtype(params, dtype):
    assert {a.dtype for a in jax.tree.leaves(params)} == {jnp.dtype(dtype)}


def _jit_loop(opt, params, loss_fn, batch, set_lr=None):
    """STEPS jitted steps calling only update(grads, state, params, batch=batch)."""
    traces = []

    @jax.jit
    def step(p, s):
        traces.append(1)
        u, s = opt.update(jax.grad(loss_fn)(p, batch), s, p, batch=batch)
        return optax.apply_updates(p, u), s

    state = opt.init(params)
    for k in range(STEPS):
        if set_lr is not None:
            state = set_lr(state, k)
        params, state = step(params, state)
    assert len(traces) == 1  # the second and later steps reuse the compiled step
    return params


@pytest.mark.parametrize("j, mode", list(enumerate(MODES)))
@pytest.mark.parametrize("i, case", list(enumerate(CASES)), ids=[c.name for c in CASES])
def test_optimizer_trains(i, case, j, mode):
    params, model_fn, loss_fn, batch, dtype = _problem(i, j)
    kw = _kwargs(case, loss_fn, model_fn)
    start = float(loss_fn(params, batch))
    if mode == "train":
        data = jax.tree.map(lambda a: jnp.stack([a] * STEPS), batch)
        res = optim.train(loss_fn, params, case.factory(case.lr, **kw), data).check()
        assert res.status == Status.SUCCESS and res.steps == STEPS
        if case.name == "nncg":  # the failing call; a step that passed Armijo says so
            assert int(res.opt_state.info.status) == Status.STEP_ACCEPTED
        params = res.params
    elif mode == "jit":
        params = _jit_loop(case.factory(case.lr, **kw), params, loss_fn, batch)
    elif mode == "chain":
        opt = optax.chain(optax.clip_by_global_norm(1.0), case.factory(case.lr, **kw))
        params = _jit_loop(opt, params, loss_fn, batch)
    else:
        static = tuple(k for k in kw if k not in NON_STATIC)
        opt = optax.inject_hyperparams(case.factory, static_args=static)(
            learning_rate=case.lr, **kw)

        def set_lr(state, k):  # the full rate for two steps, then half of it
            lr = state.hyperparams["learning_rate"]
            state.hyperparams["learning_rate"] = jnp.asarray(
                case.lr if k < 2 else case.lr / 2, lr.dtype)
            return state

        params = _jit_loop(opt, params, loss_fn, batch, set_lr)
    _assert_dtype(params, dtype)
    final = float(loss_fn(params, batch))
    assert final < 0.95 * start, (case.name, mode, start, final)


def test_full_batch_loss_of_params_only():
    """batch=None: a loss of the parameters alone, called as loss_fn(params)."""
    A = jnp.diag(jnp.arange(1.0, 5.0))
    f = lambda w: 0.5 * w @ A @ w - jnp.sum(w)  # noqa: E731
    w0 = jnp.zeros(4)
    opts = {"cg_hessian": optim.cg_hessian(1.0, f), "osgm": optim.osgm(1.0, loss_fn=f, L=4.0),
            "nncg": optim.nncg(loss_fn=f, key=KEY, rank=2)}
    for name, opt in opts.items():
        step = jax.jit(lambda p, s, opt=opt: opt.update(jax.grad(f)(p), s, p))  # no batch
        w, state = w0, opt.init(w0)
        for _ in range(3):
            u, state = step(w, state)
            w = optax.apply_updates(w, u)
        assert float(f(w)) < -0.5, name  # f(0) = 0, min f = -25/24
    opt = optim.nncg(key=KEY, rank=2)  # neither loss_fn nor value_fn: no objective
    with pytest.raises(TypeError, match="loss_fn"):
        opt.update(jax.grad(f)(w0), opt.init(w0), w0)


def test_randomized_optimizers_need_a_key():
    loss_fn = lambda p, b: jnp.sum(p**2)  # noqa: E731
    with pytest.raises(TypeError, match="key"):
        optim.nncg(loss_fn=loss_fn)
    with pytest.raises(TypeError, match="key"):
        optim.nystrom_sgd(0.1, loss_fn=loss_fn)
    with pytest.raises(TypeError, match="key"):
        optim.get_optimizer("spectral-sgd", 0.1, loss_fn=loss_fn)
    # a randomized preconditioner without a key fails at its first update, naming the key
    opt = optim.preconditioned_sgd(0.1, pc.jacobi(loss_fn))
    w = jnp.ones(3)
    with pytest.raises(TypeError, match="key"):
        opt.update(w, opt.init(w), w, batch=jnp.zeros(1))


def test_get_optimizer_separates_context_from_options():
    ctx = {"loss_fn": lambda p, b: jnp.sum(p**2), "model_fn": lambda p, x: x @ p,
           "output_loss": "mse", "key": KEY}
    for name in optim.OPTIMIZERS:  # the whole context is accepted by every method
        optim.get_optimizer(name, 0.1, **ctx)
    with pytest.raises(TypeError, match="dampng.*valid options: damping"):
        optim.get_optimizer("cg-hessian", 0.1, dampng=1e-2, **ctx)
    with pytest.raises(TypeError, match="damping"):  # an option of another method
        optim.get_optimizer("adam", 0.1, damping=1e-2, **ctx)
    with pytest.raises(TypeError, match="needs loss_fn"):
        optim.get_optimizer("cg-hessian", 0.1)
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.get_optimizer("newton", 0.1)


def test_train_check_raises_on_divergence():
    loss_fn = lambda p, b: jnp.sum(b * p["w"] ** 2)  # noqa: E731
    res = optim.train(loss_fn, {"w": jnp.ones(2)}, optax.sgd(10.0), jnp.ones((50, 2)),
                      num_epochs=20)
    assert res.status == Status.DIVERGED
    with pytest.raises(SolverError, match="diverged"):
        res.check()
