"""Loss-vs-epoch and loss-vs-time plots: mean over seeds with min–max bands, log scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_curves"]


def _stack(runs: list[dict], key: str) -> np.ndarray:
    n = max(len(r[key]) for r in runs)
    out = np.full((len(runs), n), np.nan)
    for i, r in enumerate(runs):
        v = np.asarray(r[key], float)
        out[i, : v.size] = v
    return out


def plot_curves(runs_by_method: dict[str, list[dict]], path: str | Path, *, x: str = "epoch",
                title: str = "") -> Path:
    """Plot each method's relative loss against epoch or training wall time, write a PNG.

    Per method: the mean over its finished seeds as a line, the min–max over them as a band,
    on a log y axis; diverged runs are left out.

    Args:
      runs_by_method: method → its runs, each a dict with ``status``, ``rel_loss`` and
        ``time`` (per-epoch arrays), as :func:`precond.experiments.report.collect` gives.
      path: the PNG file to write.
      x: ``"epoch"`` or ``"time"``.
      title: the plot's title.

    Returns:
      ``path`` as a :class:`~pathlib.Path`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if x not in ("epoch", "time"):
        raise ValueError(f"x must be 'epoch' or 'time', got {x!r}")
    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=100)
    for method, runs in runs_by_method.items():
        ok = [r for r in runs if r["status"] == "ok"]
        if not ok:
            continue
        L = _stack(ok, "rel_loss")
        xs = np.arange(L.shape[1]) if x == "epoch" else np.nanmean(_stack(ok, "time"), axis=0)
        mean = np.nanmean(L, axis=0)
        line, = ax.plot(xs, mean, label=method, lw=1.4)
        ax.fill_between(xs, np.nanmin(L, axis=0), np.nanmax(L, axis=0), color=line.get_color(),
                        alpha=0.2, lw=0)
    ax.set_yscale("log")
    ax.set_xlabel("Phase II epoch" if x == "epoch" else "training wall time (s)")
    ax.set_ylabel("relative loss")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
