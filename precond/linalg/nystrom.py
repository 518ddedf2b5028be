"""Randomized Nyström approximation, the Nyström preconditioner, and Nyström PCG."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from precond.validation import (
    check_int,
    check_key,
    check_nonnegative,
    check_positive,
    float_dtype,
    is_concrete,
)

from ._checks import (
    check_factorizable,
    check_maxiter,
    check_rank,
    check_square,
    check_symmetric,
    check_vector,
)
from .cg import CGResult, _cg_body, cg
from .operators import LinearOperator, LowRankPlusIdentity, as_operator
from .power import power_iteration

__all__ = [
    "NystromApprox",
    "nystrom",
    "NystromPreconditioner",
    "nystrom_pcg",
    "nystrom_adaptive",
]


class NystromApprox(NamedTuple):
    """Â = U diag(eigenvalues) Uᵀ: U (n, r) orthonormal, eigenvalues (r,) descending, ≥ 0."""

    U: jax.Array
    eigenvalues: jax.Array

    @property
    def rank(self) -> int:
        return self.U.shape[1]

    def matvec(self, v):
        return self.U @ (self.eigenvalues * (v @ self.U))  # vᵀU: no transpose copy of U


def nystrom(A, rank: int, key: jax.Array) -> NystromApprox:
    """Randomized Nyström approximation of a PSD operator A (n, n) from ``rank`` matvecs.

    With a Gaussian test matrix Ω (n, r) (orthonormalized when r > n/4) and Y = AΩ, it returns the
    eigendecomposition of Â = Y(ΩᵀY)^†Yᵀ ⪯ A.  Computed stably as in Tropp, Yurtsever, Udell and
    Cevher (2017, Alg. 3): shift Y_ν = Y + νΩ by ν = √n·eps·‖Y‖ (so the core ΩᵀY_ν is numerically
    positive definite), factor the core, take a thin SVD of B = Y_ν C⁻¹, and remove the shift:
    λ̂ = max(σ² − ν, 0).  The core is factored by a symmetric eigendecomposition with tiny or
    negative eigenvalues dropped instead of a Cholesky, so a rank-deficient or slightly
    indefinite core (an operator that is PSD only up to rounding) still gives a finite answer.

    Cost: r matvecs (one ``matmat`` of ``A.linearize()``) + O(nr²); one compiled program per
    operator kind and shapes.

    Args:
      A: PSD operator A, shape (n, n).
      rank: r, the sketch size, 1 ≤ r ≤ n.
      key: jax.random key for Ω.

    References:
      Tropp, Yurtsever, Udell, Cevher, "Fixed-rank approximation of a positive-semidefinite
      matrix from streaming data", NeurIPS 2017.
    """
    A = as_operator(A)
    n = check_square(A)
    check_factorizable(A, "nystrom")
    rank = check_rank(rank, n)
    key = check_key(key)
    check_symmetric(A, "nystrom")
    return _nystrom(A, key, rank=rank)


def _test_matrix(key, n: int, rank: int, dtype):
    omega = jax.random.normal(key, (n, rank), dtype)
    if 4 * rank > n:
        omega, _ = jnp.linalg.qr(omega)
    else:
        # Â depends on range(Ω) only, and a Gaussian (n, r) block with r ≤ n/4 is already well
        # conditioned (σ_max/σ_min ≈ (1 + √(r/n))/(1 − √(r/n)) ≤ 3), so the QR (a visible
        # share of a Nyström PCG solve) is skipped; 1/√n gives the columns unit norm on
        # average, the scale the shift ν assumes.
        omega = omega / jnp.sqrt(jnp.asarray(n, dtype))
    return omega


def _nystrom_body(A: LinearOperator, key, rank: int) -> NystromApprox:
    """Sketch and factor; A must already be linearized."""
    omega = _test_matrix(key, A.shape[0], rank, float_dtype(A.dtype))
    return _nystrom_from_sketch(omega, A.matmat(omega))


@partial(jax.jit, static_argnames=("rank",))
def _nystrom(A, key, *, rank):
    return _nystrom_body(A.linearize(), key, rank)


def _nystrom_from_sketch(omega, Y) -> NystromApprox:
    eps = jnp.finfo(Y.dtype).eps
    nu = jnp.sqrt(Y.shape[0]) * eps * jnp.linalg.norm(Y)
    nu = jnp.where(nu > 0, nu, eps)  # A = 0 still gives a well-defined (zero) approximation
    Y_nu = Y + nu * omega
    core = omega.T @ Y_nu
    core = 0.5 * (core + core.T)
    s, V = jnp.linalg.eigh(core)
    # Drop directions the core cannot resolve (eigenvalue below rounding of its largest one).
    keep = s > s[-1] * Y.shape[1] * eps * 10
    inv_sqrt = jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, s, 1.0)), 0.0)
    B = Y_nu @ (V * inv_sqrt)
    U, sigma2 = _left_singular(B)
    lam = jnp.maximum(sigma2 - nu, 0.0)
    return NystromApprox(U, lam)


def _left_singular(B):
    """(U, σ²) of a thin SVD of B (n, r), σ descending.

    From the eigendecomposition BᵀB = WΣ²Wᵀ (r×r): U = BWΣ⁻¹, then one CholeskyQR pass
    (U ← UL⁻ᵀ with UᵀU = LLᵀ) restores the orthonormality that forming BᵀB loses (eps·σ²₁/σ²ᵢ).
    It is cheaper than XLA's thin SVD on CPU for r ≪ n.  When σ²_r/σ²₁ ≤ eps^¾
    (a rank-deficient or near rank-deficient B, where BᵀB cannot resolve the small singular
    vectors) the SVD itself is used.
    """
    eps = jnp.finfo(B.dtype).eps
    s2, W = jnp.linalg.eigh(B.T @ B)
    s2, W = s2[::-1], W[:, ::-1]
    resolved = (s2[-1] > s2[0] * eps**0.75) & (s2[0] > 0)

    def fast():
        U = (B @ W) / jnp.sqrt(jnp.where(resolved, s2, 1.0))
        L = jnp.linalg.cholesky(U.T @ U)
        U = lax.linalg.triangular_solve(L, U, left_side=False, lower=True, transpose_a=True)
        return U, s2

    def svd():
        U, sigma, _ = jnp.linalg.svd(B, full_matrices=False)
        return U, sigma**2

    return lax.cond(resolved, fast, svd)


class NystromPreconditioner(LinearOperator):
    """The operator P⁻¹ for systems (A + μI)x = b, from a Nyström approximation Â = UΛ̂Uᵀ.

    P⁻¹ = (λ̂_r + μ) U(Λ̂ + μI)⁻¹Uᵀ + (I − UUᵀ), applied in O(nr).  P⁻¹ is SPD for every rank and
    every μ ≥ 0: its eigenvalues (λ̂_r + μ)/(λ̂_i + μ) lie in (0, 1] (a 0/0 ratio, λ̂_i = λ̂_r = μ = 0,
    is taken as 1, and when λ̂_r + μ is 0 or at rounding level, the smallest resolved λ̂_i + μ
    replaces it).
    ``forward_matvec`` applies P itself; ``sqrt()`` gives P^{-1/2}.

    References:
      Frangella, Tropp, Udell, "Randomized Nyström preconditioning", SIAM J. Matrix Anal. Appl.
      2023.


    Args:
      approx: Â = UΛ̂Uᵀ (``nystrom``), U (n, r).
      mu: μ ≥ 0.
    """

    def __init__(self, approx: NystromApprox, mu):
        check_nonnegative(mu, "mu")
        self.approx = approx
        self.mu = jnp.asarray(mu, approx.U.dtype)
        self.shape = (approx.U.shape[0], approx.U.shape[0])
        self.dtype = approx.U.dtype

    symmetric = True

    @property
    def _ratios(self):
        lam = self.approx.eigenvalues
        den = lam + self.mu
        # λ̂_i + μ at rounding level (singular A, μ = 0) is treated as 0: such directions get
        # ratio 1, and the smallest resolved λ̂_i + μ replaces λ̂_r + μ, so P⁻¹ stays SPD and
        # well conditioned (a ratio ≈ 0 would make it numerically singular and P infinite).
        eps = jnp.finfo(den.dtype).eps
        resolved = den > 10 * den.shape[0] * eps * den[0]
        smallest = jnp.min(jnp.where(resolved, den, jnp.inf))
        num = jnp.where(resolved[-1], den[-1],
                        jnp.where(jnp.isfinite(smallest), smallest, 1.0))
        return jnp.where(resolved, num / jnp.where(resolved, den, 1.0), 1.0)

    def matvec(self, v):
        U = self.approx.U
        Utv = v @ U  # Uᵀv as vᵀU: XLA on CPU would copy the transpose of U on every call
        return v + U @ ((self._ratios - 1.0) * Utv)

    def matmat(self, V):
        U = self.approx.U
        return V + U @ ((self._ratios - 1.0)[:, None] * (U.T @ V))

    @property
    def T(self):
        return self

    def as_low_rank(self) -> LowRankPlusIdentity:
        """P⁻¹ as a :class:`LowRankPlusIdentity` I + U(ratios − 1)Uᵀ (its powers are exact)."""
        return LowRankPlusIdentity(self.approx.U, self._ratios - 1.0)

    def sqrt(self) -> LowRankPlusIdentity:
        """P^{-1/2}, the symmetric square root of P⁻¹: ``congruence(A + μI, P.sqrt())`` is
        the symmetric P^{-1/2}(A + μI)P^{-1/2} whose eigenvalues are those of P⁻¹(A + μI)."""
        return self.as_low_rank().power(0.5)

    def forward_matvec(self, v):
        """Apply P (not P⁻¹)."""
        U = self.approx.U
        return v + U @ ((1.0 / self._ratios - 1.0) * (v @ U))

    @classmethod
    def adaptive(cls, A, mu, key, **kwargs) -> NystromPreconditioner:
        """Build with :func:`nystrom_adaptive`'s rank (doubling until the error is ≲ μ)."""
        return cls(nystrom_adaptive(A, mu, key, **kwargs), mu)


