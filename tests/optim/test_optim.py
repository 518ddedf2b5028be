"""The training loop, preconditioned SGD in optax's combinators, a small comparison of methods,
and bad input.  Every optimizer on every model type: test_convention.py."""


import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from precond import preconditioners as pc
from precond.linalg import Status
from precond.optim import (
    OPTIMIZERS,
    cg_ggn,
    get_optimizer,
    lbfgs,
    make_step,
    preconditioned_sgd,
    train,
)


def _data(n=64):
    x = jax.random.uniform(jax.random.key(1), (n, 2), minval=-1, maxval=1)
    y = jnp.sin(2 * x[:, :1]) + x[:, 1:] ** 2
    return x, y


def _dict_model():
    k1, k2 = jax.random.split(jax.random.key(2))
    params = {"W1": 0.8 * jax.random.normal(k1, (2, 8)), "b1": jnp.zeros(8),
              "W2": 0.3 * jax.random.normal(k2, (8, 1)), "b2": jnp.zeros(1)}

    def model_fn(p, x):
        return jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]

    return params, model_fn


def _mse(model_fn):
    return lambda p, b: 0.5 * jnp.mean(jnp.sum((model_fn(p, b[0]) - b[1]) ** 2, axis=-1))


def test_cg_ggn_beats_adam_from_common_warm_start():
    """Seed 001's protocol in miniature: Phase I Adam to a common point, then 20 steps of
    CG-GGN (lr 1) vs Adam at its best learning rate of a small grid."""
    params, model_fn = _dict_model()
    loss_fn, batch = _mse(model_fn), _data()
    data = jax.tree.map(lambda a: a[None], batch)
    warm = train(loss_fn, params, optax.adam(0.03), data, num_epochs=50).params

    def adam_run(lr):
        opt = optax.inject_hyperparams(optax.adam)(learning_rate=lr)
        step = make_step(loss_fn, opt)
        body = lambda c, _: (step(*c, batch)[:2], None)  # noqa: E731
        p, _ = jax.lax.scan(body, (warm, opt.init(warm)), None, length=20)[0]
        return loss_fn(p, batch)

    adam_best = float(jnp.min(jax.jit(jax.vmap(adam_run))(jnp.array([3e-3, 1e-2, 3e-2, 1e-1]))))
    res = train(loss_fn, warm, cg_ggn(1.0, model_fn, "mse", damping=1e-3, maxiter=10), data,
                num_epochs=20)
    cg_final = float(loss_fn(res.params, batch))
    assert res.check().status == Status.SUCCESS
    assert cg_final < adam_best, (cg_final, adam_best)


def test_no_recompile_and_inject_hyperparams():
    params, model_fn = _dict_model()
    loss_fn, batch = _mse(model_fn), _data(16)
    traces = []

    def counted_loss(p, b):
        traces.append(1)
        return loss_fn(p, b)

    opt = optax.inject_hyperparams(preconditioned_sgd)(
        learning_rate=1.0, preconditioner=pc.cg_ggn(model_fn, "mse", maxiter=3))
    step = jax.jit(make_step(counted_loss, opt))
    state = opt.init(params)
    p1, s1, _, _ = step(params, state, batch)
    n_traces = len(traces)
    half = jnp.asarray(0.5, state.hyperparams["learning_rate"].dtype)
    state_half = state._replace(hyperparams={**state.hyperparams, "learning_rate": half})
    p2, _, _, _ = step(params, state_half, batch)
    p3, _, _, _ = step(p1, s1, batch)  # a second step, different values
    assert len(traces) == n_traces  # no retrace, no recompile
    d1 = jax.tree.map(lambda a, b: a - b, p1, params)
    d2 = jax.tree.map(lambda a, b: a - b, p2, params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(b, 0.5 * a, rtol=1e-10), d1, d2)


def test_in_optax_chain():
    params = {"w": jnp.array([1.0, 2.0])}
    g = {"w": jnp.array([3.0, 4.0])}
    opt = optax.chain(optax.clip_by_global_norm(1.0), preconditioned_sgd(0.1, pc.adagrad(eps=0.0)))
    u, _ = opt.update(g, opt.init(params), params)
    # clipped g = (0.6, 0.8); AdaGrad on it: g/|g| = sign → −0.1 each.
    np.testing.assert_allclose(u["w"], [-0.1, -0.1], rtol=1e-12)
    mom = preconditioned_sgd(1.0, pc.identity(), momentum=0.5)
    s = mom.init(params)
    u1, s = mom.update(g, s, params)
    u2, s = mom.update(g, s, params)
    np.testing.assert_allclose(u2["w"], -1.5 * g["w"])


