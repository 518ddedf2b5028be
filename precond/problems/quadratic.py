"""The diagnostic quadratic of seed 001 §4.1, with spectral preconditioners in closed form.

F(w) = ½ wᵀHw (w* = 0, F* = 0), H = QΛQᵀ with Q Haar-random and Λ a log-uniform grid on
[``lam_min``, ``lam_max``]; the stochastic gradient is g = Hw + ε, ε ~ N(0, Σ), with Σ = σ²H
(``noise="paper"``, least-squares statistics, K = σ² tr(M⁻¹H)) or Σ = σ²I (``noise="talk"``,
K = σ² tr(M⁻¹)).  A spectral preconditioner M = I + U(D − I)Uᵀ acts on chosen eigenvectors U of
H; M, H and Σ then share eigenvectors, so L̂, ĉ, K, the stationary loss and the whole expected
loss curve have closed forms (in the eigenbasis every coordinate is an independent AR(1)).

References:
  Scott et al., "Design Criteria for SGD Preconditioners: Local Conditioning, Noise Floors, and
  Basin Stability", TMLR 2026, §4.1.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from precond.linalg import DenseOperator, LowRankPlusIdentity

__all__ = [
    "Quadratic",
    "SpectralPreconditioner",
    "QuadraticConstants",
    "make_quadratic",
    "spectral_preconditioner",
    "identity_preconditioner",
    "deflate_top",
    "deflate_block",
    "deflate_bottom",
    "constants",
    "stationary_loss",
    "expected_loss",
    "panels",
    "simulate",
]

NOISE_MODELS = ("paper", "talk")


class Quadratic(NamedTuple):
    """H = Q diag(eigenvalues) Qᵀ, eigenvalues descending; noise Σ = σ²H or σ²I."""

    H: jax.Array
    Q: jax.Array
    eigenvalues: jax.Array
    noise: str
    sigma: float

    @property
    def dim(self) -> int:
        return int(self.eigenvalues.shape[0])

    def noise_variances(self) -> jax.Array:
        """s_i, the variance of ε along eigenvector i (Σ = Q diag(s) Qᵀ)."""
        if self.noise == "paper":
            return self.sigma**2 * self.eigenvalues
        return jnp.full_like(self.eigenvalues, self.sigma**2)

    def noise_covariance(self) -> jax.Array:
        """Σ (d, d)."""
        return (self.Q * self.noise_variances()) @ self.Q.T

    def noise_factor(self) -> jax.Array:
        """C with Σ = CCᵀ, so ε = Cz with z ~ N(0, I)."""
        return self.Q * jnp.sqrt(self.noise_variances())

    def loss(self, w: jax.Array) -> jax.Array:
        """F(w) = ½ wᵀHw (works on a batch of rows)."""
        return 0.5 * jnp.sum(w * (w @ self.H), axis=-1)

    def hessian(self) -> DenseOperator:
        return DenseOperator(self.H)

    def stochastic_gradients(self, w: jax.Array, num: int, key: jax.Array) -> jax.Array:
        """``num`` independent draws of g = Hw + ε at w, shape (num, d)."""
        z = jax.random.normal(key, (num, self.dim), self.H.dtype)
        return (self.H @ w)[None] + z @ self.noise_factor().T


def make_quadratic(d: int = 100, key: jax.Array | None = None, *, lam_min: float = 1e-2,
                   lam_max: float = 1e2, noise: str = "paper", sigma: float = 1.0,
                   dtype=None) -> Quadratic:
    """The §4.1 quadratic: eigenvalues geomspace(lam_max, lam_min, d); Q ~ Haar(O(d)) from
    ``key``."""
    if int(d) < 2:
        raise ValueError(f"d must be ≥ 2, got {d}")
    if not 0 < lam_min < lam_max:
        raise ValueError(f"need 0 < lam_min < lam_max, got {lam_min}, {lam_max}")
    if noise not in NOISE_MODELS:
        raise ValueError(f"noise must be one of {NOISE_MODELS}, got {noise!r}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if key is None:
        raise TypeError("a jax.random key is required (e.g. jax.random.key(0))")
    dtype = jnp.result_type(float) if dtype is None else dtype
    lam = jnp.asarray(np.geomspace(lam_max, lam_min, int(d)), dtype)
    Q = jax.random.orthogonal(key, int(d), dtype=dtype)  # Haar measure on O(d)
    H = (Q * lam) @ Q.T
    H = 0.5 * (H + H.T)
    return Quadratic(H, Q, lam, noise, float(sigma))


class SpectralPreconditioner(NamedTuple):
    """M = I + U(D − I)Uᵀ with U = Q[:, indices], D = diag(values): M scales eigendirection i
    by m_i (= values on ``indices``, 1 elsewhere), so M⁻¹H has eigenvalues λ_i / m_i."""

    indices: jax.Array
    values: jax.Array
    label: str = "M"

    def scales(self, problem: Quadratic) -> jax.Array:
        """m (d,): the eigenvalues of M along H's eigenvectors."""
        return jnp.ones_like(problem.eigenvalues).at[self.indices].set(self.values)

    def inverse_operator(self, problem: Quadratic) -> LowRankPlusIdentity:
        """M⁻¹ = I + U(D⁻¹ − I)Uᵀ as a Woodbury-cheap operator."""
        U = problem.Q[:, self.indices]
        return LowRankPlusIdentity(U, 1.0 / self.values - 1.0, 1.0)

    def operator(self, problem: Quadratic) -> LowRankPlusIdentity:
        U = problem.Q[:, self.indices]
        return LowRankPlusIdentity(U, self.values - 1.0, 1.0)


