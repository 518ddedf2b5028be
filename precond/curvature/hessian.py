"""Hessian-vector products by forward-over-reverse autodiff."""

from __future__ import annotations

from collections.abc import Callable

import jax

from precond.linalg import MatvecOperator

from .pytree import flat_operator

__all__ = ["hvp", "hessian_operator"]


def hvp(loss_fn: Callable, params, batch, v):
    """H v for H = ∇²_params loss_fn(params, batch), by ``jvp`` of ``grad`` (forward-over-reverse).

    One HVP costs about 2–3 gradient evaluations and never forms H (Pearlmutter 1994).  ``v``
    has the structure of ``params``; so does the result.
    """
    grad_fn = lambda p: jax.grad(loss_fn)(p, batch)  # noqa: E731
    return jax.jvp(grad_fn, (params,), (v,))[1]


def hessian_operator(loss_fn: Callable, params, batch) -> MatvecOperator:
    """The Hessian of ``loss_fn(·, batch)`` at ``params`` as a flat symmetric operator (n, n)."""
    return flat_operator(lambda v: hvp(loss_fn, params, batch, v), params)
