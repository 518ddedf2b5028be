"""The identity preconditioner M = I (plain SGD)."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from precond.linalg import IdentityOperator
from precond.validation import float_dtype

from .base import Preconditioner

__all__ = ["IdentityState", "identity"]


class IdentityState(NamedTuple):
    """Only the flat size n, kept as a shape-(0, n) array so the state stays a pytree."""

    shape_of: jnp.ndarray


def identity() -> Preconditioner:
    """M = I: ``apply`` returns g unchanged; ``update`` ignores every argument."""

    def init(params):
        n = ravel_pytree(params)[0].size
        return IdentityState(jnp.zeros((0, n), float_dtype(params)))

    def update(state, params, *, batch=None, key=None, grads=None):
        return state

    def apply(state, g):
        return g

    def inverse_operator(state):
        return IdentityOperator(state.shape_of.shape[1], state.shape_of.dtype)

    return Preconditioner(init, update, apply, inverse_operator, name="identity")
