"""What the PROMISE solvers share: the method record (a jittable ``init``/``epoch`` pair and its
rules), the result, the preconditioner refresh, the learning rate, and :func:`solve`, which runs
a method's epochs under the host driver :func:`precond.loop.run_epochs`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..linalg import LowRankPlusIdentity, congruence
from ..linalg.nystrom import NystromPreconditioner, nystrom
from ..linalg.operators import IdentityOperator
from ..linalg.power import power_iteration
from ..linalg.status import Status, check_status
from ..loop import compile_ahead, run_epochs, timed
from ..validation import (
    check_finite_array,
    check_int,
    check_key,
    check_nonnegative,
    check_positive,
    check_real,
)
from .problems import GLMProblem

__all__ = ["StochasticMethod", "StochasticResult", "Curvature", "Defaults", "resolve_defaults",
           "estimate_curvature", "epoch_batches", "solve", "check_lr", "learning_rate",
           "constant_rate", "init_at", "identity"]

# Cap on power-iteration steps for λ_max(P⁻¹H) (it usually stops much earlier, at 1e-3 relative).
_POWER_STEPS = 50


class StochasticMethod(NamedTuple):
    """A PROMISE-family method: a pure, jittable ``init``/``epoch`` pair and its host-side rules.

    Run one with :func:`solve` (the public solvers ``sketchy_sgd`` … ``katyusha`` are
    ``solve(SketchySGD, …)`` … ``solve(Katyusha, …)``), or drive the pair by hand: ``init`` and
    ``epoch`` are pure functions of their arguments, so they compose with ``jax.jit``,
    ``jax.vmap`` over keys, and any host loop.

    Fields:
      name: the method's name (progress bars).
      sketchy: whether P⁻¹ is the Nyström preconditioner (else P = I).
      init: jitted ``(problem, x0) -> (state, grad_evals)``.
      epoch: jitted ``(problem, state, curvature, hyper, key, *, batch_size) -> (state,
        grad_evals)``; ``curvature`` is a :class:`Curvature`, ``batch_size`` b_g is static.
      hyper: ``(L̂, lr, defaults, problem, epoch) -> hyper``, the hyperparameter pytree of an
        epoch from the smoothness estimate L̂ (``lr`` None = from L̂; a schedule lives here).
      iterate: ``state -> x`` (d,), the iterate reported.
      lr_of: ``hyper -> η``, the learning rate reported.
    """

    name: str
    sketchy: bool
    init: Callable
    epoch: Callable
    hyper: Callable
    iterate: Callable
    lr_of: Callable


class StochasticResult(NamedTuple):
    """Outcome of a stochastic solver run (host-side: histories are numpy arrays).

    x: the final iterate (d,) (the last finite one if the run diverged).  objective, grad_evals,
    times: per epoch, index 0 = the start (so ``len == epochs_run + 1``); ``grad_evals`` counts
    per-sample gradients cumulatively (a full gradient is n; divide by n for data passes;
    Hessian-vector products of the refresh are not counted), ``times`` cumulative seconds of
    solver work (refreshes + epochs; objective evaluations and compilation excluded).
    converged/status: ``Status.CONVERGED`` when ‖∇F‖ ≤ tol·max(1, ‖∇F(x₀)‖) or the objective
    reached ``target``; ``MAX_ITERATIONS`` after ``epochs`` without either; ``DIVERGED`` when the
    objective became non-finite or grew past ``precond.loop.DIVERGENCE_FACTOR`` × its start.
    grad_norm: ‖∇F‖ per epoch; lr: the learning rate used in each epoch (nan at index 0);
    compile_time: seconds spent compiling, reported apart.  ``converged`` and ``compile_time``
    are 0-d numpy arrays.
    """

    x: jax.Array
    objective: np.ndarray
    grad_evals: np.ndarray
    times: np.ndarray
    converged: np.ndarray
    status: Status
    grad_norm: np.ndarray
    lr: np.ndarray
    compile_time: np.ndarray

    def check(self) -> StochasticResult:
        """``self`` if the run converged, else raise :class:`precond.linalg.SolverError`."""
        check_status(self.status, f"after {len(self.objective) - 1} epochs, objective "
                                  f"{self.objective[-1]:.6g}, ‖∇F‖ {self.grad_norm[-1]:.3e}")
        return self


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
    b = min(256, n) if batch_size is None else check_int(batch_size, "batch_size", low=1, high=n)
    bh = (max(int(np.sqrt(n)), 1) if hessian_batch_size is None
          else check_int(hessian_batch_size, "hessian_batch_size", low=1, high=n))
    r = min(10, d, bh) if rank is None else check_int(rank, "rank", low=1, high=d)
    rho = float(problem.mu) if rho is None else check_nonnegative(rho, "rho")
    if refresh is None:
        refresh = 1 if problem.kind == "logistic" else 0
    else:
        refresh = check_int(refresh, "refresh", low=0)  # epochs between refreshes, 0 = once
    if rho == 0 and float(problem.mu) == 0:
        # P⁻¹ is still SPD (ratios ≤ 1), but a rank-deficient sketch then has a 0/0 direction.
        rho = float(jnp.finfo(problem.dtype).eps)
    return Defaults(b, bh, r, rho, refresh)


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
    L̂ = λ_max(P^{-1/2}(H_S′ + μI)P^{-1/2}) (= λ_max(P⁻¹(H_S′ + μI))) by power iteration, with
    P^{-1/2} = I + U(√ratios − 1)Uᵀ.  ``sketchy=False`` gives P⁻¹ = I and L̂ = λ_max(H_S′ + μI).

    Args:
      problem: the GLM (n samples, d features).
      w: the point (d,).
      key: a jax.random key.
      rho: ρ ≥ 0, the preconditioner's damping.
      rank: r, the sketch rank.
      bh: b_H, the Hessian subsample size.
      sketchy: build P⁻¹ (else P = I).
    """
    k_s, k_sketch, k_s2, k_power = jax.random.split(key, 4)
    n, d = problem.n, problem.d
    H2 = problem.hessian(w, _sample(k_s2, n, bh))
    if not sketchy:
        return Curvature(IdentityOperator(d, problem.dtype), _lambda_max(H2, k_power))
    H = problem.hessian(w, _sample(k_s, n, bh), shift=False)
    approx = _numerical_rank(nystrom(H, rank, k_sketch), rho)
    precond = NystromPreconditioner(approx, rho)
    half = LowRankPlusIdentity(approx.U, _sqrt_ratios(approx, rho) - 1.0)  # P^{-1/2}
    return Curvature(precond, _lambda_max(congruence(H2, half), k_power))


