"""SketchyKatyusha and Katyusha, both loopless (L-Katyusha): Nesterov-type acceleration with a
variance-reduced gradient whose snapshot is refreshed by a coin flip instead of an outer loop."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from ._common import (
    StochasticMethod,
    StochasticResult,
    epoch_batches,
    snapshot,
    solve,
    variance_reduced_grad,
)
from .problems import GLMProblem

__all__ = ["KatyushaState", "KatyushaParams", "SketchyKatyusha", "Katyusha", "sketchy_katyusha",
           "katyusha"]


class KatyushaState(NamedTuple):
    """Loopless Katyusha's state."""

    y: jax.Array  # the iterate reported
    z: jax.Array  # the mirror-descent sequence
    snapshot: jax.Array  # w̃
    full: jax.Array  # ∇F(w̃)
    table: jax.Array  # αᵢ = φ′(xᵢᵀw̃, yᵢ) (n,): ∇F_B(w̃) without a second pass over B


class KatyushaParams(NamedTuple):
    """An epoch's hyperparameters: L, σ = μ/L, θ₁, θ₂, η and the snapshot probability p."""

    L: jax.Array
    sigma: jax.Array
    theta1: jax.Array
    theta2: jax.Array
    eta: jax.Array
    p: jax.Array


@jax.jit
def _init(problem, x0):
    table, full = snapshot(problem, x0)
    return KatyushaState(x0, x0, x0, full, table), jnp.int32(problem.n)


@partial(jax.jit, static_argnames=("batch_size",))
def _epoch(problem, state, curv, hp, key, *, batch_size):
    k_batch, k_coin = jax.random.split(key)
    batches = epoch_batches(k_batch, problem.n, batch_size)
    coins = jax.random.uniform(k_coin, (batches.shape[0],), state.y.dtype)
    t1, t2 = hp.theta1, hp.theta2

    def step(carry, inputs):
        s, evals = carry
        idx, u = inputs
        x = t1 * s.z + t2 * s.snapshot + (1.0 - t1 - t2) * s.y
        g = curv.precond.matvec(variance_reduced_grad(problem, x, idx, s.snapshot, s.table,
                                                      s.full))
        z = (s.z + hp.eta * hp.sigma * x - (hp.eta / hp.L) * g) / (1.0 + hp.eta * hp.sigma)
        y = x + t1 * (z - s.z)
        take = u < hp.p  # with probability p the snapshot moves to the previous y
        point, table, full = lax.cond(take, lambda: (s.y, *snapshot(problem, s.y)),
                                      lambda: (s.snapshot, s.table, s.full))
        evals = evals + idx.shape[0] + jnp.where(take, problem.n, 0)
        return (KatyushaState(y, z, point, full, table), evals), None

    (state, evals), _ = lax.scan(step, (state, jnp.int32(0)), (batches, coins))
    return state, evals


def _hyper(L_hat, lr, defaults, problem, epoch=0):
    """L = L̂ (or 1/(2·lr)), σ = μ/L, p = b_g/n, θ₂ = ½, θ₁ = min(½, √(2nσ/3)),
    η = θ₂/((1 + θ₂)θ₁) — L-Katyusha's parameters (Kovalev, Horváth, Richtárik) with the full n
    in θ₁, as PROMISE's reference implementation sets them from the same estimate L̂ (see
    :func:`sketchy_katyusha` for why n and not n/b_g = 1/p)."""
    L = L_hat if lr is None else jnp.asarray(0.5 / lr, problem.dtype)
    sigma = problem.mu / L
    p = jnp.asarray(defaults.batch_size / problem.n, problem.dtype)
    theta2 = jnp.asarray(0.5, problem.dtype)
    theta1 = jnp.minimum(0.5, jnp.sqrt(2.0 * problem.n * sigma / 3.0))
    theta1 = jnp.where(theta1 > 0, theta1, 0.5)  # μ = 0: no strong convexity to exploit
    eta = theta2 / ((1.0 + theta2) * theta1)
    return KatyushaParams(L, sigma, theta1, theta2, eta, p)


def _iterate(state):
    return state.y


def _lr_of(hp):
    return 0.5 / hp.L


