"""Sophia's diagonal preconditioner M = max(γĥ, ε), as a stand-alone preconditioner.

ĥ is the exponential moving average of Hutchinson estimates z ⊙ Hz (one Rademacher z per
refresh) of the Hessian diagonal, refreshed every k updates: the ``nu`` of
``optax.contrib.sophia``, without bias correction as there.  Sophia divides its momentum by M and
clips the result elementwise; the clipping is not linear, so this preconditioner is Sophia's M
before clipping — what ``diagnose`` and the advisor can measure.  ``precond.optim.sophia`` is the
optimizer (optax's own); ``precond.optim.sophia_inverse_operator`` reads the same M⁻¹ from its
state.

γ is ``gamma``, ε ``eps``, β₂ ``b2``, k ``update_interval`` (the names of ``optax.contrib.sophia``).

References:
  Liu, Li, Hall, Liang, Ma, "Sophia: a scalable stochastic second-order optimizer for language
  model pre-training", 2023.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from precond.validation import check_callable, check_fraction, check_int, check_key, check_positive

from .base import Preconditioner, lazily
from .diagonal import DiagonalState, _diagonal, _init, hutchinson_diagonal

__all__ = ["sophia"]


def sophia(loss_fn: Callable, *, b2: float = 0.99, eps: float = 1e-8, gamma: float = 0.01,
           update_interval: int = 10) -> Preconditioner:
    """Sophia's diagonal, M = diag(max(γĥ, ε)) (module docstring).

    ``update(state, params, batch=…, key=…)`` adds (1 − β₂)·z ⊙ Hz of ``loss_fn(params, batch)``
    to β₂ĥ on updates 0, k, 2k, … (``batch=None``: the full-batch ``loss_fn(params)``).

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      b2: β₂ in [0, 1).
      eps: ε > 0, the floor of γĥ (M stays SPD where ĥ ≤ 0).
      gamma: γ > 0.
      update_interval: k ≥ 1.
    """
    check_callable(loss_fn, "loss_fn", "loss_fn(params, batch)")
    b2 = check_fraction(b2, "b2")
    eps = check_positive(eps, "eps")
    gamma = check_positive(gamma, "gamma")
    update_interval = check_int(update_interval, "update_interval", low=1)

    def update(state, params, *, batch=None, key=None, grads=None):
        key = check_key(key)

        def refresh():
            d = hutchinson_diagonal(loss_fn, params, batch, key, 1).astype(state.moment.dtype)
            return b2 * state.moment + (1 - b2) * d

        moment = lazily(state.count, update_interval, refresh, lambda: state.moment)
        return DiagonalState(moment, state.count + 1)

    apply, inverse_operator = _diagonal(lambda s: jnp.maximum(gamma * s.moment, eps))
    return Preconditioner(_init, update, apply, inverse_operator, name="sophia")
