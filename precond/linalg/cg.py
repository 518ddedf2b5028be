"""Preconditioned conjugate gradients with a status that says why it stopped."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from precond.validation import check_nonnegative, float_dtype, is_concrete

from ._checks import check_maxiter, check_square, check_symmetric, check_vector
from .operators import LinearOperator, as_operator
from .status import Status, check_status

__all__ = ["CGResult", "cg"]

_RUNNING = -1


class CGResult(NamedTuple):
    """Solution of Ax = b and how the solve went.

    ``residual_norm`` is the true ‖b − Ax‖, recomputed once after the loop (one extra matvec),
    and ``converged`` means it meets the tolerance; only a fixed budget (tol = atol = 0) that
    ran all its iterations, which has no tolerance to check, skips that matvec and reports the
    recursive residual.  ``status`` is an integer :class:`Status`
    (an array under jit): converged, precision_limited (the recursive residual met the
    tolerance but the recomputed one does not — with tol = atol = 0 that is stalled
    instead —, or the loop ran out of iterations with the
    tolerance below the attainable floor 10·eps·(‖b‖ + ‖Â‖‖x‖), ‖Â‖ estimated from the
    curvatures pᵀAp/pᵀp CG saw: a relative tol under ~10·eps·κ(A)), max_iterations,
    negative_curvature (pᵀAp ≤ 0), breakdown (rᵀM⁻¹r ≤ 0: M not SPD), nonfinite, or stalled
    (pᵀAp ≤ 0 or rᵀM⁻¹r ≤ 0 once the residual is at the rounding floor eps·(‖b‖ + ‖A‖‖x‖),
    where their sign means nothing: x is as good as the precision allows).  On negative
    curvature, breakdown, stalling or non-finite values ``x`` is the last iterate before the
    failing step, so it is always finite.  ``direction`` is the last search direction p, which
    on negative curvature is a direction with pᵀAp ≤ 0 (what Newton-CG methods fall back on).
    """

    x: jax.Array
    iterations: jax.Array
    residual_norm: jax.Array
    converged: jax.Array
    status: jax.Array
    direction: jax.Array

    @property
    def reason(self) -> Status:
        """The status as a :class:`Status` member (outside jit)."""
        return Status(int(self.status))

    def check(self) -> CGResult:
        """Return self if converged, else raise :class:`SolverError` with what to try."""
        check_status(self.status, f"after {int(self.iterations)} iterations, residual norm "
                                  f"{float(self.residual_norm):.3e}")
        return self


def cg(
    A,
    b,
    *,
    M=None,
    x0=None,
    tol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    throw: bool = False,
) -> CGResult:
    """Solve Ax = b for symmetric positive definite A by (preconditioned) conjugate gradients.

    Stops when ‖b − Ax‖ ≤ max(tol·‖b‖, atol), as ``scipy.sparse.linalg.cg(A, b, rtol=tol,
    atol=atol, M=M)`` does, or after ``maxiter`` iterations (default 10n, scipy's default).
    The loop tests the recursively updated residual; the result is checked: b − Ax is
    recomputed once at the end and only it can make the status ``converged`` (see
    :class:`CGResult` for ``precision_limited``).  A must be symmetric: a concrete operator
    not known to be symmetric is probed once (two products, outside the compiled loop) and
    a clearly non-symmetric one raises ``ValueError``.
    Differences from scipy and ``jax.scipy.sparse.linalg.cg``: the whole loop is one
    ``lax.while_loop`` (jit-able, no Python per iteration), the result says why it stopped, and
    ``A.linearize()`` is called once before the loop (a Hessian or GGN operator linearizes its
    model there and replays the linear map per product).  Operators are pytrees, so a new
    operator of the same kind and shapes reuses the compiled loop.

    A fixed-budget mode, ``tol=0, atol=0, maxiter=m``, runs exactly m iterations unless the
    residual becomes exactly zero (then it stops as converged) or reaches the rounding floor
    (then it stops as stalled) — it never forms 0/0, in float32 or float64.

    Args:
      A: the SPD operator A (array, scipy.sparse matrix or precond operator), shape (n, n).
      b: right-hand side b, shape (n,).
      M: applies the *inverse* preconditioner M⁻¹ (an operator or array), SPD, shape (n, n).
      x0: starting point x₀, shape (n,) (default zeros); not modified.
      tol, atol: relative and absolute residual tolerances, ≥ 0.
      maxiter: iteration cap (≥ 0; default 10n).
      throw: raise :class:`SolverError` instead of returning a failed status (outside jit only).

    Example:
      >>> import jax.numpy as jnp
      >>> from precond.linalg import cg
      >>> res = cg(jnp.array([[4.0, 1.0], [1.0, 3.0]]), jnp.array([1.0, 2.0]), tol=1e-8)
      >>> bool(res.converged), int(res.iterations)
      (True, 2)

    References:
      Hestenes and Stiefel, "Methods of conjugate gradients for solving linear systems", 1952.
    """
    A = as_operator(A)
    n = check_square(A)
    b = check_vector(b, n, "b")
    check_symmetric(A, "cg")
    dtype = float_dtype(A.dtype, b.dtype)
    b = b.astype(dtype)
    zero_start = x0 is None
    x0 = jnp.zeros(n, dtype) if zero_start else check_vector(x0, n, "x0").astype(dtype)
    if M is not None:
        M = as_operator(M)
        if M.shape != (n, n):
            raise ValueError(f"M has shape {M.shape}; expected ({n}, {n})")
    check_nonnegative(tol, "tol")
    check_nonnegative(atol, "atol")
    maxiter = 10 * n if maxiter is None else check_maxiter(maxiter)
    result = _cg(A, b, M, x0, jnp.asarray(tol, dtype), jnp.asarray(atol, dtype),
                 jnp.asarray(maxiter, jnp.int32), zero_start=zero_start)
    if throw and is_concrete(result.status):
        result.check()
    return result


def _cg_body(A: LinearOperator, b, M, x0, tol, atol, maxiter, *, zero_start=False
             ) -> CGResult:
    """The PCG loop, traced; linearizes A and M once, before the loop."""
    A = A.linearize()
    M = None if M is None else M.linearize()
    apply_M = (lambda r: r) if M is None else M.matvec
    dot = jnp.vdot
    r0 = b if zero_start else b - A.matvec(x0)  # x0 = 0: no matvec for the first residual
    z0 = apply_M(r0)
    rz0 = dot(r0, z0)
    rnorm0 = jnp.linalg.norm(r0)
    bnorm = jnp.linalg.norm(b)
    threshold = jnp.maximum(tol * bnorm, atol)
    eps = jnp.finfo(b.dtype).eps

    def initial_status():
        s = jnp.where(maxiter <= 0, Status.MAX_ITERATIONS, _RUNNING)
        s = jnp.where((rz0 <= 0) & (rnorm0 > threshold), Status.BREAKDOWN, s)
        s = jnp.where(rnorm0 <= threshold, Status.CONVERGED, s)
        finite = jnp.isfinite(rnorm0) & jnp.isfinite(rz0)
        return jnp.where(finite, s, Status.NONFINITE).astype(jnp.int32)

    def cond(state):
        return state[-1] == _RUNNING

    def body(state):
        k, x, r, p, rz, rnorm, anorm, _ = state
        Ap = A.matvec(p)
        pAp = dot(p, Ap)
        curvature_ok = pAp > 0
        # Divide only by a positive denominator: a fixed budget never forms 0/0.
        alpha = rz / jnp.where(curvature_ok, pAp, 1)
        x_new = x + alpha * p
        r_new = r - alpha * Ap
        z_new = apply_M(r_new)
        rz_new = dot(r_new, z_new)
        # Without a preconditioner rᵀz = ‖r‖²: one reduction, not two.
        rnorm_new = (jnp.sqrt(jnp.maximum(rz_new, 0)) if M is None
                     else jnp.linalg.norm(r_new))
        beta = rz_new / jnp.where(rz > 0, rz, 1)
        p_new = z_new + beta * p
        # ‖A‖ ≥ |pᵀAp|/pᵀp (one reduction; ‖Ap‖/‖p‖ would take two), for the rounding floor
        # of the residual that tells a stall from a breakdown (after the loop).
        pp = dot(p, p)
        anorm = jnp.maximum(anorm, jnp.abs(pAp) / jnp.where(pp > 0, pp, 1))
        anorm = jnp.where(jnp.isfinite(anorm), anorm, 0)
        finite = jnp.isfinite(rnorm_new) & jnp.isfinite(rz_new) & jnp.isfinite(alpha)
        status = jnp.where(k + 1 >= maxiter, Status.MAX_ITERATIONS, _RUNNING)
        status = jnp.where((rz_new <= 0) & (rnorm_new > threshold), Status.BREAKDOWN, status)
        status = jnp.where(rnorm_new <= threshold, Status.CONVERGED, status)
        status = jnp.where(finite, status, Status.NONFINITE)
        status = jnp.where(curvature_ok, status, Status.NEGATIVE_CURVATURE).astype(jnp.int32)
        accept = curvature_ok & finite
        keep = lambda new, old: jnp.where(accept, new, old)  # noqa: E731
        return (
            k + jnp.where(accept, 1, 0),
            keep(x_new, x),
            keep(r_new, r),
            keep(p_new, p),
            keep(rz_new, rz),
            keep(rnorm_new, rnorm),
            anorm,
            status,
        )

    state = (jnp.int32(0), x0, r0, z0, rz0, rnorm0, jnp.zeros((), b.dtype), initial_status())
    k, x, _, p, _, rnorm, anorm, status = lax.while_loop(cond, body, state)
    # A breakdown (rᵀM⁻¹r ≤ 0) or a pᵀAp ≤ 0 with the residual already at its rounding floor
    # eps·(‖b‖ + ‖A‖‖x‖) is rounding or underflow, not a property of A or M: stalled.  Decided
    # once here, from the returned x and residual, so the loop carries no ‖x‖ reduction.
    floor = 10 * eps * (bnorm + anorm * jnp.linalg.norm(x))
    failed = (status == Status.BREAKDOWN) | (status == Status.NEGATIVE_CURVATURE)
    status = jnp.where(failed & (rnorm <= floor), Status.STALLED, status)
    # Checked result: the recursively updated r drifts from b − Ax by rounding (in float32 or
    # float16 by orders of magnitude), so one more matvec recomputes the true residual, which
    # alone decides "converged" and is the residual_norm returned.  The iterates are untouched.
    # A fixed budget (tol = atol = 0) that ran out its iterations checks nothing, so it skips
    # the extra matvec (the inner solves of CG-Newton steps): residual_norm is then the
    # recursive one.  lax.cond runs one branch only.
    claimed = status == Status.CONVERGED
    true_rnorm = lax.cond((threshold > 0) | claimed,
                          lambda: jnp.linalg.norm(b - A.matvec(x)).astype(rnorm.dtype),
                          lambda: rnorm)
    met = true_rnorm <= threshold
    # A fixed budget (tol = atol = 0) stops early only on an exactly zero recursive residual:
    # x is then as good as the precision allows, which is what stalled says.
    status = jnp.where(claimed & ~met,
                       jnp.where(threshold > 0, Status.PRECISION_LIMITED, Status.STALLED),
                       status)
    # The tolerance is out of reach when it lies below the attainable floor
    # 10·eps·(‖b‖ + ‖Â‖‖x‖), i.e. tol < 10·eps·(1 + ‖Â‖‖x‖/‖b‖) ≲ 10·eps·κ(A): more iterations
    # would not help, so max_iterations says precision_limited instead (not for a fixed budget,
    # tol = atol = 0, which asks for no tolerance).
    out_of_reach = (threshold > 0) & (threshold < floor) & ~met
    status = jnp.where((status == Status.MAX_ITERATIONS) & out_of_reach,
                       Status.PRECISION_LIMITED, status)
    status = jnp.where(claimed & ~jnp.isfinite(true_rnorm), Status.NONFINITE, status)
    status = status.astype(jnp.int32)
    return CGResult(x, k, true_rnorm, status == Status.CONVERGED, status, p)


_cg = partial(jax.jit, static_argnames=("zero_start",))(_cg_body)
