"""What every optimizer here shares: the objective it evaluates and its structural integers.

The objective is given at construction, ``loss_fn(params, batch)``, and evaluated on the batch of
the step, ``update(grads, state, params, batch=batch)``.  For full-batch use a loss of the
parameters alone is allowed: with ``batch=None`` (or no batch) it is called as
``loss_fn(params)``.  Inside, a missing batch travels as :data:`FULL_BATCH` (a pytree with no
leaves), so preconditioners that insist on a batch still get one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from precond.validation import check_int

__all__ = ["FULL_BATCH", "objective", "objective_at_update", "full_batch_default",
           "structural_int"]


class _FullBatch:
    """The batch of a full-batch step: ``loss_fn`` is called without one."""

    def __repr__(self) -> str:
        return "FULL_BATCH"


FULL_BATCH = _FullBatch()
jax.tree_util.register_pytree_node(_FullBatch, lambda _: ((), None), lambda _, __: FULL_BATCH)


def is_full_batch(batch) -> bool:
    return batch is None or isinstance(batch, _FullBatch)


def objective(loss_fn: Callable) -> Callable[[Any, Any], jax.Array]:
    """``(params, batch) ↦ loss_fn(params, batch)``, or ``loss_fn(params)`` when the batch is
    None/:data:`FULL_BATCH`."""
    def f(params, batch):
        return loss_fn(params) if is_full_batch(batch) else loss_fn(params, batch)

    return f


def objective_at_update(loss_fn: Callable | None, value_fn: Callable | None, who: str,
                        ) -> Callable[[Any, Any], jax.Array]:
    """The step's objective ``(params, batch) ↦ f``: ``loss_fn`` given at construction, else the
    ``value_fn`` (params ↦ f) given at update (``optax.lbfgs``'s extra argument)."""
    if loss_fn is not None:
        return objective(loss_fn)
    if value_fn is not None:
        return lambda params, batch: value_fn(params)
    raise TypeError(f"{who} needs the objective: pass loss_fn(params, batch) at construction "
                    "(or value_fn=params ↦ f at update, as for optax.lbfgs)")


def full_batch_default(tx: optax.GradientTransformationExtraArgs,
                       ) -> optax.GradientTransformationExtraArgs:
    """``tx`` with ``batch=None`` (or no batch) replaced by :data:`FULL_BATCH` at update."""
    def update_fn(updates, state, params=None, *, batch=None, **extra):
        return tx.update(updates, state, params, batch=FULL_BATCH if batch is None else batch,
                         **extra)

    return optax.GradientTransformationExtraArgs(tx.init, update_fn)


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
