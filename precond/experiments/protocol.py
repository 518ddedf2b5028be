"""Seed 001's two-phase protocol: Adam warm start, then each method from the same point.

For each seed s (Phase I key s, Phase II data keys 1000 + s):

* **Phase I** — Adam (``phase1_lr``) from ``init_params(key(s))`` for N₁ epochs; identical for
  every method, so computed once per seed and cached in the store.
* **Phase II** — each method from the Phase I parameters for N₂ epochs.  One epoch = one fresh
  data set from ``sample_batch`` and one optimizer step on it (seed 001 resamples every epoch).
  Per epoch: the loss ℓ_k before the step, the relative loss ℓ_k/ℓ_0 (ℓ_0 is the same for every
  method: same parameters, same first batch), the cumulative wall time of the training steps
  (batch generation and metric excluded; compilation timed apart), and the problem's metric.
* **Learning rates** — per method the grid value whose run on the tuning seed (the first seed)
  ends with the lowest final loss (mean of the last ``tail`` epochs; diverged runs excluded); that
  run is reused as the method's tuning-seed result, the other seeds then run at that rate.
* **Diagnostics** — for the curvature methods (CG-Hessian, CG-GGN), at Phase II epoch
  ``diagnostics_epoch`` of the tuning seed's chosen run: the preconditioner M is built from the
  first of B fresh mini-batches (as the method builds it: damping λ, fixed CG budget), H is the
  Hessian of the loss on that batch; L̂ = λ_max(M⁻¹H) against λ_max(H) (power iteration, since M⁻¹
  is an inexact CG solve) and K = tr(M⁻¹Σ) against tr(Σ) from the B mini-batch gradients.
  The reduction factors are λ_max(H)/L̂ and tr(Σ)/K.

**Equal epochs or equal wall time.**  By default every method runs N₂ epochs (seed 001).  With
``budget_seconds`` = S every Phase II run instead trains until its timed steps (compilation
apart) have used S seconds — the ranking a user experiences at equal time — with N₂ as a cap on
the epochs; a budget run's units carry the budget in their ids and records, so an equal-epoch unit
is never reused for it (nor one of another budget).

A unit whose loss turns non-finite, or grows beyond ``divergence_factor``·ℓ_0, is recorded as
diverged (with the epoch) and the experiment goes on.

**On a device mesh** (``run_protocol(..., mesh=precond.distributed.data_mesh())``): every
mini-batch — each epoch's, and the diagnostics' B — is drawn, then row-sharded along its batch
axis over ``"data"``; parameters and optimizer/preconditioner state are replicated (the rule of
``precond.optim.train``), so gradients, curvature products and Kronecker factors are summed
across the devices by XLA.  The numbers equal the single-device ones up to the order of the
additions, so the mesh is not part of the configuration's fingerprint (an experiment may be
resumed on another mesh); ``experiment.json`` records the mesh of the latest run.

References: Scott et al., "Design Criteria for SGD Preconditioners", TMLR 2026, §4.2, App. D.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from precond.distributed import (
    mesh_info,
    replicate,
    replicated_sharding,
    shard_batch,
    sharded_sampler,
)
from precond.optim import get_optimizer, make_step
from precond.problems.base import Problem
from precond.problems.registry import get_problem
from precond.validation import check_int, check_positive, default_float

from .store import ResultsStore, _clean, unit_id

__all__ = ["ProtocolConfig", "default_grid", "run_protocol", "run_phase1", "CURVATURE_METHODS",
           "DEFAULT_METHODS", "Progress"]

DEFAULT_METHODS = ("sgd", "momentum", "adam", "lbfgs", "cg-hessian", "cg-ggn")
# Methods whose optimizer is preconditioned SGD on a precond.preconditioners factory of the same
# name: the protocol measures L̂ and K with and without their M (``_diagnostics``).
CURVATURE_METHODS = ("cg-hessian", "cg-ggn", "kfac", "shampoo")
FIRST_ORDER_GRID = (1e-4, 1e-3, 1e-2, 1e-1)  # seed 001 App. D: about 1e-4 … 1e-1
CG_GRID = (1e-2, 1e-1, 1.0)  # seed 001 App. D: about 1e-2 … 1
LBFGS_GRID = (0.1, 1.0)  # the zoom line search then picks the step along lr·direction


def default_grid(method: str, quick: bool = False) -> tuple[float, ...]:
    """The learning-rate grid of ``method``: seed 001's ranges, L-BFGS apart.

    Args:
      method: an optimizer name of ``precond.optim.OPTIMIZERS``.
      quick: drop the smallest rate (the quick protocol and the demo).
    """
    if method == "lbfgs":
        return (1.0,) if quick else LBFGS_GRID
    # K-FAC's M⁻¹g has the natural-gradient (Newton) scale, as CG's; Shampoo (grafted), Sophia
    # (clipped) and MUON (orthogonalized) take steps of Adam's scale: the first-order grid.
    grid = CG_GRID if method.startswith("cg") or method in ("nystrom-sgd", "spectral-sgd",
                                                            "kfac") else FIRST_ORDER_GRID
    return grid[1:] if quick else grid


@dataclass(frozen=True)
class ProtocolConfig:
    """Everything that determines the numbers (saved as ``experiment.json``).

    Attributes:
      problem: a name of ``precond.problems.registry.PROBLEMS``.
      methods: the optimizers compared (names of ``precond.optim.OPTIMIZERS``).
      seeds: the number of seeds (the first tunes the learning rates).
      quick: the problem's quick sizes and the shorter grids.
      sizes: single problem sizes to override.
      phase1_epochs: N₁, the Adam warm-start epochs.
      phase2_epochs: N₂ ≥ 2, the epochs of each method.
      phase1_lr: Adam's learning rate in Phase I.
      grids: method → learning rates (``default_grid`` where absent).
      method_options: method → keyword arguments of its optimizer (damping λ, ``maxiter``).
      diagnostics_epoch: the Phase II epoch of the L̂/K diagnostics (clipped to the last; None
        for the last).
      noise_batches: B ≥ 2, the mini-batches K is estimated from.
      tail: the epochs averaged for the "final" loss that picks the learning rate.
      divergence_factor: a run whose loss exceeds this multiple of ℓ_0 is recorded as diverged.
      budget_seconds: S > 0 for equal wall time: each Phase II run trains until its timed steps
        have used S seconds (``phase2_epochs`` is then a cap); None for equal epochs.
      diagnostics: measure L̂ and K for the curvature methods (False: skip, e.g. when only the
        tuned learning rates are wanted).
    """

    problem: str
    methods: tuple[str, ...] = DEFAULT_METHODS
    seeds: int = 5
    quick: bool = False
    sizes: dict = field(default_factory=dict)
    phase1_epochs: int = 1000
    phase2_epochs: int = 500
    phase1_lr: float = 1e-3
    grids: dict = field(default_factory=dict)  # method -> tuple of rates (default_grid if absent)
    method_options: dict = field(default_factory=dict)  # method -> kwargs (damping, maxiter)
    diagnostics_epoch: int | None = 250  # clipped to the last epoch
    noise_batches: int = 10  # B
    tail: int = 10  # epochs averaged for the "final" loss
    divergence_factor: float = 1e6
    budget_seconds: float | None = None  # equal wall time per Phase II run (None: equal epochs)
    diagnostics: bool = True

    def __post_init__(self):
        for name in ("seeds", "phase1_epochs", "noise_batches", "tail"):
            check_int(getattr(self, name), name, low=1)
        check_int(self.phase2_epochs, "phase2_epochs", low=2)
        if self.diagnostics_epoch is not None:
            check_int(self.diagnostics_epoch, "diagnostics_epoch", low=0)
        check_positive(self.phase1_lr, "phase1_lr")
        check_positive(self.divergence_factor, "divergence_factor")
        if self.budget_seconds is not None:
            object.__setattr__(self, "budget_seconds",
                               check_positive(self.budget_seconds, "budget_seconds"))
        if self.noise_batches < 2:
            raise ValueError("noise_batches must be ≥ 2 (K is a variance)")
        if not self.methods:
            raise ValueError("methods is empty")
        object.__setattr__(self, "methods", tuple(self.methods))

    @classmethod
    def quick_config(cls, problem: str, **overrides: Any) -> ProtocolConfig:
        """The reduced protocol for the demo: quick sizes, 300 + 200 epochs, 3 seeds.

        Args:
          problem: a name of ``precond.problems.registry.PROBLEMS``.
          **overrides: other fields of the configuration.
        """
        kw = dict(problem=problem, quick=True, seeds=3, phase1_epochs=300, phase2_epochs=200,
                  noise_batches=8)
        kw.update(overrides)
        return cls(**kw)

    def grid(self, method: str) -> tuple[float, ...]:
        """The learning rates tried for ``method`` (``grids`` or :func:`default_grid`).

        Args:
          method: one of ``methods``.
        """
        return tuple(float(x) for x in self.grids.get(method, default_grid(method, self.quick)))

    def mode(self) -> str:
        """How Phase II runs are made equal, in words (the report's header says it)."""
        if self.budget_seconds is None:
            return f"equal epochs ({self.phase2_epochs} per run)"
        return (f"equal wall time ({self.budget_seconds:g} s of timed training steps per run, "
                f"at most {self.phase2_epochs} epochs)")

    def diag_epoch(self) -> int:
        """The Phase II epoch of the diagnostics, clipped to the last epoch."""
        e = self.phase2_epochs - 1 if self.diagnostics_epoch is None else self.diagnostics_epoch
        return min(e, self.phase2_epochs - 1)

    def to_json(self) -> dict:
        """The configuration as JSON-ready data, the grids filled in."""
        d = dataclasses.asdict(self)
        d["methods"] = list(self.methods)
        d["grids"] = {m: list(self.grid(m)) for m in self.methods}
        return d

    def fingerprint(self) -> dict:
        """The fields that change stored numbers (methods and the seed count may grow)."""
        d = self.to_json()
        for k in ("methods", "seeds", "grids"):
            d.pop(k)
        return d


class Progress:
    """Hooks the CLI fills in (rich bars); the default does nothing.

    The protocol calls ``start_unit`` before a unit (a Phase I seed, a Phase II run, the
    diagnostics), ``advance`` after each of its epochs and ``end_unit`` after it.
    """

    def start_unit(self, label: str, total_epochs: int) -> None:
        """A unit starts.

        Args:
          label: the unit's name for display.
          total_epochs: its epochs.
        """

    def advance(self, n: int = 1) -> None:
        """More epochs of the current unit are done.

        Args:
          n: how many.
        """

    def end_unit(self, label: str, skipped: bool) -> None:
        """A unit is done.

        Args:
          label: the unit's name (its id when it was skipped).
          skipped: it was already in the store, nothing ran.
        """


def _tree_to_flat(params) -> np.ndarray:
    return np.asarray(ravel_pytree(params)[0])


class _LRState(NamedTuple):
    lr: jax.Array


# Methods whose step is not linear in the rate (a line search, an online learner): the rate
# goes inside, one compiled step per rate.
_RATE_INSIDE = ("lbfgs", "nncg", "osgm")


def _scale_by_state_lr(lr: float) -> optax.GradientTransformation:
    """Multiply updates by a learning rate held in the state, so one compiled step serves every
    rate of the grid (the methods' updates are linear in α; L-BFGS is not and keeps α inside)."""
    return optax.GradientTransformation(
        lambda params: _LRState(jnp.asarray(lr, default_float())),
        lambda updates, state, params=None: (jax.tree.map(lambda u: state.lr * u, updates),
                                             state))


class _Runner:
    """Compiled steps (one per method, reused across rates and seeds) and the epoch loop."""

    def __init__(self, problem: Problem, config: ProtocolConfig, cache: dict | None = None,
                 mesh=None):
        self.problem, self.config, self.mesh = problem, config, mesh
        self.sample = jax.jit(problem.sample_batch)
        if mesh is not None:  # drawn, then each batch row-sharded (outside the timed steps)
            self.sample = sharded_sampler(self.sample, mesh)
            try:  # a batch size the devices do not divide fails now, before any unit
                self.sample(jax.random.key(0))
            except ValueError as err:
                raise ValueError(f"{problem.name}: its mini-batches cannot be split over the "
                                 f"mesh (use fewer devices): {err}") from None
        self.metric = jax.jit(problem.metric) if problem.metric is not None else None
        _, self.unravel = ravel_pytree(problem.init_params(jax.random.key(0)))
        self._compiled: dict = {} if cache is None else cache

    def optimizer(self, method: str, lr: float, key: jax.Array):
        """``method`` at rate ``lr``: the problem's context (loss, model, output loss, ``key``
        for randomized methods) plus the configured options, which get_optimizer checks."""
        kw = self.problem.problem_kwargs(key=key)
        kw.update(self.config.method_options.get(method, {}))
        if method in _RATE_INSIDE:
            return get_optimizer(method, lr, **kw)
        return optax.chain(get_optimizer(method, 1.0, **kw), _scale_by_state_lr(lr))

    def run(self, method: str, lr: float, params, data_key, epochs: int, progress: Progress,
            snapshot_epoch: int | None = None, budget_seconds: float | None = None) -> dict:
        # The optimizer's key lives in its state (set by init), so the cached step serves
        # every seed; it is drawn apart from the data keys fold_in(data_key, epoch).
        opt = self.optimizer(method, lr, jax.random.split(data_key)[1])
        state = opt.init(params)
        if self.mesh is not None:
            params, state = replicate((params, state), self.mesh)
        batch = jax.block_until_ready(self.sample(jax.random.fold_in(data_key, 0)))
        cache_key = (method, lr) if method in _RATE_INSIDE else method
        if self.mesh is not None:  # a program compiled for the mesh's shardings
            cache_key = (cache_key, self.mesh)
        compile_time = 0.0
        if cache_key not in self._compiled:
            t0 = time.perf_counter()
            step = make_step(self.problem.loss, opt)
            jitted = jax.jit(step) if self.mesh is None else jax.jit(
                step, out_shardings=replicated_sharding(self.mesh))
            self._compiled[cache_key] = jitted.lower(params, state, batch).compile()
            compile_time = time.perf_counter() - t0
        compiled = self._compiled[cache_key]
        losses, times, metrics = [], [], []
        elapsed, status, message, snapshot = 0.0, "ok", f"completed {epochs} epochs", None
        for e in range(epochs):
            if budget_seconds is not None and elapsed >= budget_seconds:
                message = f"used its {budget_seconds:g} s budget in {e} epochs"
                progress.advance(epochs - e)
                break
            if e > 0:
                batch = jax.block_until_ready(self.sample(jax.random.fold_in(data_key, e)))
            if snapshot_epoch is not None and e == snapshot_epoch:
                snapshot = _tree_to_flat(params)
            t = time.perf_counter()
            new_params, new_state, loss, ok = jax.block_until_ready(compiled(params, state,
                                                                             batch))
            elapsed += time.perf_counter() - t
            loss, ok = float(loss), bool(ok)
            if not ok or not np.isfinite(loss) or (
                    losses and loss > self.config.divergence_factor * losses[0]):
                status = "diverged"
                start = losses[0] if losses else float("nan")
                message = (f"diverged at epoch {e}: loss {loss:.3g} (start {start:.3g}); "
                           "the learning rate is too large")
                losses.append(loss if np.isfinite(loss) else np.nan)
                times.append(elapsed)
                metrics.append(np.nan)
                progress.advance(epochs - e)
                break
            params, state = new_params, new_state
            losses.append(loss)
            times.append(elapsed)
            metrics.append(float(self.metric(params)) if self.metric is not None else np.nan)
            progress.advance()
        if snapshot_epoch is not None and snapshot is None and status == "ok":
            snapshot_epoch, snapshot = len(losses), _tree_to_flat(params)  # ended before it
        losses = np.asarray(losses, float)
        return {"method": method, "lr": lr, "status": status, "message": message,
                "loss": losses, "rel_loss": losses / losses[0], "time": np.asarray(times),
                "metric": np.asarray(metrics), "compile_time": compile_time,
                "epochs": int(len(losses)), "params": params, "snapshot": snapshot,
                "snapshot_epoch": snapshot_epoch if snapshot is not None else None,
                "budget_seconds": budget_seconds}


def _final(record: dict, tail: int) -> float:
    if record["status"] != "ok":
        return np.inf
    loss = np.asarray(record["loss"], float)
    return float(np.mean(loss[-tail:]))


def _diagnostics(problem: Problem, config: ProtocolConfig, method: str, flat: np.ndarray,
                 key: jax.Array, mesh=None) -> dict:
    """L̂ and K with and without the method's preconditioner at ``flat`` (module docstring).

    Any method of :data:`CURVATURE_METHODS` qualifies: its optimizer is ``preconditioned_sgd``
    on the ``precond.preconditioners`` factory of the same name ("cg-ggn" → ``cg_ggn``), built
    with the problem's context and the configured options that the factory takes (the
    optimizer-only ones, such as ``momentum``, do not change M).  M is built at ``flat`` as
    ``diagnose`` builds it: the CG methods, whose M is the curvature of the batch it was
    refreshed on, from the first of the B batches; methods whose M accumulates statistics
    (Shampoo's factors, K-FAC's moving averages) from ``update(..., batch=b, grads=g_b)`` on
    the other B − 1 batches and then the first, with the refresh interval set to 1 so that
    the inverse roots / inverses see all of them (the grafting scales, for Shampoo, are those
    of the first batch's gradient).  H is the Hessian of the first batch's loss.  This is M at
    the snapshot from B fresh batches, not the optimizer's own state after its run (whose sums
    span the whole run: with Shampoo's default grafting the scale of M is set per block by the
    grafted step, so the two differ mainly in the factors' directions).  On a ``mesh`` the B
    batches are row-sharded and the point replicated, as in the runs.
    """
    import inspect

    from precond import preconditioners as pc
    from precond.curvature import hessian_operator, minibatch_gradients
    from precond.diagnostics.noise import noise_level
    from precond.linalg import from_matvec, power_iteration
    from precond.optim import CONTEXT

    if method not in CURVATURE_METHODS:
        raise ValueError(f"no diagnostics for method {method!r}; use one of {CURVATURE_METHODS}")
    _, unravel = ravel_pytree(problem.init_params(jax.random.key(0)))
    params = unravel(jnp.asarray(flat))
    keys = jax.random.split(key, config.noise_batches + 1)
    sample = problem.sample_batch if mesh is None else sharded_sampler(problem.sample_batch, mesh)
    batches = [sample(k) for k in keys[1:]]
    if mesh is not None:
        params = replicate(params, mesh)
    factory = getattr(pc, method.replace("-", "_"))
    accepted = inspect.signature(factory).parameters
    cg = method in ("cg-ggn", "cg-hessian")
    opts = {"damping": 1e-3, "maxiter": 10} if cg else {}  # the CG budget the optimizer uses
    opts.update({k: v for k, v in config.method_options.get(method, {}).items()
                 if k in accepted and k not in CONTEXT})
    context = {"loss_fn": problem.loss, "model_fn": problem.model_fn,
               "output_loss": problem.output_loss}
    build_kw = {k: v for k, v in context.items() if k in accepted}
    if "update_every" in accepted:
        build_kw["update_every"] = 1
    prec = factory(**build_kw, **{k: v for k, v in opts.items() if k != "update_every"})
    t0 = time.perf_counter()
    n = flat.size
    # CG: the first batch's curvature; statistics: batches 1 … B−1, then the first.
    order = [0] if cg else list(range(1, len(batches))) + [0]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *batches)
    if mesh is not None:  # (B, b, …): the batch axis is 1
        stacked = shard_batch(stacked, mesh, axis=1)
    G = minibatch_gradients(problem.loss, params, stacked)

    @jax.jit
    def build(w, G, stacked, k):
        p = unravel(w)

        def step(state, i):
            b = jax.tree.map(lambda x: x[i], stacked)
            return prec.update(state, p, batch=b, key=jax.random.fold_in(k, i),
                               grads=unravel(G[i])), None

        state, _ = step(prec.init(p), order[0])  # the first update may set the state's shape
        if len(order) > 1:
            state, _ = jax.lax.scan(step, state, jnp.asarray(order[1:]))
        return state

    @jax.jit
    def lhat(w, state, batch, k):
        # L̂ only (ĉ is not what a few CG steps change, seed 001 §4.5): power iteration, which
        # needs only applications of M⁻¹ — M⁻¹ may be a fixed-budget CG solve, not a matrix.
        M_inv = prec.inverse_operator(state)
        H = hessian_operator(problem.loss, unravel(w), batch)
        MH = from_matvec(lambda v: M_inv.matvec(H.matvec(v)), size=n, dtype=H.dtype)
        # criterion="rayleigh": the rule the recorded L̂ were made with (issue #19)
        r_i = power_iteration(H, k, maxiter=300, tol=1e-6, criterion="rayleigh")
        r_m = power_iteration(MH, k, maxiter=300, tol=1e-6, criterion="rayleigh")
        return r_i.eigenvalue, r_m.eigenvalue, r_i.converged & r_m.converged

    w = jnp.asarray(flat) if mesh is None else replicate(jnp.asarray(flat), mesh)
    state = build(w, G, stacked, keys[0])
    L_I, L_M, conv = lhat(w, state, batches[0], keys[0])
    apply_m = jax.jit(jax.vmap(lambda v, s: prec.inverse_operator(s).matvec(v),
                               in_axes=(0, None)))
    M_inv = from_matvec(lambda v: apply_m(v[None], state)[0], size=n, dtype=w.dtype)
    K_I = noise_level(G)
    K_M = noise_level(G, M_inv)
    L_I, L_M = float(L_I), float(L_M)
    return {"method": method, "L_hat_identity": L_I, "L_hat_preconditioned": L_M,
            "L_reduction": L_I / L_M, "K_identity": K_I.K,
            "K_preconditioned": K_M.K, "K_reduction": K_I.K / K_M.K,
            "K_identity_stderr": K_I.stderr, "K_preconditioned_stderr": K_M.stderr,
            "converged": bool(conv),
            "noise_batches": config.noise_batches, "seconds": time.perf_counter() - t0,
            **opts}


