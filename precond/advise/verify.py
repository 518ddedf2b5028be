"""``Advice.verify``: train the candidates at equal wall time and compare with the prediction."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import jax
import numpy as np
import scipy.stats

from precond.diagnostics.report import BatchMean
from precond.loop import progress_bar
from precond.optim import train
from precond.validation import check_int, check_key, check_positive

from .advisor import Advice, _build_optimizer, _json_safe, draw_batches, text_table
from .registry import resolve

__all__ = ["Verification", "verify"]


@dataclass(frozen=True)
class Verification:
    """Realized against predicted, at equal wall time.

    ``names``: the candidates trained (prediction order); ``realized`` name → the final loss
    of each seed (the mean loss over the evaluation mini-batches; ``inf`` when the run ended
    non-finite); ``realized_mean`` name → their mean; ``realized_ranking`` names by
    ``realized_mean``; ``predicted`` name → the advice's prediction; ``spearman_rho`` the rank
    correlation between predicted and realized mean (NaN with fewer than 2 candidates or a
    constant column); ``statuses`` and ``steps`` per seed.
    """

    names: tuple[str, ...]
    budget_seconds: float
    seeds: int
    predicted: dict
    realized: dict
    realized_mean: dict
    realized_ranking: tuple[str, ...]
    spearman_rho: float
    statuses: dict
    steps: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(_json_safe(self.to_dict()), indent=2)

    def table(self) -> str:
        rows = [{"name": n, "predicted": self.predicted[n], "realized": self.realized_mean[n],
                 "steps": int(np.mean(self.steps[n]))} for n in self.names]
        return text_table(rows, ["name", "predicted", "realized", "steps"]) + \
            f"\nSpearman ρ = {self.spearman_rho:.3g}"


def _epoch_data(data, stacked, seed_key):
    """One epoch's S mini-batches: the given stack in a seed's order, or B fresh draws."""
    if callable(data):
        B = int(jax.tree.leaves(stacked)[0].shape[0])
        return lambda k: draw_batches(data, k, B)
    B = int(jax.tree.leaves(stacked)[0].shape[0])
    order = jax.random.permutation(seed_key, B)
    return jax.tree.map(lambda x: x[order], stacked)


def verify(advice: Advice, loss_fn: Callable, params, data, *, key: jax.Array, seeds: int = 3,
           top_k: int | None = None, budget_seconds: float | None = None,
           progress: bool = False) -> Verification:
    """Train the advised candidates from ``params`` for the same wall time each and compare the
    realized ranking with the predicted one.

    Every run is ``precond.optim.train(..., num_epochs=None, budget_seconds=…)``: epochs of B
    steps until the budget (compilation apart), at the advised learning rate, with the
    advice's optimizer (one per candidate, so its compiled program is shared by the seeds; the
    seeds differ in the order of the mini-batches, or in the draws when ``data`` is a
    function).  The realized loss
    is the mean loss over B evaluation mini-batches (``data`` itself when it is a stack, else B
    draws) at the final parameters.

    Args:
      advice: what :func:`precond.advise.advise` returned.
      loss_fn, params, data: as given to ``advise``.
      key: jax.random key (required): the batch orders / draws of each seed.
      seeds: runs per candidate (≥ 1).
      top_k: train only the k best predicted (default: all measured).
      budget_seconds: the wall time per run (default: the advice's budget).
      progress: a progress bar over the runs.
    """
    key = check_key(key)
    seeds = check_int(seeds, "seeds", low=1)
    budget = advice.budget_seconds if budget_seconds is None else check_positive(
        budget_seconds, "budget_seconds")
    names = list(advice.ranking)
    if top_k is not None:
        names = names[:check_int(top_k, "top_k", low=1)]
    k_eval, k_runs = jax.random.split(key)
    stacked = draw_batches(data, k_eval, advice.num_batches)
    mean_loss = BatchMean(loss_fn)
    realized, statuses, steps = {}, {}, {}
    with progress_bar(progress, "verify", len(names) * seeds) as bar:
        for i, name in enumerate(names):
            realized[name], statuses[name], steps[name] = [], [], []
            if loss_fn is advice.context.get("loss_fn"):
                opt = advice.optimizer(name)
            else:
                ctx = {**advice.context, "loss_fn": loss_fn}
                opt = _build_optimizer(resolve(name), advice.learning_rate[name], ctx)
            for s in range(seeds):
                k = jax.random.fold_in(jax.random.fold_in(k_runs, s), i)
                run = train(loss_fn, params, opt, _epoch_data(data, stacked, k), num_epochs=None,
                            key=k, budget_seconds=budget)
                final = float(mean_loss(run.params, stacked))
                realized[name].append(final if math.isfinite(final) else math.inf)
                statuses[name].append(str(run.status))
                steps[name].append(int(run.steps))
                bar.advance(f"verify: {name} seed {s}")
    mean = {n: float(np.mean(v)) for n, v in realized.items()}
    ranking = tuple(sorted(names, key=lambda n: mean[n]))
    rho = math.nan
    if len(names) >= 2:
        pred = [advice.predicted[n] for n in names]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a constant column: ρ is NaN, said in the doc
            rho = float(scipy.stats.spearmanr(pred, [mean[n] for n in names]).statistic)
    return Verification(tuple(names), float(budget), seeds,
                        {n: advice.predicted[n] for n in names},
                        {n: tuple(v) for n, v in realized.items()}, mean, ranking, rho,
                        statuses, steps)
