"""Diagonal preconditioners: Jacobi (Hutchinson Hessian diagonal), AdaGrad, RMSProp, Adam.

Each keeps a flat vector m (n,) and applies M⁻¹g = g / m.  Seed 002 reads AdaGrad/RMSProp/Adam as
diagonal preconditioners whose √(mean g²) approximates the row norms of the Hessian, so
M⁻¹H has rows of similar size and a much smaller condition number than H.

- Jacobi: m = |diag(H)| + λ, diag(H) ≈ (1/s) Σ_j z_j ⊙ H z_j with Rademacher z_j (Hutchinson /
  Bekas, Kokiopoulou and Saad 2007), refreshed every ``update_every`` steps.
- AdaGrad: v_t = v_{t−1} + g_t², m = √v_t + ε (Duchi, Hazan, Singer 2011).
- RMSProp: v_t = β v_{t−1} + (1 − β) g_t², m = √v_t + ε (Hinton 2014).
- Adam's second moment: m = √(v_t / (1 − βᵗ)) + ε (bias corrected; Kingma and Ba 2015).

β is ``decay`` (``b2`` for Adam), ε is ``eps``, λ is ``damping``, s is ``num_samples``.

References:
  Duchi, Hazan, Singer, "Adaptive subgradient methods ...", JMLR 2011; Kingma and Ba, "Adam",
  ICLR 2015; Bekas, Kokiopoulou, Saad, "An estimator for the diagonal of a matrix", 2007;
  "Preconditioning for accelerated gradient descent optimization and regularization",
  arXiv 2410.00232 (seed 002).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from precond.curvature import hvp
from precond.linalg import DiagonalOperator
from precond.linalg._checks import check_key

from .base import Preconditioner, check_decay, check_positive, check_update_every, lazily

__all__ = ["DiagonalState", "jacobi", "adagrad", "rmsprop", "adam", "hutchinson_diagonal"]


class DiagonalState(NamedTuple):
    """``moment``: the accumulated statistic (v, or diag H for Jacobi), flat (n,); ``count``:
    updates seen."""

    moment: jax.Array
    count: jax.Array


def _init(params):
    flat, _ = ravel_pytree(params)
    dtype = flat.dtype if jnp.issubdtype(flat.dtype, jnp.floating) else jnp.result_type(float)
    return DiagonalState(jnp.zeros(flat.shape, dtype), jnp.zeros((), jnp.int32))


def _diagonal(scale_fn: Callable, name: str) -> tuple[Callable, Callable]:
    """solve and inverse_operator for m = scale_fn(state)."""

    def solve(state, g):
        flat, unravel = ravel_pytree(g)
        return unravel(flat / scale_fn(state).astype(flat.dtype))

    def inverse_operator(state):
        return DiagonalOperator(1.0 / scale_fn(state))

    return solve, inverse_operator


def _flat_grads(grads, name):
    if grads is None:
        raise TypeError(f"the {name} preconditioner's update needs grads=…")
    return ravel_pytree(grads)[0]


def hutchinson_diagonal(loss_fn: Callable, params, batch, key, num_samples: int = 10):
    """diag(H) ≈ (1/s) Σ_j z_j ⊙ H z_j, Rademacher z_j; flat (n,).  Unbiased; exact for
    diagonal H.  Costs ``num_samples`` Hessian-vector products (vmapped)."""
    flat, unravel = ravel_pytree(params)
    z = jax.random.rademacher(key, (num_samples, flat.size), flat.dtype)

    def one(zj):
        return zj * ravel_pytree(hvp(loss_fn, params, batch, unravel(zj)))[0]

    return jnp.mean(jax.vmap(one)(z), axis=0)


def jacobi(loss_fn: Callable, *, num_samples: int = 10, damping: float = 1e-3,
           update_every: int = 1) -> Preconditioner:
    """Jacobi: M = diag(|diag(H)|) + λI, the Hessian diagonal estimated by Hutchinson.

    ``update(state, params, batch=…, key=…)`` re-estimates diag(H) of ``loss_fn(params, batch)``
    with ``num_samples`` HVPs every ``update_every`` steps.  The absolute value keeps M SPD on
    an indefinite Hessian; λ > 0 bounds M⁻¹ where the diagonal is (estimated as) tiny.
    """
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an int ≥ 1, got {num_samples!r}")
    damping = check_positive(damping, "damping")
    update_every = check_update_every(update_every)

    def update(state, params, *, batch=None, key=None, grads=None):
        if batch is None:
            raise TypeError("the Jacobi preconditioner's update needs batch=…")
        key = check_key(key)

        def refresh():
            d = hutchinson_diagonal(loss_fn, params, batch, key, num_samples)
            return d.astype(state.moment.dtype)

        moment = lazily(state.count, update_every, refresh, lambda: state.moment)
        return DiagonalState(moment, state.count + 1)

    solve, inverse_operator = _diagonal(lambda s: jnp.abs(s.moment) + damping, "jacobi")
    return Preconditioner(_init, update, solve, inverse_operator, name="jacobi")


def adagrad(*, eps: float = 1e-8, initial_accumulator: float = 0.0) -> Preconditioner:
    """AdaGrad's diagonal: v_t = v_{t−1} + g_t², M = diag(√v_t) + εI."""
    eps = check_positive(eps, "eps", allow_zero=True)
    initial_accumulator = check_positive(initial_accumulator, "initial_accumulator",
                                         allow_zero=True)

    def init(params):
        s = _init(params)
        return s._replace(moment=s.moment + initial_accumulator)

    def update(state, params, *, batch=None, key=None, grads=None):
        g = _flat_grads(grads, "AdaGrad")
        return DiagonalState(state.moment + g.astype(state.moment.dtype) ** 2, state.count + 1)

    solve, inverse_operator = _diagonal(lambda s: jnp.sqrt(s.moment) + eps, "adagrad")
    return Preconditioner(init, update, solve, inverse_operator, name="adagrad")


def _ema_update(decay, name):
    def update(state, params, *, batch=None, key=None, grads=None):
        g = _flat_grads(grads, name).astype(state.moment.dtype)
        return DiagonalState(decay * state.moment + (1 - decay) * g**2, state.count + 1)

    return update


def rmsprop(*, decay: float = 0.9, eps: float = 1e-8) -> Preconditioner:
    """RMSProp's diagonal: v_t = β v_{t−1} + (1 − β) g_t², M = diag(√v_t) + εI (β = ``decay``)."""
    decay = check_decay(decay, "decay")
    eps = check_positive(eps, "eps", allow_zero=True)
    solve, inverse_operator = _diagonal(lambda s: jnp.sqrt(s.moment) + eps, "rmsprop")
    return Preconditioner(_init, _ema_update(decay, "RMSProp"), solve, inverse_operator,
                          name="rmsprop")


def adam(*, b2: float = 0.999, eps: float = 1e-8) -> Preconditioner:
    """Adam's second-moment diagonal with bias correction: M = diag(√(v_t/(1 − β₂ᵗ))) + εI."""
    b2 = check_decay(b2, "b2")
    eps = check_positive(eps, "eps", allow_zero=True)

    def scale(s):
        t = jnp.maximum(s.count, 1).astype(s.moment.dtype)
        return jnp.sqrt(s.moment / (1 - b2**t)) + eps

    solve, inverse_operator = _diagonal(scale, "adam")
    return Preconditioner(_init, _ema_update(b2, "Adam"), solve, inverse_operator, name="adam")
