"""The online scaled gradient method (OSGM): learn the preconditioner while descending.

OSGM treats the choice of a matrix step P as an online-learning problem.  At iterate x with
gradient g = ∇f(x) it tries x⁺ = x − P g and scores P with a surrogate of the contraction rate:

- hypergradient surrogate (OSGM-H):  h_x(P) = (f(x − P g) − f(x)) / ‖g‖²,
  ∇_P h_x(P) = −∇f(x⁺) gᵀ / ‖g‖²;
- ratio surrogate (OSGM-R):  r_x(P) = (f(x − P g) − f_lb) / (f(x) − f_lb),
  ∇_P r_x(P) = −∇f(x⁺) gᵀ / (f(x) − f_lb), with f_lb a lower bound on f* (see ``f_lower``).

P (a scalar, a diagonal, or a full matrix; for a diagonal the gradient is −∇f(x⁺) ∘ g / ‖g‖²) is
updated by AdaGrad, P ← P − η G ⊘ √(Σ G²), and the iterate is *monotone*: x⁺ is kept only when
f(x⁺) < f(x) (a "null step" otherwise; it still teaches P).  One gradient per iteration: ∇f(x⁺)
both scores P and, when x⁺ is accepted, is the next gradient.

The heavy-ball variant ``variant="best"`` (HDM-best, "OSGM-Best") also learns a scalar momentum:
x⁺ = x − P∘g + β (x − x₋), with ∂h/∂β = ⟨∇f(x⁺), x − x₋⟩ / ‖g‖², β updated by AdaGrad (step
``beta_lr``) and kept in [0, 0.9995]; x₋ is the previous anchor (equal to x after a null step, so a
null step also resets the momentum term).  For convex problems P is kept in [0, 10¹⁰/L] and the
AdaGrad step is η = 10/L (``lr``); L is estimated when not given.

References: W. Gao, Y.-C. Chu, Y. Ye, M. Udell, "Gradient methods with online scaling" (2024);
Part I. Theoretical foundations (2025); Y.-C. Chu, W. Gao, Y. Ye, M. Udell, Part II. Practical
aspects (2025).  A. G. Baydin et al., "Online learning rate adaptation with hypergradient
descent" (2018).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax
from jax.flatten_util import ravel_pytree

from precond.linalg import Status, check_status
from precond.validation import (
    check_int,
    check_nonnegative,
    check_positive,
    check_real,
    float_dtype,
)

from ._objective import evaluate, step_objective

__all__ = ["OSGMHistory", "OSGMResult", "OSGMState", "osgm", "osgm_minimize"]

VARIANTS = ("hypergradient", "ratio", "best")
PRECONDITIONERS = ("scalar", "diagonal", "full")
_RUNNING = -1
_ADAGRAD_EPS = 1e-12  # keeps G⊘√ΣG² finite before the first non-zero feedback
_BETA_MAX = 0.9995    # momentum is kept below 1 so the heavy-ball step stays a contraction
_P_MAX_TIMES_L = 1e10  # the papers' box [0, 10¹⁰/L] for P on convex problems


class OSGMHistory(NamedTuple):
    """Per-iteration trace, length ``max_grad_evals`` (entries past the end repeat the last).

    ``fun[k]`` and ``grad_norm[k]`` (‖∇f‖∞) are at the accepted iterate after k + 1 gradients.
    """

    fun: jax.Array
    grad_norm: jax.Array


class OSGMResult(NamedTuple):
    """Answer of :func:`osgm_minimize`, in the spirit of ``scipy.optimize.OptimizeResult``.

    ``status`` is an integer :class:`precond.linalg.Status` (converged: ‖∇f‖∞ < gtol;
    max_iterations: the gradient budget ran out; nonfinite: f or ∇f was NaN/inf — ``x`` is then
    the last finite accepted iterate).  No divergence status is needed: the iterate is
    monotone (a trial point is accepted only when f decreased), so f never grows past its start
    (:data:`precond.loop.DIVERGENCE_FACTOR` cannot be reached).  ``P`` and ``beta`` are the
    learned step and momentum; ``L`` the smoothness constant used (given or estimated).
    """

    x: jax.Array
    fun: jax.Array
    grad: jax.Array
    grad_evals: jax.Array
    iterations: jax.Array
    accepted: jax.Array
    converged: jax.Array
    status: jax.Array
    P: jax.Array
    beta: jax.Array
    L: jax.Array
    history: OSGMHistory

    @property
    def reason(self) -> Status:
        return Status(int(self.status))

    @property
    def success(self) -> bool:
        return bool(self.converged)

    def check(self) -> OSGMResult:
        """Return self if converged, else raise :class:`SolverError` saying what to try."""
        check_status(self.status, f"after {int(self.grad_evals)} gradient evaluations, "
                                  f"‖∇f‖∞ = {float(jnp.max(jnp.abs(self.grad))):.3e}")
        return self


# --------------------------------------------------------------------------- shared pieces


def _zeros_P(x: jax.Array, kind: str) -> jax.Array:
    n = x.shape[0]
    return {"scalar": jnp.zeros((), x.dtype), "diagonal": jnp.zeros(n, x.dtype),
            "full": jnp.zeros((n, n), x.dtype)}[kind]


def _apply_P(P: jax.Array, g: jax.Array) -> jax.Array:
    return P @ g if P.ndim == 2 else P * g


def _feedback_P(g_plus: jax.Array, g: jax.Array, denom: jax.Array, kind: str) -> jax.Array:
    """∇_P of the surrogate: −∇f(x⁺) gᵀ / denom, restricted to the candidate set of P."""
    if kind == "scalar":
        return -jnp.vdot(g_plus, g) / denom
    if kind == "diagonal":
        return -(g_plus * g) / denom
    return -jnp.outer(g_plus, g) / denom


def _adagrad(P, G, grad, lr):
    """One AdaGrad step on the online loss: G ← G + grad², P ← P − lr · grad / √G."""
    G = G + grad**2
    return P - lr * grad / (jnp.sqrt(G) + _ADAGRAD_EPS), G


def _learn(P, G, beta, Gb, *, g, g_plus, d, f, f_lb, lr, beta_lr, L, variant, kind, convex,
           eps=0.0):
    """Online-learner step for (P, β) from the feedback at the trial point."""
    gnorm2 = jnp.vdot(g, g) + eps
    tiny = jnp.finfo(g.dtype).tiny
    if variant == "ratio":
        denom = jnp.maximum(f - f_lb, tiny)
    else:
        denom = jnp.maximum(gnorm2, tiny)
    P, G = _adagrad(P, G, _feedback_P(g_plus, g, denom, kind), lr)
    if convex and kind != "full":
        P = jnp.clip(P, 0.0, _P_MAX_TIMES_L / L)
    if variant == "best":
        beta, Gb = _adagrad(beta, Gb, jnp.vdot(g_plus, d) / denom, beta_lr)
        beta = jnp.clip(beta, 0.0, _BETA_MAX)
    return P, G, beta, Gb


def _check_options(variant, preconditioner, lr, beta_lr, L, beta0=None, f_lower=None):
    """The choices by name; the scalars by ``precond.validation`` (traced ones pass): NaN/inf
    in any of them is a ``ValueError``."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if preconditioner not in PRECONDITIONERS:
        raise ValueError(f"preconditioner must be one of {PRECONDITIONERS}, got {preconditioner!r}")
    for name, v in (("lr", lr), ("beta_lr", beta_lr), ("L", L)):
        if v is not None:
            check_positive(v, name)
    if beta0 is not None:
        check_nonnegative(beta0, "beta0")
    if f_lower is not None:
        check_real(f_lower, "f_lower")


