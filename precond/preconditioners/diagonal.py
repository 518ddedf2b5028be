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

from precond.curvature import hessian_operator
from precond.linalg import DiagonalOperator
from precond.validation import check_fraction, check_int, check_key, check_positive, float_dtype

from .base import Preconditioner, lazily

__all__ = ["DiagonalState", "jacobi", "adagrad", "rmsprop", "adam", "hutchinson_diagonal"]


class DiagonalState(NamedTuple):
    """``moment``: the accumulated statistic (v, or diag H for Jacobi), flat (n,); ``count``:
    updates seen."""

    moment: jax.Array
    count: jax.Array


def _init(params):
    flat, _ = ravel_pytree(params)
    return DiagonalState(jnp.zeros(flat.shape, float_dtype(params)), jnp.zeros((), jnp.int32))


def _diagonal(scale_fn: Callable) -> tuple[Callable, Callable]:
    """apply and inverse_operator for m = scale_fn(state)."""

    def apply(state, g):
        flat, unravel = ravel_pytree(g)
        return unravel(flat / scale_fn(state).astype(flat.dtype))

    def inverse_operator(state):
        return DiagonalOperator(1.0 / scale_fn(state))

    return apply, inverse_operator


def _flat_grads(grads, name):
    if grads is None:
        raise TypeError(f"the {name} preconditioner's update needs grads=…")
    return ravel_pytree(grads)[0]


def hutchinson_diagonal(loss_fn: Callable, params, batch, key, num_samples: int = 10):
    """diag(H) ≈ (1/s) Σ_j z_j ⊙ H z_j, Rademacher z_j; flat (n,).  Unbiased; exact for
    diagonal H.  One linearization of the gradient, then ``num_samples`` replayed
    Hessian-vector products (one ``matmat``).

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar`` (``loss_fn(params)`` when batch is None).
      params: the point, any pytree (n entries).
      batch: the data or None.
      key: jax.random key for the probes z_j.
      num_samples: s ≥ 1.
    """
    H = hessian_operator(loss_fn, params, batch)
    Z = jax.random.rademacher(check_key(key), (H.shape[0], num_samples), H.dtype)
    return jnp.mean(Z * H.matmat(Z), axis=1)


def jacobi(loss_fn: Callable, *, num_samples: int = 10, damping: float = 1e-3,
           update_every: int = 1) -> Preconditioner:
    """Jacobi: M = diag(|diag(H)|) + λI, the Hessian diagonal estimated by Hutchinson.

    ``update(state, params, batch=…, key=…)`` re-estimates diag(H) of ``loss_fn(params, batch)``
    with ``num_samples`` HVPs every ``update_every`` steps (``batch=None``: the full-batch
    ``loss_fn(params)``).  The absolute value keeps M SPD on an indefinite Hessian; λ > 0
    bounds M⁻¹ where the diagonal is (estimated as) tiny.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      num_samples: s ≥ 1 Rademacher probes per estimate.
      damping: λ > 0.
      update_every: refresh every this many ``update`` calls (≥ 1).
    """
    num_samples = check_int(num_samples, "num_samples", low=1)
    damping = check_positive(damping, "damping")
    update_every = check_int(update_every, "update_every", low=1)

    def update(state, params, *, batch=None, key=None, grads=None):
        key = check_key(key)

        def refresh():
            d = hutchinson_diagonal(loss_fn, params, batch, key, num_samples)
            return d.astype(state.moment.dtype)

        moment = lazily(state.count, update_every, refresh, lambda: state.moment)
        return DiagonalState(moment, state.count + 1)

    apply, inverse_operator = _diagonal(lambda s: jnp.abs(s.moment) + damping)
    return Preconditioner(_init, update, apply, inverse_operator, name="jacobi")


def adagrad(*, eps: float = 1e-8, initial_accumulator: float = 0.0) -> Preconditioner:
    """AdaGrad's diagonal: v_t = v_{t−1} + g_t², M = diag(√v_t) + εI.

    ``update(state, params, grads=g)`` adds g² (``batch`` and ``key`` are ignored).

    Args:
      eps: ε ≥ 0.
      initial_accumulator: v_0 ≥ 0 (every entry).
    """
    eps = check_positive(eps, "eps", allow_zero=True)
    initial_accumulator = check_positive(initial_accumulator, "initial_accumulator",
                                         allow_zero=True)

    def init(params):
        s = _init(params)
        return s._replace(moment=s.moment + initial_accumulator)

    def update(state, params, *, batch=None, key=None, grads=None):
        g = _flat_grads(grads, "AdaGrad")
        return DiagonalState(state.moment + g.astype(state.moment.dtype) ** 2, state.count + 1)

    apply, inverse_operator = _diagonal(lambda s: jnp.sqrt(s.moment) + eps)
    return Preconditioner(init, update, apply, inverse_operator, name="adagrad")


def _ema_update(decay, name):
    def update(state, params, *, batch=None, key=None, grads=None):
        g = _flat_grads(grads, name).astype(state.moment.dtype)
        return DiagonalState(decay * state.moment + (1 - decay) * g**2, state.count + 1)

    return update


def rmsprop(*, decay: float = 0.9, eps: float = 1e-8) -> Preconditioner:
    """RMSProp's diagonal: v_t = β v_{t−1} + (1 − β) g_t², M = diag(√v_t) + εI.

    ``update(state, params, grads=g)`` (``batch`` and ``key`` are ignored).

    Args:
      decay: β in [0, 1).
      eps: ε ≥ 0.
    """
    decay = check_fraction(decay, "decay")
    eps = check_positive(eps, "eps", allow_zero=True)
    apply, inverse_operator = _diagonal(lambda s: jnp.sqrt(s.moment) + eps)
    return Preconditioner(_init, _ema_update(decay, "RMSProp"), apply, inverse_operator,
                          name="rmsprop")


def adam(*, b2: float = 0.999, eps: float = 1e-8) -> Preconditioner:
    """Adam's second-moment diagonal with bias correction: M = diag(√(v_t/(1 − β₂ᵗ))) + εI.

    ``update(state, params, grads=g)`` (``batch`` and ``key`` are ignored).

    Args:
      b2: β₂ in [0, 1).
      eps: ε ≥ 0.
    """
    b2 = check_fraction(b2, "b2")
    eps = check_positive(eps, "eps", allow_zero=True)

    def scale(s):
        t = jnp.maximum(s.count, 1).astype(s.moment.dtype)
        return jnp.sqrt(s.moment / (1 - b2**t)) + eps

    apply, inverse_operator = _diagonal(scale)
    return Preconditioner(_init, _ema_update(b2, "Adam"), apply, inverse_operator, name="adam")
