"""``precond advise`` runs and their report: advice, verification at equal wall time, grid-tuned
learning rates, a plain-language recommendation, ``report.md`` and PNGs.

The numbers come from :func:`precond.advise.advise` (measurements and predictions) and
:meth:`precond.advise.Advice.verify` (training every candidate for the same wall time, over
seeds).  For a built-in problem the advice is taken at the two-phase protocol's Phase I point
(Adam from seed 0, :func:`precond.experiments.protocol.run_phase1`), and ``grid`` tunes each
candidate's learning rate on the protocol's grid (:func:`~precond.experiments.protocol.
default_grid`) with the same budget, start, seed-0 data and final-loss measurement as the
verification — so the recommended α and the grid-tuned one are comparable.

Every file is written atomically (:func:`precond.experiments.store.atomic_write`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .store import _clean, atomic_write

__all__ = ["AdviseRun", "advise_problem", "advise_script", "grid_tune", "load_advise_run",
           "recommendation", "print_advice", "summarize", "write_advice_report"]


@dataclass
class AdviseRun:
    """One ``precond advise`` run.

    Attributes:
      name: the problem's name (or the script's file name).
      advice: what :func:`precond.advise.advise` returned.
      advise_seconds: the wall time of that call (measurements and their compilation).
      verification: what ``Advice.verify`` returned, or None without ``--verify``.
      verify_seconds: its wall time (None without it).
      grid: method → ``{"grid", "final_losses", "lr"}``: the learning-rate grid, the realized
        final loss of each value (seed 0, same budget; inf = diverged) and the best value; None
        without ``--grid``.
      grid_seconds: its wall time.
      info: the problem's description (parameters, sizes, warm start, machine).
    """

    name: str
    advice: Any
    advise_seconds: float
    verification: Any = None
    verify_seconds: float | None = None
    grid: dict | None = None
    grid_seconds: float | None = None
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The run as JSON-ready data (the advice's and verification's own ``to_dict``)."""
        return {"name": self.name, "info": self.info, "advice": self.advice.to_dict(),
                "advise_seconds": self.advise_seconds,
                "verification": None if self.verification is None
                else self.verification.to_dict(),
                "verify_seconds": self.verify_seconds, "grid": self.grid,
                "grid_seconds": self.grid_seconds, "recommendation": recommendation(self)}


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}"


def _advise_and_check(name, loss_fn, params, data, *, model_fn, output_loss, budget_seconds,
                      candidates, verify, seeds, num_batches, grid_of, log, info) -> AdviseRun:
    import jax

    from precond.advise import advise

    kw = {} if num_batches is None else {"num_batches": num_batches}
    log(f"advise {name}: measuring {len(candidates) if candidates else 'the default'} "
        f"candidates for a budget of {budget_seconds:g} s")
    t0 = time.perf_counter()
    advice = advise(loss_fn, params, data, key=jax.random.key(0), candidates=candidates,
                    budget_seconds=budget_seconds, model_fn=model_fn, output_loss=output_loss,
                    **kw)
    run = AdviseRun(name, advice, time.perf_counter() - t0,
                    info=dict(info, machine=_machine(), n_params=advice.n_params))
    if verify:
        log(f"verify: {len(advice.ranking)} candidates × {seeds} seeds × {budget_seconds:g} s")
        t0 = time.perf_counter()
        run.verification = advice.verify(loss_fn, params, data, key=jax.random.key(1),
                                         seeds=seeds)
        run.verify_seconds = time.perf_counter() - t0
    if grid_of is not None:
        log("grid: each candidate's learning-rate grid at the same budget (seed 0)")
        t0 = time.perf_counter()
        run.grid = grid_tune(advice, loss_fn, params, data, grid_of=grid_of,
                             key=jax.random.key(1))
        run.grid_seconds = time.perf_counter() - t0
    return run