SketchyKatyusha = StochasticMethod("SketchyKatyusha", True, _init, _epoch, _hyper, _iterate,
                                   _lr_of)
"""SketchyKatyusha's jittable pair: state = :class:`KatyushaState`, hyper =
:class:`KatyushaParams`; an epoch is ⌊n/b_g⌋ loopless steps."""

Katyusha = SketchyKatyusha._replace(name="Katyusha", sketchy=False)
"""Loopless Katyusha's jittable pair (SketchyKatyusha with P = I)."""


def sketchy_katyusha(problem: GLMProblem, *, epochs: int, key: jax.Array,
                     batch_size: int | None = None, hessian_batch_size: int | None = None,
                     rank: int | None = None, rho: float | None = None,
                     refresh: int | None = None, lr: float | None = None, x0=None,
                     tol: float = 1e-10, target: float | None = None,
                     progress: bool = False) -> StochasticResult:
    """SketchyKatyusha, loopless.  Per step, with a b_g-minibatch B and a coin u ~ U(0, 1):

        x = θ₁z + θ₂w̃ + (1 − θ₁ − θ₂)y
        g = P⁻¹(∇F_B(x) − ∇F_B(w̃) + ∇F(w̃))
        z⁺ = (z + ησx − (η/L)g) / (1 + ησ),   y⁺ = x + θ₁(z⁺ − z)
        if u < p:  w̃ ← y,  recompute ∇F(w̃)

    Parameters from the same estimate as the other methods: L = L̂ = λ_max(P⁻¹(H_S′ + μI))
    (``lr`` given: L = 1/(2·lr), so the reported learning rate is ½/L as elsewhere), σ = μ/L
    (the preconditioned strong convexity: P⁻¹'s scaling makes every direction keep curvature
    ≥ μ), p = b_g/n, θ₂ = ½, θ₁ = min(½, √(2nσ/3)), η = θ₂/((1 + θ₂)θ₁).  One epoch is ⌊n/b_g⌋
    steps: b_g gradient evaluations each (∇F_B(w̃) is read from the snapshot's table of φ′, see
    :func:`precond.stochastic.snapshot`) plus n per snapshot update (≈ 2 data passes on
    average).  The reported iterate is y.  P⁻¹, the other defaults and the stopping rules are
    those of :func:`sketchy_sgd`.

    θ₁ uses the full n, as PROMISE's reference code does, not the minibatch reading n/b_g = 1/p
    of L-Katyusha's single-sample formula: the latter is √b_g (16×) smaller, so the mirror step
    η/L = 1/(3θ₁L) is 16× longer, and with a small μ (nearly separable data) the z-sequence
    then amplifies the minibatch noise: on KEEL mushroom it ran away where θ₁ = √(2nσ/3)
    converges (docs/results/promise.md, docs/bench/promise_ablations.md).

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
      Kovalev, Horváth, Richtárik, "Don't jump through hoops and remove those loops: SVRG and
      Katyusha are better without the outer loop", ALT 2020.
    """
    return solve(SketchyKatyusha, problem, epochs=epochs, key=key, batch_size=batch_size,
                 hessian_batch_size=hessian_batch_size, rank=rank, rho=rho, refresh=refresh, lr=lr,
                 x0=x0, tol=tol, target=target, progress=progress)


def katyusha(problem: GLMProblem, *, epochs: int, key: jax.Array, batch_size: int | None = None,
             hessian_batch_size: int | None = None, lr: float | None = None, x0=None,
             tol: float = 1e-10, target: float | None = None,
             progress: bool = False) -> StochasticResult:
    """Loopless Katyusha (:func:`sketchy_katyusha` with P = I); ``lr=None`` uses
    L = λ_max(H_S′ + μI) estimated once at x₀, else L = 1/(2·lr).

    Args:
      problem, epochs, key, batch_size, hessian_batch_size, lr, x0, tol, target, progress: as
        for :func:`sketchy_katyusha` (P = I, so no rank, rho or refresh).
    """
    return solve(Katyusha, problem, epochs=epochs, key=key, batch_size=batch_size,
                 hessian_batch_size=hessian_batch_size, rank=None, rho=None, refresh=None, lr=lr,
                 x0=x0, tol=tol, target=target, progress=progress)
