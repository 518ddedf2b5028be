"""SketchySGD: minibatch SGD preconditioned by a lazily refreshed Nyström sketch of the
subsampled Hessian, with the learning rate from the preconditioned smoothness; and plain SGD."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from ..validation import check_positive
from ._common import (
    StochasticMethod,
    StochasticResult,
    epoch_batches,
    identity,
    init_at,
    learning_rate,
    solve,
)
from .problems import GLMProblem

__all__ = ["SketchySGD", "SGD", "sketchy_sgd", "sgd"]


@partial(jax.jit, static_argnames=("batch_size",))
def _epoch(problem, w, curv, lr, key, *, batch_size):
    batches = epoch_batches(key, problem.n, batch_size)

    def step(w, idx):
        return w - lr * curv.precond.matvec(problem.grad(w, idx)), None

    w, _ = lax.scan(step, w, batches)
    return w, jnp.int32(batches.size)


def _hyper(L, lr, defaults, problem, epoch=0, *, decay=1.0):
    """η_k = γᵏη with η = ½/L̂ unless ``lr`` is given (γ = ``decay``)."""
    return learning_rate(L, lr) * decay**epoch


SketchySGD = StochasticMethod("SketchySGD", True, init_at, _epoch, _hyper, identity, identity)
"""SketchySGD's jittable pair: state = w; epoch = ⌊n/b_g⌋ steps w ← w − η P⁻¹∇F_B(w)."""

SGD = SketchySGD._replace(name="SGD", sketchy=False)
"""Minibatch SGD's jittable pair (SketchySGD with P = I)."""


STALL_DECAY = 0.5
"""The ``"stall"`` schedule's factor: η is halved after every epoch that does not improve F."""


def _run(method, problem, lr_decay, schedule, **kw) -> StochasticResult:
    decay = check_positive(lr_decay, "lr_decay")
    if decay > 1.0:
        raise ValueError(f"lr_decay must be in (0, 1], got {decay}")
    if schedule not in ("stall", "constant"):
        raise ValueError(f"schedule must be 'stall' or 'constant', got {schedule!r}")
    return solve(method._replace(hyper=partial(_hyper, decay=decay)), problem,
                 stall_decay=STALL_DECAY if schedule == "stall" else None, **kw)