def advise_problem(problem: str, *, quick: bool = False, warmup: int | None = None,
                   grid: bool = False, budget_seconds: float, candidates=None,
                   verify: bool = False, seeds: int = 3, num_batches: int | None = None,
                   log: Callable[[str], Any] = lambda s: None, mesh=None) -> AdviseRun:
    """Advise on a built-in problem at its Phase I point (module docstring).

    Args:
      problem: a name of ``precond.problems.registry``.
      quick: the problem's quick sizes (and the quick protocol's 300 warm-start epochs).
      warmup: Adam epochs of Phase I (default the protocol's: 300 quick, 1000 full).
      grid: also tune each candidate's learning rate on the protocol's grid (:func:`grid_tune`).
      budget_seconds: the training wall time per candidate.
      candidates: optimizer names (default: advise's).
      verify: train every candidate for the budget over ``seeds`` seeds.
      seeds: seeds of the verification.
      num_batches: B of the measurements (default advise's).
      log: a function that shows progress lines.
      mesh: a ``precond.distributed.data_mesh``: Phase I, the measurements and the training runs
        on mini-batches row-sharded over its ``"data"`` axis, parameters replicated
        (``precond.optim.train``'s rule); None = one device.
    """
    from precond.experiments.protocol import ProtocolConfig, default_grid, run_phase1
    from precond.problems.registry import get_problem

    p = get_problem(problem, quick=quick)
    config = ProtocolConfig.quick_config(problem) if quick else ProtocolConfig(problem=problem)
    if warmup is not None:
        config = dataclasses.replace(config, phase1_epochs=warmup)
    log(f"{problem}: Phase I (Adam, lr {config.phase1_lr:g}) for {config.phase1_epochs} epochs "
        f"from seed 0, {p.num_params()} parameters")
    t0 = time.perf_counter()
    start = run_phase1(p, config, 0, mesh=mesh)
    info = {"problem": problem, "quick": quick, "sizes": p.sizes,
            "warmup_epochs": config.phase1_epochs, "warmup_lr": config.phase1_lr,
            "warmup_seconds": time.perf_counter() - t0, "warmup_status": start["status"],
            "output_loss": p.output_loss}
    # The sampler compiled once: the verification's train(budget_seconds=…) draws each epoch's
    # batches inside its budget, so an op-by-op sampler would eat the cheap methods' time.
    import jax

    sampler, params = jax.jit(p.sample_batch), start["params"]
    if mesh is not None:
        from precond.distributed import replicate, sharded_sampler

        sampler, params = sharded_sampler(sampler, mesh), replicate(params, mesh)
    return _advise_and_check(problem, p.loss, params, sampler,
                             model_fn=p.model_fn, output_loss=p.output_loss,
                             budget_seconds=budget_seconds, candidates=candidates,
                             verify=verify, seeds=seeds, num_batches=num_batches,
                             grid_of=(lambda m: default_grid(m, quick)) if grid else None,
                             log=log, info=info)


def advise_script(names: dict, *, name: str, budget_seconds: float, candidates=None,
                  verify: bool = False, seeds: int = 3, num_batches: int | None = None,
                  log: Callable[[str], Any] = lambda s: None) -> AdviseRun:
    """Advise on a user's problem: the names a script file defines (``precond advise
    --script``; ``precond.cli.advise.load_script`` reads them).

    Args:
      names: ``loss_fn``, ``params``, ``sample_batch`` and optionally ``model_fn``,
        ``output_loss``.
      name: the script's name for the report.
      budget_seconds, candidates, verify, seeds, num_batches, log: as :func:`advise_problem`.
    """
    info = {"script": name, "output_loss": str(names.get("output_loss"))}
    return _advise_and_check(name, names["loss_fn"], names["params"], names["sample_batch"],
                             model_fn=names.get("model_fn"), output_loss=names.get("output_loss"),
                             budget_seconds=budget_seconds, candidates=candidates,
                             verify=verify, seeds=seeds, num_batches=num_batches, grid_of=None,
                             log=log, info=info)


