"""Spectral density by stochastic Lanczos quadrature (SLQ)."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from precond.validation import check_int, check_key, check_positive, float_dtype

from ._checks import check_factorizable, check_square
from .lanczos import _lanczos_body
from .operators import as_operator
from .status import Status, check_status

__all__ = ["SpectralDensity", "spectral_density"]


class SpectralDensity(NamedTuple):
    """A smoothed spectral density φ(t) on ``grid`` and the quadrature behind it.

    ``nodes`` (num_probes, k) are Ritz values and ``weights`` (num_probes, k) the squared first
    components of T's eigenvectors, so Σ weights / num_probes = 1 and the empirical measure
    (1/P) Σ_p Σ_j w_pj δ(t − θ_pj) approximates (1/n) Σ_i δ(t − λ_i).  With ``log=True`` the grid
    is log₁₀ λ and the density is over log₁₀ λ; nodes below ``floor`` are counted at the floor.
    ``status`` is SUCCESS, or NONFINITE when a Lanczos run produced NaN/inf.
    """

    grid: jax.Array
    density: jax.Array
    nodes: jax.Array
    weights: jax.Array
    log: bool
    floor: float | None
    status: Status = Status.SUCCESS

    def check(self) -> SpectralDensity:
        """Return self unless a Lanczos run failed (then :class:`SolverError`)."""
        check_status(self.status, "in the stochastic Lanczos quadrature")
        return self

    def integral(self) -> float:
        """∫ φ over the grid (≈ 1: the grid extends 6σ past the extreme nodes)."""
        return float(jnp.trapezoid(self.density, self.grid))


def spectral_density(
    A,
    key: jax.Array,
    *,
    num_probes: int = 10,
    num_steps: int = 50,
    num_points: int = 512,
    sigma: float | None = None,
    log: bool = False,
    floor: float | None = None,
) -> SpectralDensity:
    """Spectral density of symmetric A by SLQ with Gaussian smoothing of width σ.

    Each of ``num_probes`` Rademacher probes v starts ``num_steps`` Lanczos steps; the eigenpairs
    (θ_j, s_j) of T give quadrature nodes θ_j with weights s_j[0]² (Ubaru, Chen, Saad 2017).  The
    density is φ(t) = (1/P) Σ_p Σ_j w_pj N(t; θ_pj, σ²).  Default σ is 1% of the node range (or
    0.05 decades when ``log=True``, for Hessian spectra spanning many decades; there ``floor``
    defaults to 1e-10 · the largest node and smaller nodes — zero or negative — are put on it).

    Cost: num_probes × num_steps matvecs, after one ``A.linearize()``; one compiled program
    per operator kind and shapes.

    Args:
      A: symmetric operator A, shape (n, n).
      key: jax.random key for the probes (and Lanczos restarts).
      num_probes: P ≥ 1.
      num_steps: Lanczos steps k per probe, 1 ≤ k ≤ n.
      num_points: grid size.
      sigma: σ > 0 of the Gaussian kernel (in log₁₀ units when ``log``).
      log: density over log₁₀ λ.
      floor: with ``log``, the smallest eigenvalue kept (default 1e-10 · the largest node).

    References:
      Ubaru, Chen, Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos quadrature", 2017.
      Ghorbani, Krishnan, Xiao, "An investigation into neural net optimization via Hessian
      eigenvalue density", ICML 2019.
    """
    A = as_operator(A)
    n = check_square(A)
    check_factorizable(A, "spectral_density")
    num_probes = check_int(num_probes, "num_probes", low=1)
    num_steps = check_int(num_steps, "num_steps", low=1, high=n)
    key = check_key(key)
    theta, weights, finite = _slq(A, key, num_probes=num_probes, num_steps=num_steps)
    dtype = theta.dtype
    status = Status.SUCCESS if bool(finite) else Status.NONFINITE
    nodes = theta
    if log:
        top = float(jnp.max(nodes))
        if top <= 0:
            raise ValueError("log=True needs a positive largest eigenvalue")
        floor = top * 1e-10 if floor is None else float(floor)
        nodes = jnp.log10(jnp.maximum(nodes, floor))
        sigma = 0.05 if sigma is None else sigma
    lo, hi = float(jnp.min(nodes)), float(jnp.max(nodes))
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 1e-3
    sigma = check_positive(sigma, "sigma")
    grid = jnp.linspace(lo - 6 * sigma, hi + 6 * sigma, num_points, dtype=dtype)
    z = (grid[:, None, None] - nodes[None]) / sigma
    kernel = jnp.exp(-0.5 * z**2) / (sigma * jnp.sqrt(2 * jnp.pi))
    density = jnp.sum(kernel * weights[None], axis=(1, 2)) / num_probes
    return SpectralDensity(grid, density, theta, weights, log, floor if log else None, status)


@partial(jax.jit, static_argnames=("num_probes", "num_steps"))
def _slq(A, key, *, num_probes, num_steps):
    """Ritz values (P, k), quadrature weights (P, k) and whether all runs were finite."""
    n = A.shape[0]
    dtype = float_dtype(A.dtype)
    k_probe, k_restart = jax.random.split(key)
    probes = jax.random.rademacher(k_probe, (num_probes, n), dtype)
    restarts = jax.random.normal(k_restart, (num_probes, num_steps, n), dtype)
    A = A.linearize()  # once, outside the vmap over probes
    res = jax.vmap(lambda v, r: _lanczos_body(A, v, r, num_steps))(probes, restarts)
    T = jax.vmap(lambda a, b: jnp.diag(a) + jnp.diag(b, 1) + jnp.diag(b, -1))(res.alpha, res.beta)
    theta, vecs = jnp.linalg.eigh(T)
    return theta, vecs[:, 0, :] ** 2, jnp.all(res.status == Status.SUCCESS)
