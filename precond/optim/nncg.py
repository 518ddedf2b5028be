"""NysNewton-CG (NNCG): damped Newton-CG with a Nyström preconditioner and Armijo line search."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from precond.curvature import hessian_linear_map, ravel
from precond.linalg import NystromPreconditioner, Status, cg, from_matvec, nystrom
from precond.linalg.nystrom import NystromApprox
from precond.validation import check_fraction, check_key, check_positive

from ._objective import evaluate, step_objective, structural_int

__all__ = ["NNCGInfo", "NNCGState", "nncg"]


class NNCGInfo(NamedTuple):
    """Diagnostics of the last NNCG step (all arrays, so they live under jit).

    ``status``: ``Status.STEP_ACCEPTED`` when the line search accepted a step, ``NONFINITE``
    when the loss or gradient at the current point is NaN/inf (the step is zero: stop there),
    ``STALLED`` when the line search found no decrease in ``max_linesearch_steps`` halvings (the
    step is zero); ``SUCCESS`` before the first step.  On one objective the accepted values
    never increase (Armijo), so no divergence status is needed here; across mini-batches the
    growth rule is the training loop's (:func:`precond.optim.train`).
    ``cg_status``/``cg_iterations``: how the inner PCG solve ended (``NEGATIVE_CURVATURE``
    means H + μI was found indefinite).
    ``fallback``: the PCG answer was not a descent direction (or not finite), so the
    Nyström-damped gradient step was used instead.  ``mu``: the damping actually used after the
    guards.  ``step_size``: the accepted t (0 when none).
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
    loss_fn: Callable | None = None,
    key: jax.Array | None = None,
    rank: int | None = None,
    mu: float = 1e-2,
    update_every: int | None = None,
    cg_tol: float = 1e-10,
    cg_maxiter: int | None = None,
    armijo_alpha: float = 0.1,
    armijo_beta: float = 0.5,
    max_linesearch_steps: int | None = None,
    mu_min_ratio: float | None = None,
    mu_max_ratio: float = 1.0,
) -> optax.GradientTransformationExtraArgs:
    r"""NysNewton-CG: each step solves (H + μI) d = g by Nyström PCG and backtracks along −d.

    With f = ``loss_fn``(·, batch), g = ∇f(w), H = ∇²f(w) (matrix-free: one linearization of
    ∇f per step, ``hessian_linear_map``, replayed per product) and Â = UΛ̂Uᵀ the rank-r
    Nyström sketch of H, refreshed every k steps:

        d_k  ≈ (H + μI)⁻¹ g   by PCG with P⁻¹ = (λ̂_r + μ) U(Λ̂ + μI)⁻¹Uᵀ + (I − UUᵀ),
                              warm-started at d_{k−1}, to ‖res‖ ≤ ``cg_tol``·‖g‖ or ``cg_maxiter``,
        t_k  = η βʲ, the first j with f(w − t d) ≤ f(w) − α t gᵀd,
        w_{k+1} = w_k − t_k d_k.

    Indefinite H.  H of a PINN loss is not PSD.  The sketch is of H itself, made PSD the way the
    reference implementation does in spirit: :func:`precond.linalg.nystrom` shifts the sketch,
    drops non-positive directions of the core ΩᵀHΩ and clips λ̂ ≥ 0, so P is always SPD.  Inside
    PCG a direction with pᵀ(H + μI)p ≤ 0 stops the solve (status ``negative_curvature``) at the
    last iterate.  Whatever PCG returns is used only if it is finite and a descent direction
    (gᵀd > 0); otherwise the step falls back to the damped gradient P⁻¹g / (λ̂_r + μ) (SPD,
    hence descent).  The line search never accepts an increase: when it fails the step is zero
    and the status ``stalled``.

    Guards on μ.  Too small a μ makes H + μI nearly singular or indefinite: PCG breaks down or
    returns huge steps; too large a μ turns the step into gradient descent with step 1/μ (the
    curvature is washed out).  So the damping used is
    μ_eff = max(min(μ, ``mu_max_ratio``·λ̂₁), ``mu_min_ratio``·λ̂₁), with λ̂₁ the largest sketched
    eigenvalue; ``mu_min_ratio`` defaults to √eps of the dtype (κ(H + μI) stays ≤ 1/√eps),
    ``mu_max_ratio`` to 1 (beyond λ̂₁ every direction is damped by more than half).
    ``info.mu`` reports μ_eff.  The published best μ are 1e-2 and 1e-1.  ``mu`` and
    ``learning_rate`` may be traced values, so a μ sweep under ``jit`` compiles once.

    ``update(grads, state, params, batch=batch)`` needs only the batch (None for a
    ``loss_fn(params)``); ``value=`` (f(w)) saves one evaluation; ``grad=`` (∇f(w)) is used for
    the descent test and the Armijo slope (default: the gradient of the linearization, which
    costs nothing extra), while ``grads`` is the right-hand side of the Newton system.  Without
    ``loss_fn``, ``value_fn=`` (w ↦ f(w), as for ``optax.lbfgs``) supplies the objective.
    Returns updates −t d; add them with ``optax.apply_updates``.

    Cost per step: ``rank`` HVPs every ``update_every`` steps, ≤ ``cg_maxiter`` + 1 HVPs, and one
    loss evaluation per line-search trial.

    Args:
      learning_rate: η, the first trial step of the line search.
      loss_fn: the objective, ``loss_fn(params, batch)`` (or ``loss_fn(params)``).
      key: the ``jax.random`` key of the Nyström sketches (required: no hidden randomness).
      rank: r, the sketch rank (default min(60, n), the paper's).
      mu: μ > 0, the damping before the guards.
      update_every: k, the sketch refresh interval in steps (default 20).
      cg_tol: relative PCG tolerance in [0, 1).
      cg_maxiter: PCG iteration cap (default 100).
      armijo_alpha: α ∈ (0, 1), the sufficient-decrease fraction (0.1).
      armijo_beta: β ∈ (0, 1), the backtracking factor (0.5).
      max_linesearch_steps: backtracking budget (default 40).
      mu_min_ratio: lower guard on μ_eff / λ̂₁ in [0, 1) (default √eps).
      mu_max_ratio: upper guard on μ_eff / λ̂₁ (> 0).

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from precond.optim import nncg
      >>> f = lambda w: jnp.sum((w - 1.0) ** 4) + jnp.sum(w ** 2)
      >>> opt = nncg(loss_fn=f, rank=2, mu=1e-3, key=jax.random.key(0))
      >>> step = jax.jit(lambda w, s: opt.update(jax.grad(f)(w), s, w))  # needs only w
      >>> w = jnp.zeros(3); state = opt.init(w)
      >>> for _ in range(10):
      ...     u, state = step(w, state)
      ...     w = optax.apply_updates(w, u)
      >>> float(jnp.linalg.norm(jax.grad(f)(w))) < 1e-4
      True

    References:
      Rathore, Lei, Frangella, Lu, Udell, "Challenges in training PINNs: a loss landscape
      perspective", ICML 2024.
      Frangella, Tropp, Udell, "Randomized Nyström preconditioning", SIAM J. Matrix Anal. Appl.
      2023.
    """
    check_positive(learning_rate, "learning_rate")
    check_positive(mu, "mu")
    update_every = structural_int(update_every, "update_every", 20)
    cg_maxiter = structural_int(cg_maxiter, "cg_maxiter", 100)
    max_linesearch_steps = structural_int(max_linesearch_steps, "max_linesearch_steps", 40)
    rank_given = None if rank is None else structural_int(rank, "rank", 60)
    check_fraction(cg_tol, "cg_tol")
    for name, v in (("armijo_alpha", armijo_alpha), ("armijo_beta", armijo_beta)):
        check_positive(v, name)  # in (0, 1)
        check_fraction(v, name)
    if mu_min_ratio is not None:
        check_fraction(mu_min_ratio, "mu_min_ratio")
    check_positive(mu_max_ratio, "mu_max_ratio")
    if (mu_min_ratio is not None and _concrete(mu_min_ratio, mu_max_ratio)
            and float(mu_min_ratio) > float(mu_max_ratio)):
        raise ValueError("mu_min_ratio must be ≤ mu_max_ratio")
    key = check_key(key)
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable loss_fn(params, batch), got "
                        f"{type(loss_fn).__name__}")

    def init_fn(params) -> NNCGState:
        flat, _ = ravel(params)
        n = flat.size
        if rank_given is not None and rank_given > n:
            raise ValueError(f"rank must be ≤ the number of parameters ({n}), got {rank_given}")
        rank = min(60, n) if rank_given is None else rank_given
        dtype = flat.dtype
        zero = jnp.zeros((), dtype)
        info = NNCGInfo(jnp.int32(Status.SUCCESS), jnp.int32(Status.SUCCESS), jnp.int32(0),
                        jnp.bool_(False), zero, zero, jnp.int32(0), zero, zero)
        approx = NystromApprox(jnp.zeros((n, rank), dtype), jnp.zeros((rank,), dtype))
        return NNCGState(jnp.int32(0), jnp.zeros_like(flat), approx, key, info)

    def update_fn(updates, state: NNCGState, params=None, *, batch=None, value=None, grad=None,
                  value_fn=None, **extra) -> tuple[Any, NNCGState]:
        del extra
        if params is None:
            raise ValueError("nncg needs params: update(grads, state, params, batch=…)")
        fn, batch = step_objective(loss_fn, value_fn, batch, "nncg")
        w, unravel = ravel(params)
        dtype = w.dtype
        rhs = ravel(updates)[0].astype(dtype)
        g_lin, hvp = hessian_linear_map(fn, params, batch)  # one linearization per step
        g = g_lin.astype(dtype) if grad is None else ravel(grad)[0].astype(dtype)
        f = lambda x: evaluate(fn, unravel(x), batch)  # noqa: E731
        H = from_matvec(hvp, size=w.size, dtype=dtype, rmatvec=hvp)  # built inside this trace
        rank = state.approx.eigenvalues.shape[0]

        key, sketch_key = jax.random.split(state.key)
        refresh = state.count % update_every == 0
        approx = lax.cond(refresh, lambda: _sketch(H, rank, sketch_key, dtype),
                          lambda: state.approx)
        lam1, lamr = approx.eigenvalues[0], approx.eigenvalues[-1]
        eps = jnp.finfo(dtype).eps
        lo = (jnp.sqrt(eps) if mu_min_ratio is None else mu_min_ratio) * lam1
        hi = jnp.where(lam1 > 0, mu_max_ratio * lam1, mu)
        mu_eff = jnp.maximum(jnp.minimum(jnp.asarray(mu, dtype), hi), lo).astype(dtype)

        P_inv = NystromPreconditioner(approx, mu_eff)
        res = cg(H.shift(mu_eff), rhs, M=P_inv, x0=state.direction, tol=cg_tol,
                 maxiter=cg_maxiter)
        d = res.x.astype(dtype)
        slope = jnp.vdot(g, d)
        use_fallback = ~(jnp.all(jnp.isfinite(d)) & (slope > 0))
        d_fb = P_inv.matvec(rhs) / (lamr + mu_eff)
        d = jnp.where(use_fallback, d_fb, d)
        slope = jnp.vdot(g, d)

        value = f(w) if value is None else value
        value = jnp.asarray(value, dtype)
        finite = jnp.isfinite(value) & jnp.all(jnp.isfinite(g)) & jnp.isfinite(slope)
        alpha = jnp.asarray(armijo_alpha, dtype)

        def ls_cond(c):
            j, t, f_t = c
            ok = jnp.isfinite(f_t) & (f_t <= value - alpha * t * slope)
            return (~ok) & (j < max_linesearch_steps)

        def ls_body(c):
            j, t, _ = c
            t = t * jnp.asarray(armijo_beta, dtype)
            return j + 1, t, f(w - t * d).astype(dtype)

        t0 = jnp.asarray(learning_rate, dtype)
        j, t, f_t = lax.while_loop(ls_cond, ls_body,
                                   (jnp.int32(0), t0, f(w - t0 * d).astype(dtype)))
        accepted = finite & jnp.isfinite(f_t) & (f_t <= value - alpha * t * slope)
        t = jnp.where(accepted, t, 0.0).astype(dtype)
        status = jnp.where(accepted, Status.STEP_ACCEPTED, Status.STALLED)
        status = jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)
        step = jnp.where(accepted, -t * d, 0.0).astype(dtype)
        info = NNCGInfo(status, res.status.astype(jnp.int32), res.iterations.astype(jnp.int32),
                        use_fallback, mu_eff, t, j, value, jnp.where(accepted, f_t, value))
        # Warm start only from a usable Newton direction.
        direction = jnp.where(finite & ~use_fallback, res.x, 0.0).astype(dtype)
        new_state = NNCGState(state.count + 1, direction, approx, key, info)
        return unravel(step), new_state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _sketch(H, rank: int, key, dtype) -> NystromApprox:
    approx = nystrom(H, rank, key)
    return NystromApprox(approx.U.astype(dtype), approx.eigenvalues.astype(dtype))


def _concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs)
