"""Pytree ↔ flat vector, and flat operators from pytree linear maps (closure-free)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
from jax.flatten_util import ravel_pytree

from precond.linalg import MatvecOperator
from precond.validation import check_callable, float_dtype

__all__ = ["ravel", "flat_operator"]


def ravel(tree) -> tuple[jax.Array, Callable]:
    """(flat vector, unravel) for a pytree of arrays, as ``jax.flatten_util.ravel_pytree``."""
    return ravel_pytree(tree)


def flat_size(params) -> int:
    """n, the length of the flat parameter vector; ``ValueError`` for a pytree with no arrays."""
    n = sum(int(jax.numpy.size(x)) for x in jax.tree.leaves(params))
    if n == 0:
        raise ValueError("params has no array leaves")
    return n


def flat_apply(tree_map: Callable, v, params, *args):
    """``tree_map(unravel(v), *args)`` flattened: a pytree linear map on flat (n,) vectors, in
    the ``ravel_pytree`` order of ``params`` (used for its structure only)."""
    unravel = ravel_pytree(params)[1]
    return ravel_pytree(tree_map(unravel(v), *args))[0]


@dataclass(frozen=True)
class _Flat:
    """v ↦ flat(tree_matvec(unravel(v), *args)); a frozen dataclass, so equal for the same
    ``tree_matvec`` and usable as an operator's static function without recompiles."""

    tree_matvec: Callable

    def __call__(self, v, params, *args):
        return flat_apply(self.tree_matvec, v, params, *args)


def flat_operator(tree_matvec: Callable, params, *args) -> MatvecOperator:
    """The flat (n, n) symmetric operator of a pytree-to-pytree linear map.

    Args:
      tree_matvec: v ↦ Av on pytrees shaped like ``params``, called as
        ``tree_matvec(v, *args)``.
      params: the pytree whose structure (and ``ravel_pytree`` order) the flat vectors follow.
      *args: pytrees of arrays ``tree_matvec`` reads; they are the operator's leaves (with
        ``params``), so new values of the same shapes do not recompile.
    """
    check_callable(tree_matvec, "tree_matvec", "tree_matvec(v, *args)")
    n = flat_size(params)
    fn = _Flat(tree_matvec)
    return MatvecOperator(fn, (n, n), float_dtype(params), fn, (params, *args))
