"""L-BFGS preconditioner: M⁻¹ is the two-loop recursion over the last m curvature pairs.

Pairs s_k = w_k − w_{k−1}, y_k = g_k − g_{k−1} come from successive ``update`` calls (which
read ``grads``; ``batch`` and ``key`` are ignored); a pair is kept only when
s_kᵀy_k > ε‖s_k‖‖y_k‖ (the curvature condition that keeps M⁻¹ SPD).  Updates at one point
(s_k = 0) add no pair.  ``apply`` runs the two-loop recursion with the initial scaling
H₀ = (sᵀy / yᵀy)·I of the newest pair (Nocedal and Wright, Alg. 7.4); with no pair yet M = I.
The history is a ring buffer (m, n), so the state keeps a fixed shape under ``jit``.

References:
  Liu and Nocedal, "On the limited memory BFGS method for large scale optimization", 1989;
  Nocedal and Wright, "Numerical Optimization", 2006, Alg. 7.4.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.flatten_util import ravel_pytree

from precond.linalg import from_matvec
from precond.validation import check_int, check_nonnegative, float_dtype

from .base import Preconditioner

__all__ = ["LBFGSState", "lbfgs", "two_loop"]


class LBFGSState(NamedTuple):
    """Ring buffers ``S``, ``Y`` (m, n) of pairs (oldest first in age order via ``valid``),
    ``rho`` = 1/(sᵀy) (m,), ``valid`` (m,) mask, ``newest`` index, and the previous point."""

    S: jax.Array
    Y: jax.Array
    rho: jax.Array
    valid: jax.Array
    newest: jax.Array
    prev_params: jax.Array
    prev_grads: jax.Array
    count: jax.Array


def two_loop(state: LBFGSState, q: jax.Array) -> jax.Array:
    """H_k q by the two-loop recursion over the valid pairs, newest first then oldest first."""
    m = state.S.shape[0]
    order = (state.newest - jnp.arange(m)) % m  # newest → oldest

    def first(q, i):
        j = order[i]
        a = jnp.where(state.valid[j], state.rho[j] * jnp.vdot(state.S[j], q), 0.0)
        return q - a * state.Y[j], a

    q, alphas = lax.scan(first, q, jnp.arange(m))
    s, y = state.S[state.newest], state.Y[state.newest]
    yy = jnp.vdot(y, y)
    gamma = jnp.where(state.valid[state.newest] & (yy > 0),
                      jnp.vdot(s, y) / jnp.where(yy > 0, yy, 1.0), 1.0)
    r = gamma * q

    def second(r, i):
        j = order[m - 1 - i]
        b = state.rho[j] * jnp.vdot(state.Y[j], r)
        step = jnp.where(state.valid[j], alphas[m - 1 - i] - b, 0.0)
        return r + step * state.S[j], None

    r, _ = lax.scan(second, r, jnp.arange(m))
    return r


def _two_loop_flat(v, state):
    return two_loop(state, v)


def lbfgs(*, memory_size: int = 10, eps: float = 1e-10) -> Preconditioner:
    """L-BFGS two-loop preconditioner with history m = ``memory_size`` (module docstring).

    Args:
      memory_size: m ≥ 1 pairs kept.
      eps: ε ≥ 0 of the curvature condition sᵀy > ε‖s‖‖y‖.
    """
    memory_size = check_int(memory_size, "memory_size", low=1)
    eps = check_nonnegative(eps, "eps")

    def init(params):
        n = ravel_pytree(params)[0].size
        dt = float_dtype(params)
        z = jnp.zeros((memory_size, n), dt)
        return LBFGSState(z, z, jnp.zeros((memory_size,), dt),
                          jnp.zeros((memory_size,), bool), jnp.zeros((), jnp.int32),
                          jnp.zeros((n,), dt), jnp.zeros((n,), dt), jnp.zeros((), jnp.int32))

    def update(state, params, *, batch=None, key=None, grads=None):
        if grads is None:
            raise TypeError("the L-BFGS preconditioner's update needs grads=…")
        w = ravel_pytree(params)[0].astype(state.S.dtype)
        g = ravel_pytree(grads)[0].astype(state.S.dtype)
        s, y = w - state.prev_params, g - state.prev_grads
        sy = jnp.vdot(s, y)
        ok = (state.count > 0) & (sy > eps * jnp.linalg.norm(s) * jnp.linalg.norm(y)) & (sy > 0)
        j = (state.newest + 1) % memory_size
        put = lambda buf, v: jnp.where(ok, buf.at[j].set(v), buf)  # noqa: E731
        return LBFGSState(
            put(state.S, s), put(state.Y, y),
            put(state.rho, 1.0 / jnp.where(ok, sy, 1.0)),
            put(state.valid, True), jnp.where(ok, j, state.newest), w, g, state.count + 1)

    def apply(state, g):
        flat, unravel = ravel_pytree(g)
        return unravel(two_loop(state, flat.astype(state.S.dtype)).astype(flat.dtype))

    def inverse_operator(state):
        return from_matvec(_two_loop_flat, state, size=state.S.shape[1], dtype=state.S.dtype,
                           rmatvec=_two_loop_flat)

    return Preconditioner(init, update, apply, inverse_operator, name="lbfgs")
