"""The OSGM papers' "solved instances" protocol, with its baselines and performance profile.

Problems: unregularized linear classification with the bias column ã = [a; 1] —
squared hinge f(w) = ½ Σᵢ max(0, 1 − yᵢ ãᵢᵀw)² (L = λ_max(ÃᵀÃ)) and logistic
f(w) = Σᵢ log(1 + exp(−yᵢ ãᵢᵀw)) (L = λ_max(ÃᵀÃ)/4).  x₀ is Gaussian, normalized to ‖x₀‖ = 1.
Each method stops when ‖∇f‖∞ < ``gtol`` (1e-4) or after ``max_grad_evals`` (1000) gradients;
an instance is *solved* when the gradient test stopped it.

JAX methods run on data zero-padded to power-of-two shapes (a row mask keeps f unchanged, padded
columns have zero gradient and stay at 0), so one compilation serves many data sets; the scipy
methods run on the unpadded data in numpy.  Everything is deterministic.

Methods: OSGM (HDM-best), OSGM-H, OSGM-R (diagonal P), GD (1/L), GD-HB (1/L, β = 0.9),
AGD-CVX (Nesterov, (k−1)/(k+2) momentum), AGD-SCVX ((√κ−1)/(√κ+1), κ = L/μ with μ the smallest
Hessian eigenvalue at x₀, floored at 10⁻¹⁰L), Adam and AdaGrad (optax; learning rate from a grid,
the best per instance), L-BFGS-M1/3/5/10 (scipy L-BFGS-B, ``maxcor``) and BFGS (scipy).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.optimize
from jax import lax

from precond.optim import osgm_minimize
from precond.validation import check_int, check_positive

from .store import atomic_write

__all__ = ["LOSSES", "METHODS", "Problem", "RunResult", "make_problem", "performance_profile",
           "plot_performance_profile", "run_method", "run_protocol", "solved_counts"]

LOSSES = ("squared_hinge", "logistic")
LR_GRID = (1e-3, 1e-2, 1e-1, 1.0)
JAX_METHODS = ("OSGM", "OSGM-H", "OSGM-R", "GD", "GD-HB", "AGD-CVX", "AGD-SCVX", "Adam",
               "AdaGrad")
SCIPY_METHODS = ("L-BFGS-M1", "L-BFGS-M3", "L-BFGS-M5", "L-BFGS-M10", "BFGS")
METHODS = JAX_METHODS + SCIPY_METHODS


class Problem(NamedTuple):
    """A padded classification loss (:func:`make_problem` builds one).

    Attributes:
      name: the data set's name.
      loss: one of ``LOSSES``.
      A: (n_pad, d_pad) rows ãᵢ = [aᵢ; 1], zero-padded to powers of two.
      y: labels (n_pad,) in {−1, +1} (0 on padded rows).
      mask: (n_pad,) 1 on the real rows, 0 on the padding.
      x0: the start (d_pad,), Gaussian with ‖x₀‖ = 1 on the real coordinates.
      n: the real number of rows N.
      d: the real number of coordinates (features + bias).
      L: the smoothness constant (module docstring).
      mu: μ, the smallest Hessian eigenvalue at x₀, floored at 10⁻¹⁰L.
    """

    name: str
    loss: str
    A: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    x0: np.ndarray
    n: int
    d: int
    L: float
    mu: float


class RunResult(NamedTuple):
    """One method on one instance under the protocol.

    Attributes:
      method: the method's name (one of ``METHODS``).
      solved: the gradient test ‖∇f‖∞ < gtol stopped it.
      grad_evals: the gradients it evaluated.
      fun: f at the returned point.
      grad_norm: ‖∇f‖∞ there.
      seconds: its run time (compilation excluded for the JAX methods when measured by
        :func:`run_protocol`).
      detail: the solver's stop reason or the chosen learning rate.
    """

    method: str
    solved: bool
    grad_evals: int
    fun: float
    grad_norm: float
    seconds: float
    detail: str = ""


def _pow2(k: int, lo: int) -> int:
    return max(lo, 1 << math.ceil(math.log2(max(k, 1))))


def loss_value(w: jax.Array, A: jax.Array, y: jax.Array, mask: jax.Array, loss: str
               ) -> jax.Array:
    """f(w) on the padded data: squared hinge ½ Σ max(0, 1 − yᵢãᵢᵀw)² or logistic
    Σ log(1 + exp(−yᵢãᵢᵀw)), over the rows where ``mask`` is 1.

    Args:
      w: the weights (d_pad,).
      A: rows ãᵢ (n_pad, d_pad).
      y: labels (n_pad,) in {−1, +1}.
      mask: (n_pad,) 1 on the real rows.
      loss: one of ``LOSSES``.
    """
    z = y * (A @ w)
    if loss == "squared_hinge":
        return 0.5 * jnp.sum(mask * jnp.maximum(0.0, 1.0 - z) ** 2)
    return jnp.sum(mask * jnp.logaddexp(0.0, -z))


def _np_loss_grad(w, A, y, loss):
    z = y * (A @ w)
    if loss == "squared_hinge":
        r = np.maximum(0.0, 1.0 - z)
        return 0.5 * float(r @ r), -(A.T @ (y * r))
    s = 0.5 * (1.0 - np.tanh(0.5 * z))  # σ(−z), stable
    return float(np.sum(np.logaddexp(0.0, -z))), -(A.T @ (y * s))


def make_problem(X: np.ndarray, y: np.ndarray, loss: str, *, name: str = "", seed: int = 0
                 ) -> Problem:
    """Add the bias column, pad to power-of-two shapes, draw x₀, compute L and μ(x₀).

    Args:
      X: features (N, p).
      y: labels (N,) in {−1, +1}.
      loss: one of ``LOSSES``.
      name: the data set's name.
      seed: the seed of x₀.

    Example:
      >>> import numpy as np
      >>> from precond.experiments.solved_instances import make_problem
      >>> p = make_problem(np.eye(3), np.array([1.0, -1.0, 1.0]), "logistic")
      >>> p.A.shape, p.n, p.d  # padded to (2048, 32); three features and the bias
      ((2048, 32), 3, 4)
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"X must be (N, d) and y (N,), got {X.shape} and {y.shape}")
    n, d = X.shape[0], X.shape[1] + 1
    At = np.hstack([X, np.ones((n, 1))])
    n_pad, d_pad = _pow2(n, 2048), _pow2(d, 32)  # few shapes: few compilations
    A = np.zeros((n_pad, d_pad))
    A[:n, :d] = At
    yp = np.zeros(n_pad)
    yp[:n] = y
    mask = np.zeros(n_pad)
    mask[:n] = 1.0
    x0 = np.zeros(d_pad)
    v = np.random.default_rng(seed).standard_normal(d)
    x0[:d] = v / np.linalg.norm(v)
    gram = At.T @ At
    scale = 1.0 if loss == "squared_hinge" else 0.25
    L = scale * float(np.linalg.eigvalsh(gram)[-1])
    z = y * (At @ x0[:d])
    wts = (z < 1).astype(float) if loss == "squared_hinge" else 0.25 * (1 - np.tanh(0.5 * z) ** 2)
    mu = float(np.linalg.eigvalsh((At * wts[:, None]).T @ At)[0])
    return Problem(name, loss, A, yp, mask, x0, n, d, L, max(mu, 1e-10 * L))


