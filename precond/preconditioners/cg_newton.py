"""CG-Hessian and CG-GGN: M = C + λI applied inexactly by a fixed budget of CG iterations.

``apply(state, g)`` returns d ≈ (C + λI)⁻¹ g from ``maxiter`` (m, default 10) iterations of
``precond.linalg.cg`` in fixed-budget mode (tol = 0), started from 0 or, with ``warm_start``,
from the previous step's d.  C is

- CG-Hessian: H = ∇² loss_fn(params, batch), applied by forward-over-reverse;
- CG-GGN: G = Jᵀ H_out J for outputs f = model_fn(params, inputs) and ``output_loss``.

Efficiency: C is ``precond.curvature``'s Hessian or GGN operator, which ``precond.linalg.cg``
linearizes once per solve — ``jax.linearize`` of the gradient (Hessian) or of the model plus
its ``jax.linear_transpose`` (GGN) — so the m CG products replay only the linear maps and never
re-trace or re-run the forward pass.  The operator is a pytree (leaves: params, batch), so the
compiled CG loop is reused across steps.

Negative curvature (CG-Hessian; the Hessian of a nonconvex loss is indefinite): we chose the
truncated Newton-CG rule (Nocedal and Wright, Alg. 7.1).  CG stops at the first p with
pᵀ(H + λI)p ≤ 0 and returns the last iterate, which (started from 0) is a descent direction;
if that happens in the first iteration (no iterate yet) the step falls back to the gradient g
itself, i.e. an SGD step.  ``CGNewtonState.status``/``iterations`` record what happened; a
NaN/inf gradient, direction or curvature (a NaN loss) is ``Status.NONFINITE`` (then there is no
gradient fallback), never negative curvature.
λ must be > 0 for CG-Hessian (it cannot be checked for definiteness in advance); λ ≥ 0 for
CG-GGN, which is PSD for convex output losses.

``inverse_operator(state)`` applies the same m-step CG map on flat vectors, started from 0 (so
it is a function of v alone, also with ``warm_start``), as a closure-free pytree operator.  A
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
from jax.tree_util import register_pytree_node_class

from precond.curvature import ggn_linear_map as ggn_linear_map  # re-export (moved there)
from precond.curvature import hessian_linear_map as hessian_linear_map  # re-export
from precond.linalg import LinearOperator, Status, cg
from precond.validation import check_int, check_positive, float_dtype

from ._curvature import check_curvature_args, curvature_operator
from .base import Preconditioner

__all__ = ["CGNewtonState", "CGInverseOperator", "cg_hessian", "cg_ggn", "hessian_linear_map",
           "ggn_linear_map"]


class CGNewtonState(NamedTuple):
    """``x0``: warm start (the last direction, flat (n,)); ``iterations``/``status``: the last
    CG solve's; ``params``/``batch``: the linearization point, set by ``update`` and dropped by
    ``release`` (None between steps)."""

    x0: jax.Array
    iterations: jax.Array
    status: jax.Array
    params: Any = None
    batch: Any = None


def _cg_solve(C: LinearOperator, damping, b, x0, maxiter: int, newton: bool):
    """(d, CG result) for (C + λI)d = b by ``maxiter`` fixed-budget CG iterations; ``newton``:
    negative curvature before any iterate falls back to d = b (truncated Newton-CG)."""
    A = C.shift(damping)
    res = cg(A, b, x0=x0, tol=0.0, atol=0.0, maxiter=maxiter)
    # A NaN/inf right-hand side, answer or curvature (a NaN loss) is NONFINITE, never negative
    # curvature: CG's test pᵀAp ≤ 0 cannot tell NaN from ≤ 0, so a breakdown in the first
    # iteration recomputes p₀ᵀAp₀ (one product, only then) to tell them apart.
    first = (res.status == Status.NEGATIVE_CURVATURE) & (res.iterations == 0)
    def p0_curvature():
        r0 = b if x0 is None else b - A.matvec(x0)
        return jnp.vdot(r0, A.matvec(r0)).astype(res.x.dtype)

    curv0 = jax.lax.cond(first, p0_curvature, lambda: jnp.zeros((), res.x.dtype))
    finite = jnp.all(jnp.isfinite(b)) & jnp.all(jnp.isfinite(res.x)) & jnp.isfinite(curv0)
    res = res._replace(status=jnp.where(finite, res.status, Status.NONFINITE).astype(
        jnp.asarray(res.status).dtype))
    if newton:
        fallback = first & finite
        return jnp.where(fallback, b, res.x), res
    return res.x, res


@register_pytree_node_class
class CGInverseOperator(LinearOperator):
    """v ↦ the m-step CG solution of (C + λI)d = v from d = 0: M⁻¹ of CG-Hessian/GGN.

    Leaves: the curvature operator C and λ; static: m = ``maxiter`` and ``newton`` (the
    gradient fallback of CG-Hessian).  ``linearize()`` linearizes C once, so each product is
    m replayed curvature products.

    Args:
      curvature: C, a symmetric operator (n, n).
      damping: λ (a scalar).
      maxiter: m ≥ 1.
      newton: fall back to v on negative curvature before the first iterate.
    """

    def __init__(self, curvature: LinearOperator, damping, maxiter: int, newton: bool):
        self.curvature, self.damping = curvature, damping
        self.maxiter, self.newton = maxiter, newton
        self.shape, self.dtype = curvature.shape, curvature.dtype

    def matvec(self, v):
        return _cg_solve(self.curvature, self.damping, v, None, self.maxiter, self.newton)[0]

    def linearize(self) -> CGInverseOperator:
        return CGInverseOperator(self.curvature.linearize(), self.damping, self.maxiter,
                                 self.newton)

    @property
    def T(self):
        return self

    def tree_flatten(self):
        return (self.curvature, self.damping), (self.maxiter, self.newton)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, *aux)


def _cg_newton(kind: str, curvature: Callable, *, damping: float, maxiter: int,
               warm_start: bool, needs_batch: bool) -> Preconditioner:
    maxiter = check_int(maxiter, "maxiter", low=1)
    newton = kind == "cg-hessian"

    def init(params):
        n = ravel_pytree(params)[0].size
        return CGNewtonState(jnp.zeros((n,), float_dtype(params)), jnp.zeros((), jnp.int32),
                             jnp.asarray(Status.MAX_ITERATIONS, jnp.int32))

    def update(state, params, *, batch=None, key=None, grads=None):
        if batch is None and needs_batch:
            raise TypeError(f"the {kind} preconditioner's update needs batch=(inputs, targets)")
        return state._replace(params=params, batch=batch)

    def _operator(state):
        if state.params is None:
            raise ValueError(f"call update(state, params, batch=…) before apply ({kind})")
        return curvature(state.params, state.batch)

    def _solve_flat(state, b):
        x0 = state.x0.astype(b.dtype) if warm_start else None
        return _cg_solve(_operator(state), jnp.asarray(damping, b.dtype), b, x0, maxiter,
                         newton)

    def apply(state, g):
        b, unravel = ravel_pytree(g)
        return unravel(_solve_flat(state, b)[0])

    def apply_with_state(state, g):
        """(M⁻¹g, state with the warm start and the CG counts recorded)."""
        b, unravel = ravel_pytree(g)
        d, res = _solve_flat(state, b)
        return unravel(d), state._replace(x0=d.astype(state.x0.dtype),
                                          iterations=res.iterations, status=res.status)

    def inverse_operator(state):
        C = _operator(state)
        return CGInverseOperator(C, jnp.asarray(damping, C.dtype), maxiter, newton)

    def release(state):
        return state._replace(params=None, batch=None)

    return Preconditioner(init, update, apply, inverse_operator, release, name=kind,
                          apply_with_state=apply_with_state)


def cg_hessian(loss_fn: Callable, *, damping: float = 1e-3, maxiter: int = 10,
               warm_start: bool = False) -> Preconditioner:
    """CG-Hessian: M = ∇²loss_fn + λI by ``maxiter`` CG iterations (module docstring).

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``; ``update(..., batch=None)`` uses the
        full-batch ``loss_fn(params)``.
      damping: λ > 0: the Hessian of a nonconvex loss is indefinite, and λ ≤ 0 would leave
        even a convex one singular — ``ValueError`` otherwise.
      maxiter: m ≥ 1, the fixed CG budget per apply.
      warm_start: start each solve from the previous direction.
    """
    check_curvature_args(loss_fn, None, None)
    damping = check_positive(damping, "damping")
    return _cg_newton("cg-hessian",
                      lambda p, b: curvature_operator("hessian", loss_fn, None, None, p, b),
                      damping=damping, maxiter=maxiter, warm_start=warm_start,
                      needs_batch=False)


def cg_ggn(model_fn: Callable, output_loss, *, damping: float = 1e-3, maxiter: int = 10,
           warm_start: bool = False) -> Preconditioner:
    """CG-GGN: M = Jᵀ H_out J + λI by ``maxiter`` CG iterations (module docstring).

    Args:
      model_fn: ``model_fn(params, inputs) -> outputs f``; the loss is
        ``output_loss(model_fn(params, inputs), targets)`` on a batch ``(inputs, targets)``.
      output_loss: a name ("mse", "softmax_cross_entropy", …), an OutputLoss or ``ℓ(f, y)``.
      damping: λ ≥ 0 (G is PSD for convex output losses).
      maxiter: m ≥ 1, the fixed CG budget per apply.
      warm_start: start each solve from the previous direction.
    """
    check_curvature_args(None, model_fn, output_loss)
    damping = check_positive(damping, "damping", allow_zero=True)
    return _cg_newton("cg-ggn",
                      lambda p, b: curvature_operator("ggn", None, model_fn, output_loss, p, b),
                      damping=damping, maxiter=maxiter, warm_start=warm_start,
                      needs_batch=True)
