"""One status enum shared by every iterative solver in precond.

Solvers return the status as an integer array (so they stay ``jit``-able); compare it with the
members (``result.status == Status.CONVERGED``) or turn it into a member with ``Status(int(s))``.
Each member carries a message that says what to try.
"""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """Why an iterative solver stopped."""

    CONVERGED = 0
    MAX_ITERATIONS = 1
    NEGATIVE_CURVATURE = 2
    BREAKDOWN = 3
    NONFINITE = 4
    DIVERGED = 5
    STALLED = 6
    SUCCESS = 7
    STEP_ACCEPTED = 8
    PRECISION_LIMITED = 9

    @property
    def message(self) -> str:
        return _MESSAGES[self]

    def __str__(self) -> str:  # "negative_curvature", as users read it
        return self.name.lower()


_MESSAGES = {
    Status.CONVERGED: "converged: the stopping criterion was met.",
    Status.MAX_ITERATIONS: (
        "maximum iterations reached before the tolerance; raise maxiter, loosen tol, or use a "
        "(better) preconditioner."
    ),
    Status.NEGATIVE_CURVATURE: (
        "negative curvature: found p with pᵀAp ≤ 0, so A is not positive definite; add damping "
        "(A + μI with larger μ), use a Gauss–Newton/Fisher operator, or check the operator."
    ),
    Status.BREAKDOWN: (
        "breakdown: rᵀM⁻¹r ≤ 0 or a zero denominator, so the preconditioner is not positive "
        "definite; check M (it must apply the inverse of an SPD matrix)."
    ),
    Status.NONFINITE: (
        "non-finite values (NaN or inf) appeared; check the inputs, the operator, and the "
        "dtype (float32 overflow), or add damping."
    ),
    Status.DIVERGED: (
        "diverged: the objective became non-finite or grew without bound; lower the learning "
        "rate or add damping."
    ),
    Status.STALLED: (
        "stalled: no progress could be made (line search failed or step underflowed); the "
        "iterate may already be optimal to working precision."
    ),
    Status.SUCCESS: (
        "success: the run completed the work it was asked for (all epochs or steps) without "
        "a failure; it makes no claim that a tolerance was met."
    ),
    Status.STEP_ACCEPTED: (
        "step accepted: the step met its acceptance test (e.g. sufficient decrease); a single "
        "step says nothing about convergence."
    ),
    Status.PRECISION_LIMITED: (
        "precision limited: the recomputed residual ‖b − Ax‖ does not meet the tolerance, "
        "which lies below what the working precision can deliver (about 10·eps·(‖b‖ + "
        "‖A‖‖x‖), i.e. a relative tol under ~10·eps·κ(A)); solve in float64, loosen tol, or "
        "precondition better (a smaller κ lowers that floor)."
    ),
}


class SolverError(RuntimeError):
    """Raised by ``throw=True`` solvers (and ``check``) when a solve did not succeed."""

    def __init__(self, status: Status, detail: str = ""):
        self.status = status
        super().__init__(f"{status}: {status.message}" + (f" ({detail})" if detail else ""))


def status_of(code) -> Status:
    """Turn an integer status (array or int) into a :class:`Status` member."""
    return Status(int(code))


# Statuses that mean the solver did what it was asked: ``check()`` passes on these.
SUCCESSES = frozenset({Status.CONVERGED, Status.SUCCESS, Status.STEP_ACCEPTED})


def check_status(code, detail: str = "") -> Status:
    """The :class:`Status` of ``code``; raises :class:`SolverError` unless it is a success.

    Every result type's ``.check()`` calls this, so "did it work?" has one answer everywhere:
    CONVERGED, SUCCESS and STEP_ACCEPTED pass, every other status raises with its message.
    """
    status = status_of(code)
    if status not in SUCCESSES:
        raise SolverError(status, detail)
    return status
