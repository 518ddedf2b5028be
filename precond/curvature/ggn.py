"""Generalized Gauss–Newton, Fisher and empirical Fisher operators (closure-free pytrees).

The GGN G = Jᵀ H_out J and the Fisher Jᵀ F_out J of ``model_fn`` share one operator class,
:class:`GaussNewtonOperator`, whose leaves are ``params`` and ``batch`` and whose static data
are ``model_fn`` and the output loss.  ``linearize()`` (called once by every precond.linalg
solver) linearizes the model once — outputs f and J· from ``jax.linearize``, Jᵀ· as
``jax.linear_transpose`` of the same linear map — and each product replays J, H_out, Jᵀ.
``ggn_linear_map`` is the same linearization with the gradient, for Newton-CG.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from jax.flatten_util import ravel_pytree
from jax.tree_util import Partial, register_pytree_node_class

from precond.linalg import LinearOperator, MatvecOperator, from_matvec
from precond.validation import check_callable, float_dtype

from .gradients import per_example_gradients
from .output_losses import OutputLoss, get_output_loss
from .pytree import flat_apply, flat_size

__all__ = ["ggn_vector_product", "GaussNewtonOperator", "ggn_operator", "fisher_operator",
           "empirical_fisher_operator", "ggn_linear_map"]


def split_batch(batch):
    """(inputs, targets) of a GGN/Fisher batch; ``TypeError`` for anything but a pair."""
    try:
        inputs, targets = batch
    except (TypeError, ValueError):
        raise TypeError("a GGN/Fisher batch must be a pair (inputs, targets)") from None
    return inputs, targets


def _factor(loss: OutputLoss, kind: str) -> Callable:
    """H_out (the loss Hessian) or F_out (the predictive distribution's Fisher) of ``loss``."""
    return loss.hessian_vector if kind == "ggn" else loss.fisher_factor


def _jt_h_j(model_fn, params, inputs, v, apply_h):
    f = lambda p: model_fn(p, inputs)  # noqa: E731
    outputs, Jv = jax.jvp(f, (params,), (v,))
    _, vjp = jax.vjp(f, params)
    return vjp(apply_h(outputs, Jv))[0]


def ggn_vector_product(model_fn: Callable, output_loss, params, batch, v):
    """G v = Jᵀ H_out J v, J = ∂ model_fn(params, inputs)/∂params, H_out = ∇²_f ℓ(f, targets).

    One ``jvp`` and one ``vjp``: the cost of about two gradients, and G ⪰ 0 whenever ℓ is
    convex in f (so CG on G + λI never meets negative curvature, unlike on the Hessian).

    Args:
      model_fn: ``model_fn(params, inputs) -> outputs f``.
      output_loss: a name ("mse", "softmax_cross_entropy", …), an OutputLoss or ``ℓ(f, y)``.
      params: the point, any pytree.
      batch: ``(inputs, targets)``.
      v: direction shaped like ``params``; so is the result.
    """
    loss = get_output_loss(output_loss)
    inputs, targets = split_batch(batch)
    return _jt_h_j(model_fn, params, inputs, v,
                   lambda f, u: loss.hessian_vector(f, targets, u))


def _replay(v, jvp, vjp, factor, params):
    return flat_apply(lambda u: vjp(factor(jvp(u)))[0], v, params)


def _linearize(model_fn: Callable, loss: OutputLoss, kind: str, params, batch):
    """(flat ∇loss, the linearized Jᵀ H_out J as an operator) from one linearization."""
    inputs, targets = split_batch(batch)
    f, jvp = jax.linearize(lambda p: model_fn(p, inputs), params)
    vjp = jax.linear_transpose(jvp, params)
    factor = Partial(_factor(loss, kind), f, targets)  # u ↦ H_out(f, y) u, a pytree
    g = ravel_pytree(vjp(jax.grad(loss.value)(f, targets))[0])[0]
    n = flat_size(params)
    op = MatvecOperator(_replay, (n, n), float_dtype(params), _replay,
                        (jvp, vjp, factor, params))
    return g, op


@register_pytree_node_class
class GaussNewtonOperator(LinearOperator):
    """Jᵀ H_out J (``kind="ggn"``) or Jᵀ F_out J (``kind="fisher"``) on flat (n,) vectors.

    Leaves: ``params``, ``batch`` = (inputs, targets); static: ``model_fn``, the OutputLoss,
    ``kind``, shape, dtype.  ``matvec`` is one jvp + one vjp; ``matmat`` and the solvers go
    through ``linearize()`` (module docstring).  Symmetric PSD for convex output losses.
    """

    def __init__(self, model_fn: Callable, loss: OutputLoss, params, batch, *,
                 kind: str = "ggn", shape=None, dtype=None):
        self.model_fn, self.loss, self.kind = model_fn, loss, kind
        self.params, self.batch = params, batch
        n = flat_size(params) if shape is None else shape[0]
        self.shape = (n, n)
        self.dtype = float_dtype(params) if dtype is None else dtype

    symmetric = True  # Jᵀ H_out J: symmetric-only solvers skip their probe

    def matvec(self, v):
        inputs, targets = self.batch
        factor = _factor(self.loss, self.kind)
        return flat_apply(
            lambda u: _jt_h_j(self.model_fn, self.params, inputs, u,
                              lambda f, w: factor(f, targets, w)), v, self.params)

    def matmat(self, V):
        return self.linearize().matmat(V)

    def linearize(self) -> MatvecOperator:
        return _linearize(self.model_fn, self.loss, self.kind, self.params, self.batch)[1]

    @property
    def T(self):
        return self

    def tree_flatten(self):
        return ((self.params, self.batch),
                (self.model_fn, self.loss, self.kind, self.shape, self.dtype))

    @classmethod
    def tree_unflatten(cls, aux, children):
        model_fn, loss, kind, shape, dtype = aux
        return cls(model_fn, loss, *children, kind=kind, shape=shape, dtype=dtype)


def ggn_operator(model_fn: Callable, output_loss, params, batch) -> GaussNewtonOperator:
    """The GGN Jᵀ H_out J as a flat PSD operator (n, n).

    Args:
      model_fn: ``model_fn(params, inputs) -> outputs f``.
      output_loss: ℓ(f, y): a name, an :class:`OutputLoss` or a callable.
      params: the point, any pytree; n = its number of entries.
      batch: ``(inputs, targets)``.
    """
    check_callable(model_fn, "model_fn", "model_fn(params, inputs)")
    loss = get_output_loss(output_loss)  # bad names/batches fail here, not at matvec
    split_batch(batch)
    return GaussNewtonOperator(model_fn, loss, params, batch, kind="ggn")


def fisher_operator(model_fn: Callable, output_loss, params, batch) -> GaussNewtonOperator:
    """The Fisher Jᵀ E_{y~p(·|f)}[∇_f log p ∇_f log pᵀ] J of the model's predictive distribution.

    For the negative log-likelihood losses here (mse ↔ Gaussian, softmax and sigmoid cross
    entropy) it equals the GGN (Martens 2020); computed from the distribution to check that.
    Arguments as :func:`ggn_operator`.
    """
    check_callable(model_fn, "model_fn", "model_fn(params, inputs)")
    loss = get_output_loss(output_loss)
    if loss.fisher_factor is None:
        raise ValueError(f"output loss {loss.name!r} has no predictive distribution; use "
                         "'mse', 'softmax_cross_entropy' or 'sigmoid_cross_entropy'")
    split_batch(batch)
    return GaussNewtonOperator(model_fn, loss, params, batch, kind="fisher")


def _gram_mean(v, G):
    return (G @ v) @ G / G.shape[0]  # (Gv)ᵀG: no transposed copy of G


def empirical_fisher_operator(loss_fn: Callable, params, batch) -> MatvecOperator:
    """F̂ = (1/N) Σ_i g_i g_iᵀ from the N per-example gradients g_i of ``loss_fn`` (a flat PSD
    operator).  Forms the (N, n) gradient matrix G once (a leaf of the operator); each product
    is then two mat-vecs.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, called on one-example batches.
      params: the point, any pytree.
      batch: N examples on the leading axis of every leaf.
    """
    G = per_example_gradients(loss_fn, params, batch)
    return from_matvec(_gram_mean, G, size=G.shape[1], dtype=float_dtype(G),
                       rmatvec=_gram_mean)


def ggn_linear_map(model_fn: Callable, output_loss, params, batch
                   ) -> tuple[jax.Array, Callable]:
    """(g, v ↦ Gv) on flat vectors from one linearization of the model.

    The model is linearized once (f, J·) and its transpose Jᵀ· is ``jax.linear_transpose`` of
    the same linear map (no second forward pass); g = Jᵀ∇_f ℓ(f, targets).

    Args:
      model_fn: ``model_fn(params, inputs) -> outputs f``.
      output_loss: ℓ(f, y): a name, an :class:`OutputLoss` or a callable.
      params: the point, any pytree.
      batch: ``(inputs, targets)``.

    Returns:
      (g (n,), matvec: (n,) → (n,)).
    """
    g, op = _linearize(model_fn, get_output_loss(output_loss), "ggn", params, batch)
    return g, op.matvec