# --------------------------------------------------------------------------- JAX baselines


@partial(jax.jit, static_argnames=("method", "loss", "max_evals"))
def _first_order(A, y, mask, x0, L, mu, lr, *, method, loss, max_evals, gtol):
    """GD / heavy ball / AGD / Adam / AdaGrad in one jitted while-loop; returns
    (x, f, ‖g‖∞, grad_evals, solved).  The gradient test is applied at every point where a
    gradient is evaluated (for AGD the extrapolated point, which is then returned)."""
    vg = jax.value_and_grad(lambda w: loss_value(w, A, y, mask, loss))
    opt = {"Adam": optax.adam(lr), "AdaGrad": optax.adagrad(lr)}.get(method)
    opt_state = opt.init(x0) if opt is not None else ()
    kappa = L / mu
    b_scvx = (jnp.sqrt(kappa) - 1) / (jnp.sqrt(kappa) + 1)

    def cond(c):
        return (c[4] < max_evals) & (c[5] >= gtol) & jnp.isfinite(c[3])

    def body(c):
        x, x_prev, st, _, k, _, _ = c
        if method == "AGD-CVX":
            pt = x + (k - 1.0) / (k + 2.0) * (x - x_prev)
        elif method == "AGD-SCVX":
            pt = x + b_scvx * (x - x_prev)
        else:
            pt = x
        f, g = vg(pt)
        if method in ("GD", "AGD-CVX", "AGD-SCVX"):
            x_new = pt - g / L
        elif method == "GD-HB":
            x_new = x - g / L + 0.9 * (x - x_prev)
        else:
            upd, st = opt.update(g, st, x)
            x_new = x + upd
        return (x_new, x, st, f, k + 1, jnp.max(jnp.abs(g)), pt)

    init = (x0, x0, opt_state, jnp.asarray(0.0, x0.dtype), jnp.asarray(0, jnp.int32),
            jnp.asarray(jnp.inf, x0.dtype), x0)
    x, _, _, f, k, gn, pt = lax.while_loop(cond, body, init)
    return pt, f, gn, k, gn < gtol