def grid_tune(advice, loss_fn: Callable, params, data, *, grid_of: Callable[[str], tuple],
              key) -> dict:
    """Each candidate's best learning rate on a grid, trained as the verification trains.

    Every (candidate, learning rate) is one run of ``Advice.verify`` with that rate (one seed,
    the advice's budget, the same start and evaluation), so the grid-tuned rate is judged by the
    realized loss the verification reports.

    Args:
      advice: what :func:`precond.advise.advise` returned.
      loss_fn, params, data: as given to ``advise``.
      grid_of: method → its learning rates (e.g. ``precond.experiments.protocol.default_grid``).
      key: the verification's key (its seed 0 is used).

    Returns:
      method → ``{"grid": [...], "final_losses": [...], "lr": best or None}`` (None when every
      value diverged).
    """
    out = {}
    for m in advice.ranking:
        grid = [float(x) for x in grid_of(m)]
        finals = []
        for lr in grid:
            one = dataclasses.replace(advice, ranking=(m,), learning_rate={m: lr})
            v = one.verify(loss_fn, params, data, key=key, seeds=1)
            finals.append(float(v.realized_mean[m]))
        ok = [i for i, f in enumerate(finals) if math.isfinite(f)]
        out[m] = {"grid": grid, "final_losses": finals,
                  "lr": grid[min(ok, key=lambda i: finals[i])] if ok else None}
    return out


# ------------------------------------------------------------------------------ the sentence


def _times(x: float) -> str:
    """A factor as text: 900×, 1.5×, or 'does not change'."""
    return f"{x:.2g}×" if x < 10 else f"{x:.0f}×"


def _change(before: float, after: float, what: str) -> str:
    if not (math.isfinite(before) and math.isfinite(after)) or before <= 0 or after <= 0:
        return f"{what} not comparable"
    r = before / after
    if 0.9 <= r <= 1.1:
        return f"leaves {what} about as it is"
    return f"cuts {what} {_times(r)}" if r > 1 else f"raises {what} {_times(1 / r)}"


def recommendation(run: AdviseRun) -> str:
    """The advice in one plain sentence built from its numbers, e.g. "use cg-ggn at α = 0.8
    (learning rate 0.8): it cuts L̂ 900× and K 100× against SGD (M = I); its steps cost 7×
    Adam's; predicted 12× lower loss than Adam at 60 s".

    Args:
      run: an :class:`AdviseRun`.
    """
    a = run.advice
    rec = a.measurement(a.recommended)
    parts = [f"use {rec.name} at α = {rec.alpha:.3g}"
             + (f" (learning rate {rec.learning_rate:.3g})"
                if not math.isclose(rec.alpha, rec.learning_rate, rel_tol=1e-6) else "")]
    ref_names = [n for n in a.ranking if n != rec.name]
    why = []
    if "sgd" in a.ranking and rec.name != "sgd":
        sgd = a.measurement("sgd")
        why.append(f"it {_change(sgd.L_hat, rec.L_hat, 'L̂')} and "
                   f"{_change(sgd.K, rec.K, 'K')} against SGD (M = I)")
    base = "adam" if "adam" in ref_names else (ref_names[0] if ref_names else None)
    if base is not None:
        b = a.measurement(base)
        cost = rec.seconds_per_step / b.seconds_per_step
        why.append(f"its steps cost {_times(cost)} {base}'s" if cost >= 1.1 else
                   f"its steps are {_times(1 / cost)} cheaper than {base}'s" if cost <= 0.9
                   else f"its steps cost about what {base}'s do")
        p_rec, p_b = a.predicted[rec.name], a.predicted[base]
        at = f"at {a.budget_seconds:.3g} s"
        if math.isfinite(p_rec) and p_rec > 0 and math.isfinite(p_b):
            r = p_b / p_rec
            why.append(f"predicted {_times(r)} lower loss than {base} {at} ({p_rec:.3g} against "
                       f"{p_b:.3g})" if r >= 1.1 else
                       f"predicted about the same loss as {base} {at} ({p_rec:.3g} against "
                       f"{p_b:.3g})")
        elif not math.isfinite(p_b):
            why.append(f"{base} is predicted unstable at its step")
    text = parts[0] + (": " + "; ".join(why) if why else "")
    v = run.verification
    if v is not None:
        realized_rank = list(v.realized_ranking).index(rec.name) + 1 \
            if rec.name in v.realized_ranking else None
        text += (f". Verified at equal wall time over {v.seeds} seeds: it came "
                 f"{_ordinal(realized_rank)} of {len(v.names)} (Spearman ρ = "
                 f"{v.spearman_rho:.2f} between predicted and realized)")
    return text + "."


