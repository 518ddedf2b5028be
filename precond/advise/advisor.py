"""``advise``: which preconditioner, at what step size, for this model — measured and predicted.

For every candidate (``precond.advise.registry``) at the given parameters and from the same B
mini-batches: M (the candidate's preconditioner after B updates, as B steps of training would
build it), then one definition of each criterion for all —

- L̂, ĉ, κ̂ = L̂/ĉ: Ritz values of M⁻¹H by Lanczos in the M-inner product from one random start
  (``local_conditioning(method="m-lanczos")``, the same k steps for every M; H = the Hessian of
  the mean mini-batch loss).  **ĉ rule:** the smallest Ritz value above τ·L̂,
  τ = max(:data:`C_HAT_RTOL`, 10ε) for the working precision ε — λ_min(M⁻¹H) when H is
  positive definite in M's geometry, and on an indefinite or singular H the curvature of its
  positive subspace (the PL constant of the quadratic model there).  One rule and one
  algorithm before and after preconditioning, so no ratio of ĉ's is a Ritz value against a
  floor;  for a candidate whose M is built from one mini-batch's PSD curvature (CG-GGN:
  ``CandidateSpec.batch_curvature``), H is that batch's Hessian — the operator of the step the
  optimizer takes (against the mean Hessian, directions outside the batch's curvature range,
  where M = λI, would read as curvature/λ);
- K = tr(M⁻¹Σ) with its standard error (``noise_level``);
- α: the largest step the theory admits, 1/L̂ in M's geometry (``recommended_step``), or the one
  meeting ``target_floor`` — halved (at most :data:`MAX_HALVINGS` times) while the timing run
  at it diverges; its learning rate is α (preconditioned SGD, RMSProp, AdaGrad,
  CG-Newton, Nyström), (1 + β)α for heavy-ball momentum and (1 + β₁)α/(1 − β₁) for Adam
  (half their momentum iterations' stability limits, as 1/L̂ is half SGD's:
  ``registry.momentum_factor``), 1 for L-BFGS (its line search);
- seconds per step of the jitted update (``precond.optim.train``: compiled ahead, the second
  epoch of B steps timed);
- the predicted loss after the budget, T = budget/(seconds per step) steps: by default from
  the timing run's own progress (:func:`pilot_fit`: the excess over F_low of each mini-batch
  against its excess at the start, fitted to e_t = e₀/(1 + t/τ), the sublinear rate of
  stochastic gradient methods), so every candidate's rate is measured at the same start by
  the same rule; with ``predict="model"`` from the spectral model of ``precond.advise.model``
  (exact on quadratics when Lanczos resolves the spectrum, but blind to progress beyond the
  local quadratic).

The ranking is by predicted loss (ties — within :data:`TIE_RTOL` — the cheaper step first).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from precond.curvature import hessian_operator, minibatch_gradients
from precond.diagnostics import local_conditioning, noise_level, recommended_step
from precond.diagnostics.conditioning import IndefiniteCurvatureWarning, m_lanczos
from precond.diagnostics.report import BatchMean, preconditioner_state, stack_batches
from precond.linalg import IdentityOperator, SolverError
from precond.loop import progress_bar
from precond.optim import get_optimizer, train
from precond.validation import check_int, check_key, check_positive

from .model import NOISE_MODELS, SpectralModel, predicted_loss, theorem_loss
from .registry import CandidateSpec, default_candidates, momentum_factor, resolve

__all__ = ["C_HAT_RTOL", "DEFAULT_STEPS", "MAX_HALVINGS", "TIE_RTOL", "Advice", "Measurement",
           "advise", "c_hat_threshold"]

# ĉ = the smallest Ritz value of M⁻¹H above τ·L̂ (module docstring), for every M, with
# τ = max(C_HAT_RTOL, 10·ε) for the working precision ε (Ritz values below that are rounding).
C_HAT_RTOL = 1e-8


def c_hat_threshold(dtype) -> float:
    """τ of the ĉ rule for arrays of ``dtype``: max(C_HAT_RTOL, 10·ε)."""
    return max(C_HAT_RTOL, 10 * float(jnp.finfo(dtype).eps))
# Without budget_seconds, the budget is the time the slowest candidate needs for this many steps.
DEFAULT_STEPS = 100
# A timing run that diverges halves α, at most this many times (then the candidate is unstable).
MAX_HALVINGS = 3


@dataclass(frozen=True)
class Measurement:
    """One candidate's criteria at the start (module docstring for the definitions).

    ``alpha`` is α in M's geometry (the model's step); ``learning_rate`` the optimizer's (see
    ``step_rule``); ``steps`` T = budget/seconds_per_step; ``predicted_loss`` E[F_T];
    ``predicted_floor`` the model's stationary excess loss at α; ``c_hat_rule`` says which
    branch of the ĉ rule applied ("" = λ_min > threshold, H positive definite in M's geometry);
    ``diverged``: the timing run diverged even at α/2^MAX_HALVINGS (then the prediction is
    ``inf``).
    """

    name: str
    optimizer: str
    L_hat: float
    c_hat: float
    kappa: float
    K: float
    K_stderr: float
    alpha: float
    learning_rate: float
    step_rule: str
    seconds_per_step: float
    compile_seconds: float
    steps: int
    predicted_loss: float
    predicted_floor: float
    c_hat_rule: str = ""
    note: str = ""
    diverged: bool = False
    pilot_rate: float = math.nan
    pilot_ratio: float = math.nan

    def row(self) -> dict:
        return dataclasses.asdict(self)


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.3g}"
    return str(x)


def text_table(rows: list[dict], columns: list[str]) -> str:
    """A plain-text table of ``rows`` (dicts) with the given columns."""
    cells = [[c for c in columns]] + [[_fmt(r[c]) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(v.rjust(w) if j else v.ljust(w) for j, (v, w) in
                       enumerate(zip(row, widths, strict=True))) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


TABLE_COLUMNS = ["name", "predicted_loss", "L_hat", "c_hat", "kappa", "K", "alpha",
                 "learning_rate", "seconds_per_step", "steps"]


@dataclass(frozen=True)
class Advice:
    """What :func:`advise` returns.

    ``ranking``: candidate names, best (lowest predicted loss) first; ``recommended`` =
    ``ranking[0]``; ``learning_rate`` name → the optimizer's learning rate at the recommended
    α; ``predicted`` name → E[F] after ``budget_seconds`` of training; ``measurements`` one
    :class:`Measurement` per candidate, in ranking order (``.table()`` prints them);
    ``skipped`` name → why it was not measured; ``initial_loss`` F₀ (the mean over the B
    mini-batches); ``budget_seconds`` the budget the predictions are for.
    """

    ranking: tuple[str, ...]
    recommended: str
    learning_rate: dict
    predicted: dict
    measurements: tuple[Measurement, ...]
    budget_seconds: float
    initial_loss: float
    num_batches: int
    n_params: int
    skipped: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict, repr=False, compare=False)
    models: dict = field(default_factory=dict, repr=False, compare=False)

    def predict(self, name: str, *, steps: int | None = None,
                seconds: float | None = None) -> float:
        """The predicted loss of candidate ``name`` after ``steps`` steps or ``seconds`` of
        training (one of them), from the same measurements as ``predicted``."""
        m = self.measurement(name)
        if (steps is None) == (seconds is None):
            raise ValueError("pass exactly one of steps= and seconds=")
        T = check_int(steps, "steps", low=0) if steps is not None else int(
            check_positive(seconds, "seconds") / m.seconds_per_step)
        return float(_predict(self.models[name], m, T, self.initial_loss, self.context)[0])

    def measurement(self, name: str) -> Measurement:
        for m in self.measurements:
            if m.name == name:
                return m
        raise ValueError(f"no measurement for {name!r}; measured: {', '.join(self.ranking)}")

    def seconds_to(self, name: str, target_loss: float) -> float:
        """The predicted training time for candidate ``name`` to reach ``target_loss`` (``inf``
        when its model never does: a floor above the target, or an unstable step)."""
        m = self.measurement(name)
        target = float(target_loss)
        reached = lambda T: self.predict(name, steps=T) <= target  # noqa: E731
        if reached(0):
            return 0.0
        hi = 1
        while not reached(hi):
            hi *= 2
            if hi > 2**40:
                return math.inf
        lo = hi // 2  # not reached at lo, reached at hi
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if reached(mid) else (mid, hi)
        return hi * m.seconds_per_step

    def rows(self) -> list[dict]:
        """The measurements as a list of dicts (one per candidate, ranking order)."""
        return [m.row() for m in self.measurements]

    def table(self) -> str:
        """The measurements as a plain-text table, best first."""
        return text_table(self.rows(), TABLE_COLUMNS)

    def __str__(self) -> str:
        return (f"advice for a budget of {self.budget_seconds:.3g} s: use {self.recommended} "
                f"at learning rate {self.learning_rate[self.recommended]:.3g}\n{self.table()}")

    def optimizer(self, name: str | None = None):
        """The optax transformation of candidate ``name`` (default: the recommended one) at its
        recommended learning rate, configured as it was measured (``get_optimizer``)."""
        name = self.recommended if name is None else name
        if name not in self.learning_rate:
            raise ValueError(f"no advice for {name!r}; measured: {', '.join(self.ranking)}")
        built = self.context.get("optimizers", {})
        lr = self.learning_rate[name]
        if name in built and built[name][0] == lr:
            return built[name][1]  # the one timed: precond.optim.train reuses its program
        return _build_optimizer(resolve(name), self.learning_rate[name], self.context)

    def to_dict(self) -> dict:
        return {"ranking": list(self.ranking), "recommended": self.recommended,
                "learning_rate": dict(self.learning_rate), "predicted": dict(self.predicted),
                "budget_seconds": self.budget_seconds, "initial_loss": self.initial_loss,
                "num_batches": self.num_batches, "n_params": self.n_params,
                "measurements": self.rows(), "skipped": dict(self.skipped)}

    def to_json(self) -> str:
        """The advice as JSON text (infinities as strings, so any JSON reader takes it)."""
        return json.dumps(_json_safe(self.to_dict()), indent=2)

    def verify(self, loss_fn: Callable, params, data, *, key: jax.Array, seeds: int = 3,
               top_k: int | None = None, budget_seconds: float | None = None,
               progress: bool = False):
        """Train each candidate (or the ``top_k`` best predicted) for the budget at equal wall
        time, from ``params``, over ``seeds`` seeds; see :func:`precond.advise.verify`."""
        from .verify import verify

        return verify(self, loss_fn, params, data, key=key, seeds=seeds, top_k=top_k,
                      budget_seconds=budget_seconds, progress=progress)


def _json_safe(x):
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def _build_optimizer(spec: CandidateSpec, learning_rate: float, context: dict):
    kw = {k: context[k] for k in ("loss_fn", "model_fn", "output_loss", "key")
          if context.get(k) is not None}
    return get_optimizer(spec.optimizer, learning_rate, **kw, **spec.optimizer_options(context))


def draw_batches(data, key: jax.Array, num_batches: int):
    """B mini-batches stacked on a leading axis: ``data`` itself when it is a stack (B ≥ 2), or
    ``data(k)`` for B keys split from ``key`` when it is a function ``key → batch``."""
    if callable(data):
        keys = jax.random.split(key, num_batches)
        return stack_batches([data(k) for k in keys])
    return stack_batches(data)


@functools.lru_cache(maxsize=16)
def _batch_losses(loss_fn: Callable) -> Callable:
    """``(params, stacked) -> (B,)`` each mini-batch's loss, jitted once per ``loss_fn``."""
    return jax.jit(lambda p, s: jax.lax.map(lambda b: loss_fn(p, b), s))


def _check_loss(loss_fn, params, stacked) -> float:
    """F₀ = the mean loss over the B mini-batches; ``ValueError`` unless ``loss_fn`` returns a
    finite scalar (its shape is read by ``jax.eval_shape``, without running it)."""
    out = jax.eval_shape(loss_fn, params, jax.tree.map(lambda x: x[0], stacked))
    if not hasattr(out, "shape") or out.shape != ():
        raise ValueError("loss_fn must return a scalar, got "
                         f"{getattr(out, 'shape', type(out).__name__)!r}")
    F0 = float(jax.jit(BatchMean(loss_fn))(params, stacked))
    if not math.isfinite(F0):
        raise ValueError(f"loss_fn returned NaN or inf at params (mean over the mini-batches: "
                         f"{F0}); the loss must be finite where advise measures")
    return F0


@jax.jit
def _curvature_outside(H, P, D, X, proj):
    """Σ_b s_bᵀHs_b for s_b = M⁻¹d_b − X(Xᵀd_b): the noise rows' M⁻¹-images outside the
    M-orthonormal Ritz vectors X (n, m); ``proj`` = D X (one compiled program)."""
    S = jax.vmap(P.linearize().matvec)(D) - proj @ X.T
    return jnp.sum(S * jax.vmap(H.linearize().matvec)(S))


def _spectral_model(H, P, gbar, D, K, L_hat, k) -> tuple[SpectralModel, float]:
    """(the :class:`SpectralModel` of M⁻¹H seen from ḡ (model.py), ḡᵀM⁻¹ḡ), with the noise
    rows D (B, n)."""
    lz = m_lanczos(H, P, gbar, k)
    B = D.shape[0]
    if lz.steps == 0:
        return SpectralModel(np.zeros(0), np.zeros(0), np.zeros(0), float(K), 0.0), 0.0
    X = np.asarray(lz.vectors, np.float64)
    proj = np.asarray(D, np.float64) @ X  # x_jᵀ(g_b − ḡ)
    sigma2 = np.sum(proj**2, axis=0) / (B - 1)
    signal = lz.start_norm2 * lz.weights
    keep = lz.theta > c_hat_threshold(D.dtype) * L_hat
    # The noise outside the Ritz vectors: its M⁻¹-norm² (K − Σσ_j²) at its Rayleigh quotient.
    rest = max(float(K) - float(np.sum(sigma2)), 0.0)
    theta_rest = 0.0
    if rest > 1e-6 * max(float(K), 1e-300):
        P = IdentityOperator(D.shape[1], D.dtype) if P is None else P
        curv = _curvature_outside(H, P, D, lz.vectors, jnp.asarray(proj, D.dtype))
        theta_rest = max(float(curv) / (rest * (B - 1)), 0.0)
    return (SpectralModel(lz.theta[keep], signal[keep], sigma2[keep], rest, theta_rest),
            lz.start_norm2)


def _measure(name, spec, ctx, params, stacked, G, H, key, *, num_steps, target_floor,
             start_losses):
    """(partial Measurement fields, SpectralModel, note) of one candidate (module docstring)."""
    B, n = G.shape
    k_state, k_cond = jax.random.split(key)
    notes = [spec.note] if spec.note else []
    diverged = False
    P = None  # M = I
    if spec.preconditioner is not None:
        prec = spec.preconditioner(ctx)
        state = preconditioner_state(prec, params, stacked, G, k_state)
        P = prec.inverse_operator(state)
    k = min(n, num_steps)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", IndefiniteCurvatureWarning)
        H_step = H if not spec.batch_curvature else hessian_operator(
            BatchMean(ctx["loss_fn"]), params, jax.tree.map(lambda x: x[-1:], stacked))
        cond = local_conditioning(H_step, P, k_cond, method="m-lanczos", num_steps=k,
                                  pl_rtol=c_hat_threshold(G.dtype))
    del caught  # the proxy is recorded in c_hat_rule
    noise = noise_level(G, P)
    alpha = recommended_step(cond.L_hat, cond.c_hat, noise.K, target_floor=target_floor)
    lr = 1.0 if spec.step == "line-search" else momentum_factor(spec.step, spec.beta) * alpha
    gbar = jnp.mean(G, axis=0)
    if ctx.get("predict") == "model" or ctx.get("lower_bound") is None:
        model, gnorm2 = _spectral_model(H, P, gbar, G - gbar, noise.K, cond.L_hat, k)
        if model.theta.size == 0:
            notes.append("no positive curvature seen from ḡ: Theorem 3.2's rate and floor used")
    else:  # the pilot predicts; the floor is Theorem 3.2's αL̂K/(2ĉ) (no second Lanczos run
        # and no Hessian products of the noise rows to compile: the costliest programs here)
        model = SpectralModel(np.zeros(0), np.zeros(0), np.zeros(0), float(noise.K), 0.0)
        gnorm2 = float(gbar @ (gbar if P is None else P.matvec(gbar)))
    # The timing run: 2 epochs of B steps from params at the recommended step.  When it
    # diverges, the step the theory admits is not usable here (the measured M and noise are
    # local): halve α, up to MAX_HALVINGS times, and say so.
    for halvings in range(MAX_HALVINGS + 1):
        opt = _build_optimizer(spec, lr, ctx)
        run = train(ctx["loss_fn"], params, opt, stacked, num_epochs=2)
        if not run.diverged:
            break
        if halvings == MAX_HALVINGS or spec.step == "line-search":
            notes.append(f"the timing run diverged at every step tried: {run.message}")
            diverged = True
            break
        alpha, lr = alpha / 2, lr / 2
    # Advice.optimizer/verify reuse its program (at this learning rate only: a grid's other
    # rates build their own)
    ctx.setdefault("optimizers", {})[name] = (float(lr), opt)
    if halvings and not run.diverged:
        notes.append(f"α halved {halvings}× from 1/L̂: the timing run diverged at larger steps")
    per_step = float(run.times[-1] - run.times[B - 1]) / B if run.times.size >= 2 * B else \
        float(run.times[-1]) / max(run.times.size, 1)
    fields = dict(name=name, optimizer=spec.optimizer, L_hat=cond.L_hat, c_hat=cond.c_hat,
                  kappa=cond.kappa, K=noise.K, K_stderr=noise.stderr, alpha=float(alpha),
                  learning_rate=float(lr), step_rule=spec.step,
                  seconds_per_step=max(per_step, 1e-9), compile_seconds=run.compile_time,
                  c_hat_rule=cond.proxy, diverged=diverged)
    if ctx.get("lower_bound") is not None and not diverged:
        fields["pilot_rate"], fields["pilot_ratio"] = pilot_fit(run.losses, start_losses,
                                                                ctx["lower_bound"])
    gap = 0.5 * gnorm2 / cond.c_hat  # PL: F₀ − F* ≤ ‖ḡ‖²_{M⁻¹}/(2ĉ)
    return fields, model, gap, "; ".join(notes)


class _Model(NamedTuple):
    spectral: SpectralModel
    gap: float  # the PL estimate of F₀ − F*, for Theorem 3.2's fallback
    pilot_rate: float = math.nan  # 1/τ of the pilot's fit (per step); NaN: no usable pilot
    pilot_ratio: float = math.nan  # the pilot's last epoch's excess ratio r̄ (no progress: ≥ 1)


PREDICTIONS = ("pilot", "model")


def pilot_fit(losses, start_losses, lower_bound: float) -> tuple[float, float]:
    """(1/τ, r̄): the timing run's progress as the rate of e_t = e₀/(1 + t/τ).

    r_t = (ℓ_b(w_t) − F_low)/(ℓ_b(w₀) − F_low) for the mini-batch b = t mod B the step t used
    (the same batch at the start and at step t, so the batches' different losses cancel);
    1/τ = Σ t(1/r_t − 1)/Σ t² (least squares through 1/r₀ = 1); r̄ = the mean r_t of the last
    B steps.

    Args:
      losses: (S,) the timing run's losses ℓ_t at the parameters before step t.
      start_losses: (B,) each mini-batch's loss at the start w₀.
      lower_bound: F_low.
    """
    losses = np.asarray(losses, np.float64)
    start = np.asarray(start_losses, np.float64)
    B = start.size
    t = np.arange(losses.size)
    e0 = start[t % B] - lower_bound
    r = (losses - lower_bound) / np.where(e0 > 0, e0, np.nan)
    ok = np.isfinite(r) & (r > 0)
    if not ok.any():
        return math.nan, math.nan
    r_bar = float(np.mean(r[ok][-B:]))
    inv_tau = float(np.sum(t[ok] * (1 / r[ok] - 1)) / max(np.sum(t[ok] ** 2), 1))
    return inv_tau, r_bar


def _pilot_loss(F0: float, model: _Model, T: int, lower_bound: float) -> float:
    """E[F_T] from the pilot's fit: F_low + (F₀ − F_low)/(1 + T/τ) while the pilot made
    progress (1/τ > 0), else F_low + (F₀ − F_low)·max(r̄, 1)."""
    e0 = F0 - lower_bound
    if model.pilot_rate > 0:
        return lower_bound + e0 / (1 + T * model.pilot_rate)
    return lower_bound + e0 * max(model.pilot_ratio, 1.0)


def _predict(model: _Model, m, T: int, F0: float, ctx: dict) -> tuple[float, float]:
    """(E[F_T], floor) for one candidate: the spectral model, or Theorem 3.2 without one."""
    get = (lambda k: m[k]) if isinstance(m, dict) else (lambda k: getattr(m, k))  # noqa: E731
    if ctx.get("predict") == "pilot" and math.isfinite(model.pilot_rate):
        return (_pilot_loss(F0, model, T, ctx["lower_bound"]),
                _predict(model, m, T, F0, {**ctx, "predict": "model"})[1])
    if model.spectral.theta.size:
        return predicted_loss(F0, model.spectral, get("alpha"), T,
                              lower_bound=ctx["lower_bound"], noise=ctx["noise"])
    alpha, L, c, K = get("alpha"), get("L_hat"), get("c_hat"), get("K")
    return theorem_loss(F0, model.gap, alpha, L, c, K, T), alpha * L * K / (2 * c)


# Predictions within this relative distance of each other are ties, broken by the cheaper step.
TIE_RTOL = 0.05


def _rank(rows: list[Measurement]) -> list[Measurement]:
    """By predicted loss, non-finite last; runs of ties (within TIE_RTOL of the run's first) by
    seconds per step."""
    key = lambda m: m.predicted_loss if math.isfinite(m.predicted_loss) else math.inf  # noqa: E731
    rows = sorted(rows, key=key)
    out, i = [], 0
    while i < len(rows):
        j, first = i + 1, key(rows[i])
        while j < len(rows) and (key(rows[j]) == first or (
                math.isfinite(first) and key(rows[j]) - first <= TIE_RTOL * abs(first))):
            j += 1
        out += sorted(rows[i:j], key=lambda m: m.seconds_per_step)
        i = j
    return out


def advise(loss_fn: Callable, params, data, *, key: jax.Array,
           candidates: list[str] | tuple[str, ...] | None = None,
           budget_seconds: float | None = None, model_fn: Callable | None = None,
           output_loss=None, num_batches: int = 8, num_steps: int = 40,
           target_floor: float | None = None, lower_bound: float | None = 0.0,
           noise: str = "relative", predict: str = "pilot", progress: bool = False) -> Advice:
    """Which preconditioner, at what step size: measure every candidate's L̂, ĉ, κ̂, K, step α
    and step cost at ``params``, predict its loss after the budget, and rank them.

    One definition of each quantity for every candidate (module docstring): the same B
    mini-batches, the same Lanczos rule for L̂ and ĉ in M's geometry, K = tr(M⁻¹Σ), α = 1/L̂
    (or the one meeting ``target_floor``), and the spectral model of ``precond.advise.model``
    for the loss after T = budget/(seconds per step) steps.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      params: the starting point w (any pytree, n entries).
      data: B ≥ 2 mini-batches stacked on a leading axis (or a list of them), or a function
        ``key -> batch`` (then ``num_batches`` are drawn).
      key: jax.random key (required): batches, preconditioner updates, Lanczos starts.
      candidates: names (keys of ``precond.optim.OPTIMIZERS``); default: every registered
        optimizer but those in ``precond.advise.registry.EXCLUDED``.  An unknown name is a
        ``ValueError`` naming the valid ones.
      budget_seconds: the training wall time to plan for (> 0); default: what the slowest
        candidate needs for :data:`DEFAULT_STEPS` steps.
      model_fn, output_loss: ``model_fn(params, inputs)`` and ℓ(outputs, targets) (batch =
        ``(inputs, targets)``), for the Gauss–Newton candidates (CG-GGN, a GGN Nyström sketch);
        without them CG-GGN is skipped with a note.
      num_batches: B when ``data`` is a function (≥ 2).
      num_steps: k, the Lanczos steps (at most n).
      target_floor: recommend the α whose Theorem 3.2 floor meets this target instead.
      lower_bound: F_low, the loss is never predicted below this (0: a sum of squares or a
        cross-entropy); None: no bound.
      noise: how the gradient noise Σ changes along the run: "relative" (Σ ∝ F − F_low: the
        noise of residuals, which vanishes at an interpolating solution) or "constant" (Σ as
        measured, the additive-noise model of the Lyapunov recursion); see
        ``precond.advise.model.predicted_loss``.
      predict: how the loss after T steps is predicted: "pilot" (default; the candidate's
        own timing run at its α — 2 epochs of the B mini-batches from ``params`` — fitted to
        e_t = e₀/(1 + t/τ), see :func:`pilot_fit`: a measured rate, the same rule for every
        candidate, methods without a linear M⁻¹ included) or "model" (the spectral model of
        ``precond.advise.model`` alone: exact on quadratics, blind beyond the local quadratic).
        "pilot" needs ``lower_bound``; without it the model is used.
      progress: a progress bar over the candidates.

    Returns:
      An :class:`Advice`.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> import precond
      >>> X = jax.random.normal(jax.random.key(0), (4, 16, 3)) * jnp.array([10.0, 1.0, 0.1])
      >>> y = X @ jnp.array([1.0, -1.0, 2.0])
      >>> loss = lambda w, b: 0.5 * jnp.mean((b[0] @ w - b[1]) ** 2)
      >>> advice = precond.advise(loss, jnp.zeros(3), (X, y), key=jax.random.key(1),
      ...                         candidates=["sgd", "cg-hessian"], budget_seconds=1.0)
      >>> advice.recommended
      'cg-hessian'
    """
    key = check_key(key)
    if budget_seconds is not None:
        budget_seconds = check_positive(budget_seconds, "budget_seconds")
    num_batches = check_int(num_batches, "num_batches", low=2)
    num_steps = check_int(num_steps, "num_steps", low=1)
    if target_floor is not None:
        check_positive(target_floor, "target_floor")
    if noise not in NOISE_MODELS:
        raise ValueError(f"noise must be one of {NOISE_MODELS}, got {noise!r}")
    if noise == "relative" and lower_bound is None:
        raise ValueError("noise='relative' needs lower_bound (pass lower_bound=… or "
                         "noise='constant')")
    if predict not in PREDICTIONS:
        raise ValueError(f"predict must be one of {PREDICTIONS}, got {predict!r}")
    if isinstance(candidates, str):
        raise TypeError("candidates must be a list of names, not one string")
    names = list(default_candidates() if candidates is None else candidates)
    specs = {name: resolve(name) for name in names}
    if not specs:
        raise ValueError("candidates is empty")
    k_data, k_meas, k_opt = jax.random.split(key, 3)
    stacked = draw_batches(data, k_data, num_batches)
    F0 = _check_loss(loss_fn, params, stacked)
    G = minibatch_gradients(loss_fn, params, stacked)
    if not bool(jnp.all(jnp.isfinite(G))):
        raise ValueError("the mini-batch gradients of loss_fn at params contain NaN or inf")
    B, n = G.shape
    H = hessian_operator(BatchMean(loss_fn), params, stacked)
    ctx = {"loss_fn": loss_fn, "model_fn": model_fn, "output_loss": output_loss, "n": n,
           "key": k_opt, "lower_bound": lower_bound, "noise": noise, "predict": predict}
    start_losses = _batch_losses(loss_fn)(params, stacked)
    measured, skipped = {}, {}
    with progress_bar(progress, "advise", len(specs)) as bar:
        for i, (name, spec) in enumerate(specs.items()):
            missing = [c for c in spec.needs if ctx.get(c) is None]
            if missing:
                skipped[name] = f"needs {' and '.join(missing)} (not given)"
            else:
                try:
                    measured[name] = _measure(name, spec, ctx, params, stacked, G, H,
                                              jax.random.fold_in(k_meas, i),
                                              num_steps=num_steps, target_floor=target_floor,
                                              start_losses=start_losses)
                except (ValueError, SolverError) as e:  # e.g. an indefinite M (CG on H)
                    skipped[name] = f"measurement failed: {e}"
            bar.advance(f"advise: {name}")
    if not measured:
        raise ValueError(f"no candidate could be measured: {skipped}")
    if budget_seconds is None:
        budget_seconds = DEFAULT_STEPS * max(f["seconds_per_step"] for f, *_ in
                                             measured.values())
    rows, models = [], {}
    for fields, model, gap, note in measured.values():
        T = int(budget_seconds / fields["seconds_per_step"])
        models[fields["name"]] = _Model(model, gap, fields.get("pilot_rate", math.nan),
                                        fields.get("pilot_ratio", math.nan))
        loss, floor = _predict(models[fields["name"]], fields, T, F0, ctx)
        if fields["diverged"]:
            loss = floor = math.inf
        rows.append(Measurement(**fields, steps=T, predicted_loss=float(loss),
                                predicted_floor=float(floor), note=note))
    rows = _rank(rows)
    ranking = tuple(m.name for m in rows)
    return Advice(ranking=ranking, recommended=ranking[0],
                  learning_rate={m.name: m.learning_rate for m in rows},
                  predicted={m.name: m.predicted_loss for m in rows},
                  measurements=tuple(rows), budget_seconds=float(budget_seconds),
                  initial_loss=F0, num_batches=int(B), n_params=int(n), skipped=skipped,
                  context=ctx, models=models)
