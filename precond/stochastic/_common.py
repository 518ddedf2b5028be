"""What the PROMISE solvers share: the result, the preconditioner refresh, the learning rate, and
the epoch driver (a Python loop over epochs, each epoch one compiled ``lax.scan``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import register_pytree_node_class

from ..linalg.nystrom import NystromPreconditioner, nystrom
from ..linalg.operators import IdentityOperator, LinearOperator
from ..linalg.power import power_iteration
from ..linalg.status import Status
from .problems import GLMProblem

__all__ = ["StochasticResult", "Curvature", "Defaults", "resolve_defaults", "estimate_curvature",
           "run_epochs", "epoch_batches", "drive",
           "check_lr", "learning_rate", "positive_float"]

# Cap on power-iteration steps for λ_max(P⁻¹H) (it usually stops much earlier, at 1e-3 relative).
_POWER_STEPS = 50


class StochasticResult(NamedTuple):
    """Outcome of a stochastic solver run.

    x: the final iterate (the last finite one if the run diverged).  objective, grad_evals,
    times: per epoch, index 0 = the start (so ``len == epochs_run + 1``); ``grad_evals`` counts
    per-sample gradients cumulatively (a full gradient is n; divide by n for data passes;
    Hessian-vector products of the refresh are not counted), ``times`` cumulative seconds of
    solver work (refreshes + epochs; objective evaluations and compilation excluded).
    converged/status: ``Status.CONVERGED`` when ‖∇F‖ ≤ tol·max(1, ‖∇F(x₀)‖) or the objective
    reached ``target``; ``MAX_ITERATIONS`` after ``epochs``; ``DIVERGED`` when the objective
    became non-finite.  grad_norm: ‖∇F‖ per epoch; lr: the learning rate used in each epoch
    (nan at index 0); compile_time: seconds spent compiling, reported apart.
    """

    x: jax.Array
    objective: np.ndarray
    grad_evals: np.ndarray
    times: np.ndarray
    converged: bool
    status: Status
    grad_norm: np.ndarray
    lr: np.ndarray
    compile_time: float


class Curvature(NamedTuple):
    """A refreshed preconditioner P⁻¹ and L̂ = λ_max(P^{-1/2}(H_S′ + μI)P^{-1/2}) on an
    independent subsample S′ (P⁻¹ = I for the unpreconditioned methods)."""

    precond: Any
    L: jax.Array


class Defaults(NamedTuple):
    batch_size: int
    hessian_batch_size: int
    rank: int
    rho: float
    refresh: int  # epochs between refreshes; 0 = once


def _positive_int(value, name, upper=None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1 or (upper is not None and value > upper):
        rng = f"[1, {upper}]" if upper is not None else "≥ 1"
        raise ValueError(f"{name} must be in {rng}, got {value}")
    return int(value)


def positive_float(value, name, allow_zero=False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        rng = "≥ 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {rng}, got {v}")
    return v


def resolve_defaults(problem: GLMProblem, *, batch_size, hessian_batch_size, rank, rho,
                     refresh) -> Defaults:
    """Fill in PROMISE's defaults and check every hyperparameter.

    b_g = min(256, n); b_H = ⌊√n⌋; r = min(10, d); ρ = μ (see ``sketchy_sgd``); refresh every
    epoch for logistic (the Hessian moves with w), once for least squares (it does not).
    """
    if not isinstance(problem, GLMProblem):
        raise TypeError("problem must be a GLMProblem from precond.stochastic.least_squares or "
                        f"logistic, got {type(problem).__name__}")
    n, d = problem.n, problem.d
    b = min(256, n) if batch_size is None else _positive_int(batch_size, "batch_size", n)
    bh = (max(int(np.sqrt(n)), 1) if hessian_batch_size is None
          else _positive_int(hessian_batch_size, "hessian_batch_size", n))
    r = min(10, d, bh) if rank is None else _positive_int(rank, "rank", d)
    rho = float(problem.mu) if rho is None else positive_float(rho, "rho", allow_zero=True)
    if refresh is None:
        refresh = 1 if problem.kind == "logistic" else 0
    elif isinstance(refresh, bool) or not isinstance(refresh, (int, np.integer)) or refresh < 0:
        raise ValueError(f"refresh must be an int ≥ 0 (epochs between refreshes, 0 = once), "
                         f"got {refresh!r}")
    if rho == 0 and float(problem.mu) == 0:
        # P⁻¹ is still SPD (ratios ≤ 1), but a rank-deficient sketch then has a 0/0 direction.
        rho = float(jnp.finfo(problem.dtype).eps)
    return Defaults(b, bh, r, rho, int(refresh))


@register_pytree_node_class
class _Sandwich(LinearOperator):
    """P^{-1/2} H P^{-1/2}, symmetric, with P^{-1/2} = I + U(√ratios − 1)Uᵀ."""

    def __init__(self, U, s, H):
        self.U, self.s, self.H = U, s, H
        self.shape, self.dtype = H.shape, H.dtype

    def _half(self, v):
        return v + self.U @ ((self.s - 1.0) * (self.U.T @ v))

    def matvec(self, v):
        return self._half(self.H.matvec(self._half(v)))

    def tree_flatten(self):
        return (self.U, self.s, self.H), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children)


def _sqrt_ratios(approx, rho):
    """√ of P⁻¹'s eigenvalues on span(U), (λ̂_r + ρ)/(λ̂_i + ρ), as NystromPreconditioner has."""
    lam = approx.eigenvalues
    den = lam + rho
    ratios = jnp.where(den > 0, (lam[-1] + rho) / jnp.where(den > 0, den, 1.0), 1.0)
    return jnp.sqrt(ratios)


