"""Generalized Gauss–Newton, Fisher and empirical Fisher operators."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from precond.linalg import MatvecOperator

from .gradients import per_example_gradients
from .output_losses import get_output_loss
from .pytree import flat_operator

__all__ = ["ggn_vector_product", "ggn_operator", "fisher_operator", "empirical_fisher_operator"]


def _split(batch):
    try:
        inputs, targets = batch
    except (TypeError, ValueError):
        raise TypeError("a GGN/Fisher batch must be a pair (inputs, targets)") from None
    return inputs, targets


def _jt_h_j(model_fn, params, inputs, v, apply_h):
    f = lambda p: model_fn(p, inputs)  # noqa: E731
    outputs, Jv = jax.jvp(f, (params,), (v,))
    _, vjp = jax.vjp(f, params)
    return vjp(apply_h(outputs, Jv))[0]


def ggn_vector_product(model_fn: Callable, output_loss, params, batch, v):
    """G v = Jᵀ H_out J v, J = ∂ model_fn(params, inputs)/∂params, H_out = ∇²_f ℓ(f, targets).

    One ``jvp`` and one ``vjp``: the cost of about two gradients, and G ⪰ 0 whenever ℓ is
    convex in f (so CG on G + λI never meets negative curvature, unlike on the Hessian).
    """
    loss = get_output_loss(output_loss)
    inputs, targets = _split(batch)
    return _jt_h_j(model_fn, params, inputs, v,
                   lambda f, u: loss.hessian_vector(f, targets, u))


def ggn_operator(model_fn: Callable, output_loss, params, batch) -> MatvecOperator:
    """The GGN Jᵀ H_out J as a flat PSD operator (n, n)."""
    output_loss = get_output_loss(output_loss)  # bad names/batches fail here, not at matvec
    _split(batch)
    return flat_operator(lambda v: ggn_vector_product(model_fn, output_loss, params, batch, v),
                         params)


def fisher_operator(model_fn: Callable, output_loss, params, batch) -> MatvecOperator:
    """The Fisher Jᵀ E_{y~p(·|f)}[∇_f log p ∇_f log pᵀ] J of the model's predictive distribution.

    For the negative log-likelihood losses here (mse ↔ Gaussian, softmax and sigmoid cross
    entropy) it equals the GGN (Martens 2020); computed from the distribution to check that.
    """
    loss = get_output_loss(output_loss)
    if loss.fisher_factor is None:
        raise ValueError(f"output loss {loss.name!r} has no predictive distribution; use "
                         "'mse', 'softmax_cross_entropy' or 'sigmoid_cross_entropy'")
    inputs, targets = _split(batch)
    return flat_operator(
        lambda v: _jt_h_j(model_fn, params, inputs, v,
                          lambda f, u: loss.fisher_factor(f, targets, u)), params)


def empirical_fisher_operator(loss_fn: Callable, params, batch) -> MatvecOperator:
    """F̂ = (1/N) Σ_i g_i g_iᵀ from the N per-example gradients g_i of ``loss_fn`` (a flat PSD
    operator).  Forms the (N, n) gradient matrix once; each matvec is then two mat-vecs."""
    G = per_example_gradients(loss_fn, params, batch)
    N, n = G.shape
    mv = lambda v: G.T @ (G @ v) / N  # noqa: E731
    return MatvecOperator(mv, (n, n), G.dtype if jnp.issubdtype(G.dtype, jnp.floating)
                          else jnp.result_type(float), rmatvec=mv)
