"""SketchySVRG (epoch-based) and SVRG: variance-reduced gradients around a per-epoch snapshot,
preconditioned by the lazily refreshed Nyström sketch."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from ._common import (
    StochasticMethod,
    StochasticResult,
    constant_rate,
    epoch_batches,
    identity,
    init_at,
    snapshot,
    solve,
    variance_reduced_grad,
)
from .problems import GLMProblem

__all__ = ["SketchySVRG", "SVRG", "sketchy_svrg", "svrg"]


@partial(jax.jit, static_argnames=("batch_size",))
def _epoch(problem, w, curv, lr, key, *, batch_size):
    batches = epoch_batches(key, problem.n, batch_size)
    point = w
    table, full = snapshot(problem, point)

    def step(w, idx):
        g = variance_reduced_grad(problem, w, idx, point, table, full)
        return w - lr * curv.precond.matvec(g), None

    w, _ = lax.scan(step, w, batches)
    return w, jnp.int32(problem.n + batches.size)


SketchySVRG = StochasticMethod("SketchySVRG", True, init_at, _epoch, constant_rate, identity,
                               identity)
"""SketchySVRG's jittable pair: state = w; an epoch takes the snapshot (its table of φ′ and its
full gradient), then ⌊n/b_g⌋ variance-reduced steps."""

SVRG = SketchySVRG._replace(name="SVRG", sketchy=False)
"""Epoch-based minibatch SVRG's jittable pair (SketchySVRG with P = I)."""


def sketchy_svrg(problem: GLMProblem, *, epochs: int, key: jax.Array,
                 batch_size: int | None = None, hessian_batch_size: int | None = None,
                 rank: int | None = None, rho: float | None = None, refresh: int | None = None,
                 lr: float | None = None, x0=None, tol: float = 1e-10,
                 target: float | None = None, progress: bool = False) -> StochasticResult:
    """SketchySVRG, epoch-based: each epoch takes a snapshot w̃ = w and its full gradient, then
    ⌊n/b_g⌋ inner steps

        w ← w − η P⁻¹ (∇F_B(w) − ∇F_B(w̃) + ∇F(w̃)),

    and the last inner iterate becomes the next snapshot.  ∇F_B(w̃) is read from the snapshot's
    table of per-sample scalars φ′(xᵢᵀw̃) (:func:`precond.stochastic.snapshot`), so one epoch
    costs n + ⌊n/b_g⌋b_g gradient evaluations (≈ 2 data passes; ``grad_evals`` counts them).
    P⁻¹, η, the defaults and the stopping rules are those of :func:`sketchy_sgd`
    (η = ½/λ_max(P⁻¹(H_S′ + μI))).

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
      Johnson, Zhang, "Accelerating stochastic gradient descent using predictive variance
      reduction", NeurIPS 2013.
    """
    return solve(SketchySVRG, problem, epochs=epochs, key=key, batch_size=batch_size,
                 hessian_batch_size=hessian_batch_size, rank=rank, rho=rho, refresh=refresh, lr=lr,
                 x0=x0, tol=tol, target=target, progress=progress)


def svrg(problem: GLMProblem, *, epochs: int, key: jax.Array, batch_size: int | None = None,
         hessian_batch_size: int | None = None, lr: float | None = None, x0=None,
         tol: float = 1e-10, target: float | None = None,
         progress: bool = False) -> StochasticResult:
    """Epoch-based minibatch SVRG (:func:`sketchy_svrg` with P = I); ``lr=None`` uses
    η = ½/λ_max(H_S′ + μI) estimated once at x₀.

    Args:
      problem, epochs, key, batch_size, hessian_batch_size, lr, x0, tol, target, progress: as
        for :func:`sketchy_svrg` (P = I, so no rank, rho or refresh).
    """
    return solve(SVRG, problem, epochs=epochs, key=key, batch_size=batch_size,
                 hessian_batch_size=hessian_batch_size, rank=None, rho=None, refresh=None, lr=lr,
                 x0=x0, tol=tol, target=target, progress=progress)
