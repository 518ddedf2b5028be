"""Spectral densities of H and of M⁻¹H on one figure ("preconditioners cluster the spectrum")."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

from precond.linalg import SpectralDensity, congruence, spectral_density
from precond.validation import check_key, check_positive

from ._operators import as_square_operator, spd_sqrt

__all__ = ["spectral_densities", "plot_spectral_densities"]


def spectral_densities(H, M_inv, key: jax.Array, *, num_probes: int = 10,
                       num_steps: int | None = None, log: bool = True, sigma: float | None = None,
                       dense_limit: int = 0) -> tuple[SpectralDensity, SpectralDensity]:
    """SLQ densities of H and of M⁻¹H (via the similar symmetric M^{-1/2}HM^{-1/2}).

    ``M_inv`` needs an exact square root (identity, diagonal, low-rank + identity, dense, or a
    matvec operator of size ≤ ``dense_limit``); ``log=True`` puts both on log₁₀ λ (Hessian
    spectra span decades; eigenvalues ≤ 1e-10·max are put on that floor).  Same probes (``key``)
    for both.  ``num_steps`` defaults to min(n, 50).

    Args:
      H: symmetric curvature operator H, shape (n, n).
      M_inv: SPD operator applying M⁻¹, shape (n, n).
      key: jax.random key for the probes (the same for both densities).
      num_probes, num_steps, log, sigma: as in ``precond.linalg.spectral_density``.
      dense_limit: densify a matvec-only M⁻¹ of size n ≤ this for its square root.
    """
    key = check_key(key)
    if sigma is not None:
        sigma = check_positive(sigma, "sigma")
    H = as_square_operator(H, "H")
    n = H.shape[0]
    M = as_square_operator(M_inv, "M_inv", n, H.dtype)
    S = spd_sqrt(M, "M_inv", dense_limit=dense_limit)
    if S is None:
        raise ValueError("M_inv has no exact square root (a matvec-only operator); raise "
                         f"dense_limit to ≥ {n} to densify it")
    PHP = congruence(H, S)
    k = min(n, 50) if num_steps is None else int(num_steps)
    kw = dict(num_probes=num_probes, num_steps=k, log=log, sigma=sigma)
    return spectral_density(H, key, **kw), spectral_density(PHP, key, **kw)


def plot_spectral_densities(H, M_inv, key: jax.Array, *, path: str | os.PathLike | None = None,
                            labels: tuple[str, str] = ("H", "M⁻¹H"), title: str | None = None,
                            ax=None, **kwargs):
    """Plot both densities on one axis (matplotlib); save to ``path`` when given.  Returns the
    figure.  ``kwargs`` go to :func:`spectral_densities` (``log=True`` by default)."""
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    dens = spectral_densities(H, M_inv, key, **kwargs)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    for d, lab in zip(dens, labels, strict=True):
        ax.plot(jnp.asarray(d.grid), jnp.asarray(d.density), label=lab)
    log = dens[0].log
    ax.set_xlabel("log₁₀ eigenvalue" if log else "eigenvalue")
    ax.set_ylabel("density")
    ax.set_title(title or "spectral density before and after preconditioning")
    ax.legend()
    fig = fig or ax.figure
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
