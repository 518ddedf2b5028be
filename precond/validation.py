"""The one place for argument checks: scalars, integers, keys, options and float dtypes.

Every public entry point of precond validates its arguments here, at call time, and raises a
``ValueError`` or ``TypeError`` that names the argument and its allowed range.  Traced values
(inside ``jit``, ``vmap``, ``grad`` or ``optax.inject_hyperparams``) cannot be inspected and pass
through unchanged: they are checked where they were concrete, or by the solver's status.

This module imports nothing from the rest of precond, so every layer may use it.

Example:
  >>> from precond.validation import check_positive, check_int
  >>> check_positive(1e-3, "damping")
  0.001
  >>> check_int(5, "rank", low=1)
  5
  >>> check_positive(float("nan"), "damping")
  Traceback (most recent call last):
  ...
  ValueError: damping must be a finite number > 0, got nan
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "is_concrete",
    "check_positive",
    "check_nonnegative",
    "check_real",
    "check_fraction",
    "check_int",
    "check_key",
    "check_callable",
    "check_options",
    "check_finite_array",
    "default_float",
    "float_dtype",
]


def is_concrete(x) -> bool:
    """True when ``x`` holds values now (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def _scalar(x, name: str) -> float:
    if isinstance(x, bool) or isinstance(x, np.bool_):
        raise TypeError(f"{name} must be a real number, got a bool")
    try:
        arr = np.asarray(x)
    except Exception:  # noqa: BLE001 - any object numpy cannot read is the caller's error
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}") from None
    if arr.ndim != 0 or arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real scalar, got {type(x).__name__} "
                        f"{arr.dtype}{list(arr.shape) if arr.ndim else ''}")
    return float(arr)


def check_real(x, name: str):
    """``x`` as a finite float (``ValueError`` for NaN/inf, ``TypeError`` for non-numbers)."""
    if not is_concrete(x):
        return x
    v = _scalar(x, name)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {v}")
    return v


def check_positive(x, name: str, *, allow_zero: bool = False):
    """``x`` as a float, raising ``ValueError`` naming it unless finite and > 0 (≥ 0).

    Args:
      x: a Python or numpy scalar, a 0-d array, or a tracer (returned unchecked).
      name: the argument's name, as the caller spelled it.
      allow_zero: accept 0.
    """
    if not is_concrete(x):
        return x
    v = _scalar(x, name)
    ok = np.isfinite(v) and (v >= 0 if allow_zero else v > 0)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'≥' if allow_zero else '>'} 0, "
                         f"got {v}")
    return v


def check_nonnegative(x, name: str):
    """``x`` as a finite float ≥ 0 (see :func:`check_positive`)."""
    return check_positive(x, name, allow_zero=True)


def check_fraction(x, name: str, *, low: float = 0.0, high: float = 1.0,
                   closed_high: bool = False):
    """``x`` as a float in [low, high) (or [low, high] with ``closed_high``): decays, β's."""
    if not is_concrete(x):
        return x
    v = _scalar(x, name)
    ok = np.isfinite(v) and low <= v and (v <= high if closed_high else v < high)
    if not ok:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}{']' if closed_high else ')'}, "
                         f"got {v}")
    return v


def check_int(x, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``x`` as a Python int in [low, high] (either bound optional); bools are rejected."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    v = int(x)
    if (low is not None and v < low) or (high is not None and v > high):
        lo = "" if low is None else f"{low} ≤ "
        hi = "" if high is None else f" ≤ {high}"
        raise ValueError(f"{name} must satisfy {lo}{name}{hi}, got {v}")
    return v


def check_key(key, name: str = "key") -> jax.Array:
    """A ``jax.random`` key; ``None`` is an error: precond draws no hidden randomness."""
    if key is None:
        raise TypeError(f"{name}: a jax.random key is required (e.g. jax.random.key(0)); "
                        "precond draws no hidden randomness")
    try:
        dtype = jnp.asarray(key).dtype if not hasattr(key, "dtype") else key.dtype
    except TypeError:
        raise TypeError(f"{name} must be a jax.random key, got {type(key).__name__}") from None
    if not (jnp.issubdtype(dtype, jax.dtypes.prng_key) or (
            dtype == jnp.uint32 and tuple(np.shape(key))[-1:] == (2,))):
        raise TypeError(f"{name} must be a jax.random key (jax.random.key(0)), got an array "
                        f"of dtype {dtype} and shape {tuple(np.shape(key))}")
    return key


def check_callable(fn, name: str, signature: str = "") -> Any:
    """``fn`` if callable, else ``TypeError`` naming the expected signature."""
    if not callable(fn):
        raise TypeError(f"{name} must be callable{' ' + signature if signature else ''}, got "
                        f"{type(fn).__name__}")
    return fn


def check_options(given: Mapping[str, Any], valid: Iterable[str], what: str) -> None:
    """Raise ``TypeError`` naming every unknown key of ``given`` and the valid ones.

    A misspelt option (``dampng=``) must not be dropped silently.
    """
    valid = sorted(set(valid))
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise TypeError(f"{what} got unknown option{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(unknown)}; valid options: {', '.join(valid) or '(none)'}")


def check_finite_array(x, name: str) -> None:
    """Raise ``ValueError`` when a concrete array contains NaN or inf (tracers pass).

    An array spread over several devices (row-sharded data, precond.distributed) is checked where
    it lives, by a reduction on its devices: copying it to the host would gather it (and fails
    for an array that spans other processes' devices).
    """
    if is_concrete(x) and jnp.issubdtype(jnp.result_type(x), jnp.inexact):
        if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
            # Eagerly even when x is a constant captured under a jit trace (else a tracer).
            with jax.ensure_compile_time_eval():
                finite = bool(jnp.all(jnp.isfinite(x)))
        else:
            finite = bool(np.all(np.isfinite(np.asarray(x))))
        if not finite:
            raise ValueError(f"{name} contains NaN or inf")


def default_float() -> np.dtype:
    """The default float dtype now: float64 when ``jax_enable_x64`` is on, else float32."""
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))


def float_dtype(*xs) -> np.dtype:
    """The floating dtype to compute in for arrays (or pytrees, or dtypes) ``xs``.

    The result type of their floating leaves (integer and boolean leaves are ignored), or
    :func:`default_float` when none is floating: an integer matrix is solved in the default
    float, never in its own integer dtype.
    """
    dtypes = []
    for x in xs:
        for leaf in jax.tree.leaves(x):
            dt = leaf if isinstance(leaf, np.dtype) else jnp.result_type(leaf)
            if jnp.issubdtype(dt, jnp.inexact):
                dtypes.append(dt)
    return np.dtype(jnp.result_type(*dtypes)) if dtypes else default_float()
