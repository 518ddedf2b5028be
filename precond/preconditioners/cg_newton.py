"""CG-Hessian and CG-GGN: M = C + λI applied inexactly by a fixed budget of CG iterations.

``solve(state, g)`` returns d ≈ (C + λI)⁻¹ g from ``maxiter`` (m, default 10) iterations of
``precond.linalg.cg`` in fixed-budget mode (tol = 0), started from 0 or, with ``warm_start``,
from the previous step's d.  C is

- CG-Hessian: H = ∇² loss_fn(params, batch), applied by forward-over-reverse;
- CG-GGN: G = Jᵀ H_out J for outputs f = model_fn(params, inputs) and ``output_loss``.

Efficiency: ``solve`` linearizes once per step — ``jax.linearize`` of the gradient (Hessian) or
of the model on the flat parameter vector plus its ``jax.linear_transpose`` (GGN) — so the m
CG products replay only the linear maps (one jvp + one transposed jvp each) and never re-trace
or re-run the forward pass.

Negative curvature (CG-Hessian; the Hessian of a nonconvex loss is indefinite): we chose the
truncated Newton-CG rule (Nocedal and Wright, Alg. 7.1).  CG stops at the first p with
pᵀ(H + λI)p ≤ 0 and returns the last iterate, which (started from 0) is a descent direction;
if that happens in the first iteration (no iterate yet) the step falls back to the gradient g
itself, i.e. an SGD step.  ``CGNewtonState.status``/``iterations`` record what happened.
λ must be > 0 for CG-Hessian (it cannot be checked for definiteness in advance); λ ≥ 0 for
CG-GGN, which is PSD for convex output losses.

``inverse_operator(state)`` applies the same m-step CG map on flat vectors.  Note that a
fixed-budget CG is a Krylov polynomial in C that depends on the right-hand side, so this map is
only approximately linear (exactly (C + λI)⁻¹ once m ≥ n).

References:
  Martens, "Deep learning via Hessian-free optimization", ICML 2010; Schraudolph, "Fast
  curvature matrix-vector products for second-order gradient descent", 2002; Nocedal and
  Wright, "Numerical Optimization", 2006, §7.1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from precond.curvature import get_output_loss
from precond.linalg import Status, cg, from_matvec

from .base import Preconditioner, check_positive, flat_dtype

__all__ = ["CGNewtonState", "cg_hessian", "cg_ggn", "hessian_linear_map", "ggn_linear_map"]


class CGNewtonState(NamedTuple):
    """``x0``: warm start (the last direction, flat (n,)); ``iterations``/``status``: the last
    CG solve's; ``params``/``batch``: the linearization point, set by ``update`` and dropped by
    ``release`` (None between steps)."""

    x0: jax.Array
    iterations: jax.Array
    status: jax.Array
    params: Any = None
    batch: Any = None


def hessian_linear_map(loss_fn: Callable, params, batch):
    """(g, v ↦ Hv) on flat vectors from one ``jax.linearize`` of the gradient.

    The gradient is linearized with respect to the parameter pytree and flattened outside the
    linear map: linearizing through ``unravel`` would put its slices (and, transposed, their
    pads) into every product."""
    _, unravel = ravel_pytree(params)
    g, hvp = jax.linearize(lambda p: jax.grad(loss_fn)(p, batch), params)
    return ravel_pytree(g)[0], lambda v: ravel_pytree(hvp(unravel(v)))[0]


def ggn_linear_map(model_fn: Callable, output_loss, params, batch):
    """(g, v ↦ Gv) on flat vectors: the model is linearized once (f, J·) and its transpose Jᵀ·
    is ``jax.linear_transpose`` of the same linear map (no second forward pass).  Linearized
    with respect to the parameter pytree, flattened outside (see ``hessian_linear_map``)."""
    loss = get_output_loss(output_loss)
    inputs, targets = batch
    _, unravel = ravel_pytree(params)
    f, jvp = jax.linearize(lambda p: model_fn(p, inputs), params)
    vjp = jax.linear_transpose(jvp, params)
    g = ravel_pytree(vjp(jax.grad(loss.value)(f, targets))[0])[0]

    def matvec(v):
        return ravel_pytree(vjp(loss.hessian_vector(f, targets, jvp(unravel(v))))[0])[0]

    return g, matvec


def _cg_newton(kind: str, linear_map: Callable, *, damping: float, maxiter: int,
               warm_start: bool) -> Preconditioner:
    if not isinstance(maxiter, int) or isinstance(maxiter, bool) or maxiter < 1:
        raise ValueError(f"maxiter must be an int ≥ 1, got {maxiter!r}")

    def init(params):
        n = ravel_pytree(params)[0].size
        return CGNewtonState(jnp.zeros((n,), flat_dtype(params)), jnp.zeros((), jnp.int32),
                             jnp.asarray(Status.MAX_ITERATIONS, jnp.int32))

    def update(state, params, *, batch=None, key=None, grads=None):
        if batch is None:
            raise TypeError(f"the {kind} preconditioner's update needs batch=…")
        return state._replace(params=params, batch=batch)

    def _solve_flat(state, b):
        if state.params is None:
            raise ValueError(f"call update(state, params, batch=…) before solve ({kind})")
        _, mv = linear_map(state.params, state.batch)
        op = from_matvec(lambda v: mv(v) + damping * v, b.size, b.dtype)
        x0 = state.x0.astype(b.dtype) if warm_start else None
        return cg(op, b, x0=x0, tol=0.0, atol=0.0, maxiter=maxiter)

    def _direction(res, b):
        if kind == "cg-hessian":
            # Newton-CG: negative curvature before any iterate → fall back to the gradient.
            fallback = (res.status == Status.NEGATIVE_CURVATURE) & (res.iterations == 0)
            return jnp.where(fallback, b, res.x)
        return res.x

    def solve(state, g):
        b, unravel = ravel_pytree(g)
        res = _solve_flat(state, b)
        return unravel(_direction(res, b))

    def solve_with_state(state, g):
        """(M⁻¹g, state with the warm start and the CG counts recorded)."""
        b, unravel = ravel_pytree(g)
        res = _solve_flat(state, b)
        d = _direction(res, b)
        return unravel(d), state._replace(x0=d.astype(state.x0.dtype),
                                          iterations=res.iterations, status=res.status)

    def inverse_operator(state):
        return from_matvec(lambda v: _direction(_solve_flat(state, v), v), state.x0.size,
                           state.x0.dtype)

    def release(state):
        return state._replace(params=None, batch=None)

    return Preconditioner(init, update, solve, inverse_operator, release, name=kind,
                          solve_with_state=solve_with_state)


def cg_hessian(loss_fn: Callable, *, damping: float = 1e-3, maxiter: int = 10,
               warm_start: bool = False) -> Preconditioner:
    """CG-Hessian: M = ∇²loss_fn + λI by ``maxiter`` CG iterations (module docstring).

    ``damping`` λ must be > 0: the Hessian of a nonconvex loss is indefinite, and λ ≤ 0 would
    leave even a convex one singular — ``ValueError`` otherwise.
    """
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable loss_fn(params, batch)")
    if isinstance(damping, (int, float)) and not damping > 0:
        raise ValueError(f"damping must be > 0 for CG-Hessian (the Hessian may be indefinite, "
                         f"so H + λI needs λ > 0), got {damping}")
    damping = check_positive(damping, "damping")
    return _cg_newton("cg-hessian", lambda p, b: hessian_linear_map(loss_fn, p, b),
                      damping=damping, maxiter=maxiter, warm_start=warm_start)


def cg_ggn(model_fn: Callable, output_loss, *, damping: float = 1e-3, maxiter: int = 10,
           warm_start: bool = False) -> Preconditioner:
    """CG-GGN: M = Jᵀ H_out J + λI by ``maxiter`` CG iterations (module docstring); λ ≥ 0.

    The batch is ``(inputs, targets)``; the loss is ``output_loss(model_fn(params, inputs),
    targets)``.
    """
    if not callable(model_fn):
        raise TypeError("model_fn must be callable model_fn(params, inputs)")
    get_output_loss(output_loss)
    damping = check_positive(damping, "damping", allow_zero=True)
    return _cg_newton("cg-ggn", lambda p, b: ggn_linear_map(model_fn, output_loss, p, b),
                      damping=damping, maxiter=maxiter, warm_start=warm_start)