def _ordinal(k: int | None) -> str:
    if k is None:
        return "unranked"
    return f"{k}{'st' if k == 1 else 'nd' if k == 2 else 'rd' if k == 3 else 'th'}"


# ------------------------------------------------------------------------------ output


def print_advice(run: AdviseRun, console) -> None:
    """The ranking (and the verification when there is one) as a rich table on ``console``.

    Args:
      run: an :class:`AdviseRun`.
      console: a ``rich.console.Console``.
    """
    from rich.table import Table

    a, v = run.advice, run.verification
    t = Table(title=f"precond advise {run.name}: budget {a.budget_seconds:g} s per candidate")
    cols = ["rank", "candidate", "α", "lr", "L̂", "ĉ", "K", "s/step", "predicted"]
    if v is not None:
        cols += ["realized (mean)", "realized rank"]
    if run.grid is not None:
        cols += ["grid lr"]
    for c in cols:
        t.add_column(c)
    for i, m in enumerate(a.measurements, 1):
        row = [str(i), m.name, f"{m.alpha:.3g}", f"{m.learning_rate:.3g}", f"{m.L_hat:.3g}",
               f"{m.c_hat:.3g}", f"{m.K:.3g}", f"{m.seconds_per_step:.2e}",
               f"{m.predicted_loss:.3g}"]
        if v is not None:
            row += [f"{v.realized_mean[m.name]:.3g}",
                    str(list(v.realized_ranking).index(m.name) + 1)]
        if run.grid is not None:
            g = run.grid.get(m.name, {}).get("lr")
            row += ["—" if g is None else f"{g:g}"]
        t.add_row(*row)
    console.print(t)
    console.print(f"advise took {run.advise_seconds:.1f} s (budget {a.budget_seconds:g} s)")
    console.print(recommendation(run))


def _fmt(x, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—" if x is None else ("∞" if x > 0 else str(x))
    return format(x, spec)


def _save_png(path: Path, draw: Callable) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.2, 3.8), dpi=100)
    try:
        draw(ax)
        fig.tight_layout()
        atomic_write(path, lambda f: fig.savefig(f, format="png"))
    finally:
        plt.close(fig)


def _plot_ranking(run: AdviseRun, ax) -> None:
    a = run.advice
    names = list(a.ranking)
    pred = np.array([a.predicted[n] for n in names], float)
    x = np.arange(len(names))
    ax.bar(x - 0.2, np.where(np.isfinite(pred), pred, np.nan), 0.4, label="predicted")
    if run.verification is not None:
        real = np.array([run.verification.realized_mean.get(n, np.nan) for n in names], float)
        ax.bar(x + 0.2, np.where(np.isfinite(real), real, np.nan), 0.4, label="realized")
    ax.axhline(a.initial_loss, color="k", lw=0.8, ls="--", label="loss at the start")
    ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=40, ha="right", fontsize=8)
    ax.set_ylabel(f"loss after {a.budget_seconds:g} s")
    ax.set_title(f"{run.name}: candidates, best predicted first", fontsize=10)
    ax.legend(fontsize=8)


