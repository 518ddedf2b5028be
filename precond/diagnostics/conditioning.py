"""Local conditioning in the M-geometry: L̂, ĉ and κ̂ from the extreme eigenvalues of M⁻¹H, and
the Lanczos process on M⁻¹H in the M-inner product that needs only products with M⁻¹."""

from __future__ import annotations

import math
import warnings
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from precond.linalg import (
    IdentityOperator,
    Status,
    check_status,
    congruence,
    lanczos,
    power_iteration,
)
from precond.linalg._checks import check_symmetric
from precond.validation import check_int, check_key, check_nonnegative, check_positive, float_dtype

from ._operators import ProductOperator, as_square_operator, is_pytree, spd_sqrt

__all__ = ["Conditioning", "IndefiniteCurvatureWarning", "MLanczos", "local_conditioning",
           "m_lanczos"]

METHODS = ("auto", "lanczos", "m-lanczos", "power")


class IndefiniteCurvatureWarning(UserWarning):
    """ĉ ≤ 0: H is not positive definite in M's geometry; a PL-style proxy replaced ĉ."""


class Conditioning(NamedTuple):
    """L̂ = λ_max(M⁻¹H), ĉ = λ_min(M⁻¹H) (or its PL proxy, see ``proxy``), κ̂ = L̂/ĉ.

    ``lambda_min`` is the raw smallest eigenvalue estimate (may be ≤ 0); ``proxy`` is "" when
    ĉ = ``lambda_min`` and otherwise names what replaced it; ``method`` is "lanczos" or "power";
    ``converged`` is False when a power iteration hit its cap; ``status`` is SUCCESS (Lanczos
    ran its steps), CONVERGED (both power iterations met their tolerance) or MAX_ITERATIONS.
    """

    L_hat: float
    c_hat: float
    kappa: float
    lambda_min: float = float("nan")
    proxy: str = ""
    method: str = "lanczos"
    converged: bool = True
    status: Status = Status.SUCCESS

    def check(self) -> Conditioning:
        """Return self unless a power iteration hit its cap (then :class:`SolverError`)."""
        check_status(self.status, f"{self.method}: L̂ = {self.L_hat:.4g}, ĉ = {self.c_hat:.4g}")
        return self


