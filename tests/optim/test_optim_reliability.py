"""Issue 19 regressions for precond.optim: growth is DIVERGED, NaN scalars are errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from precond import optim
from precond.linalg import Status
from precond.loop import DIVERGENCE_FACTOR


def test_train_finite_but_exploding_loss_reports_diverged():
    """SGD on w² with α = 1.5 multiplies the loss by 4 per step: finite for hundreds of steps,
    but past DIVERGENCE_FACTOR × its start in the second epoch — DIVERGED, not success."""
    loss = lambda w, b: jnp.sum(w ** 2)  # noqa: E731
    batches = jnp.zeros((10, 1))
    res = optim.train(loss, jnp.ones(2), optax.sgd(1.5), batches, num_epochs=6)
    assert res.status == Status.DIVERGED and "grew past" in res.message
    assert np.all(np.isfinite(res.losses))
    # ℓ_k = 2·4^k: epoch 0 ends at 2·4⁹ < 1e6·2, epoch 1 at 2·4¹⁹ past it — stop there.
    assert res.losses.size == 20
    assert res.losses[-1] > DIVERGENCE_FACTOR * res.losses[0] > res.losses[9]


def test_train_decreasing_loss_is_untouched_by_the_growth_rule():
    loss = lambda w, b: jnp.sum(w ** 2)  # noqa: E731
    res = optim.train(loss, jnp.ones(2), optax.sgd(0.1), jnp.zeros((5, 1)), num_epochs=3)
    assert res.status == Status.SUCCESS and res.losses.size == 15


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_damping_is_a_clear_error_not_negative_curvature(bad):
    f = lambda w, b=None: jnp.sum(w ** 2)  # noqa: E731
    with pytest.raises(ValueError, match="damping"):
        optim.cg_hessian(0.1, f, damping=bad)
    with pytest.raises(ValueError, match="mu"):
        optim.nncg(loss_fn=f, mu=bad, key=jax.random.key(0))
    with pytest.raises(ValueError, match="beta0"):
        optim.osgm(1.0, loss_fn=f, beta0=bad)
    with pytest.raises(ValueError, match="f_lower"):
        optim.osgm(1.0, loss_fn=f, f_lower=bad)
    with pytest.raises(ValueError, match="f_lower"):
        optim.osgm_minimize(f, jnp.ones(2), f_lower=bad)


def test_osgm_minimize_is_monotone_so_never_diverges():
    """OSGM accepts only decreases: the recorded objective never grows past its start."""
    f = lambda x: 0.5 * jnp.sum(jnp.arange(1.0, 4.0) * x ** 2)  # noqa: E731
    res = optim.osgm_minimize(f, jnp.ones(3), lr=1e3, max_grad_evals=20)
    hist = np.asarray(res.history.fun)
    assert np.all(np.diff(hist) <= 0)


# Found by the fuzz suite (tests/fuzz).


def test_train_on_zero_steps_is_a_value_error_naming_data():
    loss = lambda w, b: jnp.sum(w ** 2)  # noqa: E731
    with pytest.raises(ValueError, match="data"):
        optim.train(loss, jnp.ones(2), optax.sgd(0.1), jnp.zeros((0, 1)))


def test_train_on_integer_params_is_a_type_error_naming_params():
    loss = lambda w, b: jnp.sum(w ** 2)  # noqa: E731
    with pytest.raises(TypeError, match="params"):
        optim.train(loss, jnp.ones(2, int), optax.sgd(0.1), jnp.zeros((2, 1)))


def test_adam_nan_beta_is_a_value_error():
    with pytest.raises(ValueError, match="b1"):
        optim.get_optimizer("adam", 0.1, b1=math.nan)
    with pytest.raises(ValueError, match="decay"):
        optim.get_optimizer("rmsprop", 0.1, decay=1.5)
    with pytest.raises(ValueError, match="beta"):
        optim.get_optimizer("momentum", 0.1, beta=-0.1)
