"""Empirical basin stability: how often SGD stays in an M-ball around the minimizer (the
measurable side of seed 001's Theorems 3.5/3.6)."""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import scipy.stats

from ._operators import as_square_operator

__all__ = ["BasinStability", "basin_stability", "m_distances"]

CI_METHODS = {"wilson": "wilson", "clopper-pearson": "exact", "exact": "exact"}


class BasinStability(NamedTuple):
    """``fraction`` = stayed/runs, with a two-sided ``confidence`` interval [low, high]."""

    fraction: float
    low: float
    high: float
    stayed: int
    runs: int
    horizon: int
    confidence: float


def m_distances(iterates, w_star, M=None):
    """‖w_k − w*‖_M = √((w_k − w*)ᵀ M (w_k − w*)) for iterates (runs, T, n) → (runs, T).

    ``M`` (the metric, an operator or matrix applying M — not M⁻¹); None means Euclidean.
    """
    W = jnp.asarray(iterates)
    if W.ndim != 3:
        raise ValueError(f"iterates must be (runs, T, n), got shape {tuple(W.shape)}")
    n = W.shape[-1]
    w_star = jnp.asarray(w_star)
    if w_star.shape != (n,):
        raise ValueError(f"w_star has shape {tuple(w_star.shape)}; expected ({n},)")
    D = W - w_star
    if M is None:
        sq = jnp.sum(D * D, axis=-1)
    else:
        op = as_square_operator(M, "M", n, W.dtype)
        MD = op.matmat(D.reshape(-1, n).T).T.reshape(D.shape)
        sq = jnp.sum(D * MD, axis=-1)
        if bool(jnp.any(sq < 0)):
            raise ValueError("M is not positive semi-definite: (w − w*)ᵀM(w − w*) < 0")
    return jnp.sqrt(sq)


def basin_stability(distances, radius: float, *, horizon: int | None = None,
                    confidence: float = 0.95, method: str = "wilson") -> BasinStability:
    """Fraction of runs whose distance (‖w_k − w*‖_M, shape (runs, T)) stays < ``radius`` for
    every k < ``horizon`` (default T), with a Wilson or Clopper–Pearson (``"clopper-pearson"``)
    interval from ``scipy.stats.binomtest``.  A NaN/inf distance counts as leaving the basin."""
    d = np.asarray(distances, dtype=float)
    if d.ndim != 2 or d.shape[0] < 1 or d.shape[1] < 1:
        raise ValueError(f"distances must be (runs, T) with runs, T ≥ 1, got shape {d.shape}")
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a finite number > 0, got {radius}")
    if method not in CI_METHODS:
        raise ValueError(f"method must be one of {sorted(CI_METHODS)}, got {method!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    T = d.shape[1] if horizon is None else int(horizon)
    if not 1 <= T <= d.shape[1]:
        raise ValueError(f"horizon must be in [1, {d.shape[1]}], got {horizon}")
    inside = np.where(np.isfinite(d[:, :T]), d[:, :T], np.inf) < radius
    stayed = int(np.sum(np.all(inside, axis=1)))
    runs = d.shape[0]
    ci = scipy.stats.binomtest(stayed, runs).proportion_ci(confidence, CI_METHODS[method])
    return BasinStability(stayed / runs, float(ci.low), float(ci.high), stayed, runs, T,
                          float(confidence))
