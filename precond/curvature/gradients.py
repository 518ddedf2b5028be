"""Per-example and mini-batch gradients (for noise estimates and the empirical Fisher)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = ["per_example_gradients", "minibatch_gradients"]


def per_example_gradients(loss_fn: Callable, params, batch) -> jax.Array:
    """Flat gradients of each example, shape (N, n).

    Every leaf of ``batch`` has the examples on its leading axis; ``loss_fn`` is called on
    one-example batches (leading axis of size 1), so a loss written for batches works as is.
    Compiled once per ``loss_fn`` and shapes.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      params: the point, any pytree (n entries).
      batch: N examples on the leading axis of every leaf.
    """
    return _jit_if_hashable(_per_example, loss_fn)(loss_fn, params, batch)


def _jit_if_hashable(jitted, loss_fn):
    """The jitted function (static ``loss_fn``), or its plain body for an unhashable loss."""
    try:
        hash(loss_fn)
    except TypeError:
        return jitted.__wrapped__
    return jitted


@partial(jax.jit, static_argnums=0)
def _per_example(loss_fn, params, batch):
    def one(example):
        ex = jax.tree.map(lambda a: a[None], example)
        return ravel_pytree(jax.grad(loss_fn)(params, ex))[0]

    return jax.vmap(one)(batch)


def minibatch_gradients(loss_fn: Callable, params, batches) -> jax.Array:
    """Flat mini-batch gradients g_b, shape (B, n), for B mini-batches.

    ``batches`` is either a Python ``list`` of B batches (equal shapes) or one pytree whose leaves
    have the mini-batch index on the leading axis (B, m, …) — a tuple is a batch, not a list of
    them.  Rows feed ``precond.diagnostics.noise_level``.  Compiled once per ``loss_fn`` and
    shapes.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      params: the point, any pytree (n entries).
      batches: B mini-batches (a list, or stacked on a leading axis).
    """
    if isinstance(batches, list):
        if not batches:
            raise ValueError("batches is an empty list")
        batches = jax.tree.map(lambda *xs: jnp.stack(xs), *batches)
    return _jit_if_hashable(_minibatch, loss_fn)(loss_fn, params, batches)


@partial(jax.jit, static_argnums=0)
def _minibatch(loss_fn, params, batches):
    return jax.lax.map(lambda b: ravel_pytree(jax.grad(loss_fn)(params, b))[0], batches)