def _sample(key, n, size):
    """A uniformly random subset of size ``size`` (without replacement)."""
    return jax.random.choice(key, n, (size,), replace=False)


@partial(jax.jit, static_argnames=("rank", "bh", "sketchy"))
def estimate_curvature(problem: GLMProblem, w, key, rho, *, rank: int, bh: int,
                       sketchy: bool) -> Curvature:
    """Refresh P⁻¹ from a Nyström sketch of H_S(w) and estimate L̂ on an independent S′.

    S, S′: independent uniform subsamples of size ``bh`` (b_H).  P⁻¹ =
    ``NystromPreconditioner(nystrom(H_S − μI, rank), rho)``: the inverse of Ĥ_S + ρI on span(U),
    scaled so the rest of the space, where the sketch saw curvature ≤ λ̂_r, gets λ̂_r + ρ.
    L̂ = λ_max(P^{-1/2}(H_S′ + μI)P^{-1/2}) (= λ_max(P⁻¹(H_S′ + μI))) by power iteration.
    ``sketchy=False`` gives P⁻¹ = I and L̂ = λ_max(H_S′ + μI).
    """
    k_s, k_sketch, k_s2, k_power = jax.random.split(key, 4)
    n, d = problem.n, problem.d
    H2 = problem.hessian(w, _sample(k_s2, n, bh))
    if not sketchy:
        return Curvature(IdentityOperator(d, problem.dtype), _lambda_max(H2, k_power))
    H = problem.hessian(w, _sample(k_s, n, bh), shift=False)
    approx = nystrom(H, rank, k_sketch)
    precond = NystromPreconditioner(approx, rho)
    L = _lambda_max(_Sandwich(approx.U, _sqrt_ratios(approx, rho), H2), k_power)
    return Curvature(precond, L)


def _lambda_max(A, key):
    # Power iteration, not Lanczos: it compiles in a fraction of the time, and its Rayleigh
    # quotient (a lower bound on λ_max) is accurate to ~1e-3 relative within these caps, well
    # inside the factor 2 that η = ½/L̂ keeps as margin.
    return power_iteration(A, key, maxiter=_POWER_STEPS, tol=1e-3).eigenvalue


