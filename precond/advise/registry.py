"""The candidates ``advise`` measures: each optimizer of ``precond.optim.OPTIMIZERS`` with the
preconditioner M its steps apply, and how the recommended step α enters its learning rate.

A new optimizer needs no change to ``advise``: once it is in ``OPTIMIZERS`` it is a default
candidate.  Its M is found in this order:

1. :data:`CANDIDATES`, the table below (name → :class:`CandidateSpec`);
2. a factory of the same name in ``precond.preconditioners`` (dashes read as underscores, e.g.
   "kfac" → ``precond.preconditioners.kfac``), called with the parts of the problem's context
   (``loss_fn``, ``model_fn``, ``output_loss``) its signature names;
3. otherwise M = I, with a note: methods without a linear M⁻¹ (MUON's orthogonalized update,
   L-BFGS's line search) get SGD's L̂, ĉ, K; their predicted loss is from their own timing
   run (``advise(predict="pilot")``), like every candidate's.

To tune how a new method is measured, add one entry: ``CANDIDATES["name"] = CandidateSpec(…)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from precond import preconditioners as pc
from precond.optim import OPTIMIZERS

__all__ = ["CANDIDATES", "EXCLUDED", "CandidateSpec", "default_candidates", "momentum_factor",
           "resolve"]

STEP_RULES = ("alpha", "heavy-ball", "ema-momentum", "line-search")


def momentum_factor(step: str, beta: float) -> float:
    """The learning rate per unit of α = 1/L̂ for a step rule with momentum β.

    SGD's α = 1/L̂ is half its stability limit 2/L̂.  With momentum the limit of the linearized
    iteration along curvature θ of M⁻¹H is, for heavy ball (v ← βv + g, w ← w − α_lr v),
    α_lr·θ < 2(1 + β), and for an EMA of the gradients (Adam's m ← βm + (1 − β)g, w ← w −
    α_lr m̂/√v̂), α_lr·θ < 2(1 + β)/(1 − β) (the threshold 38/α_lr at β = 0.9 of Cohen et al.
    2022, "Adaptive gradient methods at the edge of stability").  Half the limit, as for SGD:
    (1 + β) for heavy ball, (1 + β)/(1 − β) for the EMA; 1 without momentum ("alpha").

    Args:
      step: a step rule of :data:`STEP_RULES` ("line-search" has no α: 1).
      beta: β ∈ [0, 1).
    """
    return {"heavy-ball": 1 + beta, "ema-momentum": (1 + beta) / (1 - beta)}.get(step, 1.0)


@dataclass(frozen=True)
class CandidateSpec:
    """How to measure one optimizer.

    Args:
      optimizer: its key in ``precond.optim.OPTIMIZERS``.
      preconditioner: ``context -> Preconditioner`` building the M its steps apply (``context``:
        a dict with ``loss_fn``, ``model_fn``, ``output_loss``, ``n`` = the number of
        parameters); None: M = I.
      step: how α enters: "alpha" (learning rate = α, the preconditioned-SGD step
        w ← w − αM⁻¹g), "heavy-ball" (learning rate (1 + β)α) and "ema-momentum" (learning
        rate (1 + β)α/(1 − β)): half the momentum iteration's stability limit, as α = 1/L̂ is
        half SGD's (:func:`momentum_factor`); "line-search" (learning rate 1, the line search
        scales it).
      beta: the momentum β of "heavy-ball" and "ema-momentum".
      options: options passed to ``precond.optim.get_optimizer`` (the optimizer and its M must
        agree: same damping, rank, …); a callable ``context -> dict`` when they depend on it.
      needs: context entries required (e.g. ``("model_fn", "output_loss")``); without them the
        candidate is skipped with a note.
      note: what the measurement assumes, shown in the report.
      batch_curvature: M is built from one mini-batch's positive semi-definite curvature (the
        last of the B; each
        step of the optimizer builds it from the step's own batch), so L̂, ĉ, κ̂ are those of
        M⁻¹H_B with H_B that batch's Hessian — the operator of the step the optimizer takes.
        Against the mean Hessian, directions outside that batch's curvature (M = λI there)
        would read as curvature/λ: an L̂ the steps never meet, as their gradient lies in
        their own batch's curvature range.
    """

    optimizer: str
    preconditioner: Callable[[dict], Any] | None = None
    step: str = "alpha"
    options: dict | Callable[[dict], dict] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    note: str = ""
    batch_curvature: bool = False
    beta: float = 0.0

    def __post_init__(self):
        if self.step not in STEP_RULES:
            raise ValueError(f"step must be one of {STEP_RULES}, got {self.step!r}")

    def optimizer_options(self, context: dict) -> dict:
        return dict(self.options(context) if callable(self.options) else self.options)


def _rank(context: dict) -> int:
    return min(10, max(1, context["n"] // 2))


def _curvature(context: dict) -> dict:
    """GGN curvature when the model is given (PSD, as a sketch assumes), else the Hessian."""
    if context.get("model_fn") is not None and context.get("output_loss") is not None:
        return {"model_fn": context["model_fn"], "output_loss": context["output_loss"]}
    return {"loss_fn": context["loss_fn"]}


MOMENTUM = 0.9
ADAM_B1 = 0.9  # optax's and precond.optim.adam's default β₁

CANDIDATES: dict[str, CandidateSpec] = {
    "sgd": CandidateSpec("sgd"),
    "momentum": CandidateSpec(
        "momentum", step="heavy-ball", options={"beta": MOMENTUM}, beta=MOMENTUM,
        note="learning rate (1 + β)/L̂, half heavy ball's stability limit; the spectral model "
             "reads it as SGD at α = 1/L̂"),
    "adam": CandidateSpec(
        "adam", lambda c: pc.adam(b2=0.999, eps=1e-8), step="ema-momentum", beta=ADAM_B1,
        note="M = Adam's bias-corrected diagonal after the B measurement gradients; learning "
             "rate (1 + β₁)/((1 − β₁)L̂), half the stability limit of its EMA momentum"),
    "rmsprop": CandidateSpec(
        "rmsprop", lambda c: pc.adam(b2=0.9, eps=1e-8),
        note="M = RMSProp's diagonal at its steady state here: the bias-corrected EMA of the "
             "B measurement gradients' squares (what RMSProp's EMA reaches after ~1/(1 − β) "
             "steps)"),
    "adagrad": CandidateSpec(
        "adagrad", lambda c: pc.adagrad(eps=1e-7, initial_accumulator=0.1),
        note="M = AdaGrad's diagonal after the B measurement gradients (it keeps growing, so "
             "later steps are smaller than predicted)"),
    "lbfgs": CandidateSpec(
        "lbfgs", None, step="line-search",
        note="no linear M⁻¹ at one point (no curvature pairs yet): L̂, ĉ, K as M = I; its "
             "predicted loss from its own timing run"),
    "nystrom-sgd": CandidateSpec(
        "nystrom-sgd", lambda c: pc.nystrom(rank=_rank(c), **_curvature(c), damping=None,
                                            update_every=10),
        options=lambda c: {"rank": _rank(c), "damping": None, "update_every": 10},
        note="M = Â + ρI with ρ = λ̂_r, the sketch's smallest retained eigenvalue (scale-free, "
             "where a fixed ρ is not; docs/results/advise.md compares the two)"),
    "cg-hessian": CandidateSpec(
        "cg-hessian", lambda c: pc.cg_hessian(c["loss_fn"], damping=1e-3, maxiter=10),
        options={"damping": 1e-3, "maxiter": 10},
        note="M = the last mini-batch's Hessian + λI, applied by 10 CG iterations (L̂, ĉ "
             "against the mean Hessian: one batch's Hessian + λI can be near-singular or "
             "indefinite, where CG's M⁻¹ is not linear)"),
    "cg-ggn": CandidateSpec(
        "cg-ggn", lambda c: pc.cg_ggn(c["model_fn"], c["output_loss"], damping=1e-3,
                                      maxiter=10),
        options={"damping": 1e-3, "maxiter": 10}, needs=("model_fn", "output_loss"),
        batch_curvature=True,
        note="M = the last mini-batch's GGN + λI, applied by 10 CG iterations; L̂, ĉ against "
             "that batch's Hessian"),
}

# Registered optimizers that are not default candidates (they can still be asked for by name).
EXCLUDED: dict[str, str] = {
    "spectral-sgd": "a deflation variant of Nyström SGD; ask for it by name",
    "nncg": "a full-batch solver (PROMISE's NNCG), not a mini-batch method",
    "osgm": "an online step-size method for full-batch problems",
}


def default_candidates() -> list[str]:
    """The table's candidates, then every other registered optimizer not in :data:`EXCLUDED`
    (so methods registered later are measured without a change here)."""
    later = sorted(n for n in OPTIMIZERS if n not in CANDIDATES and n not in EXCLUDED)
    return [n for n in CANDIDATES if n in OPTIMIZERS] + later


def _from_preconditioners(name: str) -> CandidateSpec:
    """The fallback spec of an optimizer missing from the table (module docstring, 2. and 3.)."""
    factory = getattr(pc, name.replace("-", "_"), None)
    if factory is None or not callable(factory) or name in ("lbfgs",):
        return CandidateSpec(name, None, note="no linear M⁻¹ known for this method: L̂, ĉ, K "
                                              "measured as M = I; its predicted loss from its "
                                              "own timing run")
    params = inspect.signature(factory).parameters
    context_names = ("loss_fn", "model_fn", "output_loss")
    needs = tuple(p for p in context_names if p in params
                  and params[p].default is inspect.Parameter.empty)

    def build(context: dict):
        return factory(**{p: context[p] for p in context_names
                          if p in params and context.get(p) is not None})

    return CandidateSpec(name, build, needs=needs,
                         note=f"M = precond.preconditioners.{factory.__name__} at its defaults")


def resolve(name: str) -> CandidateSpec:
    """The spec of candidate ``name``; ``ValueError`` naming the valid ones when unknown."""
    if name in CANDIDATES:
        return CANDIDATES[name]
    if name in OPTIMIZERS:
        return _from_preconditioners(name)
    valid = sorted(set(CANDIDATES) | set(OPTIMIZERS))
    raise ValueError(f"unknown candidate {name!r}; valid candidates: {', '.join(valid)}")