def sketchy_sgd(problem: GLMProblem, *, epochs: int, key: jax.Array, batch_size: int | None = None,
                hessian_batch_size: int | None = None, rank: int | None = None,
                rho: float | None = None, refresh: int | None = None, lr: float | None = None,
                lr_decay: float = 1.0, schedule: str = "stall", x0=None, tol: float = 1e-10,
                target: float | None = None, progress: bool = False,
                max_rank: int | None = None) -> StochasticResult:
    """SketchySGD with PROMISE's default hyperparameters.

        w ← w − η P⁻¹ ∇F_B(w),      B a uniform minibatch of size b_g (``batch_size``)

    P⁻¹ = ``NystromPreconditioner(nystrom(H_S(w) − μI, r), ρ)``, H_S the Hessian on b_H
    (``hessian_batch_size``) samples, rank r (``rank``), refreshed every ``refresh`` epochs
    (0 = once at x₀); η (``lr``) = ½ / λ_max(P⁻¹(H_S′ + μI)) on an independent subsample S′,
    re-estimated at each refresh.

    Defaults: r and b_g adaptive (:func:`precond.stochastic.solve`: r doubled from 10 until the
    sketch covers the curvature above ρ, capped by d, b_H and memory; b_g =
    min(n, 2^⌈log₂ max(r, L̂_max/L̂)⌉)), b_H = ⌊√n⌋, refresh every epoch for logistic and once
    for least squares (its Hessian does not depend on w), ρ = μ.  Why ρ = μ: the preconditioner
    damps span(U) by ρ and gives the rest of the space the curvature λ̂_r + ρ (the Nyström PCG
    form), so the damping that PROMISE's NySSN default adds beyond μ on the unsketched
    directions (≈ λ̂_r) is already built in; a larger ρ only blunts the preconditioner.

    Step schedule (``schedule``).  A constant η (``"constant"``, SketchySGD's and PROMISE's)
    converges linearly to a noise ball whose radius scales with η·(gradient variance)/b_g, not
    to the optimum.  The default ``"stall"`` halves η after every epoch whose objective F (on
    all n samples, evaluated after each epoch anyway) is not below the best so far: while F
    falls the step stays, and at the noise floor — where F stops falling — the step and with it
    the floor shrink, so the run keeps approaching the optimum without a problem-dependent
    constant (its rate there is SGD's, slower than the variance-reduced methods', which remain
    the choice for high accuracy).  ``lr_decay`` γ ∈ (0, 1] multiplies in addition a geometric
    decay: epoch k (from 0) uses γᵏη (default γ = 1: none).
    Each epoch (⌊n/b_g⌋ steps over a random reshuffle) is one compiled ``lax.scan``.  Stops
    early when ‖∇F‖ ≤ ``tol``·max(1, ‖∇F(x₀)‖) or F ≤ ``target``; an objective that becomes
    non-finite or grows past ``precond.loop.DIVERGENCE_FACTOR`` × its start stops the run with
    ``Status.DIVERGED``.  ``progress=True`` shows a rich progress bar.

    Args:
      problem: a :class:`GLMProblem` (n samples, d features).
      epochs, key, batch_size, hessian_batch_size, rank, rho, refresh, lr, x0, tol, target,
        progress: as for :func:`precond.stochastic.solve` (b_g, b_H, r, ρ, η, x₀ (d,); the key
        is required).
      lr_decay: γ ∈ (0, 1], the per-epoch step decay.
      schedule: ``"stall"`` (halve η when an epoch does not improve F) or ``"constant"``.
      max_rank: a cap on the adaptive rank.

    Returns:
      a :class:`StochasticResult`.

    Example:
      >>> import jax, numpy as np
      >>> from precond.stochastic import logistic, sketchy_sgd
      >>> rng = np.random.default_rng(0)
      >>> X = rng.standard_normal((500, 20)); y = (X[:, 0] > 0).astype(float)
      >>> res = sketchy_sgd(logistic(X, y, 1e-2), epochs=5, key=jax.random.key(0))
      >>> bool(res.objective[-1] < res.objective[0])
      True

    References:
      Frangella, Rathore, Zhao, Udell, "SketchySGD: reliable stochastic optimization via
      randomized curvature estimates", SIAM J. Math. Data Sci. 2024.
    """
    return _run(SketchySGD, problem, lr_decay, schedule, epochs=epochs, key=key,
                batch_size=batch_size, hessian_batch_size=hessian_batch_size, rank=rank, rho=rho,
                refresh=refresh, lr=lr, x0=x0, tol=tol, target=target, progress=progress,
                max_rank=max_rank)


def sgd(problem: GLMProblem, *, epochs: int, key: jax.Array, batch_size: int | None = None,
        hessian_batch_size: int | None = None, lr: float | None = None, lr_decay: float = 1.0,
        schedule: str = "constant", x0=None, tol: float = 1e-10, target: float | None = None,
        progress: bool = False) -> StochasticResult:
    """Minibatch SGD, w ← w − γᵏη ∇F_B(w) in epoch k; ``lr=None`` uses η = ½ / λ_max(H_S′ + μI)
    estimated once at x₀ (b_H = ``hessian_batch_size`` samples).  Same loop and result as
    :func:`sketchy_sgd` with P = I.

    Args:
      problem, epochs, key, batch_size, hessian_batch_size, lr, x0, tol, target, progress: as
        for :func:`sketchy_sgd` (P = I, so no rank, rho or refresh).
      lr_decay: γ ∈ (0, 1], the per-epoch step decay.
      schedule: ``"constant"`` (default: plain SGD is the tuned baseline) or ``"stall"`` (as
        :func:`sketchy_sgd`'s default).
    """
    return _run(SGD, problem, lr_decay, schedule, epochs=epochs, key=key, batch_size=batch_size,
                hessian_batch_size=hessian_batch_size, rank=None, rho=None, refresh=None,
                lr=lr, x0=x0, tol=tol, target=target, progress=progress)
