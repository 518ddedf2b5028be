"""Output losses ℓ(f, y) for the Gauss–Newton and Fisher operators, with closed-form Hessians.

Every loss averages over examples (axis 0) and sums over output dimensions, so the GGN of
``mean_squared_error`` is JᵀJ/N.  ``hessian_vector(f, y, u)`` applies ∇²_f ℓ to u (same shape
as f); ``fisher_factor(f, y, u)`` applies E_{y~p(·|f)}[∇_f log p ∇_f log pᵀ]/N, computed from
the predictive distribution (not from the Hessian) so the equality GGN = Fisher is a real check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["OutputLoss", "mean_squared_error", "softmax_cross_entropy", "sigmoid_cross_entropy",
           "get_output_loss"]


class OutputLoss(NamedTuple):
    """An output loss: ``value(f, y)``, ``hessian_vector(f, y, u)``, and ``fisher_factor`` (or
    None when the loss is not a negative log-likelihood precond knows)."""

    name: str
    value: Callable
    hessian_vector: Callable
    fisher_factor: Callable | None = None


def _n(f):
    return f.shape[0] if f.ndim > 0 else 1


def _mse_value(f, y):
    return 0.5 * jnp.sum((f - y) ** 2) / _n(f)


mean_squared_error = OutputLoss(
    "mse",
    _mse_value,
    lambda f, y, u: u / _n(f),
    # Gaussian N(f, I): E[(y − f)(y − f)ᵀ] = I.
    lambda f, y, u: u / _n(f),
)


def _one_hot_like(f, y):
    y = jnp.asarray(y)
    if y.ndim == f.ndim - 1:  # integer labels
        return jax.nn.one_hot(y, f.shape[-1], dtype=f.dtype)
    return y.astype(f.dtype)


def _softmax_ce_value(f, y):
    return -jnp.sum(_one_hot_like(f, y) * jax.nn.log_softmax(f, axis=-1)) / _n(f)


def _softmax_hv(f, y, u):
    p = jax.nn.softmax(f, axis=-1)
    return (p * u - p * jnp.sum(p * u, axis=-1, keepdims=True)) / _n(f)


def _softmax_fisher(f, y, u):
    # Σ_c p_c (p − e_c)(p − e_c)ᵀ u, summed over the classes c of the model's distribution.
    p = jax.nn.softmax(f, axis=-1)
    eye = jnp.eye(f.shape[-1], dtype=f.dtype)
    d = p[..., None, :] - eye  # (..., c, k): row c is p − e_c
    proj = jnp.sum(d * u[..., None, :], axis=-1)  # (..., c)
    return jnp.sum(p[..., :, None] * d * proj[..., :, None], axis=-2) / _n(f)


softmax_cross_entropy = OutputLoss("softmax_cross_entropy", _softmax_ce_value, _softmax_hv,
                                   _softmax_fisher)


def _sigmoid_ce_value(f, y):
    y = jnp.asarray(y, f.dtype)
    return jnp.sum(jnp.logaddexp(0.0, f) - y * f) / _n(f)


def _sigmoid_fisher(f, y, u):
    # Bernoulli(σ(f)): E[(y − σ)²] = σ(1 − σ)·1 + ... computed as Σ_y p(y)(y − σ)².
    s = jax.nn.sigmoid(f)
    second_moment = s * (1 - s) ** 2 + (1 - s) * s**2
    return second_moment * u / _n(f)


sigmoid_cross_entropy = OutputLoss(
    "sigmoid_cross_entropy",
    _sigmoid_ce_value,
    lambda f, y, u: jax.nn.sigmoid(f) * (1 - jax.nn.sigmoid(f)) * u / _n(f),
    _sigmoid_fisher,
)

@dataclass(frozen=True)
class _AutodiffHessianVector:
    """u ↦ ∇²_f ℓ(f, y) u by forward-over-reverse; equal for the same ℓ, so an operator built
    twice from one custom loss is the same static data (no recompile)."""

    loss: Callable

    def __call__(self, f, y, u):
        return jax.jvp(lambda g: jax.grad(self.loss)(g, y), (f,), (u,))[1]


_BY_NAME = {
    "mse": mean_squared_error,
    "mean_squared_error": mean_squared_error,
    "softmax_cross_entropy": softmax_cross_entropy,
    "cross_entropy": softmax_cross_entropy,
    "sigmoid_cross_entropy": sigmoid_cross_entropy,
}


def get_output_loss(loss) -> OutputLoss:
    """An :class:`OutputLoss` from a name, an OutputLoss, or any callable ``loss(f, y)``.

    For a plain callable the Hessian-vector product ∇²_f ℓ u comes from autodiff and there is
    no Fisher (it needs a likelihood).
    """
    if isinstance(loss, OutputLoss):
        return loss
    if isinstance(loss, str):
        try:
            return _BY_NAME[loss]
        except KeyError:
            raise ValueError(f"unknown output loss {loss!r}; choose from {sorted(_BY_NAME)} or "
                             "pass a callable loss(outputs, targets)") from None
    if callable(loss):
        return OutputLoss(getattr(loss, "__name__", "custom"), loss,
                          _AutodiffHessianVector(loss), None)
    raise TypeError(f"output_loss must be a name, OutputLoss or callable, got {type(loss)}")
