"""The spectral model behind ``advise``'s predicted loss after T steps of preconditioned SGD.

The local quadratic model: F(w) ≈ F* + ½(w − w*)ᵀH(w − w*) and mini-batch gradients
g = H(w − w*) + ε with Cov(ε) = Σ.  In u = M^{1/2}(w − w*) the step w ← w − αM⁻¹g is
u ← (I − αA)u − αM^{-1/2}ε with A = M^{-1/2}HM^{-1/2} = Σ_j θ_j v_j v_jᵀ, and F − F* = ½uᵀAu.
Along each eigenvector the mean and the variance evolve on their own (I − αA is diagonal in that
basis), so with ρ_j = (1 − αθ_j)²

    E[F_T] − F* = ½ Σ_j (w_j/θ_j) ρ_j^T  +  ½ Σ_j θ_j α² σ_j² (1 − ρ_j^T)/(1 − ρ_j),

where w_j = (v_jᵀM^{-1/2}ḡ)² (the mean gradient's weight on direction j) and
σ_j² = v_jᵀM^{-1/2}ΣM^{-1/2}v_j = x_jᵀΣx_j (x_j = M^{-1/2}v_j, the M-orthonormal eigenvector
of M⁻¹H).  This is the exact solution of the Lyapunov recursion V_{t+1} = (I − αM⁻¹H)V_t(·)ᵀ +
α²M⁻¹ΣM⁻¹ for E[F_T], read along the eigenvectors.

Measured: Lanczos on M⁻¹H from ḡ (``precond.diagnostics.conditioning.m_lanczos``) gives Ritz
values θ_j and w_j = ‖ḡ‖²_{M⁻¹}·y_j[0]² (Gauss quadrature: exact for every f(θ) of degree
< 2k, so exact when the Krylov space closes — k ≥ the number of distinct eigenvalues ḡ
excites); σ_j² = the sample variance of x_jᵀg_b over the B mini-batch gradients.  The noise
outside the Ritz vectors, K_⊥ = K − Σσ_j², is put at one curvature θ_⊥, its Rayleigh quotient.
Then F_T = F₀ − ½ Σ_j (w_j/θ_j)(1 − ρ_j^T) + noise: the measured loss F₀ minus the model's
decrease, so the unknown F* never enters.  The noise may also shrink with the loss
(``noise="relative"``, Σ ∝ F − F_low, the usual case of residual noise): see
:func:`predicted_loss`.  Directions of curvature ≤ the ĉ threshold (negative
or numerically zero) are left out: the model predicts no progress along them.

When no positive Ritz value is available (ḡ = 0), Theorem 3.2's rate and floor replace the
model (:func:`theorem_loss`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["NOISE_MODELS", "SpectralModel", "predicted_loss", "theorem_loss"]


class SpectralModel(NamedTuple):
    """θ_j (m,) > 0, w_j (m,), σ_j² (m,), and the rest K_⊥ of the noise at θ_⊥ (module doc)."""

    theta: np.ndarray
    signal: np.ndarray
    noise: np.ndarray
    rest_noise: float = 0.0
    rest_theta: float = 0.0


NOISE_MODELS = ("relative", "constant")


def predicted_loss(F0: float, model: SpectralModel, alpha: float, T: int, *,
                   lower_bound: float | None = None, noise: str = "constant",
                   ) -> tuple[float, float]:
    """(predicted E[F_T], predicted floor lim E[F_t] − F*) after T steps at step α.

    With e_j = E[(v_jᵀu)²] (e_j(0) = w_j/θ_j²) and F_t = F* + ½Σθ_j e_j(t),
    F* = F₀ − ½Σ w_j/θ_j, each step is e_j ← ρ_j e_j + α²σ_j²·s_t with the noise scale
    s_t = 1 (``noise="constant"``: Σ does not depend on w, the Lyapunov recursion's model) or
    s_t = (F_t − F_low)/(F₀ − F_low) (``noise="relative"``: Σ shrinks with the loss, as for
    least squares or cross-entropy, where the gradient noise is made of residuals; F_low =
    ``lower_bound``).  Both are one affine recursion, applied T times by repeated squaring
    of its (m + 2) × (m + 2) matrix; the noise outside the Ritz vectors is one more direction
    (θ_⊥, K_⊥, no signal).

    Args:
      F0: the loss at the start (the mean over the measurement mini-batches).
      model: the measured :class:`SpectralModel`.
      alpha: α, the step in the M-geometry.
      T: the number of steps (≥ 0).
      lower_bound: F_low, the loss never goes below it (e.g. 0 for a sum of squares); None: no
        bound (then the relative model is not available).  When the model's minimum F* falls
        below F_low, the excess ½w_j/θ_j of every direction is scaled by one factor so that
        F* = F_low.
      noise: "constant" or "relative" (above).

    An unstable recursion predicts ``inf``.
    """
    if noise not in NOISE_MODELS:
        raise ValueError(f"noise must be one of {NOISE_MODELS}, got {noise!r}")
    if noise == "relative" and lower_bound is None:
        raise ValueError("noise='relative' needs lower_bound (the loss's lower bound F_low)")
    theta = np.asarray(model.theta, float)
    signal = np.asarray(model.signal, float)
    sigma2 = np.asarray(model.noise, float)
    F_star = F0 - 0.5 * float(np.sum(signal / theta)) if theta.size else F0
    if lower_bound is not None and F_star < lower_bound:
        # The quadratic model's minimum lies below what the loss can reach (small curvatures
        # extrapolated far, as on a network): scale the excess along every direction by one
        # factor so the model's minimum is the bound — the rates are kept, the ranking is not
        # lost in ties at the bound.
        signal = signal * (F0 - lower_bound) / (F0 - F_star)
        F_star = lower_bound
    if model.rest_noise > 0 and model.rest_theta > 0:
        theta = np.append(theta, model.rest_theta)
        signal = np.append(signal, 0.0)
        sigma2 = np.append(sigma2, model.rest_noise)
    if theta.size == 0:
        return F0, 0.0
    m = theta.size
    rho = (1 - alpha * theta) ** 2
    inject = alpha**2 * sigma2
    A = np.zeros((m + 1, m + 1))
    A[:m, :m] = np.diag(rho)
    A[m, m] = 1.0
    if noise == "constant":
        A[:m, m] = inject
    else:
        D0 = F0 - lower_bound
        if D0 <= 0:
            raise ValueError(f"the loss {F0:.6g} is at or below lower_bound {lower_bound:.6g}")
        A[:m, :m] += np.outer(inject, 0.5 * theta) / D0
        A[:m, m] = inject * max(F_star - lower_bound, 0.0) / D0
    z0 = np.append(signal / theta**2, 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        z = np.linalg.matrix_power(A, int(T)) @ z0
    F = F_star + 0.5 * float(theta @ z[:m])
    if not math.isfinite(F):
        return math.inf, math.inf
    if lower_bound is not None:
        F = max(F, lower_bound)
    radius = float(np.max(np.abs(np.linalg.eigvals(A[:m, :m]))))
    if radius >= 1:
        return F, math.inf
    e_inf = np.linalg.solve(np.eye(m) - A[:m, :m], A[:m, m])
    return F, 0.5 * float(theta @ e_inf)


def theorem_loss(F0: float, gap: float, alpha: float, L_hat: float, c_hat: float, K: float,
                 T: int, *, mu: float = 1.0) -> float:
    """Theorem 3.2's bound: F* + (1 − αĉμ)^T·gap + αL̂K/(2ĉμ), with F* = F₀ − gap.

    Args:
      F0: the loss at the start; gap: F₀ − F* (an estimate, e.g. the PL one ‖ḡ‖²_{M⁻¹}/(2ĉ)).
      alpha, L_hat, c_hat, K, mu: α, L̂, ĉ, K = tr(M⁻¹Σ), μ.
      T: steps.
    """
    rate = max(0.0, 1.0 - alpha * c_hat * mu)
    return F0 - gap + rate**T * gap + alpha * L_hat * K / (2.0 * c_hat * mu)