# --------------------------------------------------------------------------- the solver


class _Carry(NamedTuple):
    x: jax.Array
    f: jax.Array
    g: jax.Array
    x_prev: jax.Array
    P: jax.Array
    G: jax.Array
    beta: jax.Array
    Gb: jax.Array
    f_lb: jax.Array
    evals: jax.Array
    iters: jax.Array
    accepted: jax.Array
    status: jax.Array
    hist_f: jax.Array
    hist_g: jax.Array
    eta: jax.Array
    L_sum: jax.Array
    L_cnt: jax.Array
    n_mono: jax.Array
    guessed: jax.Array
    L_g: jax.Array


def osgm_minimize(
    fun: Callable[..., jax.Array],
    x0,
    *,
    args: tuple = (),
    variant: str = "best",
    preconditioner: str = "diagonal",
    max_grad_evals: int = 1000,
    gtol: float = 1e-4,
    L: float | None = None,
    lr: float | None = None,
    beta_lr: float = 1.0,
    beta0: float | None = None,
    f_lower: float | None = None,
    convex: bool = True,
    throw: bool = False,
) -> OSGMResult:
    """Minimize a smooth f: Rⁿ → R by OSGM (full gradients, deterministic).

    Args:
      fun: f(x, *args) → scalar, differentiable by JAX.  ``args`` are passed through traced, so
        one compilation serves every data set of the same shapes.
      x0: (n,) starting point.
      variant: "hypergradient" (OSGM-H), "ratio" (OSGM-R) or "best" (HDM-best: OSGM-H with a
        learned heavy-ball momentum β, the papers' recommended method).
      preconditioner: candidate set of P: "scalar", "diagonal" (default) or "full" (n × n).
      max_grad_evals: gradient budget (the first gradient at x0 counts; an L estimate costs one).
      gtol: stop when ‖∇f(x)‖∞ < gtol (the papers' test).
      L: smoothness constant; when None it is estimated from one secant probe at x0,
        L̂ = ‖∇f(x0 − t ĝ) − ∇f(x0)‖ / t with ĝ = g0/‖g0‖ and t = 10⁻³ max(1, ‖x0‖).
      lr: AdaGrad step η for P; default 10/L (convex) or 2/L (nonconvex), as in the papers.
      beta_lr: AdaGrad step for β ("best" only).  beta0: initial β (default 0.95 for "best").
      f_lower: a known lower bound on min f for OSGM-R (0 for the nonnegative losses of ML).
        When None the running estimate f_lb ← min(f_lb, f(x) − ‖∇f(x)‖²/(2L)) is used; it is
        no true lower bound but keeps f(x) − f_lb ≥ ‖∇f(x)‖²/(2L), which every L-smooth f obeys.
      convex: keep P (scalar/diagonal) in [0, 10¹⁰/L].
      throw: raise :class:`SolverError` when the run did not converge (outside jit only).

    Returns an :class:`OSGMResult` (``x, fun, grad_evals, converged, status, history``, …).

    Example:
      >>> import jax.numpy as jnp
      >>> res = osgm_minimize(lambda x: 0.5 * jnp.sum(jnp.arange(1., 4.) * x**2), jnp.ones(3))
      >>> bool(res.converged)
      True
    """
    _check_options(variant, preconditioner, lr, beta_lr, L, beta0, f_lower)
    max_grad_evals = check_int(max_grad_evals, "max_grad_evals", low=2)
    check_nonnegative(gtol, "gtol")
    x0 = jnp.asarray(x0)
    if x0.ndim != 1 or x0.shape[0] == 0:
        raise ValueError(f"x0 must be a non-empty 1-D array (n,), got shape {tuple(x0.shape)}; "
                         "flatten a pytree with jax.flatten_util.ravel_pytree first")
    x0 = x0.astype(float_dtype(x0))
    out = _osgm_jit(fun, x0, tuple(args), variant=variant, kind=preconditioner,
                    max_evals=int(max_grad_evals), gtol=gtol, L=L, lr=lr, beta_lr=beta_lr,
                    beta0=beta0, f_lower=f_lower, convex=convex)
    if throw:
        out.check()
    return out


