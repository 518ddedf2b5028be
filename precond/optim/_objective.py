"""What every optimizer here shares: the objective it evaluates and its structural integers.

The objective is given at construction, ``loss_fn(params, batch)``, and evaluated on the batch of
the step, ``update(grads, state, params, batch=batch)``.  For full-batch use a loss of the
parameters alone is allowed: with ``batch=None`` (or no batch) it is called as
``loss_fn(params)`` — the convention of ``precond.curvature`` and ``precond.preconditioners``
too, so the same ``loss_fn`` serves the curvature products.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from precond.curvature import bind_batch
from precond.validation import check_int

__all__ = ["evaluate", "step_objective", "structural_int"]


def evaluate(fn: Callable, params, batch) -> jax.Array:
    """``fn(params, batch)``, or ``fn(params)`` when ``batch`` is None (the one rule,
    :func:`precond.curvature.bind_batch`)."""
    return bind_batch(fn, batch)(params)


def step_objective(loss_fn: Callable | None, value_fn: Callable | None, batch, who: str,
                   ) -> tuple[Callable, Any]:
    """(fn, batch) with f(params) = :func:`evaluate`\\ (fn, params, batch) the step's objective.

    ``loss_fn`` given at construction, on the step's batch; else the ``value_fn`` (params ↦ f)
    given at update, as ``optax.lbfgs`` takes it, with no batch.
    """
    if loss_fn is not None:
        return loss_fn, batch
    if value_fn is not None:
        return value_fn, None
    raise TypeError(f"{who} needs the objective: pass loss_fn(params, batch) at construction "
                    "(or value_fn=params ↦ f at update, as for optax.lbfgs)")


def structural_int(x, name: str, default: int, *, low: int = 1) -> int:
    """``x`` as a Python int ≥ ``low`` (``default`` when None).

    Structural integers (ranks, iteration caps, refresh intervals) fix array shapes and loop
    bounds, so they cannot be traced: under ``optax.inject_hyperparams`` they must be named in
    ``static_args``.  Their defaults are None so that a caller never has to list them.
    """
    if x is None:
        return default
    if isinstance(x, (jax.Array, np.ndarray)) and not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be a Python int, got an array; under "
                        f"optax.inject_hyperparams name {name!r} in static_args")
    return check_int(x, name, low=low)
