"""NysNewton-CG (NNCG): damped Newton-CG with a Nyström preconditioner and Armijo line search."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from precond.curvature import ravel
from precond.linalg import MatvecOperator, NystromPreconditioner, Status, cg, nystrom
from precond.linalg.nystrom import NystromApprox

__all__ = ["NNCGInfo", "NNCGState", "nncg"]


class NNCGInfo(NamedTuple):
    """Diagnostics of the last NNCG step (all arrays, so they live under jit).

    ``status``: ``Status.CONVERGED`` for an accepted step, ``NONFINITE`` when the loss or gradient
    at the current point is NaN/inf (the step is zero: stop there), ``STALLED`` when the line
    search found no decrease in ``max_linesearch_steps`` halvings (the step is zero).
    ``cg_status``/``cg_iterations``: how the inner PCG solve ended (``NEGATIVE_CURVATURE`` means
    H + μI was found indefinite).  ``fallback``: the PCG answer was not a descent direction (or
    not finite), so the Nyström-damped gradient step was used instead.  ``mu``: the damping
    actually used after the guards.  ``step_size``: the accepted t (0 when none).
    """

    status: jax.Array
    cg_status: jax.Array
    cg_iterations: jax.Array
    fallback: jax.Array
    mu: jax.Array
    step_size: jax.Array
    linesearch_steps: jax.Array
    value: jax.Array
    new_value: jax.Array


class NNCGState(NamedTuple):
    """``count`` steps taken; ``direction`` the last Newton direction (warm start for PCG);
    ``approx`` the current Nyström sketch of H (U (n, r), eigenvalues (r,)); ``key`` for the next
    sketch; ``info`` the last step's :class:`NNCGInfo`."""

    count: jax.Array
    direction: jax.Array
    approx: NystromApprox
    key: jax.Array
    info: NNCGInfo


