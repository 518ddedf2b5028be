"""Shape checks of the solvers; scalar, key and finiteness checks come from precond.validation
(re-exported here for the packages that import them from this module)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from precond.validation import check_finite_array as check_finite
from precond.validation import check_int, check_key, check_nonnegative, is_concrete

__all__ = ["is_concrete", "as_array", "check_finite", "check_vector", "check_square",
           "check_rank", "check_nonnegative", "check_key"]


def as_array(x) -> jax.Array:
    """``x`` as a jax array.  A numpy array goes through ``jax.device_put`` (one copy, where
    ``jnp.asarray`` makes two: it matters for large design matrices); anything else through
    ``jnp.asarray``."""
    if isinstance(x, np.ndarray) and x.dtype != object:
        return jax.device_put(x)
    return jnp.asarray(x)


def check_vector(v, n: int, name: str) -> jax.Array:
    """``v`` as a 1-D array of length ``n``, finite; otherwise ``ValueError`` naming it."""
    v = jnp.asarray(v)
    if v.ndim != 1 or v.shape[0] != n:
        raise ValueError(f"{name} has shape {tuple(v.shape)}; expected ({n},)")
    check_finite(v, name)
    return v


def check_square(A, name: str = "A") -> int:
    """n for a square (n, n) ``A``; ``ValueError`` otherwise."""
    if len(A.shape) != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{name} must be square, got shape {tuple(A.shape)}")
    return A.shape[0]


def check_rank(rank: int, n: int) -> int:
    """``rank`` as an int in [1, n] (n: the operator's size)."""
    return check_int(rank, "rank", low=1, high=n)
