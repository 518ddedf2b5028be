"""SAPPHIRE: preconditioned, variance-reduced proximal steps for ℓ1 and elastic-net GLMs.

    min_w  Φ(w) = F(w) + r(w),

F a :class:`GLMProblem` (least squares or logistic, + μ/2‖w‖²), r a :class:`precond.glm.L1` or
:class:`precond.glm.ElasticNetPenalty`.

Each epoch takes a snapshot w̃ and its full gradient ∇F(w̃), then ⌊n/b_g⌋ inner steps

    g  = ∇F_B(w) − ∇F_B(w̃) + ∇F(w̃)                                      (SVRG estimator)
    w ← argmin_x ⟨g, x⟩ + ‖x − w‖²_P/(2η) + r(x)                            (scaled prox step)

with P the Nyström preconditioner of :func:`estimate_curvature` (refreshed lazily, as for
SketchySVRG) and η = ½/L̂, L̂ = λ_max(P⁻¹(H_S′ + μI)).  The scaled prox is solved by
:func:`scaled_prox`: semismooth Newton on an r-dimensional dual (see there), warm-started at the
previous step's dual, so P never has to be diagonal and the step stays O(d r²).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..glm.penalties import L1, ElasticNetPenalty
from ..linalg import LowRankPlusIdentity
from ..linalg.status import Status
from ..loop import compile_ahead, run_epochs, timed
from ..validation import check_int, check_key, check_nonnegative, check_positive, check_real
from ._common import (
    StochasticResult,
    _start,
    epoch_batches,
    estimate_curvature,
    learning_rate,
    resolve_defaults,
    snapshot,
    variance_reduced_grad,
)
from .problems import GLMProblem

__all__ = ["sapphire", "scaled_prox", "SapphireState"]

# Semismooth Newton steps of the scaled prox (at most; it stops at _newton_tol) and Armijo halvings.
NEWTON_STEPS = 20
_HALVINGS = 10
_ARMIJO = 1e-4
_RANK = 50  # the default Nyström rank cap
_BATCH = 64  # the default gradient minibatch (cap)
_HESSIAN_BATCH = 256  # the default Hessian subsample's floor: b_H = min(n, max(⌊√n⌋, 256))
# Prox supports up to these sizes build the Newton matrix from their rows only (the smallest
# tier that holds the support; larger supports use all d rows).
_SUPPORT_TIERS = (64, 1024)


def _newton_tol(dtype) -> float:
    """The scaled prox's stopping tolerance: ‖F(γ)‖ ≤ 1e3·eps·max(1, ‖Bᵀ(x − v)‖, ‖γ‖)."""
    return float(1e3 * jnp.finfo(dtype).eps)


def _prox_slope(penalty, v, t):
    """(prox_{t·r}(v), its diagonal derivative): 1/(1 + tλ₂wᵢ) where the prox is nonzero, else 0."""
    x = penalty.prox(v, t)
    on = (x != 0).astype(v.dtype)
    if isinstance(penalty, ElasticNetPenalty):
        return x, on / (1.0 + t * penalty.l2 * penalty.weights)
    return x, on


def _newton_matrix(B, slope):
    """I + Bᵀ diag(slope) B (k, k).  slope is zero off the prox's support J, so only J's rows are
    gathered, padded to the smallest tier K ∈ {64, 1024} (capped at d) that holds |J| (O(K k²));
    a larger support uses all d rows (O(d k²))."""
    d, k = B.shape
    eye = jnp.eye(k, dtype=B.dtype)
    count = jnp.sum(slope != 0)

    def rows_of_support(K):
        def build():
            idx = jnp.nonzero(slope, size=K, fill_value=0)[0]
            s = jnp.where(jnp.arange(K) < count, slope[idx], 0.0)
            Bj = B[idx]
            return eye + (Bj.T * s) @ Bj
        return build

    def all_rows():
        return eye + (B.T * slope) @ B

    tiers = sorted({min(d, K) for K in _SUPPORT_TIERS if min(d, K) < d})
    branches = [rows_of_support(K) for K in tiers] + [all_rows]
    which = jnp.sum(count > jnp.asarray(tiers, count.dtype)) if tiers else jnp.int32(0)
    return lax.switch(which, branches)


