"""NysADMM: ADMM whose x-step is one linear system solved inexactly by Nyström PCG."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from precond.glm import SquaredLoss, dense_gram, has_dense_gram
from precond.linalg import NystromPreconditioner, Status, cg, check_status, nystrom
from precond.loop import DIVERGENCE_FACTOR
from precond.validation import (
    check_int,
    check_key,
    check_nonnegative,
    check_positive,
    check_real,
)

from .problems import (
    LossProblem,
    QuadraticProblem,
    dense_quadratic,
    has_dense_quadratic,
    low_rank_quadratic,
)

__all__ = ["ADMMHistory", "ADMMResult", "nysadmm"]

_RUNNING = -1
_RHO_PERIOD = 10  # iterations between ρ adaptations


class ADMMHistory(NamedTuple):
    """Per-iteration records, numpy arrays of length ``iterations``."""

    primal_residual: jax.Array  # ‖x − z‖
    dual_residual: jax.Array  # ρ‖z − z_prev‖
    rho: jax.Array
    cg_iterations: jax.Array
    criterion: jax.Array  # the natural-residual criterion at z (NaN when not computed)


class ADMMResult(NamedTuple):
    """Outcome of :func:`nysadmm`.

    ``z`` is the prox iterate: feasible for constraints and exactly sparse for ℓ1 penalties, so it
    is the solution to use (``solution`` is z); ``x`` is the linear-system iterate (both (d,)).
    The scalars are 0-d arrays from the jitted loop (``int()``/``float()`` them for Python
    numbers): ``iterations``, the last ``primal_residual`` ‖x − z‖ and ``dual_residual``
    ρ‖z − z_prev‖, ``converged``, ``status`` (a :class:`precond.linalg.Status` code: converged /
    max_iterations / nonfinite / diverged — the objective f(z) + r(z), evaluated every
    ``check_every`` iterations, grew past ``precond.loop.DIVERGENCE_FACTOR``·max(1, |F(0)|)),
    the final ``rho``, the last computed natural ``criterion``, the
    total ``cg_iterations``.  ``history`` holds numpy arrays; ``x_solver`` says which x-step ran.
    """

    x: jax.Array
    z: jax.Array
    iterations: jax.Array
    primal_residual: jax.Array
    dual_residual: jax.Array
    converged: jax.Array
    status: jax.Array
    history: ADMMHistory
    u: jax.Array
    rho: jax.Array
    criterion: jax.Array
    cg_iterations: jax.Array
    x_solver: str = "pcg"  # "pcg" (Nyström PCG) or "cholesky" (dense Gram), see nysadmm

    @property
    def solution(self) -> jax.Array:
        return self.z

    @property
    def reason(self) -> Status:
        return Status(int(self.status))

    def check(self) -> ADMMResult:
        """``self`` if the solve converged, else raise :class:`precond.linalg.SolverError`."""
        check_status(self.status, f"after {int(self.iterations)} iterations, primal residual "
                                  f"{float(self.primal_residual):.3e}, dual residual "
                                  f"{float(self.dual_residual):.3e}")
        return self


def nysadmm(
    problem,
    *,
    rho: float | str = "auto",
    rank: int = 50,
    tol: float = 1e-6,
    max_iter: int = 1000,
    key: jax.Array,
    eps_abs: float | None = None,
    eps_rel: float | None = None,
    stopping: str = "auto",
    relaxation: float = 1.6,
    sketch_every: int = 10,
    adapt_rho: bool = True,
    cg_maxiter: int = 50,
    check_every: int = 5,
    x_solver: str = "auto",
    gram_max_dim: int = 4096,
    throw: bool = False,
) -> ADMMResult:
    """Solve min f(x) + r(x) (a problem from :mod:`precond.composite.problems`) by NysADMM.

    With the splitting x = z, scaled dual u, penalty ρ (``rho``) and relaxation α
    (``relaxation``), iteration k is

        (H_k + ρI) x⁺ = ρ(z − u) + H_k x − ∇f(x),   H_k = AᵀH_ℓ(Ax)A (= Q for quadratics)
        x̂ = αx⁺ + (1 − α)z,   z⁺ = prox_{r/ρ}(x̂ + u),   u⁺ = u + x̂ − z⁺.

    The x-step is solved by :func:`precond.linalg.cg` with the rank-``rank`` Nyström
    preconditioner of H_k (:func:`precond.linalg.nystrom`, :class:`NystromPreconditioner` with
    μ = ρ), warm-started at x, to the summable relative tolerance
    min(0.1, √(r_p·r_d)/‖rhs‖)/k^1.2, at most ``cg_maxiter`` steps.  For a quadratic f the
    sketch is taken once; otherwise it is refreshed every ``sketch_every`` iterations.  Because
    P⁻¹ is rebuilt from the same sketch for any μ, changing ρ costs nothing: ρ is adapted every
    10 iterations by the OSQP/GeNIOS rule ρ ← ρ√(r̃_p/r̃_d) (normalized residuals) when that
    changes ρ by 5× or more (r_d = 0 < r_p, a z that has not moved, raises ρ by 5×).

    x-step solver (``x_solver``): "pcg" — the Nyström PCG above; "cholesky" — for a quadratic
    loss with dense data (lasso, elastic net, box least squares on a numpy/jax matrix, centered or
    not) the Gram matrix G = AᵀWA (d, d) and c = AᵀWb are formed once (one GEMM, n·d² work) and
    every x-step is an exact solve with the Cholesky factor of G + ρI, refactored (d³/3) only when
    ρ changes; the whole iteration, stopping criterion included, then works in ℝᵈ and never
    touches A again.  For a QuadraticProblem (SVM dual) G = Q formed explicitly (a dense RBF
    kernel, or XXᵀ for a linear kernel of dense X) and c = −q — except a linear kernel with
    fewer features p than samples n, where ρI + VᵀV (p, p), V = diag(y)X, is factored and
    (Q + ρI)⁻¹ applied by Woodbury (n×n is never formed).  "auto" picks "cholesky" when it
    applies and the factored dimension (d, or p) is ≤ ``gram_max_dim`` (and d ≤ n for data
    problems: forming G costs as much as ~d/2 products with A but runs at BLAS-3 speed, while
    ADMM with PCG needs hundreds of such products), else "pcg".  ``result.x_solver`` says which
    ran; ``cg_iterations`` is 0 for "cholesky".

    Stopping (``stopping``): "boyd" — r_p ≤ √d·eps_abs + eps_rel·max(‖x‖, ‖z‖) and
    r_d ≤ √d·eps_abs + eps_rel·‖ρu‖ (eps_abs, eps_rel default to ``tol``); "natural" — seed 004's
    ‖z − prox_r(z − ∇f(z))‖/(1 + ‖z‖ + ‖∇ℓ(Az)‖) ≤ ``tol`` (for the lasso exactly
    ‖x − prox_{λ‖·‖₁}(x − Aᵀ(Ax − b))‖/(1 + ‖x‖ + ‖Ax − b‖)), evaluated every ``check_every``
    iterations and at the last one (it costs a product with A or G, as much as an x-step;
    ``history.criterion`` is NaN in between); "auto" — natural for least-squares losses, Boyd
    otherwise.  Divergence (``precond.loop``'s rule): every ``check_every`` iterations and at
    the last the objective F(z) = f(z) + r(z) is evaluated (with the natural criterion, from the
    same products; otherwise one more product with A or G), and F past
    ``DIVERGENCE_FACTOR``·max(1, |F(0)|) stops the loop with status ``diverged``.

    The whole outer loop is one jitted ``lax.while_loop`` (CG and the sketch refresh inside it):
    for small and medium problems per-iteration dispatch from Python would cost more than the
    iteration itself, and nothing in the loop needs the host.

    Args:
      problem: a LossProblem or QuadraticProblem of dimension d.
      rho: initial ρ > 0, or "auto" (the sketched trace of H_0 over d, i.e. its mean
        eigenvalue as the sketch sees it, floored at 1e-6·λ̂₁; the mean eigenvalue of G for the
        Cholesky x-step).
      rank: Nyström sketch size (clipped to d).
      tol: the natural criterion's tolerance, and the default of ``eps_abs``, ``eps_rel``.
      max_iter: the iteration cap (≥ 1).
      key: a jax.random key (sketches); required.
      eps_abs, eps_rel: Boyd's absolute and relative tolerances.
      stopping: "auto", "boyd" or "natural" (above).
      relaxation: α ∈ (0, 2).
      sketch_every: iterations between sketch refreshes of a non-quadratic f.
      adapt_rho: adapt ρ by the residual-balancing rule.
      cg_maxiter: CG steps per x-step at most.
      check_every: iterations between natural-criterion checks.
      x_solver: "auto", "pcg" or "cholesky" (above).
      gram_max_dim: the largest factored dimension "auto" picks "cholesky" for.
      throw: raise :class:`precond.linalg.SolverError` unless converged (``result.check()``).

    Returns:
      an :class:`ADMMResult`.

    References:
      Zhao, Frangella, Udell, "NysADMM: faster composite convex optimization via low-rank
      approximation", ICML 2022.  Boyd et al., "Distributed optimization and statistical
      learning via ADMM", 2011.  Stellato et al., "OSQP", 2020.
    """
    check_key(key)
    d = problem.dim
    max_iter = check_int(max_iter, "max_iter", low=1)
    rank = check_int(rank, "rank", low=1)
    tol = check_nonnegative(tol, "tol")
    eps_abs = tol if eps_abs is None else check_nonnegative(eps_abs, "eps_abs")
    eps_rel = tol if eps_rel is None else check_nonnegative(eps_rel, "eps_rel")
    relaxation = check_real(relaxation, "relaxation")
    if not 0 < relaxation < 2:
        raise ValueError(f"relaxation must be in (0, 2), got {relaxation}")
    _check_choice(stopping, "stopping", ("auto", "boyd", "natural"))
    if isinstance(rho, str):
        if rho != "auto":
            raise ValueError(f"rho must be a number > 0 or 'auto', got {rho!r}")
    else:
        rho = check_positive(rho, "rho")
    check_every = check_int(check_every, "check_every", low=1)
    sketch_every = check_int(sketch_every, "sketch_every", low=1)
    cg_maxiter = check_int(cg_maxiter, "cg_maxiter", low=1)
    gram_max_dim = check_int(gram_max_dim, "gram_max_dim", low=1)
    _check_choice(x_solver, "x_solver", ("auto", "pcg", "cholesky"))
    low_rank = None
    if isinstance(problem, QuadraticProblem):
        gram_ok = has_dense_quadratic(problem.Q)
        low_rank = low_rank_quadratic(problem.Q)
        if low_rank is not None and low_rank[0].shape[1] >= d:
            low_rank = None  # p ≥ n: factorizing the n×n Q is the smaller system
        small = (low_rank[0].shape[1] if low_rank is not None else d) <= gram_max_dim
    else:
        gram_ok = (isinstance(problem, LossProblem) and problem.quadratic
                   and isinstance(problem.loss, SquaredLoss) and has_dense_gram(problem.A))
        small = d <= min(problem.A.shape[0], gram_max_dim)
    if x_solver == "cholesky" and not gram_ok:
        raise ValueError("x_solver='cholesky' needs a least-squares LossProblem on dense data "
                         "(lasso, elastic_net, box_least_squares of an array) or a "
                         "QuadraticProblem whose Q can be formed (dense, RBF ≤ dense_max or "
                         "linear kernel of dense data)")
    if x_solver == "auto":
        x_solver = "cholesky" if gram_ok and small else "pcg"
    if stopping == "auto":
        least_squares = isinstance(problem, LossProblem) and isinstance(problem.loss, SquaredLoss)
        stopping = "natural" if least_squares else "boyd"
    rank = min(rank, d)
    # The Gram system is formed here, outside the jitted loop, so that concrete CPU data takes
    # the host BLAS (see precond.glm.dense_gram); under an outer jit it is XLA's GEMM as before.
    gram = _gram_system(problem, low_rank) if x_solver == "cholesky" else None
    out = _nysadmm(problem, gram, key, None if isinstance(rho, str) else rho, tol, eps_abs,
                   eps_rel, relaxation, jnp.int32(max_iter),
                   hist_len=_history_length(max_iter), rank=rank, stopping=stopping,
                   sketch_every=sketch_every, adapt_rho=bool(adapt_rho), cg_maxiter=cg_maxiter,
                   x_solver=x_solver, check_every=check_every)
    x, z, u, k, rp, rd, rho_f, crit, status, hist, total_cg = out
    history = ADMMHistory(*(np.asarray(h)[:int(k)] for h in hist))
    result = ADMMResult(x, z, k, rp, rd, status == Status.CONVERGED, status, history, u, rho_f,
                        crit, total_cg, x_solver)
    if throw:
        result.check()
    return result


def _check_choice(value, name: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be {', '.join(map(repr, choices[:-1]))} or "
                         f"{choices[-1]!r}, got {value!r}")


def _history_length(max_iter: int) -> int:
    """History buffers come in a few sizes (≥ 2048, powers of two), so max_iter is a traced
    argument and changing it does not recompile."""
    return max(2048, 1 << (int(max_iter) - 1).bit_length())


@partial(jax.jit, static_argnames=("hist_len", "rank", "stopping", "sketch_every", "adapt_rho",
                                   "cg_maxiter", "x_solver", "check_every"))
def _nysadmm(problem, gram, key, rho0, tol, eps_abs, eps_rel, alpha, max_iter, *, hist_len, rank,
             stopping, sketch_every, adapt_rho, cg_maxiter, x_solver, check_every):
    d = problem.dim
    dtype = _dtype(problem)
    tiny = jnp.finfo(dtype).tiny
    if x_solver == "cholesky":
        xstep, measure, objective, refactor, rho, aux = _cholesky_parts(problem, gram, rho0,
                                                                        dtype)
    else:
        xstep, measure, objective, refactor, rho, aux = _pcg_parts(
            problem, key, rho0, dtype, rank=rank, sketch_every=sketch_every,
            cg_maxiter=cg_maxiter)
    zeros = jnp.zeros(d, dtype)
    # The divergence rule (precond.loop's): F(z) = f(z) + r(z) at a check past
    # DIVERGENCE_FACTOR·max(1, |F(z₀)|) stops the loop with DIVERGED.
    limit = DIVERGENCE_FACTOR * jnp.maximum(1.0, jnp.abs(objective(zeros)))
    nan = jnp.asarray(jnp.nan, dtype)
    sqrt_d = jnp.sqrt(jnp.asarray(d, dtype))
    m = hist_len
    hist0 = tuple(jnp.full((m,), jnp.nan, dtype) for _ in range(3)) + (
        jnp.zeros((m,), jnp.int32), jnp.full((m,), jnp.nan, dtype))
    inf = jnp.asarray(jnp.inf, dtype)
    state = (jnp.int32(0), zeros, zeros, zeros, rho, aux, inf, inf, inf,
             jnp.int32(_RUNNING), hist0, jnp.int32(0), rho)

    def running(s):
        return s[9] == _RUNNING

    def body(s):
        k, x, z, u, rho, aux, rp, rd, crit, _, hist, total_cg, _ = s
        x_new, cg_its, aux = xstep(k, x, z, u, rho, rp, rd, aux)
        x_hat = alpha * x_new + (1 - alpha) * z
        z_new = problem.reg.prox(x_hat + u, 1.0 / rho)
        u_new = u + x_hat - z_new
        rp_new = jnp.linalg.norm(x_new - z_new)
        rd_new = rho * jnp.linalg.norm(z_new - z)
        scale_p = jnp.maximum(jnp.linalg.norm(x_new), jnp.linalg.norm(z_new))
        scale_d = rho * jnp.linalg.norm(u_new)
        boyd = ((rp_new <= sqrt_d * eps_abs + eps_rel * scale_p)
                & (rd_new <= sqrt_d * eps_abs + eps_rel * scale_d))
        # Every check_every-th iteration: the criterion and the objective cost a product with
        # the data (or G) as large as the x-step itself.
        check = ((k + 1) % check_every == 0) | (k + 1 >= max_iter)
        if stopping == "natural":
            crit_new, obj = lax.cond(check, measure, lambda z: (nan, nan), z_new)
            done = check & (crit_new <= tol)
        else:
            crit_new = nan
            obj = lax.cond(check, objective, lambda z: nan, z_new)
            done = boyd
        diverged = check & (jnp.abs(obj) > limit)  # NaN compares False: nonfinite says that
        finite = (jnp.isfinite(rp_new) & jnp.isfinite(rd_new) & jnp.all(jnp.isfinite(z_new))
                  & jnp.all(jnp.isfinite(x_new)))
        status = jnp.where(done, Status.CONVERGED, _RUNNING)
        status = jnp.where((status == _RUNNING) & diverged, Status.DIVERGED, status)
        status = jnp.where((status == _RUNNING) & (k + 1 >= max_iter), Status.MAX_ITERATIONS,
                           status)
        status = jnp.where(finite, status, Status.NONFINITE).astype(jnp.int32)
        hist = (hist[0].at[k].set(rp_new), hist[1].at[k].set(rd_new), hist[2].at[k].set(rho),
                hist[3].at[k].set(cg_its), hist[4].at[k].set(crit_new))
        rho_next = rho
        if adapt_rho:
            # Every _RHO_PERIOD iterations, the OSQP/GeNIOS rule ρ ← ρ√(r̃_p/r̃_d) when it changes
            # ρ by 5× or more; the change itself is made by `segment`, outside this loop.
            ratio = jnp.sqrt((rp_new / jnp.maximum(scale_p, tiny))
                             / jnp.maximum(rd_new / jnp.maximum(scale_d, tiny), tiny))
            # r_d = 0 with r_p > 0 (z has not moved: at the start of an ℓ1 problem the threshold
            # λ/ρ can exceed every |x̂ + u|, so z stays 0) is an infinite ratio — ρ is too small
            # — and the rule's own threshold, 5×, is the step taken (the rule could otherwise
            # not act until z first moves; the effect on the lasso is in docs/bench/nysadmm.md).
            ratio = jnp.where((rd_new == 0) & (rp_new > 0), 5.0, ratio)
            change = (((ratio >= 5) | (ratio < 0.2)) & jnp.isfinite(ratio) & (rp_new > 0)
                      & (status == _RUNNING) & ((k + 1) % _RHO_PERIOD == 0))
            rho_next = jnp.where(change, rho * jnp.clip(ratio, 1e-3, 1e3), rho)
        keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
        return (k + 1, keep(x_new, x), keep(z_new, z), keep(u_new, u), rho, aux,
                keep(rp_new, rp), keep(rd_new, rd),
                keep(jnp.where(jnp.isnan(crit_new), crit, crit_new), crit), status, hist,
                total_cg + cg_its, rho_next)

    def segment(s):
        # Iterations at one ρ, then the ρ change they asked for.  The x-step state (a Cholesky
        # factor) is rebuilt out here, once per change: a conditional refactorization inside the
        # iteration, or after every _RHO_PERIOD iterations, made XLA on CPU copy the (d, d)
        # factor through the conditional each time, a large share of a lasso iteration
        # (docs/bench/nysadmm.md).
        s = lax.while_loop(lambda t: running(t) & (t[12] == t[4]), body, s)
        if not adapt_rho:
            return s
        k, x, z, u, rho, aux, rp, rd, crit, status, hist, total_cg, rho_next = s
        change = (status == _RUNNING) & (rho_next != rho)
        aux = lax.cond(change, lambda: refactor(rho_next, aux), lambda: aux)
        return (k, x, z, u * (rho / rho_next), rho_next, aux, rp, rd, crit, status, hist,
                total_cg, rho_next)

    k, x, z, u, rho, _, rp, rd, crit, status, hist, total_cg, _ = lax.while_loop(
        running, segment, state)
    return x, z, u, k, rp, rd, rho, crit, status, hist, total_cg


def _pcg_parts(problem, key, rho0, dtype, *, rank, sketch_every, cg_maxiter):
    """x-step by Nyström PCG on (H_k + ρI); the loop's aux state is the Nyström approximation."""
    d = problem.dim
    H0, _ = problem.linearize(jnp.zeros(d, dtype))
    key, sub = jax.random.split(key)
    approx = nystrom(H0, rank, sub)
    if rho0 is None:
        # The mean eigenvalue of H_0 as seen by the sketch (trace / d): the scale at which the
        # x-step weighs the data and the proximal term alike.
        lam = approx.eigenvalues
        top = jnp.maximum(lam[0], jnp.finfo(dtype).tiny)
        rho = jnp.maximum(jnp.sum(lam) / d, 1e-6 * top)
    else:
        rho = jnp.asarray(rho0, dtype)

    def xstep(k, x, z, u, rho, rp, rd, approx):
        H, g = problem.linearize(x)
        if not problem.quadratic:
            refresh = (k > 0) & (k % sketch_every == 0)
            approx = lax.cond(refresh, lambda: nystrom(H, rank, jax.random.fold_in(key, k)),
                              lambda: approx)
        rhs = rho * (z - u) + g
        rhs_norm = jnp.linalg.norm(rhs)
        kk = (k + 1).astype(dtype)
        eta = jnp.minimum(0.1, jnp.sqrt(rp * rd) / jnp.maximum(rhs_norm, jnp.finfo(dtype).tiny))
        eta = jnp.where(jnp.isfinite(eta), eta, 0.1) / kk**1.2
        sol = cg(H.shift(rho), rhs, M=NystromPreconditioner(approx, rho), x0=x, tol=eta,
                 maxiter=cg_maxiter)
        return sol.x, sol.iterations, approx

    def refactor(rho_new, approx):
        return approx  # P⁻¹ is rebuilt from the same sketch for any μ = ρ

    return xstep, problem.criterion_and_objective, problem.objective, refactor, rho, approx


class _LowRankGram(NamedTuple):
    """The x-step system of Q = VVᵀ, V = diag(y) X diag(s) (n, p) with p < n: H = VᵀV (p, p)
    and c = −q; (Q + ρI)⁻¹ is applied by Woodbury (see :func:`_cholesky_parts`)."""

    X: jax.Array  # (n, p)
    y: jax.Array  # (n,)
    s: jax.Array  # (p,)
    H: jax.Array  # (p, p)
    c: jax.Array  # (n,)


def _gram_system(problem, low_rank=None):
    """The x-step system (G + ρI)x = ρ(z − u) + c, formed once: (G, c) with G = AᵀWA, c = AᵀWb
    for least squares, G = Q, c = −q for a quadratic problem (one GEMM); a :class:`_LowRankGram`
    when ``low_rank`` = (X, y, s) from :func:`low_rank_quadratic` (H = VᵀV, one (n, p) GEMM)."""
    if low_rank is not None:
        X, y, s = low_rank
        H = dense_gram(problem.Q.K.A.T, y * y)  # Xᵀdiag(y²)X
        return _LowRankGram(X, y, s, s[:, None] * H * s[None, :], -problem.q)
    if isinstance(problem, QuadraticProblem):
        return dense_quadratic(problem.Q), -problem.q
    A, w, b = problem.A, problem.loss.weights, problem.loss.target
    return dense_gram(A, w), A.T.matvec(w * b)


def _cholesky_parts(problem, gram, rho0, dtype):
    """x-step (G + ρI)x = ρ(z − u) + c by Cholesky, with ``gram`` from :func:`_gram_system`.

    The loop's aux state is the lower Cholesky factor L of G + ρI, recomputed (d³/3 work) only
    when ρ changes; an x-step is two triangular solves.  (Keeping L⁻¹ instead, so that an x-step
    is two GEMVs, costs a triangular inversion per factorization for a small saving per
    iteration: a loss unless hundreds of iterations share one factorization; measured in
    docs/bench/nysadmm.md.)  For
    Q = VVᵀ of rank p < n (:class:`_LowRankGram`: a linear-kernel SVM with fewer features than
    samples) L factors ρI + VᵀV (p, p) instead and (Q + ρI)⁻¹r = (r − V(ρI + VᵀV)⁻¹Vᵀr)/ρ
    (Woodbury): two products with X per x-step, (n·p + p²) work, and p³ per factorization
    instead of n³."""
    d = problem.dim
    if isinstance(gram, _LowRankGram):
        X, y, s, G, c = gram

        def solve(r, L, rho):
            t = ((y * r) @ X) * s
            return (r - y * (X @ (s * _cho_solve(L, t)))) / rho

        def apply_q(z):
            return y * (X @ (s * s * ((y * z) @ X)))
    else:
        G, c = gram

        def solve(r, L, rho):
            return _cho_solve(L, r)

        def apply_q(z):
            return G @ z
    if not isinstance(problem, QuadraticProblem):
        A, w, b = problem.A, problem.loss.weights, problem.loss.target
        beta = jnp.vdot(w, b * b)
        binary = jnp.all(w * (w - 1) == 0)  # then ‖w(Az − b)‖² = zᵀGz − 2cᵀz + bᵀWb
    if rho0 is None:
        # The mean eigenvalue of G (of Q for the Woodbury form: tr(VVᵀ) = tr(VᵀV)).
        rho = jnp.maximum(jnp.trace(G) / d, jnp.finfo(dtype).tiny)
    else:
        rho = jnp.asarray(rho0, dtype)

    def xstep(k, x, z, u, rho, rp, rd, L):
        return solve(rho * (z - u) + c, L, rho), jnp.int32(0), L

    def value(z, grad):
        # f(z) = ½zᵀGz − cᵀz (+ ½bᵀWb for a loss) = ½zᵀ(∇f(z) − c) (+ ½β), plus r(z).
        const = 0.0 if isinstance(problem, QuadraticProblem) else 0.5 * beta
        return 0.5 * jnp.vdot(z, grad - c) + const + problem.reg.value(z)

    def criterion(z):
        # The problem's criterion from G: ∇f(z) = Gz − c, and ∇ℓ(Az) = w(Az − b) for a loss;
        # with it the objective (no further product).
        grad = apply_q(z) - c
        step = z - problem.reg.prox(z - grad, 1.0)
        if isinstance(problem, QuadraticProblem):
            crit = jnp.linalg.norm(step) / (1.0 + jnp.linalg.norm(z) + jnp.linalg.norm(grad))
            return crit, value(z, grad)
        res = lax.cond(binary,
                       lambda: jnp.sqrt(jnp.maximum(jnp.vdot(z, grad) - jnp.vdot(c, z) + beta,
                                                    0.0)),
                       lambda: jnp.linalg.norm(problem.loss.grad(A.matvec(z))))
        return jnp.linalg.norm(step) / (1.0 + jnp.linalg.norm(z) + res), value(z, grad)

    def objective(z):
        return value(z, apply_q(z) - c)

    def refactor(rho_new, L):
        return _cholesky(G, rho_new)

    return xstep, criterion, objective, refactor, rho, _cholesky(G, rho)


def _cholesky(G, rho):
    """The lower Cholesky factor L of G + ρI (d³/3 work).  Only the lower triangle of G is read
    (no symmetrizing pass over G)."""
    return lax.linalg.cholesky(G + rho * jnp.eye(G.shape[0], dtype=G.dtype),
                               symmetrize_input=False)


def _cho_solve(L, r):
    """(LLᵀ)⁻¹r by two triangular solves."""
    t = lax.linalg.triangular_solve(L, r[:, None], left_side=True, lower=True)
    return lax.linalg.triangular_solve(L, t, left_side=True, lower=True, transpose_a=True)[:, 0]


def _dtype(problem):
    op = problem.A if isinstance(problem, LossProblem) else problem.Q
    return op.dtype