def _plot_scatter(run: AdviseRun, ax) -> None:
    v = run.verification
    names = list(v.names)
    pred = np.array([v.predicted[n] for n in names], float)
    real = np.array([v.realized_mean[n] for n in names], float)
    ok = np.isfinite(pred) & np.isfinite(real) & (pred > 0) & (real > 0)
    ax.scatter(pred[ok], real[ok])
    for n, p, r in zip(np.array(names)[ok], pred[ok], real[ok], strict=True):
        ax.annotate(n, (p, r), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if ok.any():
        lo, hi = min(pred[ok].min(), real[ok].min()), max(pred[ok].max(), real[ok].max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="realized = predicted")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())  # labelled decades only: no overlapping text
    ax.set_xlabel("predicted loss after the budget")
    ax.set_ylabel(f"realized loss (mean of {v.seeds} seeds)")
    left = [n for n, k in zip(names, ok, strict=True) if not k]
    ax.set_title(f"{run.name}: Spearman ρ = {v.spearman_rho:.2f}"
                 + (f" (not shown, non-finite: {', '.join(left)})" if left else ""), fontsize=9)


def write_advice_report(run: AdviseRun, out_dir: str | os.PathLike, *,
                        command: str | None = None) -> Path:
    """Write ``report.md``, ``advice.json``, ``ranking.png`` and (verified runs)
    ``predicted_vs_realized.png`` to ``out_dir``, atomically.

    Args:
      run: an :class:`AdviseRun`.
      out_dir: the directory (created if missing).
      command: the command line that made the run, quoted in the report.

    Returns:
      The path of ``report.md``.
    """
    out = Path(out_dir)
    a, v = run.advice, run.verification
    atomic_write(out / "advice.json", json.dumps(_clean(run.to_dict()), indent=1,
                                                 default=float))
    _save_png(out / "ranking.png", lambda ax: _plot_ranking(run, ax))
    L = [f"# precond advise: {run.name}", ""]
    if command:
        L += ["Command:", "", f"    {command}", ""]
    L += ["## Recommendation", "", recommendation(run), "",
          "## Setting", "",
          f"- {a.n_params} parameters; loss at the start F₀ = {a.initial_loss:.4g} (mean over "
          f"the B = {a.num_batches} measurement mini-batches)",
          f"- budget: {a.budget_seconds:g} s of training per candidate (timed steps only, "
          "compilation apart)",
          f"- advise's own run time: {run.advise_seconds:.1f} s "
          f"({run.advise_seconds / a.budget_seconds:.2g}× one candidate's budget; measurements "
          "and their compilation)"]
    info = run.info
    if "warmup_epochs" in info:
        L.append(f"- start: Phase I of `precond compare` (Adam, lr {info['warmup_lr']:g}, "
                 f"{info['warmup_epochs']} epochs from seed 0), sizes {info['sizes']}")
    L.append(f"- machine: {info.get('machine', _machine())}, float64")
    if a.skipped:
        L.append("- not measured: " + "; ".join(f"{k} ({w})" for k, w in a.skipped.items()))
    L += ["", "## Ranking (best predicted first)", "",
          "| rank | candidate | α | learning rate | L̂ | ĉ | κ̂ | K ± s.e. | s/step | steps T | "
          "predicted loss | predicted floor |" + (" realized (mean ± std) | realized rank |"
                                                  if v is not None else "")
          + (" grid-tuned lr |" if run.grid is not None else ""),
          "|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if v is not None
                                                                 else "")
          + ("---|" if run.grid is not None else "")]
    for i, m in enumerate(a.measurements, 1):
        row = (f"| {i} | {m.name} | {_fmt(m.alpha)} | {_fmt(m.learning_rate)} | {_fmt(m.L_hat)} "
               f"| {_fmt(m.c_hat)} | {_fmt(m.kappa)} | {_fmt(m.K)} ± {_fmt(m.K_stderr, '.2g')} | "
               f"{_fmt(m.seconds_per_step, '.2e')} | {m.steps} | {_fmt(m.predicted_loss)} | "
               f"{_fmt(m.predicted_floor)} |")
        if v is not None and m.name in v.realized_mean:
            vals = np.asarray(v.realized[m.name], float)
            std = float(np.std(vals)) if np.all(np.isfinite(vals)) else math.inf
            row += (f" {_fmt(v.realized_mean[m.name])} ± {_fmt(std, '.2g')} | "
                    f"{list(v.realized_ranking).index(m.name) + 1} |")
        elif v is not None:
            row += " — | — |"
        if run.grid is not None:
            row += f" {_fmt(run.grid.get(m.name, {}).get('lr'), 'g')} |"
        L.append(row)
    notes = [f"- {m.name}: {m.note}" for m in a.measurements if m.note]
    if notes:
        L += ["", "Notes:", ""] + notes
    L += ["", "![ranking](ranking.png)", ""]
    if v is not None:
        _save_png(out / "predicted_vs_realized.png", lambda ax: _plot_scatter(run, ax))
        L += ["## Verification at equal wall time", "",
              f"Every candidate trained for {v.budget_seconds:g} s at its recommended learning "
              f"rate from the same start, {v.seeds} seeds ({_fmt(run.verify_seconds, '.0f')} s "
              "in all).", "",
              f"- predicted ranking: {', '.join(a.ranking)}",
              f"- realized ranking: {', '.join(v.realized_ranking)}",
              f"- Spearman ρ (predicted vs realized loss): {_fmt(v.spearman_rho, '.2f')}", "",
              "![predicted vs realized](predicted_vs_realized.png)", ""]
    if run.grid is not None:
        L += ["## Recommended vs grid-tuned learning rate", "",
              "Each candidate trained for the same budget from the same start at every value "
              "of `precond compare`'s grid (seed 0); the best realized final loss picks the "
              f"grid-tuned rate ({_fmt(run.grid_seconds, '.0f')} s in all).", "",
              "| candidate | recommended lr | grid-tuned lr | ratio | grid: final loss |",
              "|---|---|---|---|---|"]
        for m in a.measurements:
            g = run.grid.get(m.name)
            if g is None:
                continue
            ratio = (m.learning_rate / g["lr"]) if g["lr"] else math.nan
            pairs = ", ".join(f"{lr:g}: {_fmt(f)}" for lr, f in
                              zip(g["grid"], g["final_losses"], strict=True))
            L.append(f"| {m.name} | {_fmt(m.learning_rate)} | {_fmt(g['lr'], 'g')} | "
                     f"{_fmt(ratio, '.2g')} | {pairs} |")
        L.append("")
    L += ["Raw numbers: `advice.json`.", ""]
    return atomic_write(out / "report.md", "\n".join(L))