def _numerical_rank(approx, rho):
    """The sketch cut at its numerical rank k when ρ does not regularize it (r: the sketch rank).

    With ρ below the rounding level c = 10·r·eps·λ̂₁ of the sketch (μ = 0 and no ρ given), a
    rank-deficient H (duplicated columns) leaves λ̂_i ≈ 0 for i > k, so P⁻¹'s scale λ̂_r + ρ is
    ~eps: L̂ ~ eps and η ~ 1/eps, and rounding errors of size eps in P⁻¹g then grow by η·λ̂₁
    per step (the objective went from 2.76 to 1e141).  λ̂_i ≤ c are raised to λ̂_k, the
    smallest one above c, which makes P⁻¹ exactly the rank-k preconditioner (ratio 1 on the
    rest).  When ρ ≥ c, or every λ̂_i > c, the sketch is returned unchanged (bit for bit).
    """
    lam = approx.eigenvalues
    cutoff = 10 * lam.shape[0] * jnp.finfo(lam.dtype).eps * lam[0]
    kept = lam > cutoff
    floor = jnp.min(jnp.where(kept, lam, jnp.inf))
    cut = (rho < cutoff) & jnp.any(kept) & ~jnp.all(kept)
    return approx._replace(eigenvalues=jnp.where(cut & ~kept, floor, lam))


