"""Nyström preconditioner M = Â + ρI from a rank-r sketch of the curvature (SketchySGD style).

Every ``update_every`` steps a randomized Nyström approximation Â = UΛ̂Uᵀ of the curvature C
(Hessian of ``loss_fn`` or GGN of ``model_fn`` with ``output_loss``) on the current batch is
formed from r curvature-vector products (``precond.linalg.nystrom``).  Between refreshes the
sketch is reused.  M⁻¹ = (Â + ρI)⁻¹ = U(Λ̂ + ρI)⁻¹Uᵀ + ρ⁻¹(I − UUᵀ) (Woodbury, O(nr)), so with
learning rate 1 the step is a regularized Newton step on the sketched curvature.  ρ is
``damping`` (> 0: M must be invertible off span(U)), or, with ``damping=None``, the sketch's
smallest retained eigenvalue λ̂_r at each refresh (SketchySGD's choice), floored at 10⁻⁴λ̂₁ so
that κ(M) ≤ 10⁴ even when the sketch is rank-deficient (λ̂_r = 0), and 1 before the first
sketch.  A fixed ρ is scale-dependent: off span(U) the step is g/ρ, and a curvature direction
that the next refresh's batch does not sketch meets M⁻¹H up to its curvature/ρ; with ρ = λ̂_r
that is about 1 at most (the directions left out are those below λ̂_r), whatever the loss's
scale.

References:
  Frangella, Rathore, Zhao, Udell, "SketchySGD: reliable stochastic optimization via
  randomized curvature estimates", SIAM J. Math. Data Sci. 2024; Frangella, Tropp, Udell,
  "Randomized Nyström preconditioning", SIMAX 2023.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from precond.linalg import LowRankPlusIdentity
from precond.linalg import nystrom as nystrom_approx
from precond.validation import check_int, check_key, check_positive, float_dtype

from ._curvature import check_curvature_args, curvature_operator
from .base import Preconditioner, lazily

__all__ = ["NystromState", "nystrom"]


class NystromState(NamedTuple):
    """Â = U diag(eigenvalues) Uᵀ, U (n, r); ``count`` updates seen."""

    U: jax.Array
    eigenvalues: jax.Array
    count: jax.Array


def nystrom(*, rank: int, loss_fn: Callable | None = None, model_fn: Callable | None = None,
            output_loss=None, damping: float | None = 1e-3, update_every: int = 10,
            ) -> Preconditioner:
    """The Nyström preconditioner M = Â + ρI (module docstring).

    ``update(state, params, batch=…, key=…)`` sketches the curvature on ``batch`` every
    ``update_every`` calls (``batch=None``: the Hessian of the full-batch ``loss_fn(params)``).

    Args:
      rank: r ≥ 1 (≤ the number of parameters n).
      loss_fn: Hessian curvature of ``loss_fn(params, batch)``; or
      model_fn, output_loss: GGN curvature of ``output_loss(model_fn(params, inputs), targets)``.
      damping: ρ > 0, or None: ρ = λ̂_r, the sketch's smallest retained eigenvalue (module
        docstring).
      update_every: refresh every this many ``update`` calls (≥ 1).
    """
    kind = check_curvature_args(loss_fn, model_fn, output_loss)
    rank = check_int(rank, "rank", low=1)
    if damping is not None:
        damping = check_positive(damping, "damping")
    update_every = check_int(update_every, "update_every", low=1)

    def init(params):
        n = ravel_pytree(params)[0].size
        if rank > n:
            raise ValueError(f"rank must be ≤ the number of parameters {n}, got {rank}")
        dt = float_dtype(params)
        return NystromState(jnp.zeros((n, rank), dt), jnp.zeros((rank,), dt),
                            jnp.zeros((), jnp.int32))

    def update(state, params, *, batch=None, key=None, grads=None):
        key = check_key(key)

        def refresh():
            op = curvature_operator(kind, loss_fn, model_fn, output_loss, params, batch)
            approx = nystrom_approx(op, rank, key)
            return approx.U.astype(state.U.dtype), approx.eigenvalues.astype(state.U.dtype)

        U, lam = lazily(state.count, update_every, refresh,
                        lambda: (state.U, state.eigenvalues))
        return NystromState(U, lam, state.count + 1)

    def rho(state):
        if damping is not None:
            return damping
        lam = state.eigenvalues  # descending; zeros before the first sketch
        return jnp.where(lam[0] > 0, jnp.maximum(lam[-1], 1e-4 * lam[0]), 1.0)

    def inverse_operator(state):
        return LowRankPlusIdentity(state.U, state.eigenvalues, rho(state)).inverse()

    def apply(state, g):
        flat, unravel = ravel_pytree(g)
        return unravel(inverse_operator(state).matvec(flat))

    return Preconditioner(init, update, apply, inverse_operator, name="nystrom")