def load_advise_run(path: str | os.PathLike) -> AdviseRun:
    """An :class:`AdviseRun` read back from the ``advice.json`` of a ``precond advise --out``
    directory (e.g. to render its report again); the JSON's nulls (stored NaN and ±inf) come
    back as inf for losses and NaN otherwise.

    Args:
      path: the run's directory.
    """
    from precond.advise import Advice, Measurement, Verification

    d = json.loads((Path(path) / "advice.json").read_text())
    inf = lambda x: math.inf if x is None else x  # noqa: E731 (a loss that was not finite)
    nan = lambda x: math.nan if x is None else x  # noqa: E731
    names = {f.name: f for f in dataclasses.fields(Measurement)}
    rows = []
    for r in d["advice"]["measurements"]:
        kw = {k: v for k, v in r.items() if k in names}
        rows.append(Measurement(**{k: (inf(v) if k.startswith("predicted") else nan(v))
                                   if v is None else v for k, v in kw.items()}))
    a = d["advice"]
    advice = Advice(ranking=tuple(a["ranking"]), recommended=a["recommended"],
                    learning_rate=a["learning_rate"],
                    predicted={k: inf(v) for k, v in a["predicted"].items()},
                    measurements=tuple(rows), budget_seconds=a["budget_seconds"],
                    initial_loss=a["initial_loss"], num_batches=a["num_batches"],
                    n_params=a["n_params"], skipped=a.get("skipped") or {})
    v = d.get("verification")
    if v is not None:
        v = Verification(names=tuple(v["names"]), budget_seconds=v["budget_seconds"],
                         seeds=v["seeds"], predicted={k: inf(x) for k, x in v["predicted"].items()},
                         realized={k: tuple(inf(x) for x in xs) for k, xs in v["realized"].items()},
                         realized_mean={k: inf(x) for k, x in v["realized_mean"].items()},
                         realized_ranking=tuple(v["realized_ranking"]),
                         spearman_rho=nan(v["spearman_rho"]), statuses=v["statuses"],
                         steps=v["steps"])
    grid = d.get("grid")
    if grid is not None:
        for g in grid.values():
            g["final_losses"] = [inf(x) for x in g["final_losses"]]
    return AdviseRun(d["name"], advice, d["advise_seconds"], v, d.get("verify_seconds"), grid,
                     d.get("grid_seconds"), d.get("info") or {})


