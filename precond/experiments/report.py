"""``report.md`` (and results.json / results.csv / PNGs) from a results store.

Every file is written atomically (a temporary file beside it, then renamed), so a report is
never half-written.

Nothing is recomputed: the report renders the units :func:`precond.experiments.protocol.
run_protocol` stored, so ``precond report DIR`` can redraw it at any time.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from .plots import plot_curves
from .store import ResultsStore, atomic_write

__all__ = ["collect", "write_report"]

THRESHOLDS = (1e-1, 1e-2, 1e-3)


def _arr(v) -> np.ndarray:
    if v is None:
        return np.zeros(0)
    return np.asarray([np.nan if x is None else x for x in v], float)


def collect(store: ResultsStore) -> dict:
    """Group the stored units of an experiment for the report.

    Args:
      store: the experiment's results store.

    Returns:
      ``{"config", "choices", "runs", "diagnostics", "grid_runs", "phase1"}``: the
      configuration, the chosen learning rate per method, the runs at that rate per method
      (sorted by seed, curves as float arrays), the diagnostics per method, the tuning seed's
      grid runs and the Phase I units.

    Raises:
      FileNotFoundError: the store holds no experiment.
    """
    config = store.read_json("experiment.json")
    if config is None:
        raise FileNotFoundError(f"{store.root} holds no experiment (experiment.json missing)")
    units = store.all_units()
    choices = {u["method"]: u for u in units if u.get("kind") == "choice"}
    diags = {u["method"]: u for u in units if u.get("kind") == "diagnostics"}
    runs = {}
    for m in config["methods"]:
        if m not in choices:
            continue
        lr = choices[m]["lr"]
        rs = [u for u in units if u.get("kind") == "phase2" and u["method"] == m
              and np.isclose(u["lr"], lr) and u["seed"] < config["seeds"]]
        for r in rs:
            for k in ("loss", "rel_loss", "time", "metric"):
                r[k] = _arr(r[k])
        runs[m] = sorted(rs, key=lambda r: r["seed"])
    grid_runs = [u for u in units if u.get("kind") == "phase2" and u["seed"] == 0]
    phase1 = [u for u in units if u.get("kind") == "phase1"]
    return {"config": config, "choices": choices, "runs": runs, "diagnostics": diags,
            "grid_runs": grid_runs, "phase1": phase1}


def _summary(runs: list[dict], tail: int) -> dict:
    ok = [r for r in runs if r["status"] == "ok"]
    finals = np.array([np.mean(r["rel_loss"][-tail:]) for r in ok])
    metric = np.array([r["metric"][-1] for r in ok]) if ok else np.array([])
    reach = {}
    for t in THRESHOLDS:
        ts, es = [], []
        for r in ok:
            hit = np.nonzero(r["rel_loss"] <= t)[0]
            if hit.size:
                es.append(hit[0])
                ts.append(r["time"][hit[0]])
        reach[t] = (len(ts), float(np.mean(es)) if es else np.nan,
                    float(np.mean(ts)) if ts else np.nan)
    return {"n": len(runs), "ok": len(ok), "final_mean": float(np.mean(finals)) if ok else np.nan,
            "final_std": float(np.std(finals)) if ok else np.nan,
            "metric_mean": float(np.nanmean(metric)) if metric.size else np.nan,
            "metric_std": float(np.nanstd(metric)) if metric.size else np.nan,
            "time_total": float(np.mean([r["time"][-1] for r in ok])) if ok else np.nan,
            "epochs": float(np.mean([r["epochs"] for r in ok])) if ok else np.nan,
            "compile": max((r.get("compile_time") or 0.0) for r in runs) if runs else np.nan,
            "reach": reach}


def _fmt(x, spec=".3g") -> str:
    return "—" if x is None or not np.isfinite(x) else format(x, spec)


def _mode(cfg: dict) -> str:
    """The configuration's comparison mode in words (``ProtocolConfig.mode``); units written
    before equal-time runs existed have no ``budget_seconds`` and ran at equal epochs."""
    from .protocol import ProtocolConfig, _from_json

    return ProtocolConfig(**_from_json(cfg)).mode()


def _devices(cfg: dict) -> str:
    """The mesh of the experiment's latest run in words; experiments stored before meshes were
    recorded ran on one device."""
    from precond.distributed.training import describe_mesh

    info = cfg.get("mesh")
    return "one device (no mesh recorded)" if info is None else describe_mesh(info)


def write_report(out_dir: str | os.PathLike, *, command: str | None = None) -> Path:
    """Render ``report.md``, ``results.json``, ``results.csv`` and the two PNGs in ``out_dir``
    from the stored units (nothing is recomputed).

    Args:
      out_dir: the experiment directory written by ``run_protocol``.
      command: the command line that made the experiment, quoted in the report.

    Returns:
      The path of ``report.md``.
    """
    out = Path(out_dir)
    data = collect(ResultsStore(out))
    cfg = data["config"]
    tail = cfg.get("tail", 10)
    summ = {m: _summary(rs, tail) for m, rs in data["runs"].items()}
    for m, s in summ.items():  # the step is compiled once per method (any grid value)
        s["compile"] = max([(u.get("compile_time") or 0.0) for u in data["grid_runs"]
                            if u["method"] == m] + [s["compile"]])
    # Methods with diverged seeds rank below those whose every seed finished.
    order = sorted(summ, key=lambda m: (summ[m]["ok"] < summ[m]["n"],
                                        np.nan_to_num(summ[m]["final_mean"], nan=np.inf)))
    title = f"{cfg['problem']} ({'quick' if cfg['quick'] else 'full'} size)"
    for x in ("epoch", "time"):
        _atomic_plot(out / f"loss_vs_{x}.png", data["runs"], x, title)

    L = [f"# precond compare: {cfg['problem']}", ""]
    if command:
        L += ["Command:", "", f"    {command}", ""]
    L += [f"Comparison mode: **{_mode(cfg)}**.", ""]
    L += ["## Configuration", "",
          f"- problem `{cfg['problem']}`, sizes {cfg['problem_sizes']}, "
          f"{cfg['num_params']} parameters, {cfg.get('dtype', 'float64')}",
          f"- Phase I: Adam (lr {cfg['phase1_lr']:g}) for {cfg['phase1_epochs']} epochs from each "
          f"seed (shared by all methods); Phase II: {_mode(cfg)}; "
          "one fresh data set and one optimizer step per epoch",
          f"- seeds: {cfg['seeds']} (learning rate tuned on seed 0 by the final loss, mean of the "
          f"last {tail} epochs); method options {cfg['method_options'] or 'defaults'} "
          "(CG methods: damping 1e-3, 10 CG iterations unless set)",
          f"- metric: {cfg.get('metric_name')}",
          f"- devices: {_devices(cfg)}",
          "- times: training steps only (data generation and metric excluded), "
          "compilation reported apart", ""]
    L += ["## Ranking (Phase II, relative loss: first Phase II value = 1)", "",
          "| rank | method | lr | final rel. loss (mean ± std) | " +
          " | ".join(f"epochs / s to {t:g}" for t in THRESHOLDS) +
          " | final metric | train time (s) | epochs | compile (s) | diverged |",
          "|---|---|---|---|" + "---|" * len(THRESHOLDS) + "---|---|---|---|---|"]
    for i, m in enumerate(order, 1):
        s = summ[m]
        reach = []
        for t in THRESHOLDS:
            n, e, ts = s["reach"][t]
            reach.append("—" if n == 0 else f"{e:.0f} / {ts:.2f}" + (f" ({n}/{s['ok']})"
                                                                    if n < s["ok"] else ""))
        L.append(f"| {i} | {m} | {data['choices'][m]['lr']:g} | {_fmt(s['final_mean'])} ± "
                 f"{_fmt(s['final_std'], '.2g')} | " + " | ".join(reach) +
                 f" | {_fmt(s['metric_mean'])} ± {_fmt(s['metric_std'], '.2g')} | "
                 f"{_fmt(s['time_total'], '.2f')} | {_fmt(s['epochs'], '.0f')} | "
                 f"{_fmt(s['compile'], '.1f')} | "
                 f"{s['n'] - s['ok']}/{s['n']} |")
    L += ["", "Epochs / seconds to reach a relative loss: mean over the seeds that reached it "
          "(count shown when not all did).  Methods with diverged seeds rank last; their loss "
          "statistics cover the seeds that finished."]
    for m, c in data["choices"].items():
        if c.get("all_diverged"):
            L.append(f"**{m}: every learning rate of its grid diverged on the tuning seed**; "
                     f"the other seeds ran at the first grid value ({c['lr']:g}).")
    L += ["",
          "![loss vs epoch](loss_vs_epoch.png) ![loss vs time](loss_vs_time.png)", ""]
    if data["diagnostics"]:
        epochs = sorted({str(d.get("epoch")) for d in data["diagnostics"].values()})
        L += [f"## Diagnostics (Phase II epoch {', '.join(epochs)}, seed 0)",
              "", "M built at the snapshot from B fresh mini-batches — the CG methods' from the "
              "first, the gradient-statistics methods' (Shampoo's factors, K-FAC's averages) from "
              "all B, the first last; H = Hessian on the first batch; L̂ = λ_max(M⁻¹H) by power "
              "iteration; K = tr(M⁻¹Σ) from the B mini-batch gradients.  L̂ and K scale with M "
              "(its learning rate absorbs the scale): between methods whose M has another scale "
              "(grafted Shampoo: Adam's; CG and K-FAC: Newton's) compare the last column, "
              "K reduction / L̂ reduction = the factor by which K/L̂ (the noise term αK at the "
              "largest stable rate α ∝ 1/L̂) shrinks, which does not depend on it (> 1 favours M).",
              "", "| method | B | λ_max(H) | L̂ = λ_max(M⁻¹H) | L̂ reduction | tr Σ | K = tr(M⁻¹Σ) "
              "| K reduction | K red. / L̂ red. |", "|---|---|---|---|---|---|---|---|---|"]
        for m, d in data["diagnostics"].items():
            L.append(f"| {m} | {d['noise_batches']} | {_fmt(d['L_hat_identity'])} | "
                     f"{_fmt(d['L_hat_preconditioned'])} | {_fmt(d['L_reduction'])}× | "
                     f"{_fmt(d['K_identity'])} | {_fmt(d['K_preconditioned'])} | "
                     f"{_fmt(d['K_reduction'])}× | {_fmt(d['K_reduction'] / d['L_reduction'])} |")
        L.append("")
    L += ["## Learning rates (final loss on seed 0 for each grid value; — = diverged)", "",
          "| method | chosen | grid: final loss |", "|---|---|---|"]
    for m, c in data["choices"].items():
        pairs = ", ".join(f"{lr:g}: {_fmt(f if f is not None else np.inf)}"
                          for lr, f in zip(c["grid"], c["final_losses"], strict=True))
        L.append(f"| {m} | {c['lr']:g} | {pairs} |")
    L += ["", "Raw results: `results.json` (summary) and `results.csv` (one row per run and "
          "epoch); units in `units/`.", ""]
    atomic_write(out / "report.md", "\n".join(L))

    js = {"config": cfg, "summary": {m: {k: v for k, v in s.items() if k != "reach"} |
                                     {"reach": {str(t): list(r) for t, r in s["reach"].items()}}
                                     for m, s in summ.items()},
          "ranking": order, "chosen_lr": {m: c["lr"] for m, c in data["choices"].items()},
          "diagnostics": data["diagnostics"]}
    atomic_write(out / "results.json", json.dumps(js, indent=1, default=float))
    f = io.StringIO(newline="")
    w = csv.writer(f)
    w.writerow(["method", "lr", "seed", "status", "epoch", "loss", "rel_loss", "time", "metric"])
    for u in data["grid_runs"] + [r for rs in data["runs"].values() for r in rs
                                  if r["seed"] > 0]:
        for e, (lo, rl, t, mt) in enumerate(zip(_arr(u["loss"]), _arr(u["rel_loss"]),
                                                _arr(u["time"]), _arr(u["metric"]),
                                                strict=True)):
            w.writerow([u["method"], u["lr"], u["seed"], u["status"], e, lo, rl, t, mt])
    atomic_write(out / "results.csv", f.getvalue())
    return out / "report.md"


def _atomic_plot(path: Path, runs: dict, x: str, title: str) -> None:
    """:func:`plot_curves` into a temporary PNG beside ``path``, then renamed onto it."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        plot_curves(runs, tmp, x=x, title=title)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