def test_nan_gradient_raises_eagerly():
    opt = preconditioned_sgd(0.1, pc.identity())
    params = {"w": jnp.zeros(2)}
    with pytest.raises(ValueError, match="grads contains NaN"):
        opt.update({"w": jnp.array([jnp.nan, 1.0])}, opt.init(params), params)


@pytest.mark.parametrize("scan", [True, False])
def test_nan_data_stops_with_diverged_status(scan):
    loss_fn = lambda p, b: 0.5 * jnp.sum((b * p["w"] - 1.0) ** 2)  # noqa: E731
    data = jnp.ones((6, 3)).at[3, 1].set(jnp.nan)  # the 4th mini-batch has a NaN
    res = train(loss_fn, {"w": jnp.zeros(3)}, optax.sgd(0.1), data, num_epochs=2, scan=scan)
    assert res.status == Status.DIVERGED and res.diverged
    assert res.message.startswith("diverged at step 3")
    assert res.steps == 3
    np.testing.assert_allclose(res.params["w"], 1 - 0.9**3)  # three good SGD steps kept
    assert np.all(np.isfinite(res.losses[:3])) and np.all(np.isnan(res.losses[4:]))


def test_too_large_step_diverges_keeping_finite_params():
    loss_fn = lambda p, b: jnp.sum(b * p["w"] ** 2)  # noqa: E731
    res = train(loss_fn, {"w": jnp.ones(2)}, optax.sgd(10.0), jnp.ones((50, 2)), num_epochs=20)
    # ×361 per step: finite all through epoch 0 but past DIVERGENCE_FACTOR × ℓ_0 at its end
    assert res.diverged and "grew past" in res.message
    assert 0 < res.steps < 1000
    assert np.all(np.isfinite(res.params["w"]))


def test_train_resamples_and_records_times():
    loss_fn = lambda p, b: 0.5 * jnp.mean((b[0] * p["w"] - b[1]) ** 2)  # noqa: E731

    def data(key):  # 4 mini-batches per epoch, resampled
        x = jax.random.normal(key, (4, 8))
        return x, 2.0 * x

    res = train(loss_fn, {"w": jnp.zeros(())}, optax.sgd(0.3), data, num_epochs=5,
                key=jax.random.key(0), progress=True)
    assert res.status == Status.SUCCESS and res.steps == 20
    assert res.losses.shape == res.times.shape == (20,)
    assert np.all(np.diff(res.times) >= 0) and res.compile_time > 0
    assert res.losses[-1] < 1e-3 * res.losses[0]
    res2 = train(loss_fn, {"w": jnp.zeros(())}, optax.sgd(0.3), data, num_epochs=5,
                 key=jax.random.key(0), scan=False)
    np.testing.assert_allclose(res2.losses, res.losses, rtol=1e-10)
    with pytest.raises(TypeError, match="key"):
        train(loss_fn, {"w": jnp.zeros(())}, optax.sgd(0.3), data)
    with pytest.raises(ValueError, match="num_epochs"):
        train(loss_fn, {"w": jnp.zeros(())}, optax.sgd(0.3), data, num_epochs=0,
              key=jax.random.key(0))


def test_registry_and_bad_args():
    assert set(OPTIMIZERS) == {"sgd", "momentum", "adam", "adagrad", "rmsprop", "lbfgs",
                               "cg-hessian", "cg-ggn", "nystrom-sgd", "spectral-sgd", "nncg",
                               "osgm", "kfac", "shampoo", "sophia", "muon"}
    with pytest.raises(ValueError, match="unknown optimizer"):
        get_optimizer("newton", 1.0)
    with pytest.raises(TypeError, match="loss_fn"):
        get_optimizer("cg-hessian", 1.0)
    with pytest.raises(ValueError, match="damping"):
        get_optimizer("cg-hessian", 1.0, loss_fn=lambda p, b: 0.0, damping=0.0)
    with pytest.raises(TypeError, match="preconditioner"):
        preconditioned_sgd(0.1, "adam")
    with pytest.raises(ValueError, match="momentum"):
        preconditioned_sgd(0.1, pc.identity(), momentum=1.5)
    opt = lbfgs()
    with pytest.raises(TypeError, match="loss_fn.*value_fn"):
        opt.update({"w": jnp.ones(2)}, opt.init({"w": jnp.ones(2)}), {"w": jnp.ones(2)})