def _newton_prox(penalty, v, B, eta, gamma, tol):
    """x = prox_{ηr}(v − Bγ) with γ solving Bᵀ(x(γ) − v) = γ by semismooth Newton (jittable)."""
    def parts(gamma):
        x, slope = _prox_slope(penalty, v - B @ gamma, eta)
        bx = (x - v) @ B
        # ηD(γ): the dual's value, the merit the Newton steps must increase.
        merit = 0.5 * jnp.vdot(x - v, x - v) + jnp.vdot(gamma, bx) - 0.5 * jnp.vdot(gamma, gamma)
        return x, slope, bx - gamma, merit + eta * penalty.value(x), bx

    def cond(c):
        k, _, _, _, res, _, scale = c
        return (k < NEWTON_STEPS) & (jnp.linalg.norm(res) > tol * scale)

    def body(c):
        k, gamma, x, slope, res, merit, _ = c
        M = _newton_matrix(B, slope)
        delta = jnp.linalg.solve(M, res)
        slope0 = _ARMIJO * jnp.vdot(res, delta)

        def halve(h):
            t, _ = h
            return t * 0.5, parts(gamma + 0.5 * t * delta)

        def short(h):
            t, p = h
            return (p[3] < merit + t * slope0) & (t > 2.0**-_HALVINGS)

        t, (x, slope, res, merit, bx) = lax.while_loop(short, halve,
                                                       (jnp.ones((), B.dtype),
                                                        parts(gamma + delta)))
        gamma = gamma + t * delta
        scale = jnp.maximum(1.0, jnp.maximum(jnp.linalg.norm(bx), jnp.linalg.norm(gamma)))
        return k + 1, gamma, x, slope, res, merit, scale

    x, slope, res, merit, bx = parts(gamma)
    scale = jnp.maximum(1.0, jnp.maximum(jnp.linalg.norm(bx), jnp.linalg.norm(gamma)))
    k, gamma, x, _, res, _, _ = lax.while_loop(
        cond, body, (jnp.int32(0), gamma, x, slope, res, merit, scale))
    return x, gamma, k


def _metric_parts(metric: LowRankPlusIdentity):
    """(B, P⁻¹, s) for P = s·I + U diag(c) Uᵀ = s(I + BBᵀ), B = U√(c/s)."""
    B = metric.U * jnp.sqrt(jnp.maximum(metric.d, 0.0) / metric.scale)
    return B, metric.inverse(), metric.scale


def _check_penalty(penalty, d: int, dtype):
    """The penalty as arrays of ``dtype``, or a clear error (only L1 and ElasticNetPenalty)."""
    if not isinstance(penalty, L1 | ElasticNetPenalty):
        raise TypeError("penalty must be precond.glm.L1 or ElasticNetPenalty (the scaled prox "
                        f"needs a separable prox with a known slope), got {type(penalty).__name__}")
    fields = {"lam": "penalty.lam"} if isinstance(penalty, L1) else {"l1": "penalty.l1",
                                                                    "l2": "penalty.l2"}
    values = {k: jnp.asarray(check_nonnegative(getattr(penalty, k), name), dtype)
              for k, name in fields.items()}
    w = np.asarray(penalty.weights, dtype=np.float64)
    if w.shape != (d,):
        raise ValueError(f"penalty.weights has shape {w.shape}; expected ({d},)")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("penalty.weights must be finite and ≥ 0")
    return penalty._replace(weights=jnp.asarray(w, dtype), **values)


def scaled_prox(penalty, g, w, eta, metric: LowRankPlusIdentity | None = None, gamma=None):
    """The scaled proximal step argmin_x ⟨g, x⟩ + ‖x − w‖²_P/(2η) + r(x), and its dual γ.

    P = s(I + BBᵀ) with B = U√(c/s) (d, k), from ``metric`` = s·I + U diag(c) Uᵀ (U orthonormal,
    c ≥ 0; None: P = I).  With v = w − ηP⁻¹g the step is argmin_x ‖x − v‖²_P/(2η) + r(x), whose
    r-dimensional dual gives x(γ) = prox_{(η/s) r}(v − Bγ) at the γ solving

        F(γ) = Bᵀ(x(γ) − v) − γ = 0.

    F is the gradient of the concave dual D (×η/s), so it is solved by semismooth Newton,
    γ ← γ + t(I + Bᵀ diag(x′) B)⁻¹F(γ) (x′ the prox's slope), with Armijo halvings of t on D,
    until ‖F(γ)‖ ≤ 1e3·eps·max(1, ‖Bᵀ(x − v)‖, ‖γ‖) or after ``NEWTON_STEPS`` steps (for the
    piecewise-linear prox of ℓ1 / elastic net it converges in finitely many steps).  Each step
    costs O(dk) plus O(|J|k²) for the Newton matrix, J the prox's support (O(dk²) when
    |J| > 1024).  The returned x is always a prox output (exactly sparse for ℓ1); with P = I it
    is prox_{ηr}(w − ηg), soft-thresholding for ℓ1.

    Args:
      penalty: r, a :class:`precond.glm.L1` or :class:`precond.glm.ElasticNetPenalty` (d,).
      g: the gradient estimate (d,).
      w: the current point (d,).
      eta: η > 0, the step.
      metric: P as a :class:`precond.linalg.LowRankPlusIdentity` (s > 0, c ≥ 0), or None for I.
      gamma: the dual's start (k,) (warm start; default zeros).

    Returns:
      (x (d,), γ (k,), Newton steps taken).

    Example:
      >>> import jax.numpy as jnp
      >>> from precond.glm import L1
      >>> r = L1(jnp.asarray(1.0), jnp.ones(3))
      >>> x, _, _ = scaled_prox(r, jnp.zeros(3), jnp.array([-2.0, 0.5, 3.0]), 1.0)
      >>> x.tolist()                                      # soft-thresholding at η·λ
      [-1.0, 0.0, 2.0]
    """
    w = jnp.asarray(w)
    if metric is None:
        metric = LowRankPlusIdentity(jnp.zeros((w.shape[0], 1), w.dtype), jnp.zeros(1, w.dtype))
    if gamma is None:
        gamma = jnp.zeros(metric.U.shape[1], w.dtype)
    return _scaled_prox(penalty, jnp.asarray(g, w.dtype), w, jnp.asarray(eta, w.dtype), metric,
                        jnp.asarray(gamma, w.dtype))