def _run_jax(p: Problem, method: str, max_evals: int, gtol: float) -> RunResult:
    args = (jnp.asarray(p.A), jnp.asarray(p.y), jnp.asarray(p.mask))
    x0 = jnp.asarray(p.x0)
    if method.startswith("OSGM"):
        variant = {"OSGM": "best", "OSGM-H": "hypergradient", "OSGM-R": "ratio"}[method]
        t0 = time.perf_counter()
        r = osgm_minimize(_loss_fns[p.loss], x0, args=args, variant=variant, L=p.L,
                          max_grad_evals=max_evals, gtol=gtol, f_lower=0.0)
        r = jax.block_until_ready(r)
        dt = time.perf_counter() - t0
        gn = float(jnp.max(jnp.abs(r.grad)))
        return RunResult(method, bool(r.converged), int(r.grad_evals), float(r.fun), gn, dt,
                         str(r.reason))
    lrs = LR_GRID if method in ("Adam", "AdaGrad") else (0.0,)
    best, total = None, 0.0
    for lr in lrs:
        t0 = time.perf_counter()
        out = jax.block_until_ready(_first_order(*args, x0, p.L, p.mu, lr, method=method,
                                                 loss=p.loss, max_evals=max_evals, gtol=gtol))
        total += time.perf_counter() - t0
        _, f, gn, k, ok = out
        rr = RunResult(method, bool(ok), int(k), float(f), float(gn), 0.0,
                       f"lr={lr:g}" if method in ("Adam", "AdaGrad") else "")
        # the best learning rate per instance: solved first, then fewest gradients
        if best is None or (rr.solved, -rr.grad_evals, -rr.grad_norm) > (
                best.solved, -best.grad_evals, -best.grad_norm):
            best = rr
    return best._replace(seconds=total)


def _osgm_loss(loss):
    return lambda w, A, y, mask: loss_value(w, A, y, mask, loss)


_loss_fns = {loss: _osgm_loss(loss) for loss in LOSSES}  # one function object per loss: no
# recompilation across data sets of the same padded shape


# --------------------------------------------------------------------------- scipy baselines


class _Budget(Exception):
    pass


def _run_scipy(p: Problem, method: str, max_evals: int, gtol: float) -> RunResult:
    A, y, x0 = p.A[:p.n, :p.d], p.y[:p.n], p.x0[:p.d]
    evals = [0]
    best = {"g": np.inf, "f": np.inf, "x": x0}

    def fg(w):
        if evals[0] >= max_evals:
            raise _Budget
        evals[0] += 1
        f, g = _np_loss_grad(w, A, y, p.loss)
        gn = float(np.max(np.abs(g)))
        if gn < gtol:  # the gradient test, applied at every gradient as for the other methods
            best.update(g=gn, f=f, x=w.copy())
            raise _Budget
        if f < best["f"]:
            best.update(g=gn, f=f, x=w.copy())
        return f, g

    t0 = time.perf_counter()
    detail = ""
    try:
        if method == "BFGS":
            r = scipy.optimize.minimize(fg, x0, jac=True, method="BFGS",
                                        options={"gtol": 0.0, "maxiter": 10 * max_evals})
        else:
            m = int(method.split("M")[-1])
            r = scipy.optimize.minimize(fg, x0, jac=True, method="L-BFGS-B",
                                        options={"maxcor": m, "ftol": 0.0, "gtol": 0.0,
                                                 "maxfun": 10 * max_evals,
                                                 "maxiter": 10 * max_evals})
        detail = str(r.message)[:60]
    except _Budget:
        pass
    dt = time.perf_counter() - t0
    solved = best["g"] < gtol
    return RunResult(method, bool(solved), evals[0], float(best["f"]), float(best["g"]), dt,
                     detail)


def run_method(p: Problem, method: str, *, max_grad_evals: int = 1000, gtol: float = 1e-4
               ) -> RunResult:
    """Run one method of :data:`METHODS` on a problem under the protocol (module docstring).

    Args:
      p: the instance (:func:`make_problem`).
      method: one of ``METHODS``.
      max_grad_evals: the gradient budget.
      gtol: the gradient test ‖∇f‖∞ < gtol that counts the instance as solved.
    """
    max_grad_evals = check_int(max_grad_evals, "max_grad_evals", low=1)
    gtol = check_positive(gtol, "gtol")
    if method in JAX_METHODS:
        return _run_jax(p, method, max_grad_evals, gtol)
    if method in SCIPY_METHODS:
        return _run_scipy(p, method, max_grad_evals, gtol)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


# --------------------------------------------------------------------------- bookkeeping


