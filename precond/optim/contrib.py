"""optax.contrib's Sophia and MUON under precond's calling convention (wrapped, not rewritten).

- :func:`sophia` is ``optax.contrib.sophia`` (Sophia-H: Hutchinson estimates of diag(H)) with the
  objective given at construction: ``update(grads, state, params, batch=…)`` hands optax the
  ``obj_fn`` = params ↦ loss_fn(params, batch) it needs.  Its preconditioner is diagonal,
  M = max(γ·ĥ, ε) with ĥ the EMA of the Hessian-diagonal estimates, applied to the momentum and
  then clipped elementwise to ±``clip_threshold``; :func:`sophia_inverse_operator` reads M⁻¹
  (before the clipping, which is not linear) from a Sophia state, and
  ``precond.preconditioners.sophia`` builds the same M at any point (for ``diagnose`` and the
  advisor).
- :func:`muon` is ``optax.contrib.muon``: momentum, then for each 2-D leaf the Newton–Schulz
  approximation of the polar factor UVᵀ of the momentum matrix M = UΣVᵀ (other leaves: Adam).
  This has **no fixed linear M⁻¹**: UVᵀ = (MMᵀ)^{-1/2}M depends on M itself.  What the
  diagnostics and the advisor can use instead is the map frozen at a gradient G,
  v ↦ (GGᵀ + εI)^{-1/4} V (GᵀG + εI)^{-1/4}, which equals UVᵀ at V = G as ε → 0: that is
  Shampoo's preconditioner with one step's factors, ``precond.preconditioners.shampoo(
  beta2=0.0, update_every=1, grafting=None)`` updated with G (exact polar factor instead of
  Newton–Schulz's approximation; 1-D leaves one-sided instead of Adam's diagonal).

References:
  Liu, Li, Hall, Liang, Ma, "Sophia: a scalable stochastic second-order optimizer for language
  model pre-training", 2023; Jordan et al., "Muon: an optimizer for hidden layers in neural
  networks", 2024; Bernstein and Newhouse, "Old optimizer, new norm", 2024.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from precond.curvature import bind_batch
from precond.linalg import DiagonalOperator
from precond.validation import check_key, check_positive

from ._objective import step_objective, structural_int

__all__ = ["sophia", "muon", "sophia_inverse_operator"]


def sophia(learning_rate: optax.ScalarOrSchedule, loss_fn: Callable | None = None, *,
           key: jax.Array, b1: float = 0.965, b2: float = 0.99, eps: float = 1e-8,
           weight_decay: float = 1e-4, gamma: float = 0.01, clip_threshold: float | None = 1.0,
           update_interval: int | None = None) -> optax.GradientTransformationExtraArgs:
    """Sophia-H (``optax.contrib.sophia``) with the objective at construction.

        m ← β₁m + (1 − β₁)g,  ĥ ← β₂ĥ + (1 − β₂)·z⊙Hz every k steps (z Rademacher),
        w ← w − α (clip(m̂ / max(γĥ, ε), ±ρ) + λw)

    Args:
      learning_rate: α.
      loss_fn: ``loss_fn(params, batch)`` (``loss_fn(params)`` for ``batch=None``), whose
        Hessian diagonal is estimated; without it ``update`` needs ``obj_fn=`` (params ↦ f),
        as optax's Sophia takes it.
      key: the ``jax.random`` key of the Hutchinson probes z (required: precond draws no
        hidden randomness; optax would default to key 0).
      b1, b2: β₁, β₂ (optax's defaults).
      eps: ε, the floor of γĥ.
      weight_decay: λ.
      gamma: γ.
      clip_threshold: ρ (None: no clipping).
      update_interval: k, steps between Hessian-diagonal estimates (default 10).
    """
    update_interval = structural_int(update_interval, "update_interval", 10)
    inner = optax.contrib.sophia(
        learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, gamma=gamma,
        clip_threshold=clip_threshold, update_interval=update_interval,
        hessian_diagonal_fn=optax.contrib.hutchinson_estimator_diag_hessian(
            random_seed=check_key(key)))

    def update_fn(updates, state, params=None, *, batch=None, obj_fn=None, value_fn=None,
                  **extra):
        if params is None:
            raise ValueError("sophia needs params: update(grads, state, params, batch=…)")
        fn, batch = step_objective(loss_fn, obj_fn if obj_fn is not None else value_fn,
                                   batch, "sophia")
        return inner.update(updates, state, params, obj_fn=bind_batch(fn, batch))

    return optax.GradientTransformationExtraArgs(inner.init, update_fn)


def sophia_inverse_operator(state, *, gamma: float = 0.01, eps: float = 1e-8,
                            ) -> DiagonalOperator:
    """M⁻¹ = diag(1 / max(γĥ, ε)) of a Sophia state (flat, ``ravel_pytree`` order): the
    diagonal preconditioner Sophia applies to its momentum, before clipping.

    Args:
      state: a state of :func:`sophia` (or of ``optax.contrib.sophia``), also nested in
        ``optax.chain`` or ``optax.inject_hyperparams``.
      gamma, eps: γ and ε as given to :func:`sophia`.
    """
    gamma = check_positive(gamma, "gamma")
    eps = check_positive(eps, "eps")
    found = [s for s in jax.tree.leaves(
        state, is_leaf=lambda x: isinstance(x, optax.contrib.SophiaState))
        if isinstance(s, optax.contrib.SophiaState)]
    if len(found) != 1:
        raise ValueError(f"state must hold one Sophia state, found {len(found)}")
    h = ravel_pytree(found[0].nu)[0]
    return DiagonalOperator(1.0 / jnp.maximum(gamma * h, eps))


def muon(learning_rate: optax.ScalarOrSchedule, *, beta: float = 0.95, eps: float = 1e-8,
         ns_steps: int | None = None, nesterov: bool = True, weight_decay: float = 0.0,
         adam_b1: float = 0.9, adam_b2: float = 0.999) -> optax.GradientTransformationExtraArgs:
    """MUON (``optax.contrib.muon``): orthogonalized momentum on 2-D leaves, Adam elsewhere.

    No linear M⁻¹ exists (the update is the polar factor of the momentum, a nonlinear map); see
    the module docstring for the frozen Shampoo form the diagnostics can use.  Needs only the
    gradient; ``batch=`` is accepted and ignored.

    Args:
      learning_rate: α (also Adam's rate on the non-matrix leaves).
      beta: the momentum decay.
      eps: ε of the Newton–Schulz normalization.
      ns_steps: Newton–Schulz iterations (default 5).
      nesterov: Nesterov momentum.
      weight_decay: decoupled weight decay on the matrix leaves.
      adam_b1, adam_b2: Adam's β₁, β₂ on the other leaves.
    """
    ns_steps = structural_int(ns_steps, "ns_steps", 5)
    return optax.with_extra_args_support(optax.contrib.muon(
        learning_rate, ns_steps=ns_steps, beta=beta, eps=eps, nesterov=nesterov,
        weight_decay=weight_decay, adam_b1=adam_b1, adam_b2=adam_b2))