def _nystrom_tree_flatten(p):
    return (p.approx, p.mu), None


def _nystrom_tree_unflatten(aux, children):
    obj = object.__new__(NystromPreconditioner)
    obj.approx, obj.mu = children
    n = obj.approx.U.shape[0]
    obj.shape = (n, n)
    obj.dtype = obj.approx.U.dtype
    return obj


jax.tree_util.register_pytree_node(
    NystromPreconditioner, _nystrom_tree_flatten, _nystrom_tree_unflatten)


def nystrom_adaptive(
    A,
    mu,
    key: jax.Array,
    *,
    initial_rank: int = 10,
    max_rank: int | None = None,
    tolerance: float = 10.0,
    power_steps: int = 20,
) -> NystromApprox:
    """Nyström approximation whose rank doubles until ‖A − Â‖ ≤ ``tolerance``·μ.

    The error ‖A − Â‖ (A − Â is PSD) is estimated by ``power_steps`` power iterations; the rule
    follows Frangella, Tropp and Udell (2023, §5.4): when the error is O(μ) the preconditioned
    system has condition number O(1 + error/μ) and PCG converges in a few iterations.  Each rank
    is a new shape, so each doubling compiles once; there are at most log₂(max_rank) of them.

    Args:
      A: PSD operator A, shape (n, n).
      mu: μ ≥ 0, the shift of the system (A + μI)x = b the approximation will precondition.
      key: jax.random key (split per doubling).
      initial_rank, max_rank: first and largest rank r (default max n).
      tolerance: stop when the estimated ‖A − Â‖ ≤ tolerance·μ.
      power_steps: power iterations per error estimate.
    """
    A = as_operator(A)
    n = check_square(A)
    check_factorizable(A, "nystrom_adaptive")
    key = check_key(key)
    check_nonnegative(mu, "mu")
    check_positive(tolerance, "tolerance")
    power_steps = check_int(power_steps, "power_steps", low=1)
    max_rank = n if max_rank is None else check_rank(max_rank, n)
    rank = check_rank(min(initial_rank, max_rank), n)
    check_symmetric(A, "nystrom_adaptive")  # once, not per doubling
    while True:
        key, k_sketch, k_power = jax.random.split(key, 3)
        approx = _nystrom(A, k_sketch, rank=rank)
        residual = _ResidualOperator(A, approx)
        # Only λ (an estimate of ‖A − Â‖) is read, so the cheap Rayleigh-quotient rule serves.
        error = power_iteration(residual, k_power, maxiter=power_steps,
                                criterion="rayleigh").eigenvalue
        if float(error) <= tolerance * float(mu) or rank >= max_rank:
            return approx
        rank = min(2 * rank, max_rank)


