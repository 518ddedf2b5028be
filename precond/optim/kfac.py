"""K-FAC as an optax transformation: preconditioned SGD on ``precond.preconditioners.kfac``."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from precond import preconditioners as pc
from precond.validation import check_fraction, check_key, check_positive

from ._objective import structural_int
from .preconditioned_sgd import scale_by_preconditioner

__all__ = ["kfac"]


def kfac(learning_rate: optax.ScalarOrSchedule, model_fn: Callable, output_loss, *,
         key: jax.Array | None = None, damping: float = 1e-3, update_every: int | None = None,
         decay: float = 0.9, fisher: str = "sampled", max_factor_dim: int | None = None,
         inverse: str = "cholesky", norm_constraint: float | None = 1e-2,
         momentum: float | None = None) -> optax.GradientTransformationExtraArgs:
    """K-FAC: w ← w − α M⁻¹g with M = (A + π√λI) ⊗ (G + √λ/π I) per dense layer and a damped
    diagonal elsewhere (``precond.preconditioners.kfac``); the batch is ``(inputs, targets)``.

    The layers are found in ``model_fn`` itself (flax, equinox, plain pytrees; see
    ``precond.curvature.find_dense_layers``).  Between refreshes (every ``update_every`` steps)
    a step costs one gradient and two small matrix products per layer.

    Args:
      learning_rate: α (M⁻¹g has the natural-gradient scale: rates near 1e-2 … 1).
      model_fn: ``model_fn(params, inputs) -> outputs``.
      output_loss: ℓ(outputs, targets), a name ("mse", "softmax_cross_entropy", …) or a
        ``precond.curvature.OutputLoss``.
      key: the ``jax.random`` key the sampled labels are drawn from (required for
        ``fisher="sampled"``).
      damping: λ > 0.
      update_every: k, the refresh interval in steps (default 10).
      decay: the factors' moving-average decay per refresh.
      fisher: "sampled" (sampled Fisher, one backward pass) or "ggn" (exact Gauss–Newton G).
      max_factor_dim: kernels with a larger dimension use the diagonal fallback (default 4096).
      inverse: "cholesky" or "eigh", how the damped factors are inverted at a refresh.
      norm_constraint: c > 0: the direction d = M⁻¹g is scaled by min(1, √(c / gᵀd)), so its
        squared M-norm dᵀMd is at most c (KL clipping: the model's predictive distribution
        moves by at most ≈ α²c/2 per step; independent of α, so the update stays linear in
        α).  The default keeps the first steps on real networks, where the damped Fisher is far
        smaller than λ in most directions, from blowing up; None: no constraint.
      momentum: heavy-ball β on the directions (None: none).

    References:
      Martens and Grosse, "Optimizing neural networks with Kronecker-factored approximate
      curvature", ICML 2015.
    """
    update_every = structural_int(update_every, "update_every", 10)
    max_factor_dim = structural_int(max_factor_dim, "max_factor_dim", 4096)
    if fisher == "sampled" or key is not None:
        key = check_key(key)
    direction = scale_by_preconditioner(pc.kfac(
        model_fn, output_loss, damping=damping, update_every=update_every, decay=decay,
        fisher=fisher, max_factor_dim=max_factor_dim, inverse=inverse), key=key)
    parts = [direction if norm_constraint is None else
             _norm_constrained(direction, check_positive(norm_constraint, "norm_constraint"))]
    if momentum is not None:
        parts.append(optax.trace(decay=check_fraction(momentum, "momentum")))
    parts.append(optax.scale_by_learning_rate(learning_rate))
    return optax.chain(*parts)


def _norm_constrained(direction: optax.GradientTransformationExtraArgs, c,
                      ) -> optax.GradientTransformationExtraArgs:
    """d = M⁻¹g ↦ min(1, √(c / gᵀd))·d (``norm_constraint`` of :func:`kfac`)."""

    def update_fn(updates, state, params=None, **extra):
        d, state = direction.update(updates, state, params, **extra)
        q = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(d), jax.tree.leaves(updates),
                                                strict=True))
        nu = jnp.minimum(1.0, jnp.sqrt(c / jnp.maximum(q, jnp.finfo(q.dtype).tiny)))
        return jax.tree.map(lambda x: (nu * x).astype(x.dtype), d), state

    return optax.GradientTransformationExtraArgs(direction.init, update_fn)
