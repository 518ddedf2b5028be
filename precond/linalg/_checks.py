"""Shape checks of the solvers; scalar, key and finiteness checks come from precond.validation
(re-exported here for the packages that import them from this module)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from precond.validation import check_finite_array as check_finite
from precond.validation import check_int, check_key, check_nonnegative, float_dtype, is_concrete

__all__ = ["is_concrete", "as_array", "check_finite", "check_vector", "check_square",
           "check_rank", "check_nonnegative", "check_key", "check_symmetric",
           "check_factorizable", "check_maxiter"]


def as_array(x) -> jax.Array:
    """``x`` as a jax array.  A numpy array goes through ``jax.device_put`` (one copy, where
    ``jnp.asarray`` makes two: it matters for large design matrices); anything else through
    ``jnp.asarray``."""
    if isinstance(x, np.ndarray) and x.dtype != object:
        return jax.device_put(x)
    return jnp.asarray(x)


def check_vector(v, n: int, name: str) -> jax.Array:
    """``v`` as a 1-D array of length ``n``, finite; otherwise ``ValueError`` naming it."""
    v = jnp.asarray(v)
    if v.ndim != 1 or v.shape[0] != n:
        raise ValueError(f"{name} has shape {tuple(v.shape)}; expected ({n},)")
    check_finite(v, name)
    return v


def check_square(A, name: str = "A") -> int:
    """n for a square (n, n) real ``A``; ``ValueError`` (shape) or ``TypeError`` (complex)."""
    if len(A.shape) != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{name} must be square, got shape {tuple(A.shape)}")
    dtype = getattr(A, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(f"{name} has dtype {jnp.dtype(dtype).name}; precond.linalg solves real "
                        "symmetric problems only")
    return A.shape[0]


def check_factorizable(A, what: str, name: str = "A") -> None:
    """``TypeError`` naming ``name`` when ``A`` is float16/bfloat16: ``what`` factorizes
    (eigh, SVD, QR, Cholesky) in A's dtype, and LAPACK has no half precision."""
    dtype = jnp.dtype(A.dtype)
    if dtype.itemsize < 4 and jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{what}: {name} has dtype {dtype.name}, but its dense factorizations "
                        "need float32 or float64 (LAPACK has no half precision); pass "
                        f"{name} in float32")


def check_maxiter(maxiter, low: int = 0):
    """``maxiter`` as an int ≥ ``low`` when concrete (a tracer passes unchecked)."""
    if not is_concrete(maxiter):
        return maxiter
    if hasattr(maxiter, "dtype") and np.ndim(maxiter) == 0:
        maxiter = np.asarray(maxiter)[()]
    return check_int(maxiter, "maxiter", low=low)


def check_rank(rank: int, n: int) -> int:
    """``rank`` as an int in [1, n] (n: the operator's size)."""
    return check_int(rank, "rank", low=1, high=n)


def symmetry_tolerance(n: int, dtype) -> float:
    """The relative asymmetry :func:`check_symmetric` accepts: max(√eps, 10·√n·eps).

    √eps leaves room for operators symmetric only up to rounding (autodiff Hessians, XᵀX
    applied as two products, float32 kernels), whose probe asymmetry is about √n·eps; a
    genuinely non-symmetric A gives O(1).
    """
    eps = float(np.finfo(dtype).eps)
    return max(eps**0.5, 10 * n**0.5 * eps)


def check_symmetric(A, what: str) -> None:
    """Raise ``ValueError`` when the concrete operator ``A`` is clearly not symmetric.

    One probe pair u, v (Gaussian, from a fixed seed: the check draws no randomness the
    results depend on) and one ``matmat`` of A on [u v] give |uᵀAv − vᵀAu|, compared with the
    scale ‖Au‖‖v‖ + ‖Av‖‖u‖ at :func:`symmetry_tolerance`.  Skipped for operators that are
    symmetric by construction (``A.symmetric``: diagonal, identity, low-rank-plus-identity,
    Hessian and Gauss–Newton operators, ``from_matvec`` with ``rmatvec`` = ``matvec``, and
    sums, scalings and congruences of those) and under an outer trace (jit, vmap, grad: the
    values are unknown), so it never touches a compiled solver.  Non-finite products are
    left to the solver's status.  It raises rather than warns: a symmetric-only routine on a
    non-symmetric operator returns numbers without meaning (CG's iterates, Lanczos' Ritz
    values), and an operator symmetric up to rounding passes.

    Args:
      A: a square precond operator.
      what: the routine asking, named in the message.
    """
    if getattr(A, "symmetric", False):
        return
    if not all(is_concrete(leaf) for leaf in jax.tree.leaves(A)):
        return
    n = A.shape[0]
    if n < 2:
        return
    dtype = float_dtype(A.dtype)
    probe = jnp.asarray(np.random.default_rng(0).standard_normal((n, 2)), dtype)
    try:
        out = A.matmat(probe)
    except jax.errors.ConcretizationTypeError:  # a closure over a tracer: not concrete
        return
    if not is_concrete(out):
        return
    probe, out = np.asarray(probe, np.float64), np.asarray(out, np.float64)
    (u, v), (Au, Av) = probe.T, out.T
    with np.errstate(all="ignore"):  # non-finite products: left to the solver's status
        gap = abs(float(u @ Av - v @ Au))
        scale = float(np.linalg.norm(Au) * np.linalg.norm(v)
                      + np.linalg.norm(Av) * np.linalg.norm(u))
    tol = symmetry_tolerance(n, dtype)
    if np.isfinite(gap) and np.isfinite(scale) and gap > tol * scale:
        raise ValueError(
            f"{what} needs a symmetric operator, but A is not symmetric: a random probe pair gives "
            f"|uᵀAv − vᵀAu| = {gap:.3g}, {gap / scale:.2g} of the scale ‖Au‖‖v‖ + ‖Av‖‖u‖ "
            f"(tolerance {tol:.2g} in {np.dtype(dtype).name}); symmetrize A ((A + Aᵀ)/2) or "
            "use a solver for non-symmetric systems")
