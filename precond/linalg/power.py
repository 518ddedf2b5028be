"""Power iteration for the dominant eigenvalue of a symmetric operator."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from precond.validation import check_int, check_key, check_nonnegative, float_dtype

from ._checks import check_square, check_vector
from .operators import as_operator
from .status import Status, check_status

__all__ = ["PowerResult", "power_iteration"]


class PowerResult(NamedTuple):
    """Dominant eigenpair estimate: ``eigenvalue`` is the Rayleigh quotient vᵀAv, ‖v‖ = 1.

    ``status``: CONVERGED (the eigenpair residual ‖Av − λv‖ ≤ tol·|λ|), MAX_ITERATIONS or
    NONFINITE (an int array under jit).
    """

    eigenvalue: jax.Array
    vector: jax.Array
    iterations: jax.Array
    converged: jax.Array
    status: jax.Array

    def check(self) -> PowerResult:
        """Return self if converged, else raise :class:`SolverError` with what to try."""
        check_status(self.status, f"after {int(self.iterations)} iterations, eigenvalue "
                                  f"{float(self.eigenvalue):.6g}")
        return self


def power_iteration(A, key: jax.Array, *, maxiter: int = 100, tol: float = 1e-6,
                    v0=None, criterion: str = "residual") -> PowerResult:
    """Largest-magnitude eigenvalue of symmetric A by power iteration.

    Stops when the returned pair (λ, v), λ = vᵀAv, has eigenpair residual ‖Av − λv‖ ≤
    tol·|λ|, or after ``maxiter`` matvecs.  The residual, not the change of λ, decides: when
    the dominant eigenvalue is not unique in magnitude (λ and −λ) or is poorly separated, the
    Rayleigh quotient can settle while v is no eigenvector, and the status says
    max_iterations.  Needs only matvecs, so it works when A is an inexact (e.g. CG-based)
    operator where Lanczos' three-term recurrence would lose its meaning.  ``A.linearize()``
    is called once, before the loop.

    ``criterion="rayleigh"`` keeps the former rule, consecutive Rayleigh quotients agreeing to
    ``tol`` relative, for callers that want a cheap λ estimate and read no claim about v into
    the status (its iterates are those of the former rule, so numbers derived from them do
    not move); both rules run one compiled loop.

    Args:
      A: symmetric operator A, shape (n, n).
      key: jax.random key for the start vector (required, even with ``v0``).
      maxiter: matvec cap (≥ 1).
      tol: relative tolerance on the eigenpair residual ‖Av − λv‖/|λ|, ≥ 0.
      v0: start vector, shape (n,); default Gaussian from ``key``.
      criterion: "residual" (default) or "rayleigh" (above).
    """
    A = as_operator(A)
    n = check_square(A)
    key = check_key(key)
    maxiter = check_int(maxiter, "maxiter", low=1)
    check_nonnegative(tol, "tol")
    if criterion not in ("residual", "rayleigh"):
        raise ValueError(f"criterion must be 'residual' or 'rayleigh', got {criterion!r}")
    dtype = float_dtype(A.dtype)
    v = (jax.random.normal(key, (n,), dtype) if v0 is None
         else check_vector(v0, n, "v0").astype(dtype))
    return _power(A, v, jnp.asarray(tol, dtype), jnp.int32(maxiter),
                  jnp.bool_(criterion == "rayleigh"))


@jax.jit
def _power(A, v, tol, maxiter, rayleigh):
    A = A.linearize()
    v = v / jnp.linalg.norm(v)

    def step(state):
        k, v, lam, _, _ = state
        w = A.matvec(v)
        lam_new = jnp.vdot(v, w)
        wn = jnp.linalg.norm(w)
        v_new = jnp.where(wn > 0, w / jnp.where(wn > 0, wn, 1), v)
        # The pair (λ, v) just measured is certified by its residual ‖Av − λv‖ (no extra
        # matvec); on convergence v itself is returned, the vector the residual speaks for.
        certified = jnp.linalg.norm(w - lam_new * v) <= tol * jnp.abs(lam_new)
        settled = jnp.abs(lam_new - lam) <= tol * jnp.abs(lam_new)
        done = jnp.where(rayleigh, settled, certified)
        finite = jnp.isfinite(lam_new) & jnp.isfinite(wn)
        status = jnp.where(k + 1 >= maxiter, Status.MAX_ITERATIONS, -1)
        status = jnp.where(done | (wn == 0), Status.CONVERGED, status)
        status = jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)
        v_next = jnp.where(done & ~rayleigh, v, v_new)
        return k + 1, jnp.where(finite, v_next, v), jnp.where(finite, lam_new, lam), done, status

    init = (jnp.int32(0), v, jnp.asarray(jnp.inf, v.dtype), jnp.bool_(False), jnp.int32(-1))
    k, v, lam, _, status = lax.while_loop(lambda s: s[-1] == -1, step, init)
    return PowerResult(lam, v, k, status == Status.CONVERGED, status)
