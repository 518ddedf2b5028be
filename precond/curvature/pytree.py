"""Pytree ↔ flat vector, and flat operators from pytree matvecs."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from precond.linalg import MatvecOperator

__all__ = ["ravel", "flat_operator"]


def ravel(tree) -> tuple[jax.Array, Callable]:
    """(flat vector, unravel) for a pytree of arrays, as ``jax.flatten_util.ravel_pytree``."""
    return ravel_pytree(tree)


def flat_operator(tree_matvec: Callable, params) -> MatvecOperator:
    """The flat (n, n) operator of a pytree-to-pytree linear map at the structure of ``params``."""
    flat, unravel = ravel_pytree(params)
    if flat.size == 0:
        raise ValueError("params has no array leaves")

    def matvec(v):
        return ravel_pytree(tree_matvec(unravel(v)))[0]

    dtype = flat.dtype if jnp.issubdtype(flat.dtype, jnp.floating) else jnp.result_type(float)
    return MatvecOperator(matvec, (flat.size, flat.size), dtype, rmatvec=matvec)