def summarize(dirs: list[str | os.PathLike]) -> str:
    """A markdown table over several ``precond advise --verify --grid`` runs (their
    ``advice.json``), with the issue's targets: mean Spearman ρ, the recommended candidate in
    the realized top 2, its learning rate within 3× of the grid-tuned one, and advise's own run
    time against the budget.

    Args:
      dirs: the runs' ``--out`` directories.
    """
    rows, rhos, top2, within, cheap, every = [], [], 0, [], 0, [0, 0]
    L = ["| problem | n | predicted ranking | realized ranking (equal time) | ρ | recommended: "
         "realized rank | recommended lr / grid-tuned lr | all candidates' lr within 3× of the "
         "grid's | advise s (÷ budget, ÷ all runs) | of which timing runs' compile s |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for d in dirs:
        run = json.loads((Path(d) / "advice.json").read_text())
        a, v, g = run["advice"], run["verification"], run["grid"] or {}
        rec = a["recommended"]
        S, k = a["budget_seconds"], len(a["ranking"])
        rank = v["realized_ranking"].index(rec) + 1 if v else None
        rho = v["spearman_rho"] if v else None
        if rho is not None and math.isfinite(rho):
            rhos.append(rho)
        top2 += bool(rank is not None and rank <= 2)
        lr = a["learning_rate"][rec]
        glr = (g.get(rec) or {}).get("lr")
        ratio = lr / glr if glr else None
        if ratio is not None:
            within.append(1 / 3 <= ratio <= 3)
        pairs = [(a["learning_rate"][m], (g.get(m) or {}).get("lr")) for m in a["ranking"]]
        close = [1 / 3 <= x / y <= 3 for x, y in pairs if y]
        every[0] += sum(close)
        every[1] += len(close)
        t = run["advise_seconds"]
        cheap += t <= 0.1 * S
        rows.append(run["name"])
        L.append(f"| {run['name']} | {a['n_params']} | {', '.join(a['ranking'])} | "
                 f"{', '.join(v['realized_ranking']) if v else '—'} | {_fmt(rho, '.2f')} | "
                 f"{rec}: {_ordinal(rank)} | {_fmt(lr)} / {_fmt(glr, 'g')} "
                 f"({_fmt(ratio, '.2g')}×) | {sum(close)} of {len(close)} | "
                 f"{t:.0f} ({t / S:.2g}×, {t / (S * k):.2g}×) | "
                 f"{sum(m.get('compile_seconds') or 0.0 for m in a['measurements']):.0f} |")
    n = len(rows)
    L += ["", f"- mean Spearman ρ: {_fmt(float(np.mean(rhos)) if rhos else None, '.2f')} "
          "(target ≥ 0.8)",
          f"- recommended candidate in the realized top 2: {top2} of {n} (target ≥ 5 of 6)",
          f"- recommended lr within 3× of the grid-tuned one: {sum(within)} of {len(within)} "
          "(where the grid covers the method); over all candidates: "
          f"{every[0]} of {every[1]}",
          f"- advise's run time ≤ 10% of the budget: {cheap} of {n}"]
    return "\n".join(L)
