"""The Hessian of a loss as a closure-free flat operator, linearized once per solve.

``hessian_operator(loss_fn, params, batch)`` is a pytree whose leaves are ``params`` and
``batch`` and whose static data is ``loss_fn``, so a new operator at new parameter values (or a
new batch of the same shapes) reuses every compiled solver.  A single ``matvec`` is one
forward-over-reverse product; ``linearize()`` — which every precond.linalg solver calls once,
before its loop — runs ``jax.linearize`` of the gradient and returns an operator that replays
the linear map per product (no re-tracing, no second forward pass).  ``hessian_linear_map`` is
the same linearization for code that wants the gradient too (Newton-CG).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from jax.flatten_util import ravel_pytree
from jax.tree_util import register_pytree_node_class

from precond.linalg import LinearOperator, MatvecOperator
from precond.validation import check_callable, float_dtype

from .pytree import flat_apply, flat_size

__all__ = ["bind_batch", "hvp", "HessianOperator", "hessian_operator", "hessian_linear_map"]


def bind_batch(loss_fn: Callable, batch) -> Callable:
    """p ↦ loss_fn(p, batch), or p ↦ loss_fn(p) when ``batch`` is None (full-batch losses)."""
    if batch is None:
        return loss_fn
    return lambda p: loss_fn(p, batch)


def hvp(loss_fn: Callable, params, batch, v):
    """H v for H = ∇²_params loss_fn(params, batch), by ``jvp`` of ``grad`` (forward-over-reverse).

    One HVP costs about 2–3 gradient evaluations and never forms H (Pearlmutter 1994).

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar`` (``loss_fn(params)`` when batch is None).
      params: the point, any pytree.
      batch: the data, or None.
      v: the direction, a pytree shaped like ``params``; so is the result.
    """
    return jax.jvp(jax.grad(bind_batch(loss_fn, batch)), (params,), (v,))[1]


def _replay(v, linear_map, params):
    return flat_apply(linear_map, v, params)


def _linearize(loss_fn: Callable, params, batch) -> tuple[jax.Array, MatvecOperator]:
    """(flat ∇loss, the linearized Hessian as an operator) from one ``jax.linearize``.

    The gradient is linearized with respect to the parameter pytree and flattened outside the
    linear map: linearizing through ``unravel`` would put its slices (and, transposed, their
    pads) into every product.
    """
    g, linear_map = jax.linearize(jax.grad(bind_batch(loss_fn, batch)), params)
    n = flat_size(params)
    op = MatvecOperator(_replay, (n, n), float_dtype(params), _replay, (linear_map, params))
    return ravel_pytree(g)[0], op


@register_pytree_node_class
class HessianOperator(LinearOperator):
    """H = ∇² loss_fn(params, batch) on flat (n,) vectors (``ravel_pytree`` order), symmetric.

    Leaves: ``params``, ``batch``; static: ``loss_fn``, shape, dtype (module docstring).
    ``matvec`` is one forward-over-reverse product; ``matmat`` and the solvers go through
    ``linearize()`` (one linearization, then one replayed linear map per product).
    """

    def __init__(self, loss_fn: Callable, params, batch, *, shape=None, dtype=None):
        self.loss_fn, self.params, self.batch = loss_fn, params, batch
        n = flat_size(params) if shape is None else shape[0]
        self.shape = (n, n)
        self.dtype = float_dtype(params) if dtype is None else dtype

    symmetric = True  # a Hessian: symmetric-only solvers skip their probe

    def matvec(self, v):
        return flat_apply(lambda u: hvp(self.loss_fn, self.params, self.batch, u), v,
                          self.params)

    def matmat(self, V):
        return self.linearize().matmat(V)

    def linearize(self) -> MatvecOperator:
        return _linearize(self.loss_fn, self.params, self.batch)[1]

    @property
    def T(self):
        return self

    def tree_flatten(self):
        return (self.params, self.batch), (self.loss_fn, self.shape, self.dtype)

    @classmethod
    def tree_unflatten(cls, aux, children):
        loss_fn, shape, dtype = aux
        return cls(loss_fn, *children, shape=shape, dtype=dtype)


def hessian_operator(loss_fn: Callable, params, batch) -> HessianOperator:
    """The Hessian of ``loss_fn(·, batch)`` at ``params`` as a flat symmetric operator (n, n).

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``; with ``batch=None``, ``loss_fn(params)``.
      params: the point w, any pytree (dicts, flax, equinox); n = its number of entries.
      batch: the data (a pytree of arrays) or None.

    Example:
      >>> import jax.numpy as jnp
      >>> from precond.curvature import hessian_operator
      >>> from precond.linalg import cg
      >>> def loss(w, X):  # ½‖Xw‖², Hessian XᵀX
      ...     return 0.5 * jnp.sum((X @ w["w"]) ** 2)
      >>> X = jnp.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
      >>> H = hessian_operator(loss, {"w": jnp.zeros(2)}, X)
      >>> print(H @ jnp.array([1.0, 0.0]))
      [2. 1.]
      >>> print((9 * cg(H.shift(0.0), jnp.ones(2), tol=1e-6).x).round(3))
      [4. 1.]
    """
    check_callable(loss_fn, "loss_fn", "loss_fn(params, batch)")
    return HessianOperator(loss_fn, params, batch)


def hessian_linear_map(loss_fn: Callable, params, batch) -> tuple[jax.Array, Callable]:
    """(g, v ↦ Hv) on flat vectors from one ``jax.linearize`` of the gradient.

    Newton-CG needs both: g = ∇loss_fn(params, batch) flat (n,), and the Hessian products
    replayed from the same linearization (no re-tracing, no second forward pass per product).

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``; with ``batch=None``, ``loss_fn(params)``.
      params: the point, any pytree.
      batch: the data or None.

    Returns:
      (g (n,), matvec: (n,) → (n,)).
    """
    g, op = _linearize(loss_fn, params, batch)
    return g, op.matvec
