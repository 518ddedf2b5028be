"""Separable GLM losses ℓ(t) = Σᵢ wᵢ φ(tᵢ) of the predictions t = Xw, with their derivatives.

Each loss is a NamedTuple (a pytree) holding the targets and optional per-sample weights w
(``None`` = all ones; a zero weight removes a row, which is how padded rows are ignored):

* ``terms(t)`` — wᵢφ(tᵢ) per sample (m,); ``value(t)`` = their sum ℓ(t);
* ``grad(t)`` — ∇ℓ(t) = wᵢφ′(tᵢ) (m,), so ∇_x ℓ(Ax) = Aᵀ grad(Ax);
* ``hess_diag(t)`` — the diagonal of ∇²ℓ(t), wᵢφ″(tᵢ) (m,), so ∇²_x ℓ(Ax) = Aᵀ diag(·) A
  (:class:`precond.glm.GramOperator`);
* ``take(idx)`` — the loss of the rows ``idx`` (a minibatch).

``quadratic`` (a class attribute) says whether φ″ is constant, so a solver may sketch AᵀH_ℓA
once instead of refreshing it.

Example:
  >>> import jax.numpy as jnp
  >>> from precond.glm import LogisticLoss
  >>> loss = LogisticLoss(jnp.array([1.0, -1.0]))
  >>> round(float(loss.value(jnp.zeros(2))), 4)        # 2 log 2
  1.3863
  >>> loss.grad(jnp.zeros(2)).tolist(), loss.hess_diag(jnp.zeros(2)).tolist()
  ([-0.5, 0.5], [0.25, 0.25])
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["SquaredLoss", "LogisticLoss"]


def _weighted(weights, v):
    return v if weights is None else weights * v


def _take(loss, idx):
    return jax.tree.map(lambda a: a[idx], loss)


class SquaredLoss(NamedTuple):
    """ℓ(t) = ½Σᵢ wᵢ(tᵢ − bᵢ)²: φ(t) = ½(t − b)², φ′ = t − b, φ″ = 1.

    Args:
      target: b (m,).
      weights: w (m,), or None for all ones.
    """

    target: jax.Array
    weights: jax.Array | None = None
    quadratic = True

    def terms(self, t):
        return _weighted(self.weights, 0.5 * (t - self.target) ** 2)

    def value(self, t):
        return jnp.sum(self.terms(t))

    def grad(self, t):
        return _weighted(self.weights, t - self.target)

    def hess_diag(self, t):
        return jnp.ones_like(t) if self.weights is None else self.weights

    def take(self, idx) -> SquaredLoss:
        return _take(self, idx)


class LogisticLoss(NamedTuple):
    """ℓ(t) = Σᵢ wᵢ log(1 + exp(−yᵢtᵢ)) with labels y ∈ {−1, +1}: φ′ = −yσ(−yt),
    φ″ = σ(t)(1 − σ(t)), each computed without overflow.

    Args:
      labels: y (m,), entries ±1.
      weights: w (m,) (e.g. scikit-learn's C times the sample weights), or None for all ones.
    """

    labels: jax.Array
    weights: jax.Array | None = None
    quadratic = False

    def terms(self, t):
        return _weighted(self.weights, jnp.logaddexp(0.0, -self.labels * t))

    def value(self, t):
        return jnp.sum(self.terms(t))

    def grad(self, t):
        return _weighted(self.weights, -self.labels * jax.nn.sigmoid(-self.labels * t))

    def hess_diag(self, t):
        s = jax.nn.sigmoid(t)
        return _weighted(self.weights, s) * (1.0 - s)

    def take(self, idx) -> LogisticLoss:
        return _take(self, idx)