@partial(jax.jit, static_argnames=("fun", "variant", "kind", "max_evals", "convex"))
def _osgm_jit(fun, x0, args, *, variant, kind, max_evals, gtol, L, lr, beta_lr, beta0, f_lower,
              convex):
    dt = x0.dtype
    vg = jax.value_and_grad(lambda x: fun(x, *args))
    f0, g0 = vg(x0)
    f0, g0 = f0.astype(dt), g0.astype(dt)
    evals = jnp.asarray(1, jnp.int32)
    if L is None:  # one secant probe along −g0 (counted as a gradient evaluation)
        t = 1e-3 * jnp.maximum(1.0, jnp.linalg.norm(x0))
        u = g0 / jnp.maximum(jnp.linalg.norm(g0), jnp.finfo(dt).tiny)
        L_est = jnp.linalg.norm(vg(x0 - t * u)[1] - g0) / t
        L_val = jnp.where(jnp.isfinite(L_est) & (L_est > 0), L_est, 1.0).astype(dt)
        evals = evals + 1
    else:
        L_val = jnp.asarray(L, dt)
    eta = jnp.asarray(lr, dt) if lr is not None else (10.0 if convex else 2.0) / L_val
    beta_init = (0.95 if variant == "best" else 0.0) if beta0 is None else beta0
    gnorm_inf = jnp.max(jnp.abs(g0))
    finite0 = jnp.isfinite(f0) & jnp.all(jnp.isfinite(g0))
    status0 = jnp.where(~finite0, Status.NONFINITE,
                        jnp.where(gnorm_inf < gtol, Status.CONVERGED, _RUNNING)).astype(jnp.int32)
    if f_lower is None:
        f_lb0 = f0 - jnp.vdot(g0, g0) / (2 * L_val)
    else:
        f_lb0 = jnp.asarray(f_lower, dt)
    hist_f = jnp.full(max_evals, f0, dt)
    hist_g = jnp.full(max_evals, gnorm_inf, dt)
    P0 = _zeros_P(x0, kind)
    z = jnp.zeros((), dt)
    carry = _Carry(x0, f0, g0, x0, P0, jnp.zeros_like(P0), jnp.asarray(beta_init, dt),
                   z, f_lb0, evals, jnp.asarray(0, jnp.int32),
                   jnp.asarray(0, jnp.int32), status0, hist_f, hist_g, eta, z, z,
                   jnp.asarray(0, jnp.int32), jnp.asarray(False), L_val)
    practical = variant == "best"
    mono_needed = max(min(max_evals // 4, 200), 20)

    def cond(c):
        return (c.status == _RUNNING) & (c.evals < max_evals)

    def body(c):
        d = c.x - c.x_prev
        x_t = c.x - _apply_P(c.P, c.g) + (c.beta * d if variant == "best" else 0.0)
        f_t, g_t = vg(x_t)
        f_t, g_t = f_t.astype(dt), g_t.astype(dt)
        finite = jnp.isfinite(f_t) & jnp.all(jnp.isfinite(g_t))
        g_t = jnp.where(finite, g_t, 0.0)  # keep the learner finite; the run stops below
        eps = jnp.where(c.guessed, 0.25 * jnp.vdot(d, d) * c.L_g**2, 0.0)
        P, G, beta, Gb = _learn(c.P, c.G, c.beta, c.Gb, g=c.g, g_plus=g_t, d=d, f=c.f,
                                f_lb=c.f_lb, lr=c.eta, beta_lr=beta_lr, L=L_val,
                                variant=variant, kind=kind, convex=convex, eps=eps)
        accept = finite & (f_t < c.f)
        eta_k, L_sum, L_cnt, n_mono, guessed, L_g = (c.eta, c.L_sum, c.L_cnt, c.n_mono,
                                                     c.guessed, c.L_g)
        if practical:  # the HDM-best recipe of Part II (see the module docstring)
            decay = (c.iters % 50 == 49) & ~guessed
            eta_k = jnp.where(decay, jnp.maximum(0.8 * eta_k, 1e-3 * eta), eta_k)
            step = jnp.linalg.norm(x_t - c.x)
            use = accept & (step > 1e-3)
            curv = jnp.linalg.norm(g_t - c.g) / jnp.where(use, step, 1.0)
            L_sum = L_sum + jnp.where(use, curv, 0.0)
            L_cnt = L_cnt + use.astype(dt)
            n_mono = jnp.where(accept, n_mono + 1, jnp.maximum(n_mono - 2, 0))
            switch = (n_mono > mono_needed) & ~guessed & (L_cnt > 0)
            L_new = L_sum / jnp.maximum(L_cnt, 1.0)
            eta_k = jnp.where(switch, 1.0 / L_new, eta_k)
            G = jnp.where(switch, jnp.zeros_like(G), G)
            L_g = jnp.where(switch, L_new, L_g)
            guessed = guessed | switch
        x = jnp.where(accept, x_t, c.x)
        f = jnp.where(accept, f_t, c.f)
        g = jnp.where(accept, g_t, c.g)
        f_lb = c.f_lb if f_lower is not None else jnp.minimum(
            c.f_lb, f - jnp.vdot(g, g) / (2 * L_val))
        gn = jnp.max(jnp.abs(g))
        evals = c.evals + 1
        status = jnp.where(~finite, Status.NONFINITE,
                           jnp.where(gn < gtol, Status.CONVERGED, _RUNNING)).astype(jnp.int32)
        k = evals - 1
        return _Carry(x, f, g, c.x, P, G, beta, Gb, f_lb, evals, c.iters + 1,
                      c.accepted + accept.astype(jnp.int32), status,
                      c.hist_f.at[k].set(f), c.hist_g.at[k].set(gn), eta_k, L_sum, L_cnt,
                      n_mono, guessed, L_g)

    c = lax.while_loop(cond, body, carry)
    idx = jnp.arange(max_evals)
    last = c.evals - 1
    hist = OSGMHistory(jnp.where(idx <= last, c.hist_f, c.hist_f[last]),
                       jnp.where(idx <= last, c.hist_g, c.hist_g[last]))
    status = jnp.where(c.status == _RUNNING, Status.MAX_ITERATIONS, c.status).astype(jnp.int32)
    return OSGMResult(c.x, c.f, c.g, c.evals, c.iters, c.accepted, status == Status.CONVERGED,
                      status, c.P, c.beta, L_val, hist)


# --------------------------------------------------------------------------- optax form


class OSGMState(NamedTuple):
    """State of :func:`osgm`: the anchor (last accepted point) and the online learner."""

    count: jax.Array
    x: jax.Array
    f: jax.Array
    g: jax.Array
    x_prev: jax.Array
    P: jax.Array
    G: jax.Array
    beta: jax.Array
    Gb: jax.Array


def osgm(
    learning_rate: float,
    *,
    loss_fn: Callable | None = None,
    variant: str = "best",
    preconditioner: str = "diagonal",
    beta_lr: float = 1.0,
    beta0: float | None = None,
    f_lower: float = 0.0,
    L: float | None = None,
    convex: bool = True,
) -> optax.GradientTransformationExtraArgs:
    """OSGM as an optax transformation: ``update(grads, state, params, batch=batch)``.

    Each update receives the gradient at the trial point ``params`` and evaluates
    f = ``loss_fn``(params, batch) there (``value=`` saves that evaluation); it scores the
    previous P with them, accepts the trial point when f decreased (monotone), and returns the
    update that moves ``params`` to the next trial point x − P∘g + β(x − x₋) from the anchor x
    (``state.x``, the best point so far).  It therefore produces the same iterates as
    :func:`osgm_minimize` with ``L`` given.  Params may be any pytree (flattened inside).  The
    first update only records the anchor (P starts at 0): the first move is at the second.

    ``grads`` is the gradient (``grad=`` overrides it when a chain transformed ``grads``).
    Without ``loss_fn``, ``value_fn=`` (params ↦ f, as for ``optax.lbfgs``) supplies f.  With
    ``optax.inject_hyperparams``, ``learning_rate``, ``beta_lr`` and ``f_lower`` may be traced.

    Args:
      learning_rate: η, the AdaGrad step of the online learner for P (10/L in the papers for
        convex problems).
      loss_fn: the objective, ``loss_fn(params, batch)`` (or ``loss_fn(params)`` for
        ``batch=None``).
      variant: "hypergradient", "ratio" or "best" (see :func:`osgm_minimize`).
      preconditioner: candidate set of P: "scalar", "diagonal" or "full".
      beta_lr: AdaGrad step for β ("best" only).
      beta0: initial β (default 0.95 for "best", else 0).
      f_lower: the lower bound on min f used by ``variant="ratio"``.
      L: smoothness constant; only sets the box [0, 10¹⁰/L] on P (default 1).
      convex: keep P (scalar/diagonal) in that box.

    Example:
      >>> import jax, jax.numpy as jnp, optax
      >>> from precond.optim import osgm
      >>> f = lambda x: 0.5 * jnp.sum(jnp.arange(1.0, 4.0) * x**2)
      >>> opt = osgm(1.0, loss_fn=f, L=3.0)
      >>> step = jax.jit(lambda x, s: opt.update(jax.grad(f)(x), s, x))
      >>> x = jnp.ones(3); state = opt.init(x)
      >>> for _ in range(30):
      ...     u, state = step(x, state)
      ...     x = optax.apply_updates(x, u)
      >>> bool(state.f < 1e-2 * f(jnp.ones(3)))
      True
    """
    _check_options(variant, preconditioner, learning_rate, beta_lr, L, beta0, f_lower)
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable loss_fn(params, batch), got "
                        f"{type(loss_fn).__name__}")
    beta_init = (0.95 if variant == "best" else 0.0) if beta0 is None else beta0

    def init_fn(params):
        x, _ = ravel_pytree(params)
        P = _zeros_P(x, preconditioner)
        z = jnp.zeros((), x.dtype)
        return OSGMState(jnp.zeros((), jnp.int32), x, z, jnp.zeros_like(x), x, P,
                         jnp.zeros_like(P), jnp.asarray(beta_init, x.dtype), z)

    def update_fn(updates, state, params=None, *, batch=None, value=None, grad=None,
                  value_fn=None, **extra):
        del extra
        if params is None:
            raise ValueError("osgm needs params (the trial point): update(grads, state, params)")
        x_t, unravel = ravel_pytree(params)
        dt = x_t.dtype
        g_t = ravel_pytree(updates if grad is None else grad)[0].astype(dt)
        if value is None:
            fn, batch = step_objective(loss_fn, value_fn, batch, "osgm")
            value = evaluate(fn, params, batch)
        f_t = jnp.asarray(value, dt)
        first = state.count == 0
        Lv = jnp.asarray(1.0 if L is None else L, dt)
        d = state.x - state.x_prev
        P, G, beta, Gb = _learn(state.P, state.G, state.beta, state.Gb, g=state.g, g_plus=g_t,
                                d=d, f=state.f, f_lb=jnp.asarray(f_lower, dt),
                                lr=jnp.asarray(learning_rate, dt),
                                beta_lr=jnp.asarray(beta_lr, dt), L=Lv,
                                variant=variant, kind=preconditioner, convex=convex)
        P, G = jnp.where(first, state.P, P), jnp.where(first, state.G, G)
        beta, Gb = jnp.where(first, state.beta, beta), jnp.where(first, state.Gb, Gb)
        finite = jnp.isfinite(f_t) & jnp.all(jnp.isfinite(g_t))
        accept = first | (finite & (f_t < state.f))
        x_prev = jnp.where(first, x_t, state.x)
        x = jnp.where(accept, x_t, state.x)
        f = jnp.where(accept, f_t, state.f)
        g = jnp.where(accept, g_t, state.g)
        step = (x - _apply_P(P, g) + (beta * (x - x_prev) if variant == "best" else 0.0)) - x_t
        new = OSGMState(state.count + 1, x, f, g, x_prev, P.astype(dt), G.astype(dt),
                        beta.astype(dt), Gb.astype(dt))
        return unravel(step.astype(dt)), new

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