def spectral_preconditioner(indices, values, label: str = "M") -> SpectralPreconditioner:
    idx = jnp.asarray(indices, dtype=jnp.int32).reshape(-1)
    vals = jnp.asarray(values).reshape(-1)
    if idx.shape != vals.shape:
        raise ValueError(f"indices and values differ in length: {idx.shape} vs {vals.shape}")
    if vals.size and not bool(jnp.all(vals > 0)):
        raise ValueError("values (the eigenvalues d_i of M) must be > 0 so M is SPD")
    return SpectralPreconditioner(idx, vals.astype(jnp.result_type(float)), label)


def identity_preconditioner() -> SpectralPreconditioner:
    return spectral_preconditioner([], [], "M = I")


def _check_k(k: int, limit: int, name: str = "k") -> int:
    if not 0 <= int(k) <= limit:
        raise ValueError(f"{name} must be in [0, {limit}], got {k}")
    return int(k)


def deflate_top(problem: Quadratic, k: int) -> SpectralPreconditioner:
    """Panel 1: d_i = λ_i/λ_{k+1} on the top k, so their preconditioned eigenvalues become
    λ_{k+1}."""
    k = _check_k(k, problem.dim - 1)
    lam = problem.eigenvalues
    label = "M = I" if k == 0 else f"top {k} → λ_{k + 1}"
    return spectral_preconditioner(jnp.arange(k), lam[:k] / lam[k], label)


def deflate_block(problem: Quadratic, k: int, target: float = 1.0, start: int = 1
                  ) -> SpectralPreconditioner:
    """Panel 2: eigendirections start, …, start+k−1 get preconditioned eigenvalue ``target``
    (d_i = λ_i/target).  With start ≥ 1 and ĉ ≤ target ≤ L̂ the extremes λ_1, λ_d stay, so L̂ and
    ĉ are fixed while K moves."""
    k = _check_k(k, problem.dim - 1 - int(start))
    lam = problem.eigenvalues
    if not float(lam[-1]) <= target <= float(lam[0]):
        raise ValueError(f"target must lie in [ĉ, L̂] = [{float(lam[-1])}, {float(lam[0])}]")
    idx = jnp.arange(start, start + k)
    label = "M = I" if k == 0 else f"block {k} → {target:g}"
    return spectral_preconditioner(idx, lam[idx] / target, label)


def deflate_bottom(problem: Quadratic, k: int) -> SpectralPreconditioner:
    """Panel 3: d_i = λ_i on the bottom k, so their preconditioned eigenvalues become 1."""
    k = _check_k(k, problem.dim - 1)
    d = problem.dim
    idx = jnp.arange(d - k, d)
    label = "M = I" if k == 0 else f"bottom {k} → 1"
    return spectral_preconditioner(idx, problem.eigenvalues[idx], label)


class QuadraticConstants(NamedTuple):
    """Closed forms: L̂ = max λ_i/m_i, ĉ = min λ_i/m_i, κ̂ = L̂/ĉ, K = tr(M⁻¹Σ) = Σ s_i/m_i."""

    L_hat: float
    c_hat: float
    kappa: float
    K: float


def constants(problem: Quadratic, precond: SpectralPreconditioner) -> QuadraticConstants:
    m = precond.scales(problem)
    p = problem.eigenvalues / m
    L, c = float(jnp.max(p)), float(jnp.min(p))
    K = float(jnp.sum(problem.noise_variances() / m))
    return QuadraticConstants(L, c, L / c, K)


def _check_alpha(problem, precond, alpha):
    L = constants(problem, precond).L_hat
    if not 0 < alpha < 2.0 / L:
        raise ValueError(f"alpha must be in (0, 2/L̂) = (0, {2.0 / L:.4g}) for {precond.label!r} "
                         f"(the iteration diverges otherwise), got {alpha}")