@jax.tree_util.register_pytree_node_class
class _ResidualOperator(LinearOperator):
    """A − Â, PSD when Â is a Nyström approximation of A."""

    def __init__(self, A, approx):
        self.A, self.approx = A, approx
        self.shape, self.dtype = A.shape, A.dtype

    @property
    def symmetric(self) -> bool:
        return getattr(self.A, "symmetric", False)

    def matvec(self, v):
        return self.A.matvec(v) - self.approx.matvec(v)

    def linearize(self):
        return _ResidualOperator(self.A.linearize(), self.approx)

    def tree_flatten(self):
        return (self.A, self.approx), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


def nystrom_pcg(
    A,
    b,
    mu,
    rank: int,
    key: jax.Array,
    *,
    tol: float = 1e-6,
    atol: float = 0.0,
    maxiter: int | None = None,
    x0=None,
    throw: bool = False,
) -> CGResult:
    """Solve (A + μI)x = b by CG with the rank-r Nyström preconditioner of A.

    Set-up is r matvecs with A plus O(nr²); each iteration then costs one matvec plus O(nr),
    and one more matvec after the loop recomputes b − (A + μI)x: the status is checked as in
    :func:`precond.linalg.cg` (``precision_limited`` when the working precision cannot meet
    ``tol``).  A concrete A not symmetric by construction is probed once for symmetry.
    Sketch and solve are one compiled program that calls ``A.linearize()`` once; a new operator
    of the same kind and shapes (``from_matvec`` with new arrays) reuses it.
    ``rank="adaptive"`` chooses the rank with :func:`nystrom_adaptive` (a host loop).

    Args:
      A: PSD operator A, shape (n, n).
      b: right-hand side b, shape (n,).
      mu: μ ≥ 0.
      rank: r (1 ≤ r ≤ n) or "adaptive".
      key: jax.random key for the sketch.
      tol, atol, maxiter, x0, throw: as in :func:`precond.linalg.cg`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from precond.linalg import nystrom_pcg
      >>> X = jax.random.normal(jax.random.key(0), (200, 50))
      >>> res = nystrom_pcg(X.T @ X, jnp.ones(50), mu=1e-3, rank=20, key=jax.random.key(1))
      >>> bool(res.converged)
      True
    """
    A = as_operator(A)
    n = check_square(A)
    check_factorizable(A, "nystrom_pcg")
    check_vector(b, n, "b")
    check_nonnegative(mu, "mu")
    if isinstance(rank, str):
        if rank != "adaptive":
            raise ValueError(f"rank must be an int or 'adaptive', got {rank!r}")
        P_inv = NystromPreconditioner(nystrom_adaptive(A, mu, key), mu)
        return cg(A.shift(mu), b, M=P_inv, x0=x0, tol=tol, atol=atol, maxiter=maxiter,
                  throw=throw)
    rank = check_rank(rank, n)
    key = check_key(key)
    check_symmetric(A, "nystrom_pcg")
    check_nonnegative(tol, "tol")
    check_nonnegative(atol, "atol")
    dtype = float_dtype(A.dtype, jnp.result_type(b))
    b = jnp.asarray(b, dtype)
    zero_start = x0 is None
    x0 = jnp.zeros(n, dtype) if zero_start else check_vector(x0, n, "x0").astype(dtype)
    maxiter = 10 * n if maxiter is None else check_maxiter(maxiter)
    result = _nystrom_pcg(A, b, jnp.asarray(mu, dtype), key, x0, jnp.asarray(tol, dtype),
                          jnp.asarray(atol, dtype), jnp.asarray(maxiter, jnp.int32), rank=rank,
                          zero_start=zero_start)
    if throw and is_concrete(result.status):
        result.check()
    return result


@partial(jax.jit, static_argnames=("rank", "zero_start"))
def _nystrom_pcg(A, b, mu, key, x0, tol, atol, maxiter, *, rank, zero_start):
    # One linearization serves the sketch and every CG product.
    A = A.linearize()
    P_inv = NystromPreconditioner(_nystrom_body(A, key, rank), mu)
    return _cg_body(A.shift(mu), b, P_inv, x0, tol, atol, maxiter, zero_start=zero_start)
