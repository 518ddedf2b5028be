"""Operators known only through a function: ``from_matvec`` (closure-free) and scipy operators.

``from_matvec(matvec, *params, size=n)`` follows matfree: the function takes the vector and then
the arrays it needs, ``matvec(v, *params)``, and the operator keeps ``params`` as pytree leaves
and only the function object, shape and dtype as static data.  So the same function with new
arrays of the same shapes reuses every compiled solver (``cg``, ``nystrom_pcg``, ``lanczos``, …):
nothing recompiles when a user builds a new operator per step.  A function that closes over
arrays still works, but each new closure is a new static value, hence a new compile.

A ``scipy.sparse.linalg.LinearOperator`` becomes a :class:`HostOperator`: its products run on
the host through ``jax.pure_callback`` (numpy in, numpy out).  It works inside ``jit`` and under
``vmap`` (one host call per vector, in sequence) but is not differentiable, and every product
is a device → host → device round trip.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import register_pytree_node_class

from precond.validation import check_callable, check_int, float_dtype

from ._checks import as_array
from .operators import LinearOperator

__all__ = ["MatvecOperator", "from_matvec", "HostOperator", "is_scipy_operator"]


@register_pytree_node_class
class MatvecOperator(LinearOperator):
    """A ↦ ``matvec(v, *params)``; ``rmatvec(v, *params)`` (Aᵀv) is optional.

    A pytree: ``params`` are its leaves; ``matvec``, ``rmatvec``, ``shape`` and ``dtype`` its
    static data (see the module docstring).  Build it with :func:`from_matvec`.

    Args:
      matvec: v (n,) ↦ Av (m,), called as ``matvec(v, *params)``.
      shape: (m, n).
      dtype: the dtype of the products.
      rmatvec: v (m,) ↦ Aᵀv (n,), called as ``rmatvec(v, *params)``; None if unknown.
      params: a tuple of pytrees of arrays passed after v.
    """

    def __init__(self, matvec: Callable, shape, dtype, rmatvec: Callable | None = None,
                 params: tuple = ()):
        self._matvec, self._rmatvec = matvec, rmatvec
        self.params = tuple(params)
        self.shape = tuple(int(s) for s in shape)
        self.dtype = jnp.dtype(dtype)

    def matvec(self, v):
        return self._matvec(v, *self.params)

    @property
    def symmetric(self) -> bool:
        """True when built with ``rmatvec`` = ``matvec`` (the caller declared Aᵀ = A)."""
        return self._rmatvec is not None and self._rmatvec is self._matvec

    @property
    def T(self):
        if self._rmatvec is None:
            raise NotImplementedError("this operator was built without rmatvec")
        return MatvecOperator(self._rmatvec, self.shape[::-1], self.dtype, self._matvec,
                              self.params)

    def tree_flatten(self):
        return (self.params,), (self._matvec, self._rmatvec, self.shape, self.dtype)

    @classmethod
    def tree_unflatten(cls, aux, children):
        matvec, rmatvec, shape, dtype = aux
        return cls(matvec, shape, dtype, rmatvec, children[0])


def _check_leaves(params) -> tuple:
    """numpy leaves moved to the device once; non-array leaves rejected (they cannot be traced)."""
    out = []
    for i, p in enumerate(params):
        leaves, treedef = jax.tree.flatten(p)
        for leaf in leaves:
            if not isinstance(leaf, (jax.Array, np.ndarray, np.generic, int, float, complex)):
                raise TypeError(
                    f"from_matvec: params[{i}] holds a {type(leaf).__name__}; params must be "
                    "pytrees of arrays (pass functions and other constants as part of matvec)")
        out.append(jax.tree.unflatten(
            treedef, [as_array(x) if isinstance(x, np.ndarray) else x for x in leaves]))
    return tuple(out)


def from_matvec(matvec: Callable, *params: Any, size: int | None = None, dtype=None,
                rmatvec: Callable | None = None) -> MatvecOperator:
    """A square (n, n) operator v ↦ ``matvec(v, *params)`` whose arrays are pytree leaves.

    Write the function once (module level, or defined once outside any loop) and pass the
    arrays it reads as ``params``: a new operator of the same function with new arrays of the
    same shapes then reuses every compiled solver.

    Args:
      matvec: v (n,) ↦ Av (n,), called as ``matvec(v, *params)``.
      *params: pytrees of arrays (numpy arrays move to the device once).
      size: n (keyword-only, ≥ 1).
      dtype: the dtype of the products; default: the floating result type of the params'
        leaves, or the default float (float64 when ``jax_enable_x64`` is on) when none is
        floating.
      rmatvec: v ↦ Aᵀv with the same signature (the same function for a symmetric A); None
        leaves ``.T`` undefined.

    Example:
      >>> import jax.numpy as jnp
      >>> from precond.linalg import cg, from_matvec
      >>> def gram(v, X):  # v ↦ XᵀXv, never forming XᵀX
      ...     return (X @ v) @ X
      >>> X = jnp.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
      >>> A = from_matvec(gram, X, size=2, rmatvec=gram)  # XᵀX = [[2, 1], [1, 5]]
      >>> x = cg(A, jnp.array([1.0, 1.0]), tol=1e-6).x
      >>> print((9 * x).round(3))  # x = (4/9, 1/9)
      [4. 1.]
    """
    check_callable(matvec, "matvec", "matvec(v, *params)")
    if rmatvec is not None:
        check_callable(rmatvec, "rmatvec", "rmatvec(v, *params)")
    if size is None:
        raise TypeError("from_matvec needs size=n (keyword-only): from_matvec(fn, *params, "
                        "size=n), with fn(v, *params) -> Av")
    size = check_int(size, "size", low=1)
    params = _check_leaves(params)
    # an integer or boolean dtype is promoted: products are never computed in integers
    dtype = float_dtype(*params) if dtype is None else float_dtype(jnp.dtype(dtype))
    _check_output(matvec, params, size, dtype, "matvec")
    if rmatvec is not None and rmatvec is not matvec:
        _check_output(rmatvec, params, size, dtype, "rmatvec")
    return MatvecOperator(matvec, (size, size), dtype, rmatvec, params)


def _check_output(fn, params, size: int, dtype, name: str) -> None:
    """``ValueError`` naming ``size`` when ``fn(v, *params)``, v of shape (size,), does not
    return shape (size,); traced abstractly once (``jax.eval_shape``: no computation)."""
    v = jax.ShapeDtypeStruct((size,), dtype)
    try:
        out = jax.eval_shape(fn, v, *params)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError,
            jax.errors.TracerBoolConversionError, jax.errors.TracerIntegerConversionError):
        return  # not a shape error: left to the solver, which says the same
    except (TypeError, ValueError) as e:
        raise ValueError(f"from_matvec: {name}(v, *params) fails for v of shape ({size},) "
                         f"(size={size}): {str(e).splitlines()[0]}") from e
    if getattr(out, "shape", None) != (size,):
        raise ValueError(f"from_matvec: {name}(v, *params) returns shape "
                         f"{getattr(out, 'shape', type(out).__name__)} for v of shape ({size},); "
                         f"expected ({size},) (size={size})")


def is_scipy_operator(A) -> bool:
    """True for a ``scipy.sparse.linalg.LinearOperator`` (scipy imported only if loaded)."""
    import sys

    spla = sys.modules.get("scipy.sparse.linalg")
    return spla is not None and isinstance(A, spla.LinearOperator)


def _host_apply(op, method: str, dtype, x):
    out = getattr(op, method)(np.asarray(x))
    return np.asarray(out, dtype=dtype).reshape(np.shape(out)[:1] + np.shape(x)[1:])


@register_pytree_node_class
class HostOperator(LinearOperator):
    """A ``scipy.sparse.linalg.LinearOperator`` applied on the host by ``jax.pure_callback``.

    Runs on the host, not on the accelerator; not differentiable; under ``vmap`` it applies
    the vectors one after another (``matmat`` sends the whole block in one call).  Its dtype is
    scipy's, canonicalized (float64 becomes float32 when x64 is off), or the default float for
    an integer or unknown dtype.  The scipy object is static data (compared by identity).

    Args:
      operator: the scipy operator, shape (m, n).
    """

    def __init__(self, operator):
        self.operator = operator
        self.shape = tuple(int(s) for s in operator.shape)
        dt = getattr(operator, "dtype", None)
        dt = float_dtype(np.dtype(dt)) if dt is not None else float_dtype()
        self.dtype = np.dtype(jax.dtypes.canonicalize_dtype(dt))

    def _call(self, method: str, x, rows: int):
        out = jax.ShapeDtypeStruct((rows,) + x.shape[1:], self.dtype)
        fn = lambda y: _host_apply(self.operator, method, self.dtype, y)  # noqa: E731
        return jax.pure_callback(fn, out, x.astype(self.dtype), vmap_method="sequential")

    def matvec(self, v):
        return self._call("matvec", v, self.shape[0])

    def matmat(self, V):
        return self._call("matmat", V, self.shape[0])

    @property
    def T(self):
        return HostOperator(self.operator.T)

    def tree_flatten(self):
        return (), self.operator

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(aux)
