"""Study ``normalization`` — seed 002's mechanism 3: BatchNorm / LayerNorm improve Hessian
conditioning by equalizing the rows / columns of the (extended) hidden-variable matrix.

The same ReLU MLP without normalization, with BatchNorm and with LayerNorm (Linear → ReLU →
Norm, so the next linear layer's input is the normalized hidden matrix, as in the paper's
analysis) is trained by plain SGD from the same initial weights.  At initialization and at the
checkpoints: the exact GGN spectrum (dense, ``eigvalsh``) as a density of log10 eigenvalues,
κ_δ and κ_+ (see ``common``), and κ(H_e) = σ_max/σ_min of each linear layer's extended input
matrix [H, 1] — the quantity the paper's Theorems bound.  Curvature and κ(H_e) use one fixed
batch of ``n_curv`` training rows (BatchNorm statistics of that batch, gradients through them —
the paper neglects that part).

References:
  Ye, arXiv:2410.00232, Section 5.
  Ioffe & Szegedy 2015 (BatchNorm); Ba, Kiros & Hinton 2016 (LayerNorm).
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax

from . import common


def config(quick: bool, tiny: bool = False, dataset: str | None = None) -> dict:
    """The study's configuration (data, network, schedule, checkpoints) at a named size.

    Args:
      quick: scikit-learn digits (the quick size).
      tiny: the tests' smoke size (overrides the others).
      dataset: ``"digits"`` or ``"fashion"`` for the non-quick size (default digits).
    """
    if tiny:
        return dict(dataset="digits", n_train=120, n_test=60, pool=4, hidden=(4, 4),
                    epochs=1, batch_size=40, checkpoints=(1,), n_curv=40, lr=0.1,
                    delta=1e-4, seed=0)
    if quick or dataset in (None, "digits"):
        return dict(dataset="digits", n_train=None, n_test=None, pool=4, hidden=(12, 12),
                    epochs=30, batch_size=64, checkpoints=(0, 30), n_curv=256, lr=0.1,
                    delta=1e-4, seed=0)
    return dict(dataset="fashion", n_train=6000, n_test=2000, pool=4, hidden=(12, 12),
                epochs=15, batch_size=128, checkpoints=(0, 15), n_curv=256, lr=0.1,
                delta=1e-4, seed=0)


def run(out: str | pathlib.Path, cfg: dict,
        progress: Callable[[int], object] | None = None) -> dict:
    """Run the study with ``cfg``; write report.md, normalization.json and PNGs to ``out``.

    Args:
      out: the output folder.
      cfg: the configuration (:func:`config`).
      progress: called with a count of finished epochs (0 after each checkpoint's analysis).

    Returns:
      The JSON payload (with the log-eigenvalue samples the plots use).
    """
    data = common.load_data(cfg["dataset"], n_train=cfg["n_train"], n_test=cfg["n_test"],
                            pool=cfg["pool"], seed=cfg["seed"])
    sizes = (data.X_train.shape[1], *cfg["hidden"], 10)
    k_init, k_train = jax.random.split(jax.random.key(cfg["seed"]))
    Xc, yc = data.X_train[: cfg["n_curv"]], data.y_train[: cfg["n_curv"]]
    results: dict[str, Any] = {}
    for norm in common.NORMS:
        params0 = common.init_mlp(k_init, sizes, norm)
        n = common.n_params(params0)
        traj = common.train(params0, optax.sgd(cfg["lr"]), data, epochs=cfg["epochs"],
                            batch_size=cfg["batch_size"], key=k_train, norm=norm,
                            checkpoints=cfg["checkpoints"],
                            on_epoch=(lambda: progress(1)) if progress else None)
        rows = []
        for epoch, p, _ in traj.snapshots:
            G = common.dense_ggn(p, Xc, yc, norm)
            ev = np.linalg.eigvalsh(G)
            r = int(np.sum(ev > 1e-9 * ev[-1]))
            top = ev[::-1][:r]
            He = common.hidden_inputs(p, Xc, norm)
            rows.append(dict(
                epoch=epoch, rank=r, lam_max=float(ev[-1]),
                kappa_damped=float((ev[-1] + cfg["delta"]) / (max(ev[0], 0.0) + cfg["delta"])),
                kappa_plus=float(top[0] / top[-1]),
                kappa_He=[common.extended_condition(h) for h in He],
                log10_eigs=np.log10(top).tolist()))
            if progress:
                progress(0)
        results[norm] = dict(n_params=n, train_loss=traj.train_loss, test_acc=traj.test_acc,
                             checkpoints=rows)
    payload = dict(study="normalization", config=cfg, data=data.name, sizes=sizes,
                   n_train=len(data.X_train), n_test=len(data.X_test), results=results)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _plot(out, payload)
    slim = {**payload, "results": {k: {**v, "checkpoints": [
        {kk: vv for kk, vv in c.items() if kk != "log10_eigs"} for c in v["checkpoints"]]}
        for k, v in results.items()}}
    common.write_outputs(out, "normalization", _report(payload), slim)
    return payload


def _plot(out: pathlib.Path, p: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = p["results"]
    ncp = len(next(iter(res.values()))["checkpoints"])
    fig, axes = plt.subplots(1, ncp + 1, figsize=(4.2 * (ncp + 1), 3.4))
    for j in range(ncp):
        ax = axes[j]
        for norm, r in res.items():
            c = r["checkpoints"][j]
            ax.hist(c["log10_eigs"], bins=40, histtype="step", density=True,
                    label=f"{norm} (κ_+ {c['kappa_plus']:.2g})")
        ax.set_title(f"GGN spectrum, epoch {res['none']['checkpoints'][j]['epoch']}",
                     fontsize=9)
        ax.set_xlabel("log10 eigenvalue (nonzero part)")
        ax.legend(fontsize=7)
    for norm, r in res.items():
        axes[-1].semilogy(r["train_loss"], label=norm)
    axes[-1].set_title(f"training CE (SGD lr {p['config']['lr']:g})", fontsize=9)
    axes[-1].set_xlabel("epoch")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    common.save_png(fig, out / "normalization.png")
    plt.close(fig)


def _report(p: dict) -> str:
    c = p["config"]
    lines = [f"# Study `normalization` — {p['data']}", "",
             f"MLP {p['sizes']} (Linear → ReLU → Norm), plain SGD lr {c['lr']:g}, "
             f"{c['epochs']} epochs, batch {c['batch_size']}; GGN dense on {c['n_curv']} rows, "
             f"δ = {c['delta']:g}.  Per linear layer (input, hidden 1, ...): κ(H_e) of the "
             "extended input matrix [H, 1] (inf: singular), and the max/min spread of its "
             "feature norms (BatchNorm's target) and sample norms (LayerNorm's target).", ""]
    rows = []
    for norm, r in p["results"].items():
        for ck in r["checkpoints"]:
            rows.append([norm, r["n_params"], ck["epoch"], ck["rank"], ck["lam_max"],
                         ck["kappa_damped"], ck["kappa_plus"],
                         ", ".join(f"{k['kappa']:.3g}" for k in ck["kappa_He"]),
                         ", ".join(f"{k['feature_spread']:.3g}" for k in ck["kappa_He"]),
                         ", ".join(f"{k['sample_spread']:.3g}" for k in ck["kappa_He"])])
    lines.append(common.md_table(["norm", "n", "epoch", "rank r", "λ_max", "κ_δ(G)", "κ_+(G)",
                                  "κ(H_e) per layer", "feature-norm spread",
                                  "sample-norm spread"], rows))
    lines += ["", common.md_table(
        ["norm", "train CE epoch 1", "train CE final", "test acc final"],
        [[norm, r["train_loss"][1], r["train_loss"][-1], r["test_acc"][-1]]
         for norm, r in p["results"].items()]), "", "![normalization](normalization.png)", ""]
    return "\n".join(lines)
