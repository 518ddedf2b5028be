"""The preconditioner protocol shared by every preconditioner in precond.

A preconditioner M is a :class:`Preconditioner`, a NamedTuple of pure functions (optax style:
a factory captures the hyperparameters, the state is passed in and returned):

- ``init(params) -> state``;
- ``update(state, params, *, batch=None, key=None, grads=None) -> state`` refreshes M at
  ``params``.  Every preconditioner accepts all three keywords and ignores the ones it does not
  use: curvature-based ones (Jacobi, spectral, Nyström, CG) read ``batch`` (and ``key`` for the
  randomized ones), gradient-statistics ones (AdaGrad, RMSProp, Adam, L-BFGS) read ``grads``;
- ``apply(state, g) -> M⁻¹g`` on pytrees shaped like ``params`` (``solve`` is the same
  function, the name older code uses);
- ``inverse_operator(state)`` -> a flat ``precond.linalg`` operator applying M⁻¹ (for the
  diagnostics, in ``jax.flatten_util.ravel_pytree`` order), a closure-free pytree;
- ``release(state) -> state`` drops per-step data (the batch and linearization point that the
  CG preconditioners keep between ``update`` and ``apply``) so a state stored across steps has
  the same structure every step, as ``lax.scan`` and ``jit`` need.  Identity for most;
- ``apply_with_state(state, g) -> (M⁻¹g, state)`` (optional; alias ``solve_with_state``) for
  preconditioners whose solve leaves something to keep (the CG ones: the warm start and the
  iteration counts); ``apply_and_update`` calls it when present, ``apply`` otherwise.

Call order within a step: ``update`` → ``apply`` (→ ``inverse_operator``) → ``release``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

__all__ = ["Preconditioner", "lazily"]


def _release(state):
    return state


class Preconditioner(NamedTuple):
    """M⁻¹ as pure functions; see the module docstring for the protocol.

    Fields: ``init``, ``update``, ``apply``, ``inverse_operator``, ``release``, ``name``,
    ``apply_with_state`` (None when applying records nothing).  ``solve`` and
    ``solve_with_state`` are read-only aliases of ``apply`` and ``apply_with_state``.
    """

    init: Callable[..., Any]
    update: Callable[..., Any]
    apply: Callable[[Any, Any], Any]
    inverse_operator: Callable[[Any], Any]
    release: Callable[[Any], Any] = _release
    name: str = "preconditioner"
    apply_with_state: Callable[[Any, Any], Any] | None = None

    @property
    def solve(self) -> Callable[[Any, Any], Any]:
        """Alias of ``apply`` (M⁻¹g)."""
        return self.apply

    @property
    def solve_with_state(self) -> Callable[[Any, Any], Any] | None:
        """Alias of ``apply_with_state``."""
        return self.apply_with_state

    def apply_and_update(self, state, g):
        """(M⁻¹g, state): like ``apply``, and records what applying learned (warm starts, CG
        counts) when the preconditioner has an ``apply_with_state``."""
        if self.apply_with_state is None:
            return self.apply(state, g), state
        return self.apply_with_state(state, g)

    def solve_and_update(self, state, g):
        """Alias of :meth:`apply_and_update`."""
        return self.apply_and_update(state, g)


def lazily(count, update_every: int, refresh: Callable, keep: Callable):
    """``refresh()`` on steps 0, k, 2k, … (count % k == 0), else ``keep()``; one ``lax.cond``."""
    if update_every == 1:
        return refresh()
    return jax.lax.cond(count % update_every == 0, refresh, keep)
