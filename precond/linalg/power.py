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

    ``status``: CONVERGED, MAX_ITERATIONS or NONFINITE (an int array under jit).
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
                    v0=None) -> PowerResult:
    """Largest-magnitude eigenvalue of symmetric A by power iteration.

    Stops when consecutive Rayleigh quotients agree to ``tol`` relative, or after ``maxiter``
    matvecs.  Needs only matvecs, so it works when A is an inexact (e.g. CG-based) operator where
    Lanczos' three-term recurrence would lose its meaning.  ``A.linearize()`` is called once,
    before the loop.

    Args:
      A: symmetric operator A, shape (n, n).
      key: jax.random key for the start vector (required, even with ``v0``).
      maxiter: matvec cap (≥ 1).
      tol: relative tolerance on successive Rayleigh quotients, ≥ 0.
      v0: start vector, shape (n,); default Gaussian from ``key``.
    """
    A = as_operator(A)
    n = check_square(A)
    key = check_key(key)
    maxiter = check_int(maxiter, "maxiter", low=1)
    check_nonnegative(tol, "tol")
    dtype = float_dtype(A.dtype)
    v = (jax.random.normal(key, (n,), dtype) if v0 is None
         else check_vector(v0, n, "v0").astype(dtype))
    return _power(A, v, jnp.asarray(tol, dtype), jnp.int32(maxiter))


@jax.jit
def _power(A, v, tol, maxiter):
    A = A.linearize()
    v = v / jnp.linalg.norm(v)

    def step(state):
        k, v, lam, _, _ = state
        w = A.matvec(v)
        lam_new = jnp.vdot(v, w)
        wn = jnp.linalg.norm(w)
        v_new = jnp.where(wn > 0, w / jnp.where(wn > 0, wn, 1), v)
        done = jnp.abs(lam_new - lam) <= tol * jnp.abs(lam_new)
        finite = jnp.isfinite(lam_new) & jnp.isfinite(wn)
        status = jnp.where(k + 1 >= maxiter, Status.MAX_ITERATIONS, -1)
        status = jnp.where(done | (wn == 0), Status.CONVERGED, status)
        status = jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)
        return k + 1, jnp.where(finite, v_new, v), jnp.where(finite, lam_new, lam), done, status

    init = (jnp.int32(0), v, jnp.asarray(jnp.inf, v.dtype), jnp.bool_(False), jnp.int32(-1))
    k, v, lam, _, status = lax.while_loop(lambda s: s[-1] == -1, step, init)
    return PowerResult(lam, v, k, status == Status.CONVERGED, status)