def epoch_batches(key, n: int, batch_size: int) -> jax.Array:
    """(m, b) minibatch indices for one epoch, m = ⌊n/b⌋: a random permutation cut into blocks
    (random reshuffling), so each minibatch is a uniform b-subset (b-nice) and an epoch touches
    m·b distinct samples."""
    m = n // batch_size
    return jax.random.permutation(key, n)[: m * batch_size].reshape(m, batch_size)


@jax.jit
def _value_and_grad_norm(problem, w):
    f, g = problem.value_and_grad(w)
    return f, jnp.linalg.norm(g)


def run_epochs(
    problem: GLMProblem,
    *,
    epochs: int,
    key: jax.Array,
    x0,
    init: Callable,
    epoch: Callable,
    batch_size: int,
    hyper_from: Callable,
    iterate: Callable,
    curvature: dict | None,
    refresh: int,
    lr_of: Callable,
    tol: float,
    target: float | None,
    progress: bool,
    name: str,
) -> StochasticResult:
    """The epoch loop shared by every solver: a Python loop over compiled epochs.

    ``init`` (jitted): (problem, x0) → (state, grad_evals); ``epoch`` (jitted, static
    ``batch_size``): (problem, state, curvature, hyper, key) → (state, grad_evals);
    ``hyper_from``: (L̂, epoch index) → hyperparameter pytree, evaluated before every epoch
    (cheap; a step-size schedule lives there); ``iterate``: state → x; ``curvature``: keyword
    arguments of :func:`estimate_curvature` (None = P⁻¹ = I, no estimate), refreshed every
    ``refresh`` epochs (0 = once).  Compilation happens ahead of time and is timed apart; the
    compiled functions are cached by jax, so a second run of the same shapes does not recompile.
    """
    epochs = _positive_int(epochs, "epochs")
    if key is None:
        raise TypeError("a jax.random key is required (e.g. jax.random.key(0)); precond draws "
                        "no hidden randomness")
    tol = positive_float(tol, "tol", allow_zero=True)
    if target is not None:
        target = float(target)
    dtype = problem.dtype
    if x0 is None:
        x = jnp.zeros(problem.d, dtype)
    else:
        x = jnp.asarray(x0, dtype)
        if x.shape != (problem.d,):
            raise ValueError(f"x0 has shape {x.shape}; expected ({problem.d},)")
        if not bool(jnp.all(jnp.isfinite(x))):
            raise ValueError("x0 contains NaN or inf")

    clock = time.perf_counter
    t0 = clock()
    init_c = init.lower(problem, x).compile()
    compile_time = clock() - t0
    f0, g0 = _value_and_grad_norm(problem, x)
    gscale = max(1.0, float(g0))
    objective, evals_hist, times, gnorms, lrs = [float(f0)], [0], [0.0], [float(g0)], [np.nan]

    t0 = clock()
    state, evals = jax.block_until_ready(init_c(problem, x))
    elapsed = clock() - t0
    total_evals = int(evals)

    key, k_curv = jax.random.split(key)
    curv_c = None
    if curvature is not None:
        rho = jnp.asarray(curvature.pop("rho"), dtype)
        t0 = clock()
        curv_c = estimate_curvature.lower(problem, x, k_curv, rho, **curvature).compile()
        compile_time += clock() - t0
        t0 = clock()
        curv = jax.block_until_ready(curv_c(problem, x, k_curv, rho))
        elapsed += clock() - t0
    else:
        curv = Curvature(IdentityOperator(problem.d, dtype), jnp.asarray(jnp.nan, dtype))
    hyper = hyper_from(curv.L, 0)
    t0 = clock()
    epoch_c = epoch.lower(problem, state, curv, hyper, key, batch_size=batch_size).compile()
    compile_time += clock() - t0

    status = Status.MAX_ITERATIONS
    last_good = x
    bar = _progress_bar(progress, name, epochs)
    try:
        for k in range(epochs):
            key, k_epoch, k_curv = jax.random.split(key, 3)
            t0 = clock()
            if curv_c is not None and k > 0 and refresh > 0 and k % refresh == 0:
                curv = curv_c(problem, iterate(state), k_curv, rho)
            hyper = hyper_from(curv.L, k)
            state, evals = jax.block_until_ready(epoch_c(problem, state, curv, hyper, k_epoch))
            elapsed += clock() - t0
            total_evals += int(evals)
            x = iterate(state)
            f, gn = (float(v) for v in _value_and_grad_norm(problem, x))
            objective.append(f)
            evals_hist.append(total_evals)
            times.append(elapsed)
            gnorms.append(gn)
            lrs.append(float(lr_of(hyper)))
            if bar is not None:
                bar[0].update(bar[1], advance=1, description=f"{name} F={f:.6g}")
            if not (np.isfinite(f) and np.isfinite(gn)):
                status = Status.DIVERGED
                break
            last_good = x
            if gn <= tol * gscale or (target is not None and f <= target):
                status = Status.CONVERGED
                break
    finally:
        if bar is not None:
            bar[0].stop()
    return StochasticResult(
        x=last_good, objective=np.asarray(objective), grad_evals=np.asarray(evals_hist),
        times=np.asarray(times), converged=status == Status.CONVERGED, status=status,
        grad_norm=np.asarray(gnorms), lr=np.asarray(lrs), compile_time=compile_time)


