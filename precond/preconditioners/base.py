"""The preconditioner protocol shared by every preconditioner in precond.

A preconditioner M is a :class:`Preconditioner`, a NamedTuple of pure functions (optax style:
a factory captures the hyperparameters, the state is passed in and returned):

- ``init(params) -> state``;
- ``update(state, params, *, batch=None, key=None, grads=None) -> state`` refreshes the
  curvature at ``params`` (lazily: curvature-based ones every ``update_every`` steps);
  gradient-statistics ones (AdaGrad, RMSProp, Adam, L-BFGS) read ``grads``;
- ``solve(state, g) -> M⁻¹g`` on pytrees shaped like ``params``;
- ``inverse_operator(state)`` -> a flat ``precond.linalg`` operator applying M⁻¹ (for the
  diagnostics, in ``jax.flatten_util.ravel_pytree`` order);
- ``release(state) -> state`` drops per-step data (the batch and linearization point that the
  CG preconditioners keep between ``update`` and ``solve``) so a state stored across steps has
  the same structure every step, as ``lax.scan`` and ``jit`` need.  Identity for most;
- ``solve_with_state(state, g) -> (M⁻¹g, state)`` (optional) for preconditioners whose solve
  leaves something to keep (the CG ones: the warm start and the iteration counts).

Call order within a step: ``update`` → ``solve`` (→ ``inverse_operator``) → ``release``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

__all__ = ["Preconditioner", "check_positive", "check_update_every", "flat_dtype",
           "lazily"]


def _release(state):
    return state


class Preconditioner(NamedTuple):
    """M⁻¹ as pure functions; see the module docstring for the protocol."""

    init: Callable[..., Any]
    update: Callable[..., Any]
    solve: Callable[[Any, Any], Any]
    inverse_operator: Callable[[Any], Any]
    release: Callable[[Any], Any] = _release
    name: str = "preconditioner"
    solve_with_state: Callable[[Any, Any], Any] | None = None

    def solve_and_update(self, state, g):
        """(M⁻¹g, state): like ``solve``, and records what solving learned (warm starts, CG
        counts) when the preconditioner has a ``solve_with_state``."""
        if self.solve_with_state is None:
            return self.solve(state, g), state
        return self.solve_with_state(state, g)


def flat_dtype(params):
    """The floating dtype of the flat parameter vector."""
    flat, _ = ravel_pytree(params)
    return flat.dtype if jnp.issubdtype(flat.dtype, jnp.floating) else jnp.result_type(float)


def check_positive(x, name: str, *, allow_zero: bool = False) -> float:
    """``x`` as a float, raising ``ValueError`` naming it unless finite and > 0 (≥ 0)."""
    if isinstance(x, jax.core.Tracer):
        return x
    xv = float(x)
    ok = np.isfinite(xv) and (xv >= 0 if allow_zero else xv > 0)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'≥' if allow_zero else '>'} 0, "
                         f"got {xv}")
    return xv


def check_update_every(k) -> int:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"update_every must be an int ≥ 1, got {k!r}")
    return int(k)


def check_decay(x, name: str) -> float:
    xv = float(x)
    if not 0.0 <= xv < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {xv}")
    return xv


def lazily(count, update_every: int, refresh: Callable, keep: Callable):
    """``refresh()`` on steps 0, k, 2k, … (count % k == 0), else ``keep()``; one ``lax.cond``."""
    if update_every == 1:
        return refresh()
    return jax.lax.cond(count % update_every == 0, refresh, keep)
