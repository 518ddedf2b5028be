"""Stochastic trace estimation: Hutchinson and Hutch++."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._checks import check_key, check_square
from .operators import as_operator

__all__ = ["TraceEstimate", "hutchinson_trace", "hutchpp_trace"]


class TraceEstimate(NamedTuple):
    """tr(A) ≈ ``value`` ± ``stderr`` (one standard error) from ``num_matvecs`` matvecs."""

    value: jax.Array
    stderr: jax.Array
    num_matvecs: int


def hutchinson_trace(A, key: jax.Array, num_probes: int = 100) -> TraceEstimate:
    """Hutchinson's estimator tr(A) ≈ (1/m) Σ zᵢᵀAzᵢ with Rademacher zᵢ.

    The standard error is the sample standard deviation of zᵢᵀAzᵢ over √m.

    References:
      Hutchinson, "A stochastic estimator of the trace of the influence matrix for Laplacian
      smoothing splines", 1989.
    """
    A = as_operator(A)
    n = check_square(A)
    if num_probes < 2:
        raise ValueError(f"num_probes must be ≥ 2 (for a standard error), got {num_probes}")
    dtype = A.dtype if jnp.issubdtype(A.dtype, jnp.floating) else jnp.result_type(float)
    Z = jax.random.rademacher(check_key(key), (n, num_probes), dtype)
    samples = jnp.sum(Z * A.matmat(Z), axis=0)
    return TraceEstimate(jnp.mean(samples), jnp.std(samples, ddof=1) / jnp.sqrt(num_probes),
                         num_probes)


def hutchpp_trace(A, key: jax.Array, num_matvecs: int = 99) -> TraceEstimate:
    """Hutch++ (Meyer, Musco, Musco, Woodruff 2021) for PSD A: exact trace on a sketched top
    subspace plus Hutchinson on the rest, error O(1/m) instead of O(1/√m).

    Uses m/3 matvecs to sketch Q = orth(AS), m/3 for tr(QᵀAQ) and m/3 Hutchinson probes of
    (I − QQᵀ)A(I − QQᵀ); the standard error is that of the Hutchinson part.
    """
    A = as_operator(A)
    n = check_square(A)
    k = num_matvecs // 3
    if k < 2:
        raise ValueError(f"num_matvecs must be ≥ 6, got {num_matvecs}")
    dtype = A.dtype if jnp.issubdtype(A.dtype, jnp.floating) else jnp.result_type(float)
    k1, k2 = jax.random.split(check_key(key))
    S = jax.random.rademacher(k1, (n, min(k, n)), dtype)
    Q, _ = jnp.linalg.qr(A.matmat(S))
    top = jnp.trace(Q.T @ A.matmat(Q))
    G = jax.random.rademacher(k2, (n, k), dtype)
    G = G - Q @ (Q.T @ G)
    AG = A.matmat(G)
    samples = jnp.sum(G * (AG - Q @ (Q.T @ AG)), axis=0)
    rest = jnp.mean(samples)
    return TraceEstimate(top + rest, jnp.std(samples, ddof=1) / jnp.sqrt(k), 3 * k)