def _lambda_max(A, key):
    # Power iteration, not Lanczos: it compiles in a fraction of the time, and its Rayleigh
    # quotient (a lower bound on λ_max) is accurate to ~1e-3 relative within these caps, well
    # inside the factor 2 that η = ½/L̂ keeps as margin.
    # Only λ is read: the Rayleigh-quotient rule keeps L̂ (and every learning rate) as before.
    return power_iteration(A, key, maxiter=_POWER_STEPS, tol=1e-3,
                           criterion="rayleigh").eigenvalue


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


def check_lr(lr) -> float | None:
    """None (estimate η = ½/L̂) or a positive finite learning rate."""
    return None if lr is None else check_positive(lr, "lr")


def learning_rate(L, lr):
    """η = ½/L̂ unless ``lr`` is given."""
    return 0.5 / L if lr is None else jnp.asarray(lr, L.dtype if hasattr(L, "dtype") else None)


def constant_rate(L, lr, defaults, problem, epoch=0):
    """The ``hyper`` rule of a constant step: η = ½/L̂ (or ``lr``) in every epoch."""
    return learning_rate(L, lr)


@jax.jit
def init_at(problem, x0):
    """The ``init`` of methods whose state is the iterate itself: (x₀, no gradient evaluated)."""
    return x0, jnp.int32(0)


def identity(x):
    """``iterate``/``lr_of`` of methods whose state is the iterate and whose hyper is η."""
    return x


def _start(problem: GLMProblem, x0) -> jax.Array:
    if x0 is None:
        return jnp.zeros(problem.d, problem.dtype)
    x = jnp.asarray(x0, problem.dtype)
    if x.shape != (problem.d,):
        raise ValueError(f"x0 has shape {x.shape}; expected ({problem.d},)")
    check_finite_array(x, "x0")
    return x


class _Record(NamedTuple):
    """One epoch as the host sees it: F and ‖∇F‖ at its end, its work, its learning rate."""

    objective: float
    grad_norm: float
    grad_evals: int
    lr: float