def _progress_bar(progress: bool, name: str, epochs: int):
    if not progress:
        return None
    from rich.progress import Progress  # only when asked: the numerical core never logs

    bar = Progress(transient=False)
    task = bar.add_task(name, total=epochs)
    bar.start()
    return bar, task


def check_lr(lr) -> float | None:
    """None (estimate η = ½/L̂) or a positive finite learning rate."""
    return None if lr is None else positive_float(lr, "lr")


def drive(problem, *, name: str, sketchy: bool, epochs, key, batch_size, hessian_batch_size,
          rank, rho, refresh, lr, x0, tol, target, progress, init: Callable, epoch: Callable,
          make_hyper: Callable, iterate: Callable, lr_of: Callable) -> StochasticResult:
    """Resolve defaults and run :func:`run_epochs`.

    ``make_hyper(L, lr, defaults, problem, epoch)`` → hyperparameter pytree of that epoch (``lr``
    None = from L̂).
    Unpreconditioned methods with ``lr=None`` estimate L̂ = λ_max(H_S′ + μI) once at x₀; with a
    given ``lr`` they skip it.
    """
    defaults = resolve_defaults(problem, batch_size=batch_size,
                                hessian_batch_size=hessian_batch_size, rank=rank, rho=rho,
                                refresh=refresh)
    lr = check_lr(lr)
    curvature = dict(rho=defaults.rho, rank=defaults.rank, bh=defaults.hessian_batch_size,
                     sketchy=sketchy)
    every = defaults.refresh if sketchy else 0
    if not sketchy:
        curvature["rank"] = 1  # unused; a fixed value keeps one compiled variant
        if lr is not None:
            curvature = None
    return run_epochs(
        problem, epochs=epochs, key=key, x0=x0, init=init, epoch=epoch,
        batch_size=defaults.batch_size,
        hyper_from=lambda L, k: make_hyper(L, lr, defaults, problem, k),
        iterate=iterate, curvature=curvature, refresh=every, lr_of=lr_of, tol=tol,
        target=target, progress=progress, name=name)


def learning_rate(L, lr):
    """η = ½/L̂ unless ``lr`` is given."""
    return 0.5 / L if lr is None else jnp.asarray(lr, L.dtype if hasattr(L, "dtype") else None)
