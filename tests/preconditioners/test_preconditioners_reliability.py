"""Issue 19 regressions for the preconditioners: NaN is NONFINITE or a ValueError."""

import math

import jax
import jax.numpy as jnp
import pytest

from precond import preconditioners as pc
from precond.linalg import Status


def test_cg_hessian_nan_loss_is_nonfinite_not_negative_curvature():
    """A NaN loss (NaN Hessian): the status is NONFINITE and the gradient is not returned as a
    'negative curvature' fallback."""
    loss = lambda w, b=None: jnp.nan * jnp.sum(w["w"] ** 2)  # noqa: E731
    params = {"w": jnp.ones(3)}
    p = pc.cg_hessian(loss, damping=1e-3, maxiter=5)
    s = p.update(p.init(params), params)
    for g in ({"w": jnp.ones(3)}, {"w": jnp.full(3, jnp.nan)}):
        _, s1 = jax.jit(lambda g: p.solve_and_update(s, g))(g)
        assert int(s1.status) == Status.NONFINITE


def test_cg_hessian_finite_negative_curvature_still_falls_back():
    loss = lambda w, b=None: jnp.sum(jnp.array([-1.0, 2.0]) * w["w"] ** 2)  # noqa: E731
    params = {"w": jnp.zeros(2)}
    p = pc.cg_hessian(loss, damping=0.5, maxiter=5)
    s = p.update(p.init(params), params)
    d, s1 = p.solve_and_update(s, {"w": jnp.array([1.0, 0.0])})
    assert int(s1.status) == Status.NEGATIVE_CURVATURE
    assert jnp.allclose(d["w"], jnp.array([1.0, 0.0]))


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_damping_is_a_value_error_at_construction(bad):
    loss = lambda w, b=None: jnp.sum(w ** 2)  # noqa: E731
    with pytest.raises(ValueError, match="damping"):
        pc.cg_hessian(loss, damping=bad)
    with pytest.raises(ValueError, match="damping"):
        pc.cg_ggn(lambda w, x: x @ w, "mse", damping=bad)
