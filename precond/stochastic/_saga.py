"""SketchySAGA (b-nice minibatches) and SAGA, with the GLM trick of storing one scalar per
sample instead of one gradient."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ._common import (
    StochasticMethod,
    StochasticResult,
    constant_rate,
    epoch_batches,
    gradient_table,
    identity,
    solve,
)
from .problems import GLMProblem

__all__ = ["SagaState", "SketchySAGA", "SAGA", "sketchy_saga", "saga"]


class SagaState(NamedTuple):
    """SAGA's state: the iterate and the table of per-sample gradient scalars."""

    w: jax.Array
    table: jax.Array  # αᵢ = φ′(xᵢᵀwᵢ, yᵢ) at the point wᵢ where sample i was last seen, (n,)
    mean: jax.Array  # ᾱ = (1/n) Xᵀα, the mean of the stored data gradients, (d,)


@jax.jit
def _init(problem, x0):
    table, mean = gradient_table(problem, x0)
    return SagaState(x0, table, mean), jnp.int32(problem.n)


@partial(jax.jit, static_argnames=("batch_size",))
def _epoch(problem, state, curv, lr, key, *, batch_size):
    batches = epoch_batches(key, problem.n, batch_size)
    n = problem.n

    def step(s, idx):
        r = problem.residuals(s.w, idx)
        delta = problem.rows.take(idx).T.matvec(r - s.table[idx])
        g = delta / idx.shape[0] + s.mean + problem.mu * s.w
        w = s.w - lr * curv.precond.matvec(g)
        return SagaState(w, s.table.at[idx].set(r), s.mean + delta / n), None

    state, _ = lax.scan(step, state, batches)
    return state, jnp.int32(batches.size)


def _iterate(state):
    return state.w


SketchySAGA = StochasticMethod("SketchySAGA", True, _init, _epoch, constant_rate, _iterate,
                               identity)
"""SketchySAGA's jittable pair: state = :class:`SagaState`; init fills the table at x₀ (n
gradient evaluations), an epoch is ⌊n/b_g⌋ steps."""

SAGA = SketchySAGA._replace(name="SAGA", sketchy=False)
"""Minibatch SAGA's jittable pair (SketchySAGA with P = I)."""


def sketchy_saga(problem: GLMProblem, *, epochs: int, key: jax.Array,
                 batch_size: int | None = None, hessian_batch_size: int | None = None,
                 rank: int | None = None, rho: float | None = None, refresh: int | None = None,
                 lr: float | None = None, x0=None, tol: float = 1e-10,
                 target: float | None = None, progress: bool = False) -> StochasticResult:
    """SketchySAGA with b-nice minibatches B (uniform b_g-subsets):

        g = (1/b) Σ_{i∈B} (∇fᵢ(w) − αᵢ) + ᾱ + μw,   w ← w − η P⁻¹ g,   αᵢ ← ∇fᵢ(w) (i ∈ B),

    with ᾱ the mean of the table.  For a GLM ∇fᵢ(w) = φ′(xᵢᵀw, yᵢ)xᵢ, so the table holds one
    scalar per sample (n numbers, not n×d).  Initialized with the full gradient at x₀ (n
    evaluations); each epoch is ⌊n/b_g⌋ steps, b_g gradient evaluations each.  P⁻¹, η, the
    defaults and the stopping rules are those of :func:`sketchy_sgd`.

    Args:
      problem: a :class:`GLMProblem` (n samples, d features).
      epochs, key, batch_size, hessian_batch_size, rank, rho, refresh, lr, x0, tol, target,
        progress: as for :func:`precond.stochastic.solve` (b_g, b_H, r, ρ, η, x₀ (d,); the key
        is required).

    Returns:
      a :class:`StochasticResult`.

    References:
      Frangella, Rathore, Zhao, Udell, "PROMISE: Preconditioned stochastic optimization methods
      by incorporating scalable curvature estimates", JMLR 25(346), 2024.
      Gazagnadou, Gower, Salmon, "Optimal mini-batch and step sizes for SAGA", ICML 2019.
    """
    return solve(SketchySAGA, problem, epochs=epochs, key=key, batch_size=batch_size,
                 hessian_batch_size=hessian_batch_size, rank=rank, rho=rho, refresh=refresh, lr=lr,
                 x0=x0, tol=tol, target=target, progress=progress)


def saga(problem: GLMProblem, *, epochs: int, key: jax.Array, batch_size: int | None = None,
         hessian_batch_size: int | None = None, lr: float | None = None, x0=None,
         tol: float = 1e-10, target: float | None = None,
         progress: bool = False) -> StochasticResult:
    """Minibatch (b-nice) SAGA (:func:`sketchy_saga` with P = I); ``lr=None`` uses
    η = ½/λ_max(H_S′ + μI) estimated once at x₀.

    Args:
      problem, epochs, key, batch_size, hessian_batch_size, lr, x0, tol, target, progress: as
        for :func:`sketchy_saga` (P = I, so no rank, rho or refresh).
    """
    return solve(SAGA, problem, epochs=epochs, key=key, batch_size=batch_size,
                 hessian_batch_size=hessian_batch_size, rank=None, rho=None, refresh=None, lr=lr,
                 x0=x0, tol=tol, target=target, progress=progress)
