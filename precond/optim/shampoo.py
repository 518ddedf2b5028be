"""Shampoo as an optax transformation: preconditioned SGD on ``precond.preconditioners.shampoo``.

    P_b = s_b · L_b^{-1/4} G_b R_b^{-1/4}  per block b of each leaf,   w ← w − α P

(with heavy ball v ← βv + P, w ← w − αv, β = ``momentum``, 0.9 by default).  See
:mod:`precond.preconditioners.shampoo` for the factors, the blocking and the grafting scale s_b.
"""

from __future__ import annotations

import optax

from precond import preconditioners as pc

from ._objective import structural_int
from .preconditioned_sgd import preconditioned_sgd

__all__ = ["shampoo"]


def shampoo(learning_rate: optax.ScalarOrSchedule, *, update_every: int | None = None,
            epsilon: float = 1e-6, block_size: int | None = None,
            grafting: str | None = "adam", beta2: float | None = None,
            graft_b2: float = 0.999, graft_eps: float = 1e-8, momentum: float | None = 0.9,
            ) -> optax.GradientTransformationExtraArgs:
    """Shampoo with learning-rate grafting: w ← w − α M⁻¹g, M⁻¹ the blocked Kronecker inverse
    roots (``precond.preconditioners.shampoo``).

    It needs only the gradient (no objective: ``loss_fn``/``model_fn`` are not used), so
    ``update(grads, state, params)`` suffices; ``batch=`` is accepted and ignored.  Under
    ``optax.inject_hyperparams`` name ``update_every`` and ``block_size`` in ``static_args``
    when you pass them.

    Args:
      learning_rate: α, a float or an optax schedule.
      update_every: k, the inverse roots are recomputed every k steps (default 10); the
        factors are accumulated every step.
      epsilon: ε > 0 in L + εI, R + εI.
      block_size: the largest factor side (default 128); longer dimensions are split.
      grafting: "adam" (default), "sgd" or None: whose per-block step length is used.
      beta2: None sums the factors (Shampoo); β₂ ∈ [0, 1) averages them exponentially.
      graft_b2, graft_eps: Adam's β₂ and ε for ``grafting="adam"``.
      momentum: heavy-ball β on the directions (default 0.9: Shampoo is run with momentum,
        as Adam is with its β₁ — without it, a grafted step is Adam's without momentum;
        None: none).

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from precond.optim import shampoo
      >>> X = jax.random.normal(jax.random.key(0), (16, 3))
      >>> loss = lambda p: 0.5 * jnp.mean((X @ p["w"] - X) ** 2)  # minimum at w = I
      >>> params = {"w": jnp.zeros((3, 3))}
      >>> opt = shampoo(0.2, grafting="sgd")
      >>> state = opt.init(params)
      >>> for _ in range(30):
      ...     u, state = opt.update(jax.grad(loss)(params), state, params)
      ...     params = optax.apply_updates(params, u)
      >>> bool(loss(params) < 1e-3 * loss({"w": jnp.zeros((3, 3))}))
      True

    References:
      Gupta, Koren, Singer 2018; Anil et al., arXiv 2002.09018 (see the preconditioner).
    """
    update_every = structural_int(update_every, "update_every", 10)
    block_size = structural_int(block_size, "block_size", 128)
    return preconditioned_sgd(learning_rate, pc.shampoo(
        update_every=update_every, epsilon=epsilon, block_size=block_size, grafting=grafting,
        beta2=beta2, graft_b2=graft_b2, graft_eps=graft_eps), momentum=momentum)