def local_conditioning(H, M_inv=None, key: jax.Array | None = None, *, method: str = "auto",
                       num_steps: int | None = None, maxiter: int = 2000, tol: float = 1e-10,
                       dense_limit: int = 0, pl_constant: float | None = None,
                       pl_rtol: float = 1e-8) -> Conditioning:
    """Extreme eigenvalues of M⁻¹H: L̂ (largest), ĉ (smallest), κ̂ = L̂/ĉ.

    M⁻¹H is self-adjoint in the M-inner product and similar to the symmetric S H S with
    S = M^{-1/2}; ``method="lanczos"`` runs precond.linalg's Lanczos (full reorthogonalization)
    on S H S, with S exact for identity, diagonal, low-rank + identity, dense and scaled
    operators (and matvec-only ones of size ≤ ``dense_limit``, densified).  ``method="power"``
    needs only applications of M⁻¹, so it also fits an inexact (CG-based, nonlinear) solve:
    L̂ by power iteration on M⁻¹H, then ĉ by power iteration on the shifted L̂I − M⁻¹H
    (eigenvalues L̂ − λ_i ≥ 0, dominant L̂ − ĉ).  ``method="m-lanczos"`` runs :func:`m_lanczos`
    (Lanczos on M⁻¹H in the M-inner product, one M⁻¹ and one H product per step, no S) from a
    random start: the same Ritz values as ``"lanczos"`` for a linear M⁻¹, so ĉ follows the same
    rule for every M (an inexact M⁻¹ such as a fixed-budget CG solve is treated as linear).
    ``"auto"`` picks Lanczos when S is available, else power iteration.

    Args:
      H: curvature operator (n, n) (a precond operator or array), symmetric: one random probe
        pair (two products) checks it, and a non-symmetric H is a ``ValueError``.
      M_inv: operator applying M⁻¹ (or a callable v ↦ M⁻¹v); None means M = I.
      key: jax.random key for the starting vectors (required).
      method: "auto", "lanczos", "m-lanczos" or "power" (above).
      num_steps: Lanczos steps (default min(n, 100): exact for n ≤ 100; extreme Ritz values
        converge first, inwards).
      maxiter, tol: power iteration caps (Rayleigh quotients agreeing to ``tol`` relative).
      dense_limit: densify a matvec-only M⁻¹ of size n ≤ this (n products) for an exact S.
      pl_constant: the local PL constant μ̂_PL to use when ĉ ≤ 0 (see below).
      pl_rtol: eigenvalues ≤ pl_rtol·L̂ count as non-positive.

    When ĉ ≤ pl_rtol·L̂ (H indefinite or singular, as for most network Hessians) a warning is
    issued and ĉ is replaced by a PL-style proxy: ``pl_constant`` when given; otherwise (Lanczos)
    the smallest Ritz value above pl_rtol·L̂ — the PL constant of the quadratic model on its
    positive-curvature subspace — or (power) the floor pl_rtol·L̂.  ``Conditioning.proxy`` says
    which.  Lanczos and m-Lanczos apply this one rule whatever M is, so a ratio of two ĉ is never
    a Ritz value against a floor.

    References:
      Scott et al., "Design Criteria for SGD Preconditioners", TMLR 2026, Lemma 3.1.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    key = check_key(key)
    maxiter = check_int(maxiter, "maxiter", low=1)
    tol = check_nonnegative(tol, "tol")
    pl_rtol = check_nonnegative(pl_rtol, "pl_rtol")
    if num_steps is not None:
        num_steps = check_int(num_steps, "num_steps", low=1)
    H = as_square_operator(H, "H")
    n = H.shape[0]
    dtype = float_dtype(H.dtype)
    check_symmetric(H, "local_conditioning")
    M = None if M_inv is None else as_square_operator(M_inv, "M_inv", n, dtype)
    S = None
    if M is not None and method not in ("power", "m-lanczos"):
        S = spd_sqrt(M, "M_inv", dense_limit=max(dense_limit, n if method == "lanczos" else 0))
    if method == "auto":
        method = "lanczos" if (M is None or S is not None) else "power"
    if method == "lanczos":
        theta, converged = _lanczos_extremes(H, S, key, n, dtype, num_steps)
        theta = np.asarray(theta)
        L, lam_min = float(theta[-1]), float(theta[0])
    elif method == "m-lanczos":
        k = min(n, 100) if num_steps is None else min(int(num_steps), n)
        theta = m_lanczos(H, M, jax.random.normal(key, (n,), dtype), k).theta
        if theta.size == 0:
            raise ValueError("M⁻¹ annihilated the random start vector; is M_inv SPD?")
        L, lam_min, converged = float(theta[-1]), float(theta[0]), True
    else:
        L, lam_min, converged = _power_extremes(H, M, key, n, dtype, maxiter, tol)
        theta = None
    if not (math.isfinite(L) and math.isfinite(lam_min)):
        raise ValueError("H or M_inv produced NaN or inf; check the operators")
    if L <= 0:
        raise ValueError(f"M⁻¹H has no positive eigenvalue (λ_max = {L:.3g}); the conditioning "
                         "is undefined — is H a curvature at a minimum?")
    if not converged:
        warnings.warn("power iteration reached maxiter before its tolerance; L̂/ĉ may be "
                      "inaccurate (ĉ converges slowly when κ̂ is large): raise maxiter or use an "
                      "exact M_inv with method='lanczos'", RuntimeWarning, stacklevel=2)
    c, proxy = lam_min, ""
    if lam_min <= pl_rtol * L:
        if pl_constant is not None:
            c = check_positive(pl_constant, "pl_constant")
            proxy = "pl_constant (user-supplied local PL constant)"
        elif theta is not None and bool(np.any(theta > pl_rtol * L)):
            c = float(np.min(theta[theta > pl_rtol * L]))
            proxy = "smallest positive Ritz value (PL constant on the positive-curvature subspace)"
        else:
            c, proxy = pl_rtol * L, f"floor pl_rtol·L̂ = {pl_rtol:g}·L̂ (pass pl_constant)"
        warnings.warn(f"H is not positive definite in M's geometry (λ_min(M⁻¹H) = {lam_min:.3g}); "
                      f"ĉ replaced by the {proxy}: ĉ = {c:.3g}", IndefiniteCurvatureWarning,
                      stacklevel=2)
    status = (Status.SUCCESS if method in ("lanczos", "m-lanczos") else
              Status.CONVERGED if converged else Status.MAX_ITERATIONS)
    return Conditioning(L, c, L / c, lam_min, proxy, method, bool(converged), status)


def _lanczos_extremes(H, S, key, n, dtype, num_steps):
    A = H if S is None else congruence(H, S)
    k = min(n, 100) if num_steps is None else int(num_steps)
    return lanczos(A, k, key).ritz_values(), True


def _power_extremes(H, M, key, n, dtype, maxiter, tol):
    A = H if M is None else ProductOperator((M, H))
    k1, k2 = jax.random.split(key)
    # Both runs on (σA).shift(c): the same operator structure (σ, c are leaves), so the power
    # loop compiles once; the first with σ = 1, c = 0.
    one, zero = jnp.ones((), dtype), jnp.zeros((), dtype)
    # criterion="rayleigh": the rule these estimates were made with (issue #19 left the
    # switch to the eigenpair-residual default to this module)
    first = power_iteration((A * one).shift(zero), k1, maxiter=maxiter, tol=tol,
                            criterion="rayleigh")
    lam = float(first.eigenvalue)
    # Shift so every eigenvalue of the shifted operator is ≥ 0 and the other end dominates.
    sign = 1.0 if lam > 0 else -1.0
    B = (A * (-sign * one)).shift(sign * lam * one)
    second = power_iteration(B, k2, maxiter=maxiter, tol=tol, criterion="rayleigh")
    other = lam - sign * float(second.eigenvalue)
    hi, lo = (lam, other) if lam > 0 else (other, lam)
    return hi, lo, bool(first.converged) and bool(second.converged)


class MLanczos(NamedTuple):
    """Ritz pairs of M⁻¹H from :func:`m_lanczos` (m ≤ k steps: fewer when the Krylov space of
    the start closed, i.e. it is exactly invariant).

    ``theta`` (m,) ascending Ritz values θ_j; ``weights`` (m,) the squared first components
    y_j[0]² of the eigenvectors of T (they sum to 1: the Gauss quadrature weights of the start);
    ``vectors`` (n, m) the Ritz vectors x_j = Q y_j in parameter space, M-orthonormal
    (x_iᵀMx_j = δ_ij), so the component of a gradient-space vector a along x_j is x_jᵀa;
    ``start_norm2`` = r₀ᵀM⁻¹r₀ for the start r₀; ``steps`` = m.
    """

    theta: np.ndarray
    weights: np.ndarray
    vectors: jax.Array
    start_norm2: float
    steps: int


def m_lanczos(H, M_inv, r0, num_steps: int) -> MLanczos:
    """Lanczos on M⁻¹H in the M-inner product, needing only products with H and M⁻¹.

    M⁻¹H is self-adjoint in ⟨x, y⟩_M = xᵀMy and similar to M^{-1/2}HM^{-1/2}, so this is
    Lanczos on the latter from the start M^{-1/2}r₀ without ever forming M^{±1/2}: the basis
    q_j (M-orthonormal) is kept with p_j = Mq_j, each step takes w = Hq_j, M-orthogonalizes it
    against all previous q (twice, full reorthogonalization) through p, and sets
    q_{j+1} = M⁻¹w/β, β² = wᵀM⁻¹w — one H and one M⁻¹ product per step (preconditioned Lanczos,
    the process behind PCG).  The start r₀ lives in gradient space (a gradient, or a random
    vector); the recurrence stops early (``steps`` < k) when β falls to rounding level.

    Args:
      H: symmetric (n, n) operator (array, precond operator or pytree operator).
      M_inv: SPD (n, n) operator applying M⁻¹ (None: M = I).
      r0: (n,) start in gradient space.
      num_steps: k ≥ 1 (at most n).
    """
    H = as_square_operator(H, "H")
    n = H.shape[0]
    r0 = jnp.asarray(r0)
    if r0.shape != (n,):
        raise ValueError(f"r0 must have shape ({n},), got {r0.shape}")
    k = check_int(num_steps, "num_steps", low=1, high=n)
    dtype = float_dtype(H.dtype, r0.dtype)
    P = IdentityOperator(n, dtype) if M_inv is None else as_square_operator(M_inv, "M_inv", n,
                                                                             dtype)
    run = _m_lanczos if is_pytree(H) and is_pytree(P) else partial(_m_lanczos.__wrapped__)
    alpha, beta, active, Q, b0 = jax.device_get(run(H, P, r0.astype(dtype), k))
    m, b0 = int(np.sum(active)), float(b0)
    if not math.isfinite(b0) or not bool(np.all(np.isfinite(alpha))):
        raise ValueError("H or M_inv produced NaN or inf in the Lanczos recurrence")
    if m == 0:
        return MLanczos(np.zeros(0), np.zeros(0), jnp.zeros((n, 0), dtype), b0**2, 0)
    a = np.asarray(alpha[:m], np.float64)
    b = np.asarray(beta[:m - 1], np.float64)
    T = np.diag(a) + np.diag(b, 1) + np.diag(b, -1)
    theta, Y = np.linalg.eigh(T)
    X = jnp.asarray(np.asarray(Q[:, :m], np.float64) @ Y, dtype)
    return MLanczos(theta, Y[0] ** 2, X, b0**2, m)


@partial(jax.jit, static_argnums=3)
def _m_lanczos(H, P, r0, k):
    H, P = H.linearize(), P.linearize()
    n, dtype = r0.shape[0], r0.dtype
    eps = jnp.finfo(dtype).eps
    z0 = P.matvec(r0)
    b0 = jnp.sqrt(jnp.maximum(jnp.vdot(r0, z0), 0))
    ok0 = b0 > 0
    safe = jnp.where(ok0, b0, 1)
    Q = jnp.zeros((n, k + 1), dtype).at[:, 0].set(jnp.where(ok0, z0 / safe, 0))
    R = jnp.zeros((n, k + 1), dtype).at[:, 0].set(jnp.where(ok0, r0 / safe, 0))

    def step(carry, j):
        Q, R, beta_prev, scale, active = carry
        q, p = Q[:, j], R[:, j]
        p_prev = jnp.where(j > 0, R[:, jnp.maximum(j - 1, 0)], jnp.zeros_like(p))
        w = H.matvec(q) - beta_prev * p_prev
        a = jnp.vdot(q, w)
        w = w - a * p
        w = w - R @ (Q.T @ w)  # M-orthogonal to every q_i: q_iᵀw = 0 (p_i = Mq_i)
        w = w - R @ (Q.T @ w)
        z = P.matvec(w)
        b = jnp.sqrt(jnp.maximum(jnp.vdot(w, z), 0))
        scale = jnp.maximum(scale, jnp.maximum(jnp.abs(a), b))
        going = active & (b > jnp.sqrt(eps) * scale) & jnp.isfinite(b)
        safe = jnp.where(going, b, 1)
        Q = lax.dynamic_update_slice(Q, jnp.where(going, z / safe, 0)[:, None], (0, j + 1))
        R = lax.dynamic_update_slice(R, jnp.where(going, w / safe, 0)[:, None], (0, j + 1))
        b = jnp.where(going, b, 0)
        return (Q, R, b, scale, going), (jnp.where(active, a, 0), b, active)

    init = (Q, R, jnp.zeros((), dtype), jnp.zeros((), dtype), ok0)
    (Q, _, _, _, _), (alpha, beta, active) = lax.scan(step, init, jnp.arange(k))
    return alpha, beta, active, Q[:, :k], b0
