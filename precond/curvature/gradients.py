"""Per-example and mini-batch gradients (for noise estimates and the empirical Fisher)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = ["per_example_gradients", "minibatch_gradients"]


def per_example_gradients(loss_fn: Callable, params, batch) -> jax.Array:
    """Flat gradients of each example, shape (N, n).

    Every leaf of ``batch`` has the examples on its leading axis; ``loss_fn`` is called on
    one-example batches (leading axis of size 1), so a loss written for batches works as is.
    """
    def one(example):
        ex = jax.tree.map(lambda a: a[None], example)
        return ravel_pytree(jax.grad(loss_fn)(params, ex))[0]

    return jax.vmap(one)(batch)


def minibatch_gradients(loss_fn: Callable, params, batches) -> jax.Array:
    """Flat mini-batch gradients g_b, shape (B, n), for B mini-batches.

    ``batches`` is either a Python ``list`` of B batches (equal shapes) or one pytree whose leaves
    have the mini-batch index on the leading axis (B, m, …) — a tuple is a batch, not a list of
    them.  Rows feed ``precond.diagnostics.noise_level``.
    """
    if isinstance(batches, list):
        if not batches:
            raise ValueError("batches is an empty list")
        batches = jax.tree.map(lambda *xs: jnp.stack(xs), *batches)
    grad = lambda b: ravel_pytree(jax.grad(loss_fn)(params, b))[0]  # noqa: E731
    return jax.lax.map(grad, batches)
