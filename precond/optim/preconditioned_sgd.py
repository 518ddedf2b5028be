"""Preconditioned SGD on any preconditioner, as an optax transformation.

    w_{k+1} = w_k − α d_k,   d_k = M_k⁻¹ g_k                (``momentum=None``)
    v_k = β v_{k−1} + M_k⁻¹ g_k,   w_{k+1} = w_k − α v_k    (heavy ball, β = ``momentum``)

α is ``learning_rate`` (a float or an optax schedule), M the ``preconditioner`` (see
``precond.preconditioners``), which holds the objective it needs (``loss_fn``, or ``model_fn``
and ``output_loss``).  Curvature-based preconditioners read the mini-batch from the keyword
extra argument ``batch``: ``update(grads, state, params, *, batch=…)``; randomized ones
(Nyström, spectral, Jacobi) draw a fresh subkey per step from the PRNG ``key`` given here (no
key, no randomness: they raise at their first update).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax

from precond.preconditioners import Preconditioner
from precond.validation import check_finite_array, check_fraction, check_key

__all__ = ["PreconditionerState", "scale_by_preconditioner", "preconditioned_sgd"]


class PreconditionerState(NamedTuple):
    """The preconditioner's own state, and the PRNG key for randomized preconditioners (None
    when none was given)."""

    precond_state: Any
    key: jax.Array | None


def scale_by_preconditioner(preconditioner: Preconditioner, *, key: jax.Array | None = None,
                            ) -> optax.GradientTransformationExtraArgs:
    """updates ↦ M⁻¹ updates, after refreshing M at ``params`` on ``batch``.

    Per step: ``update(state, params, batch=batch, key=subkey, grads=updates)``, then
    ``apply``, then ``release``.

    Args:
      preconditioner: a ``precond.preconditioners`` object.
      key: a ``jax.random`` key, needed only by randomized preconditioners; without one they
        raise at their first update (precond draws no hidden randomness).
    """
    if not isinstance(preconditioner, Preconditioner):
        raise TypeError("preconditioner must be a precond.preconditioners.Preconditioner, got "
                        f"{type(preconditioner).__name__}")
    if key is not None:
        key = check_key(key)

    def init_fn(params):
        return PreconditionerState(preconditioner.init(params), key)

    def update_fn(updates, state, params=None, *, batch=None, **extra):
        if params is None:
            raise ValueError("preconditioned SGD needs params: update(grads, state, params, …)")
        for leaf in jax.tree.leaves(updates):
            check_finite_array(leaf, "grads")
        if state.key is None:
            new_key = sub = None
        else:
            new_key, sub = jax.random.split(state.key)
        pstate = preconditioner.update(state.precond_state, params, batch=batch, key=sub,
                                       grads=updates)
        direction, pstate = preconditioner.apply_and_update(pstate, updates)
        pstate = preconditioner.release(pstate)
        return direction, PreconditionerState(pstate, new_key)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def preconditioned_sgd(learning_rate: optax.ScalarOrSchedule, preconditioner: Preconditioner,
                       *, momentum: float | None = None, key: jax.Array | None = None,
                       ) -> optax.GradientTransformationExtraArgs:
    """Preconditioned SGD: w ← w − α M⁻¹g (module docstring), optionally with heavy ball.

    Works under ``jax.jit``, in ``optax.chain`` and with ``optax.inject_hyperparams``
    (``static_args=("preconditioner", "key")``; ``momentum`` may be injected too).

    Args:
      learning_rate: α, a float or an optax schedule.
      preconditioner: M, a ``precond.preconditioners`` object (it holds the objective).
      momentum: heavy-ball β ∈ [0, 1) on the directions (None: none).
      key: ``jax.random`` key for randomized preconditioners (Nyström, spectral, Jacobi).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from precond import preconditioners as pc
      >>> from precond.optim import preconditioned_sgd
      >>> loss = lambda w, b: 0.5 * jnp.sum((b[0] @ w["w"] - b[1]) ** 2)
      >>> opt = preconditioned_sgd(1.0, pc.cg_hessian(loss, damping=1e-8, maxiter=3))
      >>> params, batch = {"w": jnp.zeros(3)}, (jnp.eye(3) * 2.0, jnp.ones(3))
      >>> state = opt.init(params)
      >>> u, state = opt.update(jax.grad(loss)(params, batch), state, params, batch=batch)
      >>> bool(jnp.allclose(params["w"] + u["w"], 0.5))
      True

    References:
      Seed 001, "Design criteria for SGD preconditioners", §3; Bottou, Curtis, Nocedal,
      "Optimization methods for large-scale machine learning", 2018.
    """
    parts = [scale_by_preconditioner(preconditioner, key=key)]
    if momentum is not None:
        parts.append(optax.trace(decay=check_fraction(momentum, "momentum")))
    parts.append(optax.scale_by_learning_rate(learning_rate))
    return optax.chain(*parts)
