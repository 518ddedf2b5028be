"""Penalties r(z) with their proximal operators prox_{t·r}(v) = argmin_z r(z) + ‖z − v‖²/(2t).

Each penalty is a small NamedTuple (so a pytree that passes through ``jax.jit``) with
``value(z)`` and ``prox(v, t)``.  ``weights`` (d,) scale the penalty per coordinate: a zero
weight leaves that coordinate free (an unpenalized intercept).  Indicators of convex sets (box,
box ∩ hyperplane) are penalties whose prox is the projection.

Example:
  >>> import jax.numpy as jnp
  >>> from precond.glm import ElasticNetPenalty, soft_threshold
  >>> soft_threshold(jnp.array([-2.0, 0.5, 3.0]), 1.0).tolist()
  [-1.0, 0.0, 2.0]
  >>> r = ElasticNetPenalty(l1=1.0, l2=1.0, weights=jnp.ones(3))
  >>> r.prox(jnp.array([-2.0, 0.5, 3.0]), 1.0).tolist()     # soft_threshold / (1 + tλ₂)
  [-0.5, 0.0, 1.0]

References:
  Parikh and Boyd, "Proximal algorithms", Foundations and Trends in Optimization, 2014.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "soft_threshold",
    "L1",
    "ElasticNetPenalty",
    "Box",
    "BoxHyperplane",
    "project_box_hyperplane",
]


def soft_threshold(v: jax.Array, t) -> jax.Array:
    """prox of t‖·‖₁: sign(v)·max(|v| − t, 0).

    Args:
      v: (d,) point.
      t: threshold, a scalar or (d,).
    """
    return jnp.sign(v) * jnp.maximum(jnp.abs(v) - t, 0.0)


class L1(NamedTuple):
    """r(z) = λ Σᵢ wᵢ|zᵢ| (λ is ``lam``, w is ``weights``)."""

    lam: jax.Array
    weights: jax.Array

    def value(self, z):
        return self.lam * jnp.sum(self.weights * jnp.abs(z))

    def prox(self, v, t):
        return soft_threshold(v, t * self.lam * self.weights)


class ElasticNetPenalty(NamedTuple):
    """r(z) = Σᵢ wᵢ(λ₁|zᵢ| + λ₂zᵢ²/2); prox = soft_threshold(v, tλ₁w)/(1 + tλ₂w)."""

    l1: jax.Array
    l2: jax.Array
    weights: jax.Array

    def value(self, z):
        return jnp.sum(self.weights * (self.l1 * jnp.abs(z) + 0.5 * self.l2 * z**2))

    def prox(self, v, t):
        w = self.weights
        return soft_threshold(v, t * self.l1 * w) / (1.0 + t * self.l2 * w)


class Box(NamedTuple):
    """Indicator of lower ≤ z ≤ upper (nonnegativity: lower = 0, upper = inf); prox = clip."""

    lower: jax.Array
    upper: jax.Array

    def value(self, z):
        return jnp.zeros((), z.dtype)  # evaluated at feasible points (the prox output)

    def prox(self, v, t):
        return jnp.clip(v, self.lower, self.upper)


def project_box_hyperplane(v, lower, upper, a, *, iterations: int = 100):
    """Euclidean projection of v onto {lower ≤ z ≤ upper, aᵀz = 0}.

    The projection is z(θ) = clip(v − θa, lower, upper) for the θ with aᵀz(θ) = 0; aᵀz(θ) is
    non-increasing in θ, so θ is found by bisection (``iterations`` halvings, enough for float64)
    on a bracket that makes every coordinate hit its bound.  The set must be non-empty
    (for the SVM dual, 0 ∈ set).

    Args:
      v: (n,) point to project.
      lower, upper: (n,) bounds (±inf allowed), lower ≤ upper.
      a: (n,) hyperplane normal (the SVM dual's labels y).
      iterations: bisection halvings of the bracket for θ.

    Returns:
      (z, θ): the projection (n,) and the multiplier θ.
    """
    def g(theta):
        return jnp.vdot(a, jnp.clip(v - theta * a, lower, upper))

    amin = jnp.min(jnp.where(a != 0, jnp.abs(a), jnp.inf))
    span = jnp.max(jnp.abs(v)) + jnp.max(jnp.abs(jnp.where(jnp.isfinite(lower), lower, 0)))
    span = span + jnp.max(jnp.abs(jnp.where(jnp.isfinite(upper), upper, 0)))
    radius = (span + 1.0) / amin

    def body(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        pos = g(mid) > 0  # root lies above mid
        return jnp.where(pos, mid, lo), jnp.where(pos, hi, mid)

    lo, hi = lax.fori_loop(0, iterations, body, (-radius, radius))
    theta = 0.5 * (lo + hi)
    return jnp.clip(v - theta * a, lower, upper), theta


class BoxHyperplane(NamedTuple):
    """Indicator of {lower ≤ z ≤ upper, aᵀz = 0}: the SVM dual's feasible set with intercept."""

    lower: jax.Array
    upper: jax.Array
    a: jax.Array

    def value(self, z):
        return jnp.zeros((), z.dtype)

    def prox(self, v, t):
        return project_box_hyperplane(v, self.lower, self.upper, self.a)[0]