def solve(method: StochasticMethod, problem: GLMProblem, *, epochs: int, key: jax.Array,
          batch_size: int | None = None, hessian_batch_size: int | None = None,
          rank: int | None = None, rho: float | None = None, refresh: int | None = None,
          lr: float | None = None, x0=None, tol: float = 1e-10, target: float | None = None,
          progress: bool = False) -> StochasticResult:
    """Run ``method`` for up to ``epochs`` epochs on ``problem`` with PROMISE's defaults.

    The host loop is :func:`precond.loop.run_epochs`: ``method.init``, the curvature estimate
    and ``method.epoch`` are compiled ahead (``compile_time``, apart from ``times``); before
    epoch k the preconditioner is refreshed when k is a multiple of ``refresh`` (k > 0) and
    ``method.hyper`` gives the epoch's hyperparameters; after it F and ‖∇F‖ are evaluated on all
    n samples (untimed).  A second run of the same shapes does not recompile.  Unpreconditioned
    methods with ``lr=None`` estimate L̂ = λ_max(H_S′ + μI) once at x₀; with a given ``lr`` they
    skip it.

    Args:
      method: a :class:`StochasticMethod` (``SketchySGD``, ``SketchySVRG``, …, or your own).
      problem: a :class:`GLMProblem` (n samples, d features).
      epochs: the most epochs to run (≥ 1).
      key: a jax.random key (minibatches, sketches); required.
      batch_size: b_g, the gradient minibatch (default min(256, n)).
      hessian_batch_size: b_H, the Hessian subsample (default ⌊√n⌋).
      rank: r, the Nyström rank (default min(10, d, b_H)).
      rho: ρ ≥ 0, the preconditioner's damping (default μ).
      refresh: epochs between preconditioner refreshes, 0 = once (default: every epoch for
        logistic, once for least squares).
      lr: the learning rate η > 0 (default: from L̂; see each method).
      x0: the start (d,) (default zeros).
      tol: stop when ‖∇F‖ ≤ tol·max(1, ‖∇F(x₀)‖).
      target: stop when F ≤ target.
      progress: show a rich progress bar.

    Example:
      >>> import jax, numpy as np
      >>> from precond.stochastic import SketchySAGA, logistic, solve
      >>> rng = np.random.default_rng(0)
      >>> X = rng.standard_normal((300, 5)); y = (X[:, 0] > 0).astype(float)
      >>> res = solve(SketchySAGA, logistic(X, y, 1e-2), epochs=3, key=jax.random.key(0))
      >>> str(res.status), len(res.objective), bool(res.objective[-1] < res.objective[0])
      ('max_iterations', 4, True)
    """
    defaults = resolve_defaults(problem, batch_size=batch_size,
                                hessian_batch_size=hessian_batch_size, rank=rank, rho=rho,
                                refresh=refresh)
    lr = check_lr(lr)
    epochs = check_int(epochs, "epochs", low=1)
    check_key(key)
    tol = check_nonnegative(tol, "tol")
    target = None if target is None else check_real(target, "target")
    x = _start(problem, x0)
    dtype = problem.dtype
    every = defaults.refresh if method.sketchy else 0
    # Unpreconditioned methods use the estimate only for η (once, and not at all with a given
    # lr); their rank is unused, and a fixed value keeps one compiled variant.
    estimate = method.sketchy or lr is None
    static = dict(rank=defaults.rank if method.sketchy else 1, bh=defaults.hessian_batch_size,
                  sketchy=method.sketchy)
    rho = jnp.asarray(defaults.rho, dtype)

    init_c, compile_time = compile_ahead(method.init, problem, x)
    f0, g0 = _value_and_grad_norm(problem, x)
    gscale = max(1.0, float(g0))
    (state, evals0), elapsed = timed(init_c, problem, x)

    key, k_curv = jax.random.split(key)
    curv_c = None
    if estimate:
        curv_c, dt = compile_ahead(estimate_curvature, problem, x, k_curv, rho, **static)
        compile_time += dt
        curv, dt = timed(curv_c, problem, x, k_curv, rho)
        elapsed += dt
    else:
        curv = Curvature(IdentityOperator(problem.d, dtype), jnp.asarray(jnp.nan, dtype))
    hyper0 = method.hyper(curv.L, lr, defaults, problem, 0)
    epoch_c, dt = compile_ahead(method.epoch, problem, state, curv, hyper0, key,
                                batch_size=defaults.batch_size)
    compile_time += dt

    def epoch(k, carry):
        key, state, curv = carry
        key, k_epoch, k_curv = jax.random.split(key, 3)
        if curv_c is not None and k > 0 and every > 0 and k % every == 0:
            curv = curv_c(problem, method.iterate(state), k_curv, rho)
        hyper = method.hyper(curv.L, lr, defaults, problem, k)
        state, evals = epoch_c(problem, state, curv, hyper, k_epoch)
        return (key, state, curv), (evals, hyper)

    def evaluate(carry, out):
        evals, hyper = out
        f, gn = (float(v) for v in _value_and_grad_norm(problem, method.iterate(carry[1])))
        return _Record(f, gn, int(evals), float(method.lr_of(hyper)))

    def converged(r):
        return r.grad_norm <= tol * gscale or (target is not None and r.objective <= target)

    run = run_epochs(epoch, (key, state, curv), epochs, evaluate=evaluate,
                     objective=lambda r: r.objective if np.isfinite(r.grad_norm) else np.nan,
                     start=float(f0), converged=converged, progress=progress, name=method.name)
    # All epochs ran without meeting tol or target: the tolerance was not reached.
    status = Status.MAX_ITERATIONS if run.status == Status.SUCCESS else run.status
    rec = run.records
    return StochasticResult(
        x=method.iterate(run.state[1]),
        objective=np.asarray([float(f0)] + [r.objective for r in rec]),
        grad_evals=np.concatenate([[0], int(evals0) + np.cumsum([r.grad_evals for r in rec])]),
        times=np.asarray([0.0] + [elapsed + t for t in run.times]),
        converged=np.asarray(status == Status.CONVERGED),
        status=status,
        grad_norm=np.asarray([float(g0)] + [r.grad_norm for r in rec]),
        lr=np.asarray([np.nan] + [r.lr for r in rec]),
        compile_time=np.asarray(compile_time))