def run_protocol(config: ProtocolConfig, out_dir: str | os.PathLike, *,
                 progress: Progress | None = None, problem: Problem | None = None,
                 stop_after: int | None = None, compile_cache: dict | None = None,
                 mesh=None) -> ResultsStore:
    """Run (or resume) the experiment ``config`` in ``out_dir`` (module docstring).

    Finished units already in the store are skipped, so rerunning after an interruption
    continues where it stopped.  A stored unit that does not match its checksums or the
    configuration's epochs and shapes is recomputed with a
    :class:`~precond.experiments.store.StaleUnitWarning`.

    Args:
      config: the experiment.
      out_dir: its directory (a :class:`~precond.experiments.store.ResultsStore`); one that
        holds an experiment with another configuration is refused.
      progress: hooks for a progress display (default none).
      problem: a problem to use instead of the registry's (tests use tiny ones).
      stop_after: stop after that many newly computed units (to test resuming).
      compile_cache: a dict the caller owns that shares compiled steps between calls on the
        same problem and configuration.
      mesh: a mesh with a ``"data"`` axis (``precond.distributed.data_mesh``): mini-batches
        row-sharded over it, parameters and state replicated (module docstring); None: one
        device.  Every batch size must be a multiple of its devices.

    Returns:
      The results store; ``precond.experiments.report.write_report`` renders it.
    """
    progress = progress or Progress()
    store = ResultsStore(out_dir)
    old = store.read_json("experiment.json")
    if old is not None and ProtocolConfig(**_from_json(old)).fingerprint() != config.fingerprint():
        raise ValueError(f"{out_dir} holds an experiment with a different configuration; use "
                         "another --out directory (or the same options)")
    problem = problem or get_problem(config.problem, quick=config.quick, **config.sizes)
    meta = config.to_json()
    meta["problem_sizes"] = problem.sizes
    meta["num_params"] = problem.num_params()
    meta["metric_name"] = problem.metric_name
    meta["dtype"] = str(jax.tree.leaves(jax.eval_shape(problem.init_params,
                                                       jax.random.key(0)))[0].dtype)
    meta["methods"] = sorted(set(meta["methods"]) | set((old or {}).get("methods", [])),
                             key=lambda m: (m not in config.methods, m))
    meta["seeds"] = max(config.seeds, (old or {}).get("seeds", 0))
    meta["mesh"] = mesh_info(mesh)
    runner = _Runner(problem, config, compile_cache, mesh)  # checks the mesh before any write
    store.write_json("experiment.json", meta)
    computed = [0]

    def tick():
        computed[0] += 1
        if stop_after is not None and computed[0] >= stop_after:
            raise KeyboardInterrupt(f"stopped after {stop_after} units (stop_after)")

    # Phase I, once per seed.
    phase1 = {}
    for s in range(config.seeds):
        uid = unit_id("phase1", s)
        if not store.has_unit(uid, epochs=config.phase1_epochs,
                              arrays={"params": (meta["num_params"],)}):
            progress.start_unit(f"Phase I (Adam) seed {s}", config.phase1_epochs)
            rec = run_phase1(problem, config, s, runner=runner, progress=progress)
            store.save_unit(uid, _record(rec, kind="phase1", seed=s),
                            {"params": _tree_to_flat(rec["params"])})
            progress.end_unit(uid, False)
            tick()
        else:
            progress.end_unit(uid, True)
        phase1[s] = runner.unravel(jnp.asarray(store.load_arrays(uid)["params"]))

    budget = config.budget_seconds
    # A budget run's id names its budget, and its epochs vary (N₂ is only a cap).
    run_id = (lambda *p: unit_id("run", *p)) if budget is None else \
        (lambda *p: unit_id("run", *p, f"t{budget:g}s"))

    def phase2(method, s, lr, snapshot):
        uid = run_id(method, s, lr)
        if store.has_unit(uid, epochs=config.phase2_epochs if budget is None else None) and \
                store.load_unit(uid).get("budget_seconds") == budget:
            progress.end_unit(uid, True)
            return store.load_unit(uid)
        progress.start_unit(f"{method} lr={lr:g} seed {s}", config.phase2_epochs)
        rec = runner.run(method, lr, phase1[s], jax.random.key(1000 + s), config.phase2_epochs,
                         progress, snapshot_epoch=config.diag_epoch() if snapshot else None,
                         budget_seconds=budget)
        arrays = {"snapshot": rec["snapshot"]} if rec["snapshot"] is not None else None
        out = _record(rec, kind="phase2", seed=s)
        store.save_unit(uid, out, arrays)
        progress.end_unit(uid, False)
        tick()
        return store.load_unit(uid)

    tuning_seed = 0
    for method in config.methods:
        # Learning-rate search on the tuning seed.
        recs = [phase2(method, tuning_seed, lr, method in CURVATURE_METHODS)
                for lr in config.grid(method)]
        finals = [_final(r, config.tail) for r in recs]
        best = int(np.argmin(finals))
        chosen = config.grid(method)[best]
        choice = {"kind": "choice", "method": method, "lr": chosen,
                  "grid": list(config.grid(method)), "final_losses": finals,
                  "all_diverged": bool(np.all(np.isinf(finals)))}
        name = f"units/{unit_id('choice', method)}.json"
        if store.read_json(name) != json.loads(json.dumps(_clean(choice))):
            store.write_json(name, choice)  # derived from the grid units; rewritten on change
        for s in range(1, config.seeds):
            phase2(method, s, chosen, False)
        # Diagnostics at the chosen run's snapshot.
        if config.diagnostics and method in CURVATURE_METHODS and recs[best]["status"] == "ok":
            uid = unit_id("diag", method)
            run_uid = run_id(method, tuning_seed, chosen)
            if not store.has_unit(uid):
                progress.start_unit(f"diagnostics {method}", 1)
                flat = store.load_arrays(run_uid)["snapshot"]
                d = _diagnostics(problem, config, method, flat, jax.random.key(4242), mesh)
                epoch = recs[best].get("snapshot_epoch")
                store.save_unit(uid, dict(d, kind="diagnostics", seed=tuning_seed, lr=chosen,
                                          epoch=config.diag_epoch() if epoch is None else epoch))
                progress.advance()
                progress.end_unit(uid, False)
                tick()
    return store


