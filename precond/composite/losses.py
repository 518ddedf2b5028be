"""Smooth separable losses ℓ(t) of the predictions t = Ax: value, gradient, Hessian diagonal.

Each loss is a NamedTuple (a pytree).  ``quadratic`` (a class attribute) says whether the
Hessian is constant, so NysADMM sketches AᵀH_ℓA once instead of refreshing it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["SquaredLoss", "LogisticLoss"]


class SquaredLoss(NamedTuple):
    """ℓ(t) = ½Σᵢ wᵢ(tᵢ − bᵢ)² (b is ``target``, w is ``weights``); ∇ℓ = w(t − b); H_ℓ = diag(w).

    A zero weight removes a row (how padded rows are ignored)."""

    target: jax.Array
    weights: jax.Array
    quadratic = True

    def value(self, t):
        return 0.5 * jnp.sum(self.weights * (t - self.target) ** 2)

    def grad(self, t):
        return self.weights * (t - self.target)

    def hess_diag(self, t):
        return self.weights


class LogisticLoss(NamedTuple):
    """ℓ(t) = Σᵢ cᵢ log(1 + exp(−yᵢtᵢ)) with labels y ∈ {−1, +1} and weights c (e.g. C).

    ∇ℓ = −c·y·σ(−yt); H_ℓ = diag(c·σ(t)(1 − σ(t))), computed without overflow.
    """

    labels: jax.Array
    weights: jax.Array
    quadratic = False

    def value(self, t):
        return jnp.sum(self.weights * jnp.logaddexp(0.0, -self.labels * t))

    def grad(self, t):
        return -self.weights * self.labels * jax.nn.sigmoid(-self.labels * t)

    def hess_diag(self, t):
        s = jax.nn.sigmoid(t)
        return self.weights * s * (1.0 - s)