def solved_counts(results: Sequence[dict]) -> dict[str, dict[str, int]]:
    """The number of instances each method solved, per loss.

    Args:
      results: rows with keys ``method``, ``loss``, ``solved`` (as :func:`run_protocol` gives).

    Returns:
      ``{method: {loss: number solved}}``.
    """
    out: dict[str, dict[str, int]] = {}
    for r in results:
        out.setdefault(r["method"], {loss: 0 for loss in LOSSES})
        out[r["method"]][r["loss"]] += int(bool(r["solved"]))
    return out


def performance_profile(results: Sequence[dict], loss: str, methods: Sequence[str],
                        taus: np.ndarray) -> dict[str, np.ndarray]:
    """Dolan–Moré profile on gradient evaluations: ρ_m(τ) = fraction of instances that m solves
    within τ × the fewest evaluations any method needed (unsolved costs ∞).

    Args:
      results: rows with keys ``problem``, ``loss``, ``method``, ``solved``, ``grad_evals``.
      loss: the loss whose instances count.
      methods: the methods to profile.
      taus: the ratios τ ≥ 1, shape (T,).

    Returns:
      method → ρ_m(τ) of shape (T,).

    References:
      Dolan and Moré, "Benchmarking optimization software with performance profiles",
      Math. Program. 2002.
    """
    cost: dict[str, dict[str, float]] = {}
    for r in results:
        if r["loss"] == loss:
            cost.setdefault(r["problem"], {})[r["method"]] = (
                r["grad_evals"] if r["solved"] else np.inf)
    probs = sorted(cost)
    C = np.array([[cost[p].get(m, np.inf) for m in methods] for p in probs], float)
    best = C.min(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(np.isfinite(best), C / best, np.inf)
    return {m: np.array([(ratio[:, j] <= t).mean() for t in taus]) for j, m in enumerate(methods)}


def plot_performance_profile(results: Sequence[dict], methods: Sequence[str],
                             path: str | os.PathLike) -> None:
    """Write a PNG of the performance profiles, one panel per loss.

    Args:
      results: the rows of :func:`run_protocol`.
      methods: the methods to draw.
      path: the PNG file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    taus = np.logspace(0, 2, 200)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    styles = ["-", "--", "-.", ":"]
    for ax, loss in zip(axes, LOSSES, strict=True):
        prof = performance_profile(results, loss, methods, taus)
        for i, m in enumerate(methods):
            ax.semilogx(taus, prof[m], styles[i % 4], label=m, lw=2 if m == "OSGM" else 1)
        ax.set_title(f"{loss.replace('_', ' ')}")
        ax.set_xlabel("τ (gradient evaluations / best)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("fraction of instances solved within τ × best")
    axes[1].legend(fontsize=7, loc="lower right", ncol=2)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=80))
    plt.close(fig)


def run_protocol(sets: Sequence, methods: Sequence[str] = METHODS, *, max_grad_evals: int = 1000,
                 gtol: float = 1e-4, seed: int = 0,
                 progress: Callable[[str], None] | None = None) -> tuple[list[dict], dict]:
    """Every method × loss × set under the protocol.

    Args:
      sets: :class:`~precond.problems.classification.ClassificationSet` s (name, source, X, y).
      methods: the methods to run (default all of ``METHODS``).
      max_grad_evals: the gradient budget per run.
      gtol: the gradient test of a solved instance.
      seed: the seed of x₀.
      progress: called with ``"<set> / <loss>"`` after each set and loss.

    Returns:
      ``(rows, timing)``: one dict per run (set, source, loss, sizes and the
      :class:`RunResult` fields), and the total run seconds per method with the compile
      seconds (first call per method, loss and padded shape, measured as first-call time
      minus an immediate second call).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # scipy's L-BFGS-B slows down badly with BLAS threads contending
        return _run_protocol(sets, methods, max_grad_evals, gtol, seed, progress)


def _run_protocol(sets, methods, max_grad_evals, gtol, seed, progress):
    rows: list[dict] = []
    seen: set = set()
    compile_s = 0.0
    run_s: dict[str, float] = {}
    for s in sets:
        for loss in LOSSES:
            p = make_problem(s.X, s.y, loss, name=s.name, seed=seed)
            for m in methods:
                key = (m, loss, p.A.shape)
                r = run_method(p, m, max_grad_evals=max_grad_evals, gtol=gtol)
                if m in JAX_METHODS and key not in seen:
                    seen.add(key)
                    r2 = run_method(p, m, max_grad_evals=max_grad_evals, gtol=gtol)
                    compile_s += max(r.seconds - r2.seconds, 0.0)
                    r = r2
                run_s[m] = run_s.get(m, 0.0) + r.seconds
                rows.append({"problem": s.name, "source": s.source, "loss": loss, "n": p.n,
                             "d": p.d, "L": p.L, **r._asdict()})
            if progress is not None:
                progress(f"{s.name} / {loss}")
    return rows, {"compile_seconds": compile_s, "run_seconds": run_s}