@jax.jit
def _scaled_prox(penalty, g, w, eta, metric, gamma):
    B, inverse, s = _metric_parts(metric)
    v = w - eta * inverse.matvec(g)
    return _newton_prox(penalty, v, B, eta / s, gamma, _newton_tol(w.dtype))


class SapphireState(NamedTuple):
    """w: the iterate (d,); gamma: the scaled prox's dual (k,), the next step's warm start."""

    w: jax.Array
    gamma: jax.Array


@partial(jax.jit, static_argnames=("batch_size",))
def _epoch(problem, penalty, state, metric, eta, key, *, batch_size):
    """One SAPPHIRE epoch: snapshot, full gradient, ⌊n/b_g⌋ scaled-prox VR steps (jitted scan)."""
    batches = epoch_batches(key, problem.n, batch_size)
    point = state.w
    table, full = snapshot(problem, point)
    B, inverse, s = _metric_parts(metric)
    tol = _newton_tol(point.dtype)

    def step(carry, idx):
        w, gamma, steps = carry
        g = variance_reduced_grad(problem, w, idx, point, table, full)
        x, gamma, k = _newton_prox(penalty, w - eta * inverse.matvec(g), B, eta / s, gamma, tol)
        return (x, gamma, steps + k), None

    (w, gamma, newton), _ = lax.scan(step, (state.w, state.gamma, jnp.int32(0)), batches)
    return SapphireState(w, gamma), jnp.int32(problem.n + batches.size), newton


@jax.jit
def _evaluate(problem, penalty, w):
    """(Φ(w) = F(w) + r(w), ‖w − prox_r(w − ∇F(w))‖: the natural residual, 0 at the optimum)."""
    f, g = problem.value_and_grad(w)
    return f + penalty.value(w), jnp.linalg.norm(w - penalty.prox(w - g, 1.0))


@jax.jit
def _metric(curv_precond):
    """P = (P⁻¹)⁻¹ as I + U diag(1/ratios − 1) Uᵀ from the Nyström preconditioner."""
    return curv_precond.as_low_rank().inverse()


class _Record(NamedTuple):
    objective: float
    residual: float
    grad_evals: int
    lr: float


