"""The contract every fuzz test asserts (issue #19), and the strategies they share.

Either a *clear error* — ``ValueError``, ``TypeError`` or ``SolverError`` raised by precond's
own checks (the innermost frame is in precond, or in scikit-learn's input validation for the
estimators), whose message names the argument — or a result whose status is *honest*: a
success status only with finite numbers, and "converged" only when a residual recomputed in
float64 with numpy meets the tolerance, up to the rounding of the working dtype
(:func:`rounding_slack`).  Never an IndexError, ZeroDivisionError, KeyError, NotImplementedError
or an error from inside jax or numpy.

Case counts scale with the hypothesis profile (tests/conftest.py): ``budget(k)`` runs k
examples in the default ("ci") profile, 20·k in "long".
"""

from __future__ import annotations

import os
import traceback

import numpy as np
import sklearn
from hypothesis import settings
from hypothesis import strategies as st

import precond
from precond.linalg import SUCCESSES, SolverError, Status

CLEAR = (ValueError, TypeError, SolverError)
# where a clear error may be raised: precond's checks, scikit-learn's input validation
_PRECOND = os.path.dirname(os.path.abspath(precond.__file__)) + os.sep
_SKLEARN = os.path.dirname(os.path.abspath(sklearn.__file__)) + os.sep
_OWN = (_PRECOND, os.path.join(_SKLEARN, "utils") + os.sep, os.path.join(_SKLEARN, "base.py"))
N = 6  # one operator size for every solve, so each compiled program serves all examples
DTYPES = ("int", "bool", "float16", "float32", "float64")
POISONS = (float("nan"), float("inf"), -float("inf"))


def budget(k: int) -> settings:
    """``settings`` running k examples in the default profile (scaled by the loaded one)."""
    scale = settings.default.max_examples / 10
    return settings(max_examples=max(1, int(round(k * scale))))


def outcome(fn, *names: str):
    """``("ok", result)`` or ``("error", exc)`` for a clear error naming one of ``names``.

    Anything else fails the test: an exception of another type, one raised inside jax/numpy
    (a traceback from deep inside a dependency), or a message that names none of ``names``.
    """
    try:
        return "ok", fn()
    except CLEAR as exc:
        frames = traceback.extract_tb(exc.__traceback__)
        where = os.path.abspath(frames[-1].filename) if frames else ""
        assert where.startswith(_OWN), (
            f"{type(exc).__name__} raised inside a dependency ({where}): {exc}")
        msg = str(exc)
        if names and not isinstance(exc, SolverError):
            assert any(n in msg for n in names), f"message names none of {names}: {msg!r}"
        return "error", exc


def rounding_slack(dtype, n: int, *norms: float) -> float:
    """10·n·eps(dtype)·Σ norms: what recomputing a residual in the working dtype can miss."""
    eps = float(np.finfo(np.dtype(dtype)).eps) if np.dtype(dtype).kind == "f" else 2.2e-16
    return 10 * n * eps * float(sum(norms))


def assert_honest(status, *arrays) -> Status:
    """A success status comes with finite arrays; returns the status as a member."""
    s = Status(int(status))
    if s in SUCCESSES:
        for a in arrays:
            assert np.all(np.isfinite(np.asarray(a, np.float64))), f"{s} with non-finite values"
    return s


def np_dtype(name: str) -> np.dtype:
    return np.dtype({"int": np.int64, "bool": np.bool_}.get(name, name))


@st.composite
def matrices(draw, kinds=("spd", "psd", "indefinite", "nonsymmetric"), n: int = N,
             dtypes=DTYPES, poison: bool = True):
    """(A as a numpy array of a drawn dtype, kind, poisoned): A is n × n.

    spd/psd/indefinite: Q diag(λ) Qᵀ with λ log-spaced over up to 6 decades (psd: some λ = 0;
    indefinite: some λ < 0); int and bool matrices are built from small integers (int: BᵀB
    plus the identity, bool: a symmetric 0/1 pattern with a true diagonal); nonsymmetric: an
    upper-triangular perturbation.  The kind returned is what A is (a bool pattern is
    "indefinite": it may be).  ``poisoned``: one entry set to NaN or ±inf.
    """
    kind = draw(st.sampled_from(kinds))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if dtype == "int":
        B = rng.integers(-3, 4, (n, n))
        A = B.T @ B + np.eye(n, dtype=np.int64)
        if kind == "indefinite":
            A = A - 2 * int(np.trace(A)) // n * np.eye(n, dtype=np.int64)
    elif dtype == "bool":
        P = rng.random((n, n)) < 0.3
        A = P | P.T | np.eye(n, dtype=bool)
        kind = "nonsymmetric" if kind == "nonsymmetric" else "indefinite"  # may be either
    else:
        decades = draw(st.floats(0.0, 6.0))
        lam = np.logspace(0.0, -decades, n)
        if kind == "psd":
            lam[n // 2:] = 0.0
        elif kind == "indefinite":
            lam[: draw(st.integers(1, n - 1))] *= -1
        Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
        A = (Q * lam) @ Q.T
        A = (A + A.T) / 2
    if kind == "nonsymmetric":
        A = A + (np.triu(np.ones((n, n)), 1) * 3).astype(A.dtype)
    A = A.astype(np_dtype(dtype))
    poisoned = poison and dtype not in ("int", "bool") and draw(st.booleans()) and draw(
        st.booleans())  # a quarter of the float matrices
    if poisoned:
        i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
        A = A.copy()
        A[i, j] = draw(st.sampled_from(POISONS))
    return A, kind, poisoned


def vectors(n: int = N, dtypes=DTYPES):
    """A right-hand side (n,), mostly well formed; sometimes poisoned or of the wrong shape."""
    def build(args):
        dtype, seed, shape_case, poison = args
        rng = np.random.default_rng(seed)
        shape = {"ok": (n,), "short": (n - 1,), "column": (n, 1), "empty": (0,)}[shape_case]
        v = rng.standard_normal(shape) + 1.0
        if dtype == "bool":
            v = v > 0.5
        elif dtype == "int":
            v = np.round(3 * v).astype(np.int64)
        else:
            v = v.astype(dtype)
        if poison is not None and v.size and dtype not in ("int", "bool"):
            v = v.copy()
            v.flat[0] = poison
        return v
    return st.tuples(st.sampled_from(dtypes), st.integers(0, 2**16),
                     st.sampled_from(["ok"] * 6 + ["short", "column", "empty"]),
                     st.one_of(st.none(), st.none(), st.none(), st.sampled_from(POISONS))
                     ).map(build)


def scalars(low: float = 0.0, high: float = 1.0):
    """Mostly valid scalars in [low, high], and the bad ones: NaN, ±inf, negative, a bool."""
    return st.one_of(st.floats(low, high), st.floats(low, high),
                     st.sampled_from(POISONS + (-1.0, True)))