def run_phase1(problem: Problem, config: ProtocolConfig, seed: int, *,
               runner: _Runner | None = None, progress: Progress | None = None,
               mesh=None) -> dict:
    """Phase I of seed ``seed``: Adam (``phase1_lr``) from ``init_params(key(seed))`` for N₁
    epochs on the data keys of that seed — the common start of every Phase II run (and of
    ``precond advise`` on a built-in problem).

    Args:
      problem: the problem.
      config: the experiment (``phase1_lr``, ``phase1_epochs``).
      seed: the seed s.
      runner: the experiment's compiled steps (a fresh one when None).
      progress: hooks for a progress display.
      mesh: the device mesh of a fresh runner (``run_protocol``'s ``mesh``).

    Returns:
      The run's record; ``record["params"]`` holds the parameters after Phase I.
    """
    runner = runner or _Runner(problem, config, mesh=mesh)
    return runner.run("adam", config.phase1_lr, problem.init_params(jax.random.key(seed)),
                      jax.random.key(10_000 + seed), config.phase1_epochs,
                      progress or Progress())


def _record(rec: dict, *, kind: str, seed: int) -> dict:
    return {k: v for k, v in rec.items() if k not in ("params", "snapshot")} | {
        "kind": kind, "seed": seed}


def _from_json(d: dict) -> dict:
    names = {f.name for f in dataclasses.fields(ProtocolConfig)}
    out = {k: v for k, v in d.items() if k in names}
    out["methods"] = tuple(out["methods"])
    out["grids"] = {}  # grids are not part of the fingerprint
    return out


ProgressCallback = Callable[[str], None]