def sapphire(problem: GLMProblem, penalty, *, epochs: int, key: jax.Array,
             batch_size: int | None = None, hessian_batch_size: int | None = None,
             rank: int | None = None, rho: float | None = None, refresh: int | None = None,
             lr: float | None = None, precondition: bool = True, x0=None, tol: float = 1e-10,
             target: float | None = None, progress: bool = False) -> StochasticResult:
    """SAPPHIRE: min_w F(w) + r(w) by preconditioned SVRG with a scaled proximal step.

    Each epoch takes a snapshot w̃ and ∇F(w̃), then ⌊n/b_g⌋ steps

        g = ∇F_B(w) − ∇F_B(w̃) + ∇F(w̃),   w ← argmin_x ⟨g, x⟩ + ‖x − w‖²_P/(2η) + r(x),

    the second by :func:`scaled_prox` (semismooth Newton on the r-dimensional dual, warm-started,
    to 1e3·eps relative, at most ``NEWTON_STEPS`` steps).  P⁻¹ is SketchySVRG's Nyström
    preconditioner (:func:`precond.stochastic.estimate_curvature`: rank r on a b_H-subsample,
    damping ρ) and η = ½/L̂ with L̂ = λ_max(P⁻¹(H_S′ + μI)); both are refreshed every
    ``refresh`` epochs (default: every epoch for logistic, once for least squares, whose Hessian
    does not move).  Defaults as for :func:`precond.stochastic.solve` except
    b_g = min(64, n) and r = min(50, d, b_H) (chosen on random-feature lasso and ℓ1-logistic:
    larger batches cost more data passes, a rank-10 sketch left most of the spectrum
    unpreconditioned; the measurements are in docs/bench/sapphire.md), b_H = min(n, max(⌊√n⌋,
    256)) (PROMISE's ⌊√n⌋ alone, 12 samples on iris, let L̂ miss the curvature of nearly
    separable classes: most keys diverged or did not converge; docs/results/promise.md), and
    ρ = μ + λ₂·mean(weights) for an elastic net (the penalty's curvature).  One epoch costs
    n + ⌊n/b_g⌋b_g gradient evaluations (≈ 2 data passes: ∇F_B(w̃) is read from the snapshot's
    table of φ′, :func:`precond.stochastic.snapshot`).  A fixed point is the composite
    optimum: there g = ∇F(w*) and w* solves the step.  Data in sparse storage (``EllRows``)
    stays sparse.

    Results: the rank, ρ, b_g, b_H and steps per epoch used are recorded; ``objective`` is
    Φ = F + r per epoch; ``grad_norm`` the natural residual
    ‖w − prox_r(w − ∇F(w))‖ (0 exactly at the optimum); status ``CONVERGED`` when it is
    ≤ tol·max(1, its start) or Φ ≤ ``target``, ``MAX_ITERATIONS`` after ``epochs``,
    ``DIVERGED`` on a non-finite or exploding Φ (the last finite iterate is returned).

    Args:
      problem: F, a :class:`GLMProblem` (``least_squares`` or ``logistic``; n samples, d features).
      penalty: r, :class:`precond.glm.L1` (λ ≥ 0) or :class:`precond.glm.ElasticNetPenalty`
        (λ₁, λ₂ ≥ 0), with ``weights`` (d,) ≥ 0.
      epochs: the most epochs (≥ 1).
      key: a jax.random key (minibatches, sketches); required.
      batch_size: b_g, the gradient minibatch (default min(64, n)).
      hessian_batch_size: b_H, the Hessian subsample (default min(n, max(⌊√n⌋, 256))).
      refresh, x0: epochs between refreshes (0 = once), the start (d,): as for
        :func:`precond.stochastic.solve`.
      rank: r, the Nyström rank (default min(50, d, b_H)).
      rho: ρ ≥ 0, P's damping (default μ + λ₂·mean(weights)).
      lr: η > 0 (default ½/L̂).
      precondition: False gives P = I: proximal SVRG with η = ½/λ_max(H_S′ + μI) estimated once.
      tol: stop when the natural residual ≤ tol·max(1, its value at x₀).
      target: stop when Φ ≤ target.
      progress: show a progress bar.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np
      >>> from precond.stochastic import L1, least_squares, sapphire
      >>> rng = np.random.default_rng(0)
      >>> X = rng.standard_normal((200, 5)); y = X @ np.array([1.0, 0, 0, -2.0, 0])
      >>> res = sapphire(least_squares(X, y, 0.0), L1(0.1, jnp.ones(5)), epochs=20,
      ...                key=jax.random.key(0), batch_size=20, tol=1e-4)
      >>> str(res.status), [bool(v != 0) for v in res.x]          # the support of w
      ('converged', [True, False, False, True, False])

    References:
      Sun, Frangella, Udell, "SAPPHIRE: Preconditioned stochastic variance reduction for faster
      large-scale statistical learning", arXiv:2501.15941, 2025.
      Becker, Fadili, Ochs, "On quasi-Newton forward-backward splitting: proximal calculus and
      convergence", SIAM J. Optim. 2019 (the low-rank dual of the scaled prox).
    """
    if not isinstance(problem, GLMProblem):
        raise TypeError("problem must be a GLMProblem from precond.stochastic.least_squares or "
                        f"logistic, got {type(problem).__name__}")
    dtype = problem.dtype
    penalty = _check_penalty(penalty, problem.d, dtype)
    if rho is None:
        rho = float(problem.mu)
        if isinstance(penalty, ElasticNetPenalty):
            rho += float(penalty.l2) * float(jnp.mean(penalty.weights))
    if batch_size is None:  # b_g = min(64, n): see docs/bench/sapphire.md
        batch_size = min(_BATCH, problem.n)
    if hessian_batch_size is None:  # ⌊√n⌋ samples (PROMISE's b_H) misjudge L̂ on small n
        hessian_batch_size = min(problem.n, max(int(np.sqrt(problem.n)), _HESSIAN_BATCH))
    defaults = resolve_defaults(problem, batch_size=batch_size,
                                hessian_batch_size=hessian_batch_size, rank=rank, rho=rho,
                                refresh=refresh)
    if rank is None:  # r = min(50, d, b_H): the scaled prox costs O(d r²) a Newton step
        defaults = defaults._replace(rank=min(_RANK, problem.d, defaults.hessian_batch_size))
    lr = None if lr is None else check_positive(lr, "lr")
    epochs = check_int(epochs, "epochs", low=1)
    check_key(key)
    tol = check_nonnegative(tol, "tol")
    target = None if target is None else check_real(target, "target")
    if not isinstance(precondition, bool):
        raise TypeError(f"precondition must be a bool, got {type(precondition).__name__}")
    x = _start(problem, x0)
    static = dict(rank=defaults.rank if precondition else 1, bh=defaults.hessian_batch_size,
                  sketchy=precondition)
    every = defaults.refresh if precondition else 0
    rho = jnp.asarray(defaults.rho, dtype)

    f0, r0 = (float(v) for v in _evaluate(problem, penalty, x))
    rscale = max(1.0, r0)
    key, k_curv = jax.random.split(key)
    compile_time = 0.0
    elapsed = 0.0
    curv_c = None
    if precondition or lr is None:
        curv_c, compile_time = compile_ahead(estimate_curvature, problem, x, k_curv, rho, **static)
        curv, elapsed = timed(curv_c, problem, x, k_curv, rho)
        L = curv.L
    else:
        L = jnp.asarray(jnp.nan, dtype)
    if precondition:
        metric, dt = timed(_metric, curv.precond)
        elapsed += dt
    else:
        metric = LowRankPlusIdentity(jnp.zeros((problem.d, 1), dtype), jnp.zeros(1, dtype))
    eta = jnp.asarray(learning_rate(L, lr), dtype)
    state = SapphireState(x, jnp.zeros(metric.U.shape[1], dtype))
    epoch_c, dt = compile_ahead(_epoch, problem, penalty, state, metric, eta, key,
                                batch_size=defaults.batch_size)
    compile_time += dt

    def epoch(k, carry):
        key, state, metric, eta = carry
        key, k_epoch, k_curv = jax.random.split(key, 3)
        if precondition and k > 0 and every > 0 and k % every == 0:
            curv = curv_c(problem, state.w, k_curv, rho)
            metric = _metric(curv.precond)
            eta = jnp.asarray(learning_rate(curv.L, lr), dtype)
            state = state._replace(gamma=jnp.zeros_like(state.gamma))  # a new metric's dual
        state, evals, _ = epoch_c(problem, penalty, state, metric, eta, k_epoch)
        return (key, state, metric, eta), (evals, eta)

    def evaluate(carry, out):
        evals, eta = out
        f, res = (float(v) for v in _evaluate(problem, penalty, carry[1].w))
        return _Record(f, res, int(evals), float(eta))

    def converged(r):
        return r.residual <= tol * rscale or (target is not None and r.objective <= target)

    run = run_epochs(epoch, (key, state, metric, eta), epochs, evaluate=evaluate,
                     objective=lambda r: r.objective if np.isfinite(r.residual) else np.nan,
                     start=f0, converged=converged, progress=progress,
                     name="SAPPHIRE" if precondition else "prox-SVRG")
    status = Status.MAX_ITERATIONS if run.status == Status.SUCCESS else run.status
    rec = run.records
    return StochasticResult(
        x=run.state[1].w,
        objective=np.asarray([f0] + [r.objective for r in rec]),
        grad_evals=np.concatenate([[0], np.cumsum([r.grad_evals for r in rec])]),
        times=np.asarray([0.0] + [elapsed + t for t in run.times]),
        converged=np.asarray(status == Status.CONVERGED),
        status=status,
        grad_norm=np.asarray([r0] + [r.residual for r in rec]),
        lr=np.asarray([np.nan] + [r.lr for r in rec]),
        compile_time=np.asarray(compile_time),
        rank=defaults.rank if precondition else 0,
        rho=float(defaults.rho) if precondition else float("nan"),
        batch_size=defaults.batch_size,
        hessian_batch_size=defaults.hessian_batch_size,
        steps_per_epoch=problem.n // defaults.batch_size)
