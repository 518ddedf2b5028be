"""Stochastic trace estimation: Hutchinson and Hutch++."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from precond.validation import check_int, check_key, float_dtype

from ._checks import check_factorizable, check_square
from .operators import as_operator
from .status import Status, check_status

__all__ = ["TraceEstimate", "hutchinson_trace", "hutchpp_trace"]


class TraceEstimate(NamedTuple):
    """tr(A) ≈ ``value`` ± ``stderr`` (one standard error) from ``num_matvecs`` matvecs.

    ``status``: SUCCESS, or NONFINITE when the estimate is NaN/inf (an int array).
    """

    value: jax.Array
    stderr: jax.Array
    num_matvecs: int
    status: jax.Array

    def check(self) -> TraceEstimate:
        """Return self unless the estimate is not finite (then :class:`SolverError`)."""
        check_status(self.status, f"from {self.num_matvecs} matvecs")
        return self


def _status(value):
    return jnp.where(jnp.isfinite(value), Status.SUCCESS, Status.NONFINITE).astype(jnp.int32)


def hutchinson_trace(A, key: jax.Array, num_probes: int = 100) -> TraceEstimate:
    """Hutchinson's estimator tr(A) ≈ (1/m) Σ zᵢᵀAzᵢ with Rademacher zᵢ.

    The standard error is the sample standard deviation of zᵢᵀAzᵢ over √m.  One compiled
    program (``A.linearize()`` once, then one ``matmat``).

    Args:
      A: square operator A, shape (n, n).
      key: jax.random key for the probes.
      num_probes: m ≥ 2.

    References:
      Hutchinson, "A stochastic estimator of the trace of the influence matrix for Laplacian
      smoothing splines", 1989.
    """
    A = as_operator(A)
    check_square(A)
    num_probes = check_int(num_probes, "num_probes", low=2)
    value, stderr = _hutchinson(A, check_key(key), num_probes=num_probes)
    return TraceEstimate(value, stderr, num_probes, _status(value))


@partial(jax.jit, static_argnames=("num_probes",))
def _hutchinson(A, key, *, num_probes):
    Z = jax.random.rademacher(key, (A.shape[0], num_probes), float_dtype(A.dtype))
    samples = jnp.sum(Z * A.linearize().matmat(Z), axis=0)
    return jnp.mean(samples), jnp.std(samples, ddof=1) / jnp.sqrt(num_probes)


def hutchpp_trace(A, key: jax.Array, num_matvecs: int = 99) -> TraceEstimate:
    """Hutch++ (Meyer, Musco, Musco, Woodruff 2021) for PSD A: exact trace on a sketched top
    subspace plus Hutchinson on the rest, error O(1/m) instead of O(1/√m).

    Uses m/3 matvecs to sketch Q = orth(AS), m/3 for tr(QᵀAQ) and m/3 Hutchinson probes of
    (I − QQᵀ)A(I − QQᵀ); the standard error is that of the Hutchinson part.  One compiled
    program (``A.linearize()`` once).

    Args:
      A: PSD operator A, shape (n, n).
      key: jax.random key for the sketch and the probes.
      num_matvecs: m ≥ 6 (used in thirds).
    """
    A = as_operator(A)
    check_square(A)
    check_factorizable(A, "hutchpp_trace")
    k = check_int(num_matvecs, "num_matvecs", low=6) // 3
    value, stderr = _hutchpp(A, check_key(key), k=k)
    return TraceEstimate(value, stderr, 3 * k, _status(value))


@partial(jax.jit, static_argnames=("k",))
def _hutchpp(A, key, *, k):
    n = A.shape[0]
    dtype = float_dtype(A.dtype)
    A = A.linearize()
    k1, k2 = jax.random.split(key)
    S = jax.random.rademacher(k1, (n, min(k, n)), dtype)
    Q, _ = jnp.linalg.qr(A.matmat(S))
    top = jnp.trace(Q.T @ A.matmat(Q))
    G = jax.random.rademacher(k2, (n, k), dtype)
    G = G - Q @ (Q.T @ G)
    AG = A.matmat(G)
    samples = jnp.sum(G * (AG - Q @ (Q.T @ AG)), axis=0)
    return top + jnp.mean(samples), jnp.std(samples, ddof=1) / jnp.sqrt(k)
