"""What the PROMISE solvers share: the method record (a jittable ``init``/``epoch`` pair and its
rules), the result, the preconditioner refresh, the learning rate, and :func:`solve`, which runs
a method's epochs under the host driver :func:`precond.loop.run_epochs`."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..linalg import LowRankPlusIdentity, congruence
from ..linalg.nystrom import NystromPreconditioner, nystrom, nystrom_adaptive
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
           "estimate_curvature", "adaptive_rank", "adaptive_batch_size", "RANK_MEMORY",
           "epoch_batches", "gradient_table", "snapshot", "variance_reduced_grad", "solve",
           "check_lr", "learning_rate", "constant_rate", "init_at", "identity"]

# Cap on power-iteration steps for λ_max(P⁻¹H) (it usually stops much earlier, at 1e-3 relative).
_POWER_STEPS = 50
SAFEGUARD_HALVINGS = 20
"""How many times the step safeguard of :func:`solve` may undo an epoch and halve the step."""
RANK_MEMORY = 2**26
"""Default memory budget (bytes) of the adaptive rank's U (d × r): r ≤ RANK_MEMORY/(itemsize·d)."""


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
    The hyperparameters the run actually used (the adaptive defaults' choices included):
    rank: r, the Nyström rank (0 when P = I); rho: ρ, the damping (nan when P = I);
    batch_size: b_g; hessian_batch_size: b_H; steps_per_epoch: ⌊n/b_g⌋.
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
    rank: int = 0
    rho: float = float("nan")
    batch_size: int = 0
    hessian_batch_size: int = 0
    steps_per_epoch: int = 0

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

    b_g = min(256, n); b_H = ⌊√n⌋; r = min(10, d, b_H); ρ = μ (see ``sketchy_sgd``); refresh
    every epoch for logistic (the Hessian moves with w), once for least squares (it does not).
    These are the fixed values: for the preconditioned methods :func:`solve` then replaces an
    r and a b_g that were not given by :func:`adaptive_rank` (r here is its first rank) and
    :func:`adaptive_batch_size`.
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


@partial(jax.jit, static_argnums=(1, 2))
def _sample(key, n: int, size: int) -> jax.Array:
    """A uniformly random subset of {0, …, n − 1} of ``size`` elements (without replacement), in
    no particular order; all n when size ≥ n.

    Floyd's algorithm: for j = n − size, …, n − 1 draw t uniform in {0, …, j} and add t, or j if
    t is already in.  O(size²) compares in one compiled loop, where ``jax.random.choice(…,
    replace=False)`` sorts all n keys — on XLA:CPU that sort cost more than the sketch and the
    power iteration together on KEEL magic (n = 19020, b_H = 137).  Jitted (n and size
    static), so an eager call (the adaptive choices at x₀) compiles once per shape.
    """
    if size >= n:
        return jnp.arange(n)
    top = jnp.arange(n - size, n)
    draws = jax.random.randint(key, (size,), 0, top + 1)

    def add(i, chosen):
        t = draws[i]
        return chosen.at[i].set(jnp.where(jnp.any(chosen == t), top[i], t))

    return lax.fori_loop(0, size, add, jnp.full((size,), -1, top.dtype))


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


def _rank_cap(problem: GLMProblem, bh: int, max_rank, memory) -> int:
    """min(d, ⌊b_H/2⌋, max_rank, memory/(itemsize·d)), ≥ 1 (see :func:`adaptive_rank`)."""
    itemsize = jnp.dtype(problem.dtype).itemsize
    by_memory = int(check_positive(memory, "memory") // (itemsize * problem.d))
    cap = max(min(problem.d, bh // 2, by_memory), 1)
    if max_rank is not None:
        cap = min(cap, check_int(max_rank, "max_rank", low=1))
    return cap


def adaptive_rank(problem: GLMProblem, w, key, rho, *, hessian_batch_size: int,
                  initial_rank: int = 10, max_rank: int | None = None,
                  memory: float = RANK_MEMORY) -> int:
    """The Nyström rank r that the spectrum of H_S(w) asks for: doubled until the sketch covers
    every direction of curvature above ρ, within a cap.

    r starts at ``initial_rank`` and doubles (:func:`precond.linalg.nystrom_adaptive` on
    H_S(w) − μI, S a uniform b_H-subsample) until the estimated ‖H_S − Ĥ_S‖ ≤ ρ — the curvature
    the sketch leaves out is at most the damping, so P⁻¹ = (Ĥ_S + ρI)⁻¹ (scaled) preconditions
    all of the effective dimension d_eff(ρ) — or until the cap
    r_max = min(d, ⌊b_H/2⌋, ``max_rank``, ``memory``/(itemsize·d)) (U is d × r).  Half of b_H,
    because H_S has rank ≤ b_H and the lower half of its spectrum is mostly sampling noise: a
    sketch at r ≈ b_H takes H_S's smallest nonzero eigenvalue as λ̂_r, P⁻¹ then shrinks the
    top directions by λ̂_r/λ̂_i far more than the whole Hessian warrants: on nearly separable
    data (KEEL mushroom) the runs at r = b_H blew up (without the step safeguard of
    :func:`solve`) or crawled, and converged at ⌊b_H/2⌋ (docs/results/promise.md).
    A fast-decaying spectrum keeps r small; a spread one grows it to the cap.  A host loop: each
    doubling is a new shape, compiled once per shape (≤ log₂ r_max of them).

    Args:
      problem: the GLM (n samples, d features).
      w: the point (d,).
      key: a jax.random key (subsample and sketches).
      rho: ρ ≥ 0, the damping the preconditioner will use.
      hessian_batch_size: b_H, the Hessian subsample size.
      initial_rank: the first r.
      max_rank: an extra cap on r (default none beyond d, ⌊b_H/2⌋ and memory).
      memory: bytes allowed for U (d × r).

    Example:
      >>> import jax, numpy as np
      >>> from precond.stochastic import adaptive_rank, logistic
      >>> X = np.random.default_rng(0).standard_normal((400, 30))
      >>> p = logistic(X, (X[:, 0] > 0).astype(float), 1e-3)
      >>> adaptive_rank(p, np.zeros(30), jax.random.key(0), 1e-3, hessian_batch_size=80)
      30
    """
    if not isinstance(problem, GLMProblem):
        raise TypeError(f"problem must be a GLMProblem, got {type(problem).__name__}")
    bh = check_int(hessian_batch_size, "hessian_batch_size", low=1, high=problem.n)
    rho = check_nonnegative(rho, "rho")
    check_key(key)
    cap = _rank_cap(problem, bh, max_rank, memory)
    r0 = min(check_int(initial_rank, "initial_rank", low=1), cap)
    k_s, k_sketch = jax.random.split(key)
    H = problem.hessian(jnp.asarray(w, problem.dtype), _sample(k_s, problem.n, bh), shift=False)
    return nystrom_adaptive(H, rho, k_sketch, initial_rank=r0, max_rank=cap,
                            tolerance=1.0).rank


@jax.jit
def _smoothness_ratio(problem, w, precond, L, idx):
    """max_{i∈S} φ″(xᵢᵀw)·xᵢᵀP⁻¹xᵢ / L̂ over the rows S = ``idx``."""
    rows = problem.rows.take(idx)
    X = rows.matmat(jnp.eye(problem.d, dtype=problem.dtype))  # (|S|, d), dense
    h = problem.loss.take(idx).hess_diag(X @ w)
    q = jnp.sum(X * precond.matmat(X.T).T, axis=1)
    return jnp.max(h * q) / L


def adaptive_batch_size(problem: GLMProblem, w, curvature: Curvature, key, *, rank: int,
                        hessian_batch_size: int) -> int:
    """The gradient minibatch b_g from the estimated costs: b_g = min(n, 2^⌈log₂ max(r, L̂_max/L̂)⌉).

    Two costs set it.  A step's work is 2b_g·d (the minibatch gradient) plus 2d·r (applying
    P⁻¹), so b_g ≥ r keeps the preconditioner at most half of it.  And the step
    η = ½/L̂ is safe for a minibatch only when the minibatch's smoothness L̂ + L̂_max/b_g stays
    within 2L̂ (Gazagnadou, Gower and Salmon's expected smoothness of b-nice sampling), so
    b_g ≥ L̂_max/L̂, with L̂_max = max_{i∈S} φ″(xᵢᵀw)·xᵢᵀP⁻¹xᵢ over a b_H-subsample S; a larger
    b_g would only make fewer steps per data pass.  Rounded up to a power of two (fewer
    compiled shapes).  An epoch is then ⌊n/b_g⌋ steps (one data pass of minibatch gradients).

    Args:
      problem: the GLM (n samples, d features).
      w: the point (d,) the curvature was estimated at.
      curvature: the :class:`Curvature` (P⁻¹ and L̂) at w.
      key: a jax.random key (the subsample S).
      rank: r, the rank of P⁻¹ (1 for P = I).
      hessian_batch_size: b_H, the size of S.
    """
    bh = check_int(hessian_batch_size, "hessian_batch_size", low=1, high=problem.n)
    ratio = float(_smoothness_ratio(problem, jnp.asarray(w, problem.dtype), curvature.precond,
                                    curvature.L, _sample(key, problem.n, bh)))
    want = max(int(rank), int(np.ceil(ratio)) if np.isfinite(ratio) else problem.n, 1)
    return int(min(problem.n, 2 ** int(np.ceil(np.log2(want)))))


def gradient_table(problem: GLMProblem, w) -> tuple[jax.Array, jax.Array]:
    """The per-sample gradient scalars αᵢ = φ′(xᵢᵀw, yᵢ) (n,) and their mean (1/n)Xᵀα (d,).

    For a GLM ∇fᵢ(w) = αᵢxᵢ, so n scalars stand for n gradients (SAGA's table, SVRG's
    snapshot).  Costs n gradient evaluations (one data pass).

    Args:
      problem: the GLM (n samples, d features).
      w: the point (d,).
    """
    table = problem.residuals(w, None)  # all rows in place (row-sharded X is not gathered)
    return table, problem.rows.T.matvec(table) / problem.n


def snapshot(problem: GLMProblem, w) -> tuple[jax.Array, jax.Array]:
    """An SVRG snapshot at w̃ = ``w``: the table αᵢ = φ′(xᵢᵀw̃, yᵢ) (n,) and ∇F(w̃) (d,).

    The table (:func:`gradient_table`) keeps every sample's snapshot gradient in one scalar, so
    :func:`variance_reduced_grad` needs one pass over a minibatch's rows instead of two.

    Args:
      problem: the GLM (n samples, d features).
      w: the snapshot w̃ (d,).
    """
    table, mean = gradient_table(problem, w)
    return table, mean + problem.mu * w


def variance_reduced_grad(problem: GLMProblem, w, idx, point, table, full) -> jax.Array:
    """SVRG's estimator ∇F_B(w) − ∇F_B(w̃) + ∇F(w̃) on the minibatch B = ``idx``.

    ∇F_B(w̃) = (1/b)X_Bᵀα_B + μw̃ is read from the snapshot's table (:func:`snapshot`), so the
    estimator costs b gradient evaluations, X_Bw and X_Bᵀ(φ′_B(w) − α_B), not 2b.

    Args:
      problem: the GLM (n samples, d features).
      w: the current point (d,).
      idx: the minibatch's sample indices (b,).
      point: the snapshot w̃ (d,).
      table: α at w̃ (n,), from :func:`snapshot`.
      full: ∇F(w̃) (d,), from :func:`snapshot`.
    """
    r = problem.residuals(w, idx)
    g = problem.rows.take(idx).T.matvec(r - table[idx]) / idx.shape[0]
    return g + full + problem.mu * (w - point)


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


@jax.jit
def _value(problem, w):
    return problem.value(w)


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
          progress: bool = False, max_rank: int | None = None,
          stall_decay: float | None = None) -> StochasticResult:
    """Run ``method`` for up to ``epochs`` epochs on ``problem`` with PROMISE's defaults.

    The host loop is :func:`precond.loop.run_epochs`: ``method.init``, the curvature estimate
    and ``method.epoch`` are compiled ahead (``compile_time``, apart from ``times``); before
    epoch k the preconditioner is refreshed when k is a multiple of ``refresh`` (k > 0) and
    ``method.hyper`` gives the epoch's hyperparameters; after it F and ‖∇F‖ are evaluated on all
    n samples (untimed).  A second run of the same shapes does not recompile.  Unpreconditioned
    methods with ``lr=None`` estimate L̂ = λ_max(H_S′ + μI) once at x₀; with a given ``lr`` they
    skip it.

    Adaptive defaults of the preconditioned methods (``method.sketchy``), each only when its
    argument is None: the rank r follows the spectrum of H_S(x₀) (:func:`adaptive_rank`: doubled
    from min(10, d, b_H) until ‖H_S − Ĥ_S‖ ≤ ρ, capped by d, ⌊b_H/2⌋, ``max_rank`` and a memory
    budget), then the minibatch follows the costs (:func:`adaptive_batch_size`: b_g =
    min(n, 2^⌈log₂ max(r, L̂_max/L̂)⌉), so an epoch is ⌊n/b_g⌋ steps).  Both are chosen once, at
    x₀ (the rank search's seconds, compilation of each new rank included, count in ``times``);
    later refreshes keep r.  The result records r, ρ, b_g, b_H and ⌊n/b_g⌋.

    Step safeguard (preconditioned methods with ``lr=None``): L̂ comes from a b_H-subsample and
    can miss curvature that few samples carry (nearly separable data), so after each epoch F is
    evaluated (one pass, timed) and an epoch whose F gives back more than a tenth of the
    progress made so far, F > F_best + (F(x₀) − F_best)/10, or is not finite, is undone and L̂
    doubled (every method's step halves; ``lr`` records it), at most ``SAFEGUARD_HALVINGS``
    times.  Its gradient evaluations still count.

    Args:
      method: a :class:`StochasticMethod` (``SketchySGD``, ``SketchySVRG``, …, or your own).
      problem: a :class:`GLMProblem` (n samples, d features).
      epochs: the most epochs to run (≥ 1).
      key: a jax.random key (minibatches, sketches); required.
      batch_size: b_g, the gradient minibatch (default: adaptive for preconditioned methods,
        min(256, n) for the others).
      hessian_batch_size: b_H, the Hessian subsample (default ⌊√n⌋).
      rank: r, the Nyström rank (default: adaptive, see above).
      rho: ρ ≥ 0, the preconditioner's damping (default μ).
      refresh: epochs between preconditioner refreshes, 0 = once (default: every epoch for
        logistic, once for least squares).
      lr: the learning rate η > 0 (default: from L̂; see each method).
      x0: the start (d,) (default zeros).
      tol: stop when ‖∇F‖ ≤ tol·max(1, ‖∇F(x₀)‖).
      target: stop when F ≤ target.
      progress: show a rich progress bar.
      max_rank: a cap on the adaptive rank (default none beyond d, ⌊b_H/2⌋ and memory).
      stall_decay: γ ∈ (0, 1) or None: multiply the step by γ after every epoch whose objective
        is not below the best one so far (for methods whose ``hyper`` is the step η itself, as
        SGD's); None keeps the method's own rule.

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
    if max_rank is not None:
        max_rank = check_int(max_rank, "max_rank", low=1)
    if stall_decay is not None:
        stall_decay = check_positive(stall_decay, "stall_decay")
        if stall_decay >= 1.0:
            raise ValueError(f"stall_decay must be in (0, 1), got {stall_decay}")
    x = _start(problem, x0)
    dtype = problem.dtype
    every = defaults.refresh if method.sketchy else 0
    # Unpreconditioned methods use the estimate only for η (once, and not at all with a given
    # lr); their rank is unused, and a fixed value keeps one compiled variant.
    estimate = method.sketchy or lr is None
    rho = jnp.asarray(defaults.rho, dtype)

    init_c, compile_time = compile_ahead(method.init, problem, x)
    f0, g0 = _value_and_grad_norm(problem, x)
    gscale = max(1.0, float(g0))
    (state, evals0), elapsed = timed(init_c, problem, x)

    key, k_curv = jax.random.split(key)
    # Keys of the adaptive choices are folded from k_curv: the main stream stays as with a
    # given rank and batch size.
    if method.sketchy and rank is None:
        t0 = time.perf_counter()
        r = adaptive_rank(problem, x, jax.random.fold_in(k_curv, 1), defaults.rho,
                          hessian_batch_size=defaults.hessian_batch_size,
                          initial_rank=defaults.rank, max_rank=max_rank)
        elapsed += time.perf_counter() - t0
        defaults = defaults._replace(rank=r)
    static = dict(rank=defaults.rank if method.sketchy else 1, bh=defaults.hessian_batch_size,
                  sketchy=method.sketchy)
    curv_c = None
    if estimate:
        curv_c, dt = compile_ahead(estimate_curvature, problem, x, k_curv, rho, **static)
        compile_time += dt
        curv, dt = timed(curv_c, problem, x, k_curv, rho)
        elapsed += dt
    else:
        curv = Curvature(IdentityOperator(problem.d, dtype), jnp.asarray(jnp.nan, dtype))
    if method.sketchy and batch_size is None:
        t0 = time.perf_counter()
        b = adaptive_batch_size(problem, x, curv, jax.random.fold_in(k_curv, 2),
                                rank=defaults.rank,
                                hessian_batch_size=defaults.hessian_batch_size)
        elapsed += time.perf_counter() - t0
        defaults = defaults._replace(batch_size=b)
    hyper0 = method.hyper(curv.L, lr, defaults, problem, 0)
    epoch_c, dt = compile_ahead(method.epoch, problem, state, curv, hyper0, key,
                                batch_size=defaults.batch_size)
    compile_time += dt

    # The stall schedule's host state: the best objective so far and the step's multiplier.
    stall = {"best": float(f0), "scale": 1.0}
    # The step safeguard of the preconditioned methods whose step comes from L̂ (see the
    # docstring): the best F so far, L̂'s multiplier and the halvings left.
    guard = method.sketchy and lr is None
    safe = {"best": float(f0), "scale": 1.0, "left": SAFEGUARD_HALVINGS}

    def epoch(k, carry):
        key, state, curv = carry
        key, k_epoch, k_curv = jax.random.split(key, 3)
        if curv_c is not None and k > 0 and every > 0 and k % every == 0:
            curv = curv_c(problem, method.iterate(state), k_curv, rho)
        L = curv.L * jnp.asarray(safe["scale"], dtype) if guard else curv.L
        hyper = method.hyper(L, lr, defaults, problem, k)
        if stall_decay is not None:
            hyper = hyper * jnp.asarray(stall["scale"], dtype)
        new, evals = epoch_c(problem, state, curv, hyper, k_epoch)
        if guard and safe["left"] > 0:
            f = float(_value(problem, method.iterate(new)))
            if not f <= safe["best"] + 0.1 * (float(f0) - safe["best"]):  # NaN included
                safe["scale"] *= 2.0  # 2L̂: every method's step halves
                safe["left"] -= 1
                return (key, state, curv), (evals, hyper)  # the epoch is undone
            safe["best"] = min(safe["best"], f)
        return (key, new, curv), (evals, hyper)

    def evaluate(carry, out):
        evals, hyper = out
        f, gn = (float(v) for v in _value_and_grad_norm(problem, method.iterate(carry[1])))
        if stall_decay is not None:
            if not f < stall["best"]:
                stall["scale"] *= stall_decay
            stall["best"] = min(stall["best"], f)
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
        compile_time=np.asarray(compile_time),
        rank=int(defaults.rank) if method.sketchy else 0,
        rho=float(defaults.rho) if method.sketchy else float("nan"),
        batch_size=int(defaults.batch_size),
        hessian_batch_size=int(defaults.hessian_batch_size),
        steps_per_epoch=int(problem.n // defaults.batch_size))
