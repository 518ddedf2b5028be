"""Spectral (deflation) preconditioner M = I + U(D − I)Uᵀ from Lanczos eigenvectors.

U (n, k) holds k eigenvectors of the curvature C (Hessian or GGN) from ``num_steps`` Lanczos
steps (top or bottom Ritz pairs (θ_i, u_i)); D = diag(d_i) with d_i = |θ_i| / t_i so that the
preconditioned eigenvalue in direction u_i is moved to the target t_i, and every other direction
is left alone (M = I there).  Targets (``target``):

- ``which="top"``, default t_i = |θ_{k+1}|: deflate the top k down to the next eigenvalue
  (L̂ and K fall, ĉ stays);
- ``which="bottom"``, default t_i = 1: d_i = |θ_i| (ĉ rises, K grows);
- or any positive scalar or (k,) array t.

d_i is floored at ``eps`` relative to max|θ| so M stays SPD; |θ| keeps M SPD on an indefinite
Hessian.  M⁻¹ = I + U(D⁻¹ − I)Uᵀ (``LowRankPlusIdentity.inverse``), O(nk) per solve.  Refreshed
every ``update_every`` steps.

References:
  Seed 001 (Design criteria for SGD preconditioners), §4.1; Lanczos 1950.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from precond.linalg import LowRankPlusIdentity, lanczos
from precond.validation import check_int, check_key, float_dtype

from ._curvature import check_curvature_args, curvature_operator
from .base import Preconditioner, lazily

__all__ = ["SpectralState", "spectral", "spectral_factors"]


class SpectralState(NamedTuple):
    """M = I + U diag(d − 1) Uᵀ: ``U`` (n, k), ``d`` (k,), ``ritz`` (k,) the Ritz values used."""

    U: jax.Array
    d: jax.Array
    ritz: jax.Array
    count: jax.Array


def spectral_factors(op, rank: int, num_steps: int, key, which: str, target, eps: float):
    """(U, d, θ) of the spectral preconditioner of a flat symmetric operator ``op``."""
    res = lanczos(op, num_steps, key)
    theta, S = jnp.linalg.eigh(res.tridiagonal())  # ascending
    V = res.Q @ S
    if which == "top":
        idx = jnp.arange(num_steps - 1, num_steps - 1 - rank, -1)
        nxt = jnp.abs(theta[num_steps - 1 - rank]) if rank < num_steps else jnp.abs(theta[0])
        default = nxt
    else:
        idx = jnp.arange(rank)
        default = jnp.ones((), theta.dtype)
    th = theta[idx]
    t = default if target is None else jnp.asarray(target, theta.dtype)
    floor = eps * jnp.max(jnp.abs(theta))
    d = jnp.maximum(jnp.abs(th) / t, floor / t)
    d = jnp.maximum(d, jnp.finfo(theta.dtype).tiny)
    return V[:, idx], d, th


def spectral(*, rank: int, loss_fn: Callable | None = None, model_fn: Callable | None = None,
             output_loss=None, which: str = "top", target=None, num_steps: int | None = None,
             update_every: int = 10, eps: float = 1e-8) -> Preconditioner:
    """The spectral preconditioner M = I + U(D − I)Uᵀ (module docstring).

    Args:
      rank: k, the number of eigenvectors deflated (≥ 1).
      loss_fn / model_fn, output_loss: Hessian of ``loss_fn(params, batch)``, or GGN.
      which: "top" or "bottom" Ritz pairs.
      target: t (scalar or (k,)), or None for the defaults above.
      num_steps: Lanczos steps (default min(n, max(2k + 10, 20))): extreme Ritz pairs converge
        first, a few more steps than k resolve the k extreme ones.
      update_every: refresh every this many ``update`` calls (needs ``key``, and ``batch``
        unless ``loss_fn`` is a full-batch ``loss_fn(params)``).
      eps: floor of d_i relative to max|θ| (keeps M SPD).
    """
    kind = check_curvature_args(loss_fn, model_fn, output_loss)
    rank = check_int(rank, "rank", low=1)
    if which not in ("top", "bottom"):
        raise ValueError(f"which must be 'top' or 'bottom', got {which!r}")
    if target is not None and not np.all(np.asarray(target) > 0):
        raise ValueError("target values must be > 0")
    update_every = check_int(update_every, "update_every", low=1)

    def steps(n):
        s = min(n, max(2 * rank + 10, 20)) if num_steps is None else int(num_steps)
        if not rank <= s <= n:
            raise ValueError(f"need rank ≤ num_steps ≤ n = {n}, got rank={rank}, "
                             f"num_steps={s}")
        return s

    def init(params):
        n = ravel_pytree(params)[0].size
        steps(n)
        dt = float_dtype(params)
        return SpectralState(jnp.zeros((n, rank), dt), jnp.ones((rank,), dt),
                             jnp.zeros((rank,), dt), jnp.zeros((), jnp.int32))

    def update(state, params, *, batch=None, key=None, grads=None):
        key = check_key(key)

        def refresh():
            op = curvature_operator(kind, loss_fn, model_fn, output_loss, params, batch)
            U, d, th = spectral_factors(op, rank, steps(op.shape[0]), key, which, target, eps)
            dt = state.U.dtype
            return U.astype(dt), d.astype(dt), th.astype(dt)

        U, d, th = lazily(state.count, update_every, refresh,
                          lambda: (state.U, state.d, state.ritz))
        return SpectralState(U, d, th, state.count + 1)

    def inverse_operator(state):
        return LowRankPlusIdentity(state.U, state.d - 1.0).inverse()

    def apply(state, g):
        flat, unravel = ravel_pytree(g)
        return unravel(inverse_operator(state).matvec(flat))

    return Preconditioner(init, update, apply, inverse_operator, name="spectral")