def stationary_loss(problem: Quadratic, precond: SpectralPreconditioner, alpha: float) -> float:
    """E[F(w_∞)] = Σ_i α s_i / (2 m_i (2 − α p_i)), p_i = λ_i/m_i — the closed form of the
    Lyapunov solution ½ tr(HV) (≈ αK/4 when αL̂ ≪ 1)."""
    _check_alpha(problem, precond, alpha)
    m = precond.scales(problem)
    p = problem.eigenvalues / m
    return float(jnp.sum(alpha * problem.noise_variances() / (2 * m * (2 - alpha * p))))


def expected_loss(problem: Quadratic, precond: SpectralPreconditioner, alpha: float,
                  steps: int) -> jax.Array:
    """E[F(w_k)] for k = 0..steps with w₀ ~ N(0, I): per eigendirection the variance obeys
    v_{k+1} = (1 − αp_i)² v_k + α² s_i/m_i², v_0 = 1."""
    _check_alpha(problem, precond, alpha)
    m = precond.scales(problem)
    lam = problem.eigenvalues
    r2 = (1 - alpha * lam / m) ** 2
    v_inf = alpha**2 * problem.noise_variances() / m**2 / (1 - r2)
    k = jnp.arange(int(steps) + 1)[:, None]
    v = v_inf + (1.0 - v_inf) * r2[None] ** k
    return 0.5 * jnp.sum(lam * v, axis=1)


def panels(problem: Quadratic, *, top=(0, 10, 20, 40), block=(0, 12, 24, 48),
           block_target: float = 1.0, bottom=(0, 10, 20, 40)
           ) -> dict[str, list[SpectralPreconditioner]]:
    """The three panels of §4.1: deflate the top k; move K with L̂ and ĉ fixed; deflate the
    bottom k.  k = 0 is M = I in each."""
    return {
        "top": [deflate_top(problem, k) for k in top],
        "fixed_L_c": [deflate_block(problem, k, block_target) for k in block],
        "bottom": [deflate_bottom(problem, k) for k in bottom],
    }


def simulate(problem: Quadratic, preconds: list[SpectralPreconditioner], alpha: float,
             steps: int, runs: int, key: jax.Array, *, record_every: int = 1) -> jax.Array:
    """Preconditioned SGD w_{k+1} = w_k − α M⁻¹(Hw_k + ε_k) for every preconditioner and run.

    Runs in the original (Haar-rotated) coordinates with dense H, vectorized over runs and
    preconditioners, the iteration in one ``lax.scan``.  All preconditioners share w₀ ~ N(0, I)
    and the noise draws (common random numbers, so their differences are not sampling noise).
    Returns F(w_k) of shape (P, steps // record_every + 1, runs), k = 0, record_every, ….
    """
    if not preconds:
        raise ValueError("preconds is empty")
    steps, runs, record_every = int(steps), int(runs), int(record_every)
    if steps < 1 or runs < 1 or record_every < 1 or steps % record_every:
        raise ValueError("steps, runs and record_every must be ≥ 1 with record_every | steps")
    for p in preconds:
        _check_alpha(problem, p, alpha)
    kmax = max(int(p.indices.shape[0]) for p in preconds)
    d = problem.dim
    # Pad every U to kmax columns with zero weight: one batched low-rank apply for all M⁻¹.
    Us, ws = [], []
    for p in preconds:
        k = int(p.indices.shape[0])
        U = jnp.zeros((d, kmax), problem.H.dtype).at[:, :k].set(problem.Q[:, p.indices])
        w = jnp.zeros((kmax,), problem.H.dtype).at[:k].set(1.0 / p.values - 1.0)
        Us.append(U)
        ws.append(w)
    return _simulate(problem.H, problem.noise_factor(), jnp.stack(Us), jnp.stack(ws),
                     jnp.asarray(alpha, problem.H.dtype), key, steps, runs, record_every)


@partial(jax.jit, static_argnums=(6, 7, 8))
def _simulate(H, C, Us, ws, alpha, key, steps, runs, record_every):
    P, d = Us.shape[0], H.shape[0]
    k0, k1 = jax.random.split(key)
    w0 = jnp.broadcast_to(jax.random.normal(k0, (runs, d), H.dtype), (P, runs, d))

    def loss(w):
        return 0.5 * jnp.sum(w * (w @ H), axis=-1)

    def step(w, k):
        eps = jax.random.normal(jax.random.fold_in(k1, k), (runs, d), H.dtype) @ C.T
        g = w @ H + eps[None]  # (P, runs, d)
        coef = jnp.einsum("prd,pdk->prk", g, Us) * ws[:, None, :]
        w = w - alpha * (g + jnp.einsum("prk,pdk->prd", coef, Us))
        return w, None

    def block(w, j):
        w, _ = lax.scan(step, w, j * record_every + jnp.arange(record_every))
        return w, loss(w)

    _, losses = lax.scan(block, w0, jnp.arange(steps // record_every))
    losses = jnp.concatenate([loss(w0)[None], losses], axis=0)  # (T, P, runs)
    return jnp.transpose(losses, (1, 0, 2))
