"""Linear operators on flat 1-D arrays.

Every operator has ``.matvec(v)``, ``.matmat(V)``, ``.shape`` and ``.dtype``; sums (``A + B``),
scalings (``2.0 * A``), shifts (``A.shift(mu)`` = A + μI) and congruences (``congruence(A, S)``
= SAS) compose.  Operators are pytrees whose arrays are leaves, so they pass through
``jax.jit`` as arguments and a new operator of the same kind and shapes does not recompile.
``linearize()`` gives solvers an equal operator whose repeated products are cheap (curvature
operators linearize there, once).  ``as_operator`` turns numpy/jax arrays, scipy.sparse matrices
(kept sparse, as a ``jax.experimental.sparse.BCOO``), scipy ``LinearOperator``s (host callbacks,
see :class:`precond.linalg.matvec.HostOperator`) and precond operators into an operator;
``as_scipy`` goes the other way.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap
from jax.experimental import sparse as jsparse
from jax.tree_util import register_pytree_node_class

from precond.validation import check_finite_array as check_finite
from precond.validation import check_real, default_float, float_dtype

from ._checks import as_array

__all__ = [
    "LinearOperator",
    "DenseOperator",
    "SparseOperator",
    "DiagonalOperator",
    "IdentityOperator",
    "LowRankPlusIdentity",
    "SumOperator",
    "ScaledOperator",
    "CongruenceOperator",
    "congruence",
    "as_operator",
    "as_scipy",
    "to_dense",
]


class LinearOperator:
    """Base class: a square or rectangular linear map on flat arrays."""

    shape: tuple[int, int]
    dtype: Any
    # True when the operator is symmetric by construction: symmetric-only solvers then skip
    # their probe (``precond.linalg._checks.check_symmetric``).
    symmetric: bool = False
    # numpy defers to the operator's own __rmul__/__radd__ (which check the scalar) instead of
    # broadcasting it into an object array: ``np.ones(2) * A`` is a TypeError, not an array.
    __array_ufunc__ = None

    def matvec(self, v: jax.Array) -> jax.Array:
        raise NotImplementedError

    def matmat(self, V: jax.Array) -> jax.Array:
        """Apply to each column of ``V`` (n, k) → (m, k)."""
        return jax.vmap(self.matvec, in_axes=1, out_axes=1)(V)

    def __matmul__(self, v):
        v = jnp.asarray(v)
        return self.matvec(v) if v.ndim == 1 else self.matmat(v)

    def __add__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        if self.shape != other.shape:
            raise ValueError(f"cannot add operators of shapes {self.shape} and {other.shape}")
        return SumOperator((self, other))

    def __mul__(self, scalar) -> LinearOperator:
        if isinstance(scalar, LinearOperator):
            return NotImplemented
        # The scalar takes the working float dtype, never an integer operator's own dtype
        # (0.5 as an int is 0); NaN/inf is an error here, not a NaN solve later.
        scalar = check_real(scalar, "scalar")
        return ScaledOperator(self, jnp.asarray(scalar, dtype=float_dtype(self.dtype)))

    __rmul__ = __mul__

    def linearize(self) -> LinearOperator:
        """An equal operator whose repeated products are cheap: solvers call it once, at the
        start of their traced body, before any loop.  Operators built from autodiff
        (``precond.curvature``) linearize there once and replay the linear map per product;
        every other operator returns itself."""
        return self

    def shift(self, mu) -> LinearOperator:
        """The operator A + μI (μ finite; the identity in the working float dtype)."""
        mu = check_real(mu, "mu")
        return self + IdentityOperator(self.shape[0], float_dtype(self.dtype)) * mu

    @property
    def T(self) -> LinearOperator:
        raise NotImplementedError(f"{type(self).__name__} has no transpose")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={jnp.dtype(self.dtype).name})"


def _dtype_of(x):
    return jnp.result_type(x)


def _floating(x):
    """``x`` (an array) promoted to the working float dtype when integer or boolean: an
    operator never computes in an integer dtype (shifts and scalings would truncate)."""
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return x
    return x.astype(float_dtype(x))


@register_pytree_node_class
class DenseOperator(LinearOperator):
    """An explicit matrix (numpy or jax), shape (m, n).  NaN/inf entries raise ``ValueError``.

    ``.T`` keeps the same matrix and applies it as v ↦ vᵀM: XLA on CPU would otherwise copy the
    transpose on every product.  For a matrix over a few MiB, vᵀM is summed over row blocks
    (``_vector_times_matrix``), which XLA runs faster than the plain reduction across rows
    (measurements: docs/bench/ridge.md).

    Args:
      matrix: (m, n) numpy or jax array, finite.
      transposed: store ``matrix`` but apply its transpose (what ``.T`` builds).
    """

    def __init__(self, matrix, *, transposed: bool = False):
        if _is_scipy_sparse(matrix):
            raise TypeError("DenseOperator got a scipy.sparse matrix; use SparseOperator or "
                            "as_operator, which keep it sparse")
        matrix = _floating(as_array(matrix))
        if matrix.ndim != 2:
            raise ValueError(f"matrix must be 2-D, got shape {matrix.shape}")
        check_finite(matrix, "matrix")
        self._init(matrix, bool(transposed))

    def _init(self, stored, transposed):
        self._stored, self._transposed = stored, transposed
        self.shape = tuple(stored.shape[::-1] if transposed else stored.shape)
        self.dtype = stored.dtype

    @property
    def matrix(self):
        return self._stored.T if self._transposed else self._stored

    def matvec(self, v):
        return _vector_times_matrix(v, self._stored) if self._transposed else self._stored @ v

    def matmat(self, V):
        return (V.T @ self._stored).T if self._transposed else self._stored @ V

    @property
    def T(self):
        obj = object.__new__(DenseOperator)
        obj._init(self._stored, not self._transposed)
        return obj

    def tree_flatten(self):
        return (self._stored,), self._transposed

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj._init(children[0], aux)
        return obj


_BLOCK_BYTES = 1 << 20  # rows per block of vᵀM: about 1 MiB of M


def _row_block(m: int, row_bytes: int) -> int | None:
    """Rows per block for :func:`_vector_times_matrix`: a divisor of m near 1 MiB of rows.

    None when M fits in four blocks (the plain product is as fast) or when m has no divisor
    within 2× of the target (a prime m): slicing off a remainder would copy M on every call.
    """
    target = max(32, _BLOCK_BYTES // max(row_bytes, 1))
    if m < 4 * target:
        return None
    low, high = max(16, target // 2), 2 * target
    divisors = (q for p in range(1, math.isqrt(m) + 1) if m % p == 0 for q in (p, m // p))
    fits = [q for q in divisors if low <= q <= high]
    return min(fits, key=lambda q: (abs(q - target), q)) if fits else None


def _vector_times_matrix(v, M):
    """vᵀM for v (m,) and M (m, n) row-major; large M in row blocks (see ``_blocked_vtm``)."""
    if _row_block(M.shape[0], M.shape[1] * M.dtype.itemsize) is None:
        return v @ M
    return _blocked_vtm(v, M)


@custom_vmap
def _blocked_vtm_unbatched(v, M):
    """vᵀM as a sum of per-block products 'kb,kbd->kd' (the reshape is a bitcast, no copy).

    XLA on CPU runs the plain vᵀM (a reduction across rows) well below the bandwidth of Mv;
    in ~1 MiB row blocks it runs closer to it (``benchmarks/bench_ridge.py``'s matrix-free
    form; figures in docs/bench/ridge.md).  Batched (vmap over v, e.g. a matmat built from a
    matvec) the blocks would leave a (batch, k, n) intermediate and run slower than one GEMM,
    so the vmap rule is V @ M.
    """
    m, n = M.shape
    rows = _row_block(m, n * M.dtype.itemsize)
    k = m // rows
    return jnp.einsum("kb,kbd->kd", v.reshape(k, rows), M.reshape(k, rows, n)).sum(axis=0)


@_blocked_vtm_unbatched.def_vmap
def _blocked_vtm_vmap(axis_size, in_batched, v, M):
    v_batched, M_batched = in_batched
    if M_batched:
        return jax.vmap(jnp.matmul, (0 if v_batched else None, 0))(v, M), True
    return v @ M, True


@jax.custom_jvp
def _blocked_vtm(v, M):
    return _blocked_vtm_unbatched(v, M)


@_blocked_vtm.defjvp
def _blocked_vtm_jvp(primals, tangents):
    # custom_vmap has no reverse mode of its own: the tangent map is written with plain
    # products, which JAX can transpose (grad, jacrev, hessian all work).
    (v, M), (dv, dM) = primals, tangents
    return _blocked_vtm(v, M), dv @ M + v @ dM


def _is_scipy_sparse(x) -> bool:
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover
        return False
    return sp.issparse(x)


@register_pytree_node_class
class SparseOperator(LinearOperator):
    """A sparse matrix kept sparse: scipy.sparse input becomes a jax BCOO, never densified."""

    def __init__(self, matrix):
        if _is_scipy_sparse(matrix):
            m = matrix.tocoo()
            if not np.all(np.isfinite(m.data)):
                raise ValueError("matrix contains NaN or inf entries")
            matrix = jsparse.BCOO.from_scipy_sparse(m)
        if not isinstance(matrix, jsparse.BCOO):
            raise TypeError(f"SparseOperator needs a scipy.sparse matrix or a BCOO, got "
                            f"{type(matrix).__name__}")
        if not jnp.issubdtype(matrix.dtype, jnp.inexact):
            matrix = jsparse.BCOO((_floating(matrix.data), matrix.indices), shape=matrix.shape)
        self.matrix = matrix
        self.shape = tuple(matrix.shape)
        self.dtype = matrix.dtype

    def matvec(self, v):
        return self.matrix @ v

    def matmat(self, V):
        return self.matrix @ V

    @property
    def T(self):
        return SparseOperator(self.matrix.T)

    def tree_flatten(self):
        return (self.matrix,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj.matrix = children[0]
        obj.shape = tuple(obj.matrix.shape)
        obj.dtype = obj.matrix.dtype
        return obj


@register_pytree_node_class
class DiagonalOperator(LinearOperator):
    """diag(d), shape (n, n)."""

    def __init__(self, diagonal):
        diagonal = _floating(jnp.asarray(diagonal))
        if diagonal.ndim != 1:
            raise ValueError(f"diagonal must be 1-D, got shape {diagonal.shape}")
        check_finite(diagonal, "diagonal")
        self.diagonal = diagonal
        self.shape = (diagonal.shape[0], diagonal.shape[0])
        self.dtype = diagonal.dtype

    def matvec(self, v):
        return self.diagonal * v

    def matmat(self, V):
        return self.diagonal[:, None] * V

    symmetric = True

    def inverse(self) -> DiagonalOperator:
        return DiagonalOperator(1.0 / self.diagonal)

    @property
    def T(self):
        return self

    def tree_flatten(self):
        return (self.diagonal,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj.diagonal = children[0]
        obj.shape = (obj.diagonal.shape[0], obj.diagonal.shape[0])
        obj.dtype = obj.diagonal.dtype
        return obj


@register_pytree_node_class
class IdentityOperator(LinearOperator):
    """I of size n; ``dtype`` defaults to the default float (float64 when x64 is on)."""

    symmetric = True

    def __init__(self, size: int, dtype=None):
        self.shape = (int(size), int(size))
        self.dtype = default_float() if dtype is None else jnp.dtype(dtype)

    def matvec(self, v):
        return v

    def matmat(self, V):
        return V

    @property
    def T(self):
        return self

    def tree_flatten(self):
        return (), (self.shape[0], self.dtype)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*aux)


@register_pytree_node_class
class LowRankPlusIdentity(LinearOperator):
    """A = s·I + U diag(d) Uᵀ with U (n, r) orthonormal; eigenvalues s + dᵢ on span(U), s elsewhere.

    The family is closed under powers: ``A.power(p)`` = sᵖ I + U diag((s + d)ᵖ − sᵖ) Uᵀ, so the
    inverse (Woodbury, O(nr) per apply) and square roots are operators of the same kind.  Covers
    the spectral preconditioner M = I + U(D − I)Uᵀ (s = 1, d = D − 1) and the Nyström one.
    """

    symmetric = True

    def __init__(self, U, d, scale=1.0):
        U = _floating(jnp.asarray(U))
        d = jnp.asarray(d, dtype=U.dtype)
        if U.ndim != 2 or d.shape != (U.shape[1],):
            raise ValueError(f"need U (n, r) and d (r,), got {U.shape} and {d.shape}")
        check_finite(U, "U")
        check_finite(d, "d")
        self.U, self.d = U, d
        self.scale = jnp.asarray(scale, dtype=U.dtype)
        self.shape = (U.shape[0], U.shape[0])
        self.dtype = U.dtype

    def matvec(self, v):
        return self.scale * v + self.U @ (self.d * (v @ self.U))  # vᵀU: no transpose copy

    def matmat(self, V):
        return self.scale * V + self.U @ (self.d[:, None] * (self.U.T @ V))

    @property
    def eigenvalues(self):
        """Eigenvalues on span(U); every other eigenvalue equals ``scale``."""
        return self.scale + self.d

    def power(self, p: float) -> LowRankPlusIdentity:
        sp = self.scale**p
        return LowRankPlusIdentity(self.U, (self.scale + self.d) ** p - sp, sp)

    def inverse(self) -> LowRankPlusIdentity:
        return self.power(-1.0)

    @property
    def T(self):
        return self

    def tree_flatten(self):
        return (self.U, self.d, self.scale), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj.U, obj.d, obj.scale = children
        obj.shape = (obj.U.shape[0], obj.U.shape[0])
        obj.dtype = obj.U.dtype
        return obj


@register_pytree_node_class
class SumOperator(LinearOperator):
    """A₁ + A₂ + …"""

    def __init__(self, terms):
        flat = []
        for t in terms:
            flat.extend(t.terms if isinstance(t, SumOperator) else [t])
        self.terms = tuple(flat)
        self.shape = self.terms[0].shape
        self.dtype = jnp.result_type(*[t.dtype for t in self.terms])

    @property
    def symmetric(self) -> bool:
        return all(getattr(t, "symmetric", False) for t in self.terms)

    def matvec(self, v):
        out = self.terms[0].matvec(v)
        for t in self.terms[1:]:
            out = out + t.matvec(v)
        return out

    def matmat(self, V):
        out = self.terms[0].matmat(V)
        for t in self.terms[1:]:
            out = out + t.matmat(V)
        return out

    def linearize(self) -> SumOperator:
        return SumOperator(tuple(t.linearize() for t in self.terms))

    @property
    def T(self):
        return SumOperator(tuple(t.T for t in self.terms))

    def tree_flatten(self):
        return (self.terms,), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0])


def _scaled_dtype(dtype, scalar):
    try:
        return jnp.result_type(dtype, scalar)
    except TypeError:  # a placeholder leaf (pytree utilities unflatten with None or objects)
        return dtype


@register_pytree_node_class
class ScaledOperator(LinearOperator):
    """c·A for a scalar c."""

    def __init__(self, operator: LinearOperator, scalar):
        self.operator = operator
        self.scalar = scalar
        self.shape = operator.shape
        self.dtype = _scaled_dtype(operator.dtype, scalar)

    @property
    def symmetric(self) -> bool:
        return getattr(self.operator, "symmetric", False)

    def matvec(self, v):
        return self.scalar * self.operator.matvec(v)

    def matmat(self, V):
        return self.scalar * self.operator.matmat(V)

    def linearize(self) -> ScaledOperator:
        return ScaledOperator(self.operator.linearize(), self.scalar)

    @property
    def T(self):
        return ScaledOperator(self.operator.T, self.scalar)

    def tree_flatten(self):
        return (self.operator, self.scalar), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


@register_pytree_node_class
class CongruenceOperator(LinearOperator):
    """S A S for symmetric S (n, n) and A (n, n): v ↦ S(A(Sv)); see :func:`congruence`."""

    def __init__(self, operator: LinearOperator, sqrt: LinearOperator):
        self.operator, self.sqrt = operator, sqrt
        self.shape = operator.shape
        self.dtype = jnp.result_type(operator.dtype, sqrt.dtype)

    @property
    def symmetric(self) -> bool:  # S is symmetric by contract, so SAS is when A is
        return getattr(self.operator, "symmetric", False)

    def matvec(self, v):
        return self.sqrt.matvec(self.operator.matvec(self.sqrt.matvec(v)))

    def matmat(self, V):
        return self.sqrt.matmat(self.operator.matmat(self.sqrt.matmat(V)))

    def linearize(self) -> CongruenceOperator:
        return CongruenceOperator(self.operator.linearize(), self.sqrt.linearize())

    @property
    def T(self):
        return CongruenceOperator(self.operator.T, self.sqrt)

    def tree_flatten(self):
        return (self.operator, self.sqrt), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


def congruence(A, S) -> CongruenceOperator:
    """The congruence S A S (v ↦ S(A(Sv))) for a symmetric S, as a closure-free pytree.

    With S = P^{-1/2} this is the symmetric P^{-1/2} A P^{-1/2}, similar to P⁻¹A: the operator
    whose extreme eigenvalues are L̂ and ĉ of a preconditioned A (Lanczos needs it symmetric).

    Args:
      A: operator, shape (n, n) (array, scipy.sparse, precond operator).
      S: symmetric operator, shape (n, n); S is applied twice and never transposed.

    Example:
      >>> import jax.numpy as jnp
      >>> from precond.linalg import DiagonalOperator, congruence, to_dense
      >>> A = jnp.array([[4.0, 2.0], [2.0, 9.0]])
      >>> S = DiagonalOperator(jnp.array([1 / 2, 1 / 3]))  # diag(A)^{-1/2}: Jacobi scaling
      >>> print(to_dense(congruence(A, S)).round(3))
      [[1.    0.333]
       [0.333 1.   ]]
    """
    A, S = as_operator(A), as_operator(S)
    if A.shape[0] != A.shape[1] or S.shape != A.shape:
        raise ValueError(f"congruence needs square A and S of one shape, got {A.shape} and "
                         f"{S.shape}")
    return CongruenceOperator(A, S)


def as_operator(A, *, dtype=None) -> LinearOperator:
    """Turn ``A`` into a precond operator without densifying it.

    Accepts precond operators (returned as is), numpy/jax 2-D arrays, scipy.sparse matrices and
    jax BCOO matrices (kept sparse), and ``scipy.sparse.linalg.LinearOperator``s (applied on
    the host by a callback: not differentiable, sequential under ``vmap``; see
    :class:`precond.linalg.matvec.HostOperator`).  A bare function is rejected with a hint to
    use ``from_matvec(fn, *params, size=n)``.

    Args:
      A: the operator or matrix, shape (m, n).
      dtype: for arrays only, the dtype to convert to.
    """
    from .matvec import HostOperator, is_scipy_operator

    if isinstance(A, LinearOperator):
        return A
    if _is_scipy_sparse(A) or isinstance(A, jsparse.BCOO):
        return SparseOperator(A)
    if is_scipy_operator(A):
        return HostOperator(A)
    if isinstance(A, (np.ndarray, jax.Array)) or hasattr(A, "__array__"):
        return DenseOperator(as_array(A) if dtype is None else jnp.asarray(A, dtype=dtype))
    if callable(A):
        raise TypeError("got a bare function; wrap it with from_matvec(fn, *params, size=n), "
                        "fn(v, *params) -> Av with the arrays it reads passed as params (so a "
                        "new operator with new arrays does not recompile)")
    raise TypeError(f"cannot make a linear operator from {type(A).__name__}")


def as_scipy(op) -> Any:
    """A ``scipy.sparse.linalg.LinearOperator`` applying ``op`` (numpy in, numpy out)."""
    import scipy.sparse.linalg as spla

    op = as_operator(op)
    mv = jax.jit(op.matvec)
    rmv = None
    try:
        rmv = jax.jit(op.T.matvec)
    except NotImplementedError:
        pass
    dtype = np.dtype(op.dtype)
    return spla.LinearOperator(
        op.shape,
        matvec=lambda v: np.asarray(mv(jnp.asarray(np.ravel(v), dtype=dtype))),
        rmatvec=None if rmv is None else (
            lambda v: np.asarray(rmv(jnp.asarray(np.ravel(v), dtype=dtype)))),
        dtype=dtype,
    )


def to_dense(op) -> jax.Array:
    """The dense (m, n) matrix of ``op`` (n products, one ``linearize``); for tests and small
    problems only."""
    op = as_operator(op)
    if isinstance(op, DenseOperator):
        return op.matrix
    leaves = jax.tree.leaves(op)
    if len(leaves) == 1 and leaves[0] is op:  # a subclass not registered as a pytree
        return op.linearize().matmat(jnp.eye(op.shape[1], dtype=op.dtype))
    return _dense(op)


@jax.jit
def _dense(op):
    return op.linearize().matmat(jnp.eye(op.shape[1], dtype=op.dtype))