def nncg(
    learning_rate: float = 1.0,
    *,
    rank: int = 60,
    mu: float = 1e-2,
    update_every: int = 20,
    cg_tol: float = 1e-10,
    cg_maxiter: int = 100,
    armijo_alpha: float = 0.1,
    armijo_beta: float = 0.5,
    max_linesearch_steps: int = 40,
    mu_min_ratio: float | None = None,
    mu_max_ratio: float = 1.0,
    key: jax.Array | None = None,
) -> optax.GradientTransformationExtraArgs:
    r"""NysNewton-CG: each step solves (H + μI) d = g by Nyström PCG and backtracks along −d.

    With g = ∇f(w), H = ∇²f(w) (matrix-free, forward-over-reverse HVPs of ``value_fn``) and
    Â = UΛ̂Uᵀ the rank-r (``rank``) Nyström sketch of H, refreshed every k (``update_every``)
    steps:

        d_k  ≈ (H + μI)⁻¹ g   by PCG with P⁻¹ = (λ̂_r + μ) U(Λ̂ + μI)⁻¹Uᵀ + (I − UUᵀ),
                              warm-started at d_{k−1}, to ‖res‖ ≤ ``cg_tol``·‖g‖ or ``cg_maxiter``,
        t_k  = η βʲ, the first j with f(w − t d) ≤ f(w) − α t gᵀd   (η ``learning_rate``,
                              α ``armijo_alpha`` = 0.1, β ``armijo_beta`` = 0.5),
        w_{k+1} = w_k − t_k d_k.

    Indefinite H.  H of a PINN loss is not PSD.  The sketch is of H itself, made PSD the way the
    reference implementation does in spirit: :func:`precond.linalg.nystrom` shifts the sketch,
    drops non-positive directions of the core ΩᵀHΩ and clips λ̂ ≥ 0, so P is always SPD.  Inside
    PCG a direction with pᵀ(H + μI)p ≤ 0 stops the solve (status ``negative_curvature``) at the
    last iterate.  Whatever PCG returns is used only if it is finite and a descent direction
    (gᵀd > 0); otherwise the step falls back to d = (Â + μI)⁺-like damped gradient
    P⁻¹g / (λ̂_r + μ) (SPD, hence descent).  The line search never accepts an increase: when it
    fails the step is zero and the status ``stalled``.

    Guards on μ.  Too small a μ makes H + μI nearly singular or indefinite: PCG breaks down or
    returns huge steps (numerical breakdown); too large a μ turns the step into gradient descent
    with step 1/μ (the curvature is washed out).  So the damping used is
    μ_eff = max(min(μ, ``mu_max_ratio``·λ̂₁), ``mu_min_ratio``·λ̂₁), with λ̂₁ the largest sketched
    eigenvalue; ``mu_min_ratio`` defaults to √eps of the dtype (1.5e-8 in float64: κ(H + μI)
    stays ≤ 1/√eps), ``mu_max_ratio`` to 1 (beyond λ̂₁ every direction is damped by more than
    half).  ``info.mu`` reports μ_eff.  The published best μ are 1e-2 and 1e-1.  ``mu`` and
    ``learning_rate`` may be traced values, so a μ sweep under ``jit`` compiles once.

    The transformation takes the extra arguments of ``optax.lbfgs``: ``value`` (f(w)), ``grad``
    (∇f(w), also accepted as ``updates``) and ``value_fn`` (w ↦ f(w); further keyword arguments
    are passed to it), so it drops into the same loops (e.g. with
    ``optax.value_and_grad_from_state``).  Returns updates −t d; add them with
    ``optax.apply_updates``.

    Cost per step: ``rank`` HVPs every ``update_every`` steps, ≤ ``cg_maxiter`` + 1 HVPs, and one
    loss evaluation per line-search trial.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from precond.optim import nncg
      >>> f = lambda w: jnp.sum((w - 1.0) ** 4) + jnp.sum(w ** 2)
      >>> opt = nncg(rank=2, mu=1e-3, key=jax.random.key(0))
      >>> w = jnp.zeros(3); state = opt.init(w)
      >>> for _ in range(10):
      ...     v, g = jax.value_and_grad(f)(w)
      ...     u, state = opt.update(g, state, w, value=v, grad=g, value_fn=f)
      ...     w = optax.apply_updates(w, u)
      >>> float(jnp.linalg.norm(jax.grad(f)(w))) < 1e-8
      True

    References:
      Rathore, Lei, Frangella, Lu, Udell, "Challenges in training PINNs: a loss landscape
      perspective", ICML 2024.
      Frangella, Tropp, Udell, "Randomized Nyström preconditioning", SIAM J. Matrix Anal. Appl.
      2023.
    """
    _check_positive(learning_rate, "learning_rate")
    _check_positive(mu, "mu")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ValueError(f"rank must be an int ≥ 1, got {rank!r}")
    if not isinstance(update_every, int) or isinstance(update_every, bool) or update_every < 1:
        raise ValueError(f"update_every must be an int ≥ 1, got {update_every!r}")
    if not isinstance(cg_maxiter, int) or isinstance(cg_maxiter, bool) or cg_maxiter < 1:
        raise ValueError(f"cg_maxiter must be an int ≥ 1, got {cg_maxiter!r}")
    if not 0 <= cg_tol < 1:
        raise ValueError(f"cg_tol must be in [0, 1), got {cg_tol}")
    if not 0 < armijo_alpha < 1:
        raise ValueError(f"armijo_alpha must be in (0, 1), got {armijo_alpha}")
    if not 0 < armijo_beta < 1:
        raise ValueError(f"armijo_beta must be in (0, 1), got {armijo_beta}")
    if not isinstance(max_linesearch_steps, int) or max_linesearch_steps < 1:
        raise ValueError(f"max_linesearch_steps must be an int ≥ 1, got {max_linesearch_steps!r}")
    if mu_min_ratio is not None and not 0 <= mu_min_ratio < 1:
        raise ValueError(f"mu_min_ratio must be in [0, 1), got {mu_min_ratio}")
    _check_positive(mu_max_ratio, "mu_max_ratio")
    if mu_min_ratio is not None and mu_min_ratio > mu_max_ratio:
        raise ValueError("mu_min_ratio must be ≤ mu_max_ratio")
    if key is None:
        key = jax.random.key(0)

    def init_fn(params) -> NNCGState:
        flat, _ = ravel(params)
        n = flat.size
        if rank > n:
            raise ValueError(f"rank must be ≤ the number of parameters ({n}), got {rank}")
        dtype = flat.dtype
        zero = jnp.zeros((), dtype)
        info = NNCGInfo(jnp.int32(Status.CONVERGED), jnp.int32(Status.CONVERGED), jnp.int32(0),
                        jnp.bool_(False), zero, zero, jnp.int32(0), zero, zero)
        approx = NystromApprox(jnp.zeros((n, rank), dtype), jnp.zeros((rank,), dtype))
        return NNCGState(jnp.int32(0), jnp.zeros_like(flat), approx, key, info)

    def update_fn(updates, state: NNCGState, params=None, *, value=None, grad=None,
                  value_fn=None, **extra_args) -> tuple[Any, NNCGState]:
        if params is None or value is None or value_fn is None:
            raise ValueError("nncg needs params and the extra arguments value and value_fn "
                             "(as optax.lbfgs), e.g. update(g, s, w, value=v, grad=g, "
                             "value_fn=f)")
        grad = updates if grad is None else grad
        w, unravel = ravel(params)
        g, _ = ravel(grad)
        dtype = w.dtype
        f = lambda x: value_fn(unravel(x), **extra_args)  # noqa: E731
        _, hvp = jax.linearize(jax.grad(f), w)  # one linearization, reused by every HVP
        H = MatvecOperator(hvp, (w.size, w.size), dtype, rmatvec=hvp)

        key, sketch_key = jax.random.split(state.key)
        refresh = state.count % update_every == 0
        approx = lax.cond(refresh, lambda: nystrom(H, rank, sketch_key), lambda: state.approx)
        lam1, lamr = approx.eigenvalues[0], approx.eigenvalues[-1]
        eps = jnp.finfo(dtype).eps
        lo = (jnp.sqrt(eps) if mu_min_ratio is None else mu_min_ratio) * lam1
        hi = jnp.where(lam1 > 0, mu_max_ratio * lam1, mu)
        mu_eff = jnp.maximum(jnp.minimum(jnp.asarray(mu, dtype), hi), lo)

        P_inv = NystromPreconditioner(approx, mu_eff)
        res = cg(H.shift(mu_eff), g, M=P_inv, x0=state.direction, tol=cg_tol,
                 maxiter=cg_maxiter)
        d = res.x
        slope = jnp.vdot(g, d)
        use_fallback = ~(jnp.all(jnp.isfinite(d)) & (slope > 0))
        d_fb = P_inv.matvec(g) / (lamr + mu_eff)
        d = jnp.where(use_fallback, d_fb, d)
        slope = jnp.vdot(g, d)

        value = jnp.asarray(value, dtype)
        finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(g)) & jnp.isfinite(slope)

        def ls_cond(c):
            j, t, f_t = c
            ok = jnp.isfinite(f_t) & (f_t <= value - armijo_alpha * t * slope)
            return (~ok) & (j < max_linesearch_steps)

        def ls_body(c):
            j, t, _ = c
            t = t * armijo_beta
            return j + 1, t, f(w - t * d)

        t0 = jnp.asarray(learning_rate, dtype)
        j, t, f_t = lax.while_loop(ls_cond, ls_body, (jnp.int32(0), t0, f(w - t0 * d)))
        accepted = finite & jnp.isfinite(f_t) & (f_t <= value - armijo_alpha * t * slope)
        t = jnp.where(accepted, t, 0.0)
        status = jnp.where(accepted, Status.CONVERGED, Status.STALLED)
        status = jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)
        step = jnp.where(accepted, -t * d, 0.0)
        info = NNCGInfo(status, res.status.astype(jnp.int32), res.iterations.astype(jnp.int32),
                        use_fallback, mu_eff, t, j, value, jnp.where(accepted, f_t, value))
        # Warm start only from a usable Newton direction.
        direction = jnp.where(finite & ~use_fallback, res.x, jnp.zeros_like(w))
        new_state = NNCGState(state.count + 1, direction, approx, key, info)
        return unravel(step), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _check_positive(x, name: str) -> None:
    if isinstance(x, jax.core.Tracer):  # a traced value (e.g. a μ sweep under jit): no check
        return
    try:
        xv = float(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {type(x).__name__}") from None
    if not (xv > 0 and math.isfinite(xv)):
        raise ValueError(f"{name} must be a finite number > 0, got {x}")
