"""Seed 001's predictions: the noise floor (Thm 3.2), admissible steps, the harmonic-step
constant ν (Thm 3.3), and the exact stationary loss of SGD on a quadratic (discrete Lyapunov).

References:
  Scott et al., "Design Criteria for SGD Preconditioners: Local Conditioning, Noise Floors, and
  Basin Stability", TMLR 2026, Theorems 3.2 and 3.3.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from precond.validation import check_nonnegative, check_positive

__all__ = ["noise_floor", "max_stable_step", "harmonic_constant", "lyapunov_floor",
           "recommended_step"]


def noise_floor(alpha: float, L_hat: float, c_hat: float, K: float, mu: float = 1.0) -> float:
    """Theorem 3.2's floor αL̂K/(2ĉμ) = (α/2μ)·κ̂·K, an upper bound on lim E[F(w_k) − F*].

    α is ``alpha``, L̂ ``L_hat``, ĉ ``c_hat``, K = tr(M⁻¹Σ) ``K``, μ the gradient-alignment
    constant ``mu`` (1 for unbiased gradients).  On quadratics the true floor is ≈ αK/4, so the
    bound is loose by ≈ 2κ̂ (see :func:`lyapunov_floor`).
    """
    alpha, L_hat, c_hat, mu = (check_positive(alpha, "alpha"), check_positive(L_hat, "L_hat"),
                               check_positive(c_hat, "c_hat"), check_positive(mu, "mu"))
    K = check_nonnegative(K, "K")
    return alpha * L_hat * K / (2.0 * c_hat * mu)


def max_stable_step(L_hat: float, *, mu: float = 1.0, M_G: float = 1.0,
                    rule: str = "theorem") -> float:
    """The largest fixed step the analysis admits.

    ``rule="theorem"``: α ≤ μ/(L̂ M_G), Theorem 3.2's condition (M_G bounds E‖g‖²_{M⁻¹} by
    M_V + M_G‖∇F‖²_{M⁻¹}; 1 for noise independent of w).  ``rule="quadratic"``: α < 2/L̂, the
    exact stability limit of the mean iteration on a quadratic (spectral radius of I − αM⁻¹H
    below 1).
    """
    L_hat = check_positive(L_hat, "L_hat")
    if rule == "theorem":
        return check_positive(mu, "mu") / (L_hat * check_positive(M_G, "M_G"))
    if rule == "quadratic":
        return 2.0 / L_hat
    raise ValueError(f"rule must be 'theorem' or 'quadratic', got {rule!r}")


def recommended_step(L_hat: float, c_hat: float, K: float, *, mu: float = 1.0,
                     M_G: float = 1.0, target_floor: float | None = None) -> float:
    """The largest admissible step μ/(L̂M_G) — or, when ``target_floor`` is given, the smaller
    step 2ĉμ·target/(L̂K) whose Theorem 3.2 floor equals the target."""
    alpha = max_stable_step(L_hat, mu=mu, M_G=M_G)
    if target_floor is not None:
        target = check_positive(target_floor, "target_floor")
        if float(K) > 0:
            alpha = min(alpha, 2.0 * check_positive(c_hat, "c_hat") * mu * target / (L_hat * K))
    return alpha


def harmonic_constant(beta: float, gamma: float, L_hat: float, c_hat: float, K: float,
                      initial_gap: float, mu: float = 1.0) -> float:
    """ν of Theorem 3.3: with α_k = β/(γ + k), β > 1/(ĉμ), E[F(w_k) − F*] ≤ ν/(γ + k),

        ν = max{ β²L̂K / (2(βĉμ − 1)), (γ + 1)(F(w₁) − F*) }.

    ``initial_gap`` is F(w₁) − F*.
    """
    beta, L_hat, c_hat, mu = (check_positive(beta, "beta"), check_positive(L_hat, "L_hat"),
                              check_positive(c_hat, "c_hat"), check_positive(mu, "mu"))
    gamma = check_nonnegative(gamma, "gamma")
    if beta * c_hat * mu <= 1:
        raise ValueError(f"Theorem 3.3 needs beta > 1/(ĉμ) = {1 / (c_hat * mu):.4g}, got {beta}")
    gap = check_nonnegative(initial_gap, "initial_gap")
    return max(beta**2 * L_hat * float(K) / (2.0 * (beta * c_hat * mu - 1.0)), (gamma + 1) * gap)


def lyapunov_floor(alpha: float, H, Sigma, M_inv=None) -> float:
    """Exact stationary E[F(w_∞) − F*] of w_{k+1} = w_k − αM⁻¹(H(w_k − w*) + ε_k), ε ~ (0, Σ).

    With A = I − αM⁻¹H the stationary covariance V solves the discrete Lyapunov equation
    V = AVAᵀ + α²M⁻¹ΣM⁻ᵀ (``scipy.linalg.solve_discrete_lyapunov``) and E[F∞] = ½ tr(HV);
    ≈ αK/4 for αL̂ ≪ 1.  Dense (n, n) arrays; ``M_inv`` None means M = I.  O(n³).
    """
    alpha = check_positive(alpha, "alpha")
    H = np.asarray(H, dtype=np.float64)
    Sigma = np.asarray(Sigma, dtype=np.float64)
    n = H.shape[0]
    if H.shape != (n, n) or Sigma.shape != (n, n):
        raise ValueError(f"H and Sigma must be square of the same size, got {H.shape} and "
                         f"{Sigma.shape}")
    P = np.eye(n) if M_inv is None else np.asarray(M_inv, dtype=np.float64)
    if P.shape != (n, n):
        raise ValueError(f"M_inv has shape {P.shape}; expected {(n, n)}")
    for name, X in (("H", H), ("Sigma", Sigma), ("M_inv", P)):
        if not np.all(np.isfinite(X)):
            raise ValueError(f"{name} contains NaN or inf")
    A = np.eye(n) - alpha * P @ H
    rho = float(np.max(np.abs(np.linalg.eigvals(A))))
    if rho >= 1:
        raise ValueError(f"the iteration is unstable for alpha={alpha} (spectral radius of "
                         f"I − αM⁻¹H is {rho:.4g} ≥ 1); take alpha < 2/L̂")
    V = scipy.linalg.solve_discrete_lyapunov(A, alpha**2 * P @ Sigma @ P.T)
    return float(0.5 * np.trace(H @ V))
