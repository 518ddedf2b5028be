"""Study ``diagonal`` — seed 002's mechanism 1: AdaGrad/RMSProp/Adam second moments as a diagonal
preconditioner of the Hessian (here the GGN, see ``common``).

Along each optimizer's own training run, at the checkpoints: κ(G), κ(D_opt⁻¹G) with D_opt the
optimizer's own divisor (√v̂ + ε etc.), and κ for the classical diagonals D_J = diag(G + δI)
(Jacobi) and D_R = row 2-norms of G + δI (the row equilibration of seed 002's Theorem).  The
best diagonal scaling κ* is unknown (an SDP); it is bracketed by
κ_best = min over the measured diagonals ≥ κ* ≥ κ_J/n (van der Sluis 1969: Jacobi is within
the number of nonzeros per row, n, of the optimal symmetric scaling).  Seed 002's claim
"κ(D_opt⁻¹H) within O(√n) of the best diagonal" is checked as κ(D_opt⁻¹G)/κ_best ≤ √n, and the
premise "second moments track Hessian row norms" as the Spearman correlation of D_opt with D_R.

References:
  Ye, "Preconditioning for Accelerated Gradient Descent Optimization and Regularization",
  arXiv:2410.00232, Section 3.
  van der Sluis, "Condition numbers and equilibration of matrices", Numer. Math. 1969.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import optax
from scipy.stats import spearmanr

from . import common

OPTIMIZERS = {"adagrad": (optax.adagrad, 3e-2), "rmsprop": (optax.rmsprop, 1e-3),
              "adam": (optax.adam, 3e-3)}


def config(quick: bool, tiny: bool = False, dataset: str | None = None) -> dict:
    """The study's configuration (data, network, schedule, checkpoints) at a named size.

    Args:
      quick: scikit-learn digits (the quick size).
      tiny: the tests' smoke size (overrides the others).
      dataset: ``"digits"`` or ``"fashion"`` for the non-quick size (default digits).
    """
    if tiny:
        return dict(dataset="digits", n_train=120, n_test=60, pool=4, hidden=(4,), epochs=1,
                    batch_size=40, checkpoints=(1,), n_curv=40, delta=1e-4, seed=0,
                    optimizers=("adam",))
    if quick or dataset in (None, "digits"):
        return dict(dataset="digits", n_train=None, n_test=None, pool=4, hidden=(12,),
                    epochs=30, batch_size=64, checkpoints=(1, 10, 30), n_curv=256,
                    delta=1e-4, seed=0)
    return dict(dataset="fashion", n_train=6000, n_test=2000, pool=4, hidden=(12,),
                epochs=15, batch_size=128, checkpoints=(1, 15), n_curv=256, delta=1e-4,
                seed=0)


def run(out: str | pathlib.Path, cfg: dict,
        progress: Callable[[int], object] | None = None) -> dict:
    """Run the study with ``cfg`` (see ``config``); write report.md, diagonal.json and PNGs
    to ``out``; return the JSON payload.

    Args:
      out: the output folder.
      cfg: the configuration (:func:`config`).
      progress: called with a count of finished epochs (0 after each checkpoint's analysis).
    """
    data = common.load_data(cfg["dataset"], n_train=cfg["n_train"], n_test=cfg["n_test"],
                            pool=cfg["pool"], seed=cfg["seed"])
    sizes = (data.X_train.shape[1], *cfg["hidden"], 10)
    key = jax.random.key(cfg["seed"])
    k_init, k_train = jax.random.split(key)
    params0 = common.init_mlp(k_init, sizes)
    n = common.n_params(params0)
    Xc, yc = data.X_train[: cfg["n_curv"]], data.y_train[: cfg["n_curv"]]
    delta = cfg["delta"]
    results: dict[str, Any] = {}
    for name in cfg.get("optimizers", tuple(OPTIMIZERS)):
        make, lr = OPTIMIZERS[name]
        traj = common.train(params0, make(lr), data, epochs=cfg["epochs"],
                            batch_size=cfg["batch_size"], key=k_train,
                            checkpoints=cfg["checkpoints"],
                            on_epoch=(lambda: progress(1)) if progress else None)
        rows = []
        for epoch, p, state in traj.snapshots:
            G = common.dense_ggn(p, Xc, yc)
            r = common.numerical_rank(G)
            A = G + delta * np.eye(n)
            d_opt = common.preconditioner_diagonal(name, state, p)
            d_jac = np.diag(A).copy()
            d_row = np.linalg.norm(A, axis=1)
            k = {lab: common.kappas(G, d, delta, r)
                 for lab, d in (("none", None), ("opt", d_opt), ("jacobi", d_jac),
                                ("rownorm", d_row))}
            best_d = min(k[x].kappa_damped for x in ("opt", "jacobi", "rownorm"))
            best_p = min(k[x].kappa_plus for x in ("opt", "jacobi", "rownorm"))
            rows.append(dict(
                epoch=epoch, rank=r,
                kappa_damped={x: k[x].kappa_damped for x in k},
                kappa_plus={x: k[x].kappa_plus for x in k},
                best_damped=best_d, best_plus=best_p,
                lower_opt_damped=k["jacobi"].kappa_damped / n,
                ratio_opt_to_best_damped=k["opt"].kappa_damped / best_d,
                ratio_opt_to_best_plus=k["opt"].kappa_plus / best_p,
                spearman_opt_rownorm=float(spearmanr(d_opt, d_row).statistic),
                spearman_opt_diag=float(spearmanr(d_opt, d_jac).statistic)))
            if progress:
                progress(0)
        results[name] = dict(lr=lr, train_loss=traj.train_loss, test_acc=traj.test_acc,
                             checkpoints=rows)
    payload = dict(study="diagonal", config=cfg, data=data.name, sizes=sizes, n_params=n,
                   sqrt_n=float(np.sqrt(n)), n_train=len(data.X_train),
                   n_test=len(data.X_test), results=results)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _plot(out, payload)
    common.write_outputs(out, "diagonal", _report(payload), payload)
    return payload


def _plot(out: pathlib.Path, payload: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = payload["results"]
    fig, axes = plt.subplots(2, len(res), figsize=(4.2 * len(res), 6.4), squeeze=False)
    for j, (name, r) in enumerate(res.items()):
        ep = [c["epoch"] for c in r["checkpoints"]]
        for i, kind in enumerate(("kappa_damped", "kappa_plus")):
            ax = axes[i, j]
            for lab, sty in (("none", "k-o"), ("opt", "r-s"), ("jacobi", "b--^"),
                             ("rownorm", "g--v")):
                ax.plot(ep, [c[kind][lab] for c in r["checkpoints"]], sty, ms=4,
                        label={"none": "G", "opt": f"D_{name}⁻¹G", "jacobi": "Jacobi",
                               "rownorm": "row-norm"}[lab])
            best = "best_damped" if kind == "kappa_damped" else "best_plus"
            ax.plot(ep, [payload["sqrt_n"] * c[best] for c in r["checkpoints"]], ":",
                    color="gray", label="√n · κ_best")
            ax.set_yscale("log")
            ax.set_xscale("symlog", linthresh=1)
            ax.set_title(f"{name}: {'κ_δ (G+δI)' if i == 0 else 'κ_+ (rank-r part)'}",
                         fontsize=9)
            ax.set_xlabel("epoch")
            if j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    common.save_png(fig, out / "diagonal_kappa.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, r in res.items():
        ax.semilogy(r["train_loss"], label=f"{name} (lr {r['lr']:g})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training CE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    common.save_png(fig, out / "diagonal_loss.png")
    plt.close(fig)


def _report(p: dict) -> str:
    lines = [f"# Study `diagonal` — {p['data']}",
             "",
             f"MLP {p['sizes']} (ReLU), n = {p['n_params']} parameters, √n = {p['sqrt_n']:.1f}; "
             f"{p['n_train']} train / {p['n_test']} test rows; curvature = dense GGN of the "
             f"mean CE on {p['config']['n_curv']} training rows, δ = {p['config']['delta']:g}.",
             "κ_δ = λ_max/λ_min of D^{-1/2}(G+δI)D^{-1/2}; κ_+ = λ_1/λ_r of D^{-1/2}GD^{-1/2} "
             "(r = numerical rank of G).  'opt' is the optimizer's own divisor D.",
             ""]
    for name, r in p["results"].items():
        lines += [f"## {name} (lr {r['lr']:g}): final train CE {r['train_loss'][-1]:.3g}, "
                  f"test acc {r['test_acc'][-1]:.3f}", ""]
        rows = []
        for c in r["checkpoints"]:
            kd, kp = c["kappa_damped"], c["kappa_plus"]
            rows.append([c["epoch"], c["rank"], kd["none"], kd["opt"], kd["jacobi"],
                         kd["rownorm"], c["ratio_opt_to_best_damped"], kp["none"], kp["opt"],
                         kp["jacobi"], kp["rownorm"], c["spearman_opt_rownorm"]])
        lines.append(common.md_table(
            ["epoch", "rank r", "κ_δ(G)", "κ_δ opt", "κ_δ Jacobi", "κ_δ row-norm",
             "opt/best (δ)", "κ_+(G)", "κ_+ opt", "κ_+ Jacobi", "κ_+ row-norm",
             "ρ(D_opt, row norms)"], rows))
        lines.append("")
    lines += ["![κ over training](diagonal_kappa.png)", "", "![loss](diagonal_loss.png)", ""]
    return "\n".join(lines)
