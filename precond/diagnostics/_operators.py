"""Shared argument handling: operators from arrays/callables, M⁻¹ square roots, SPD checks.

M^{-1/2} H M^{-1/2} is ``precond.linalg.congruence(H, S)`` with S = :func:`spd_sqrt` of M⁻¹.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import register_pytree_node_class

from precond.linalg import (
    DenseOperator,
    DiagonalOperator,
    IdentityOperator,
    LinearOperator,
    LowRankPlusIdentity,
    ScaledOperator,
    as_operator,
    from_matvec,
    to_dense,
)
from precond.validation import check_finite_array as check_finite_array


def as_square_operator(A, name: str, n: int | None = None, dtype=None) -> LinearOperator:
    """``A`` as a square operator: a precond operator, an array, a scipy.sparse matrix or
    ``LinearOperator`` (see ``precond.linalg.as_operator``), or a callable v ↦ Av when ``n``
    is known (wrapped by ``from_matvec``; a closure, so each new one compiles anew)."""
    if callable(A) and not isinstance(A, LinearOperator) and not hasattr(A, "shape"):
        if n is None:
            raise TypeError(f"{name} is a bare function; pass an operator "
                            "(from_matvec(fn, *params, size=n)) so its size is known")
        op = from_matvec(A, size=n, dtype=dtype)
    else:
        try:
            op = as_operator(A)
        except TypeError:
            raise TypeError(f"{name} must be a linear operator, an array or a callable, got "
                            f"{type(A).__name__}") from None
    if len(op.shape) != 2 or op.shape[0] != op.shape[1]:
        raise ValueError(f"{name} must be square, got shape {tuple(op.shape)}")
    if n is not None and op.shape[0] != n:
        raise ValueError(f"{name} has size {op.shape[0]} but the problem has size {n}")
    return op


def _spd_sqrt_dense(A: jax.Array, name: str) -> jax.Array:
    A = np.asarray(A, dtype=np.float64)
    if not np.allclose(A, A.T, rtol=1e-8, atol=1e-12 * max(np.abs(A).max(), 1e-300)):
        raise ValueError(f"{name} is not symmetric; a preconditioner M⁻¹ must be SPD")
    lam, V = np.linalg.eigh(0.5 * (A + A.T))
    if lam[0] <= 0:
        raise ValueError(f"{name} is not positive definite (smallest eigenvalue {lam[0]:.3g}); "
                         "a preconditioner M⁻¹ must be SPD")
    return (V * np.sqrt(lam)) @ V.T


def spd_sqrt(op: LinearOperator, name: str = "M_inv", *, dense_limit: int = 0
             ) -> LinearOperator | None:
    """S with S Sᵀ = ``op`` (S symmetric) when ``op``'s structure gives one, checking SPD.

    Identity, diagonal, low-rank + identity, dense and scalings of these have exact square roots.
    A matvec-only operator is densified (n matvecs) when n ≤ ``dense_limit``; otherwise None.
    """
    if isinstance(op, IdentityOperator):
        return op
    if isinstance(op, DiagonalOperator):
        if not bool(jnp.all(op.diagonal > 0)):
            raise ValueError(f"{name} is not positive definite: its diagonal has entries ≤ 0")
        return DiagonalOperator(jnp.sqrt(op.diagonal))
    if isinstance(op, LowRankPlusIdentity):
        if not (float(op.scale) > 0 and bool(jnp.all(op.eigenvalues > 0))):
            raise ValueError(f"{name} is not positive definite: eigenvalues "
                             f"{float(op.scale):.3g} and min {float(jnp.min(op.eigenvalues)):.3g}")
        return op.power(0.5)
    if isinstance(op, ScaledOperator):
        s = float(op.scalar)
        if s <= 0:
            raise ValueError(f"{name} is not positive definite: scaled by {s} ≤ 0")
        inner = spd_sqrt(op.operator, name, dense_limit=dense_limit)
        return None if inner is None else ScaledOperator(inner, jnp.sqrt(op.scalar))
    if isinstance(op, DenseOperator):
        return DenseOperator(jnp.asarray(_spd_sqrt_dense(op.matrix, name), op.dtype))
    if op.shape[0] <= dense_limit:
        dense = to_dense(op)
        return DenseOperator(jnp.asarray(_spd_sqrt_dense(dense, name), op.dtype))
    return None


@register_pytree_node_class
class ProductOperator(LinearOperator):
    """A₁A₂…A_k (applied right to left) as a pytree, so jitted solvers compile once per
    operator structure rather than once per Python closure; ``linearize`` propagates."""

    def __init__(self, factors):
        self.factors = tuple(factors)
        self.shape = (self.factors[0].shape[0], self.factors[-1].shape[1])
        self.dtype = jnp.result_type(*[f.dtype for f in self.factors])

    def matvec(self, v):
        for f in reversed(self.factors):
            v = f.matvec(v)
        return v

    def linearize(self) -> ProductOperator:
        return ProductOperator(tuple(f.linearize() for f in self.factors))

    def tree_flatten(self):
        return (self.factors,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0])


def is_pytree(op) -> bool:
    """False for a LinearOperator subclass not registered as a pytree (it cannot enter jit)."""
    leaves = jax.tree.leaves(op)
    return not (len(leaves) == 1 and leaves[0] is op)
