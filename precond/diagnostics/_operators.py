"""Shared argument handling: operators from arrays/callables, M⁻¹ square roots, SPD checks."""

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
)


def as_square_operator(A, name: str, n: int | None = None, dtype=None) -> LinearOperator:
    """``A`` (operator, array, or a callable v ↦ Av when ``n`` is known) as a square operator."""
    if isinstance(A, LinearOperator) or hasattr(A, "__array__"):
        op = as_operator(A)
    elif callable(A):
        if n is None:
            raise TypeError(f"{name} is a bare function; pass an operator (from_matvec) so its "
                            "size is known")
        op = from_matvec(A, n, jnp.result_type(float) if dtype is None else dtype)
    else:
        raise TypeError(f"{name} must be a linear operator, an array or a callable, got "
                        f"{type(A).__name__}")
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
        dense = op.matmat(jnp.eye(op.shape[0], dtype=op.dtype))
        return DenseOperator(jnp.asarray(_spd_sqrt_dense(dense, name), op.dtype))
    return None


def check_finite_array(x, name: str) -> None:
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"{name} contains NaN or inf")


@register_pytree_node_class
class ProductOperator(LinearOperator):
    """A₁A₂…A_k (applied right to left) as a pytree, so jitted solvers compile once per
    operator structure rather than once per Python closure."""

    def __init__(self, factors):
        self.factors = tuple(factors)
        self.shape = (self.factors[0].shape[0], self.factors[-1].shape[1])
        self.dtype = jnp.result_type(*[f.dtype for f in self.factors])

    def matvec(self, v):
        for f in reversed(self.factors):
            v = f.matvec(v)
        return v

    def tree_flatten(self):
        return (self.factors,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0])
