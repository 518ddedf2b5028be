"""Study ``regularization`` — seed 002's mechanism 2: AdamW is L2 regularization of the intrinsic
parameters z of the preconditioning p = P z (M = PPᵀ = D⁻¹, D = √v̂ + ε Adam's divisor).

* Adam + L2 minimizes L(p) + (λ/2)‖p‖²: in z its Hessian is PᵀHP + λPᵀP.
* AdamW (optax.adamw, weight_decay = λ: p ← p − α(m̂/D + λp)) is the z-step on
  L(Pz) + (λ/2)‖z‖²: Hessian PᵀHP + λI.  Same λ = "matched strength".

The condition numbers of both (H = GGN of the mean CE, P from the run's own Adam state) are
measured along Adam + L2 and AdamW runs, with their training loss and test accuracy.

L1 variant (derived here the same way; the paper's exact form was not available offline):
λ‖z‖₁ with z = P⁻¹p; a z-subgradient step mapped back through P gives
p ← p − α(m̂/D + λ D^{-1/2} sign p) (``adam_l1_intrinsic``), against Adam + L1 on p, whose
preconditioned subgradient is λ D⁻¹ sign p.

References:
  Ye, arXiv:2410.00232, Section 4 (Theorem 3).
  Loshchilov & Hutter, "Decoupled weight decay regularization", ICLR 2019.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from precond.validation import check_nonnegative

from . import common


def adam_l1_intrinsic(learning_rate: float, l1: float, *, b1: float = 0.9, b2: float = 0.999,
                      eps: float = 1e-8) -> optax.GradientTransformation:
    """Adam with decoupled L1 on the intrinsic parameters z = D^{1/2} p:
    p ← p − α(m̂/(√v̂+ε) + λ₁ sign(p)/√(√v̂+ε)).

    Args:
      learning_rate: α.
      l1: λ₁ ≥ 0.
      b1: Adam's β₁.
      b2: Adam's β₂.
      eps: Adam's ε in D = √v̂ + ε.

    Returns:
      An optax ``GradientTransformation`` whose ``update`` needs ``params``.
    """
    l1 = check_nonnegative(l1, "l1")
    adam = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)

    def update(g, state, params):
        u, new = adam.update(g, state)
        corr = 1.0 - b2 ** new.count
        u = jax.tree.map(lambda ui, nu, p: ui + l1 * jnp.sign(p)
                         / jnp.sqrt(jnp.sqrt(nu / corr) + eps), u, new.nu, params)
        return jax.tree.map(lambda x: -learning_rate * x, u), new

    return optax.GradientTransformation(adam.init, update)


def config(quick: bool, tiny: bool = False, dataset: str | None = None) -> dict:
    """The study's configuration (data, network, schedule, checkpoints) at a named size.

    Args:
      quick: scikit-learn digits (the quick size).
      tiny: the tests' smoke size (overrides the others).
      dataset: ``"digits"`` or ``"fashion"`` for the non-quick size (default digits).
    """
    if tiny:
        return dict(dataset="digits", n_train=120, n_test=60, pool=4, hidden=(4,), epochs=1,
                    batch_size=40, checkpoints=(1,), n_curv=40, lr=3e-3, lams=(1e-2,),
                    l1=1e-4, seed=0, l1_runs=("adam-l1-intrinsic",))
    if quick or dataset in (None, "digits"):
        return dict(dataset="digits", n_train=None, n_test=None, pool=4, hidden=(12,),
                    epochs=30, batch_size=64, checkpoints=(1, 30), n_curv=256, lr=3e-3,
                    lams=(1e-3, 1e-2), l1=1e-4, seed=0)
    return dict(dataset="fashion", n_train=6000, n_test=2000, pool=4, hidden=(12,),
                epochs=15, batch_size=128, checkpoints=(1, 15), n_curv=256, lr=3e-3,
                lams=(1e-3, 1e-2), l1=1e-4, seed=0)


def run(out: str | pathlib.Path, cfg: dict,
        progress: Callable[[int], object] | None = None) -> dict:
    """Run the study with ``cfg``; write report.md, regularization.json and PNGs to ``out``.

    Args:
      out: the output folder.
      cfg: the configuration (:func:`config`).
      progress: called with a count of finished epochs.

    Returns:
      The JSON payload.
    """
    data = common.load_data(cfg["dataset"], n_train=cfg["n_train"], n_test=cfg["n_test"],
                            pool=cfg["pool"], seed=cfg["seed"])
    sizes = (data.X_train.shape[1], *cfg["hidden"], 10)
    k_init, k_train = jax.random.split(jax.random.key(cfg["seed"]))
    params0 = common.init_mlp(k_init, sizes)
    n = common.n_params(params0)
    Xc, yc = data.X_train[: cfg["n_curv"]], data.y_train[: cfg["n_curv"]]
    tick = (lambda: progress(1)) if progress else None
    l2_runs: dict[str, Any] = {}
    for lam in cfg["lams"]:
        for name in ("adam+l2", "adamw"):
            if name == "adam+l2":
                opt, l2 = optax.adam(cfg["lr"]), lam
            else:
                opt, l2 = optax.adamw(cfg["lr"], weight_decay=lam), 0.0
            traj = common.train(params0, opt, data, epochs=cfg["epochs"],
                                batch_size=cfg["batch_size"], key=k_train, l2=l2,
                                checkpoints=cfg["checkpoints"], on_epoch=tick)
            rows = []
            for epoch, p, state in traj.snapshots:
                G = common.dense_ggn(p, Xc, yc)
                d = common.preconditioner_diagonal("adam", state, p)
                A_w, A_l2 = common.regularized_hessians(G, d, lam)
                rows.append(dict(epoch=epoch, kappa_adamw_form=common.cond_sym(A_w),
                                 kappa_l2_form=common.cond_sym(A_l2),
                                 kappa_p_space=common.cond_sym(G + lam * np.eye(n)),
                                 kappa_PtP=float(d.max() / d.min())))
            l2_runs[f"{name} λ={lam:g}"] = dict(
                method=name, lam=lam, train_loss=traj.train_loss, test_acc=traj.test_acc,
                weight_norm=float(np.linalg.norm(ravel_pytree(traj.snapshots[-1][1])[0])),
                checkpoints=rows)
    l1_runs: dict[str, Any] = {}
    lam1 = cfg["l1"]
    for name in cfg.get("l1_runs", ("adam", "adam+l1", "adam-l1-intrinsic")):
        opt = adam_l1_intrinsic(cfg["lr"], lam1) if name == "adam-l1-intrinsic" \
            else optax.adam(cfg["lr"])
        traj = common.train(params0, opt, data, epochs=cfg["epochs"],
                            batch_size=cfg["batch_size"], key=k_train,
                            l1=lam1 if name == "adam+l1" else 0.0, on_epoch=tick,
                            checkpoints=(cfg["epochs"],))
        flat = np.asarray(ravel_pytree(traj.snapshots[-1][1])[0])
        l1_runs[name] = dict(train_loss=traj.train_loss, test_acc=traj.test_acc,
                             l1_norm=float(np.abs(flat).sum()),
                             frac_small=float(np.mean(np.abs(flat) < 1e-3)))
    payload = dict(study="regularization", config=cfg, data=data.name, sizes=sizes,
                   n_params=n, n_train=len(data.X_train), n_test=len(data.X_test),
                   l2=l2_runs, l1=l1_runs)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _plot(out, payload)
    common.write_outputs(out, "regularization", _report(payload), payload)
    return payload


def _plot(out: pathlib.Path, p: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for lab, r in p["l2"].items():
        sty = "-" if r["method"] == "adamw" else "--"
        axes[0].semilogy(r["train_loss"], sty, label=lab)
        axes[1].plot(r["test_acc"], sty, label=lab)
        ep = [c["epoch"] for c in r["checkpoints"]]
        axes[2].semilogy(ep, [c["kappa_adamw_form"] for c in r["checkpoints"]], "o" + sty,
                         label=f"{lab}: PᵀHP+λI")
        axes[2].semilogy(ep, [c["kappa_l2_form"] for c in r["checkpoints"]], "s" + sty,
                         label=f"{lab}: PᵀHP+λPᵀP")
    axes[0].set_title("training CE", fontsize=9)
    axes[1].set_title("test accuracy", fontsize=9)
    axes[2].set_title("κ of the z-space regularized Hessian", fontsize=9)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=6)
    fig.tight_layout()
    common.save_png(fig, out / "regularization_l2.png")
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for lab, r in p["l1"].items():
        axes[0].semilogy(r["train_loss"], label=lab)
        axes[1].plot(r["test_acc"], label=lab)
    axes[0].set_title("training CE (L1 runs)", fontsize=9)
    axes[1].set_title("test accuracy (L1 runs)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    common.save_png(fig, out / "regularization_l1.png")
    plt.close(fig)


def _report(p: dict) -> str:
    c = p["config"]
    lines = [f"# Study `regularization` — {p['data']}", "",
             f"MLP {p['sizes']}, n = {p['n_params']}; Adam lr {c['lr']:g}, {c['epochs']} epochs, "
             f"batch {c['batch_size']}; H = dense GGN of the mean CE on {c['n_curv']} training "
             "rows; P = D^{-1/2}, D = √v̂ + ε from the run's own Adam state.", "",
             "## L2: Adam + L2 vs AdamW (same λ)", ""]
    rows = []
    for lab, r in p["l2"].items():
        for ck in r["checkpoints"]:
            rows.append([lab, ck["epoch"], ck["kappa_adamw_form"], ck["kappa_l2_form"],
                         ck["kappa_l2_form"] / ck["kappa_adamw_form"], ck["kappa_p_space"],
                         ck["kappa_PtP"]])
    lines.append(common.md_table(["run", "epoch", "κ(PᵀHP+λI) [AdamW]",
                                  "κ(PᵀHP+λPᵀP) [Adam+L2]", "ratio L2/W", "κ(H+λI) (p-space)",
                                  "κ(PᵀP)"], rows))
    lines += ["", common.md_table(
        ["run", "final train CE", "final test acc", "best test acc", "‖p‖₂"],
        [[lab, r["train_loss"][-1], r["test_acc"][-1], max(r["test_acc"]), r["weight_norm"]]
         for lab, r in p["l2"].items()]), "",
        f"## L1 (λ₁ = {c['l1']:g}): Adam + L1 on p vs decoupled L1 on z", "",
        common.md_table(["run", "final train CE", "final test acc", "‖p‖₁", "frac |p|<1e-3"],
                        [[lab, r["train_loss"][-1], r["test_acc"][-1], r["l1_norm"],
                          r["frac_small"]] for lab, r in p["l1"].items()]), "",
        "![L2](regularization_l2.png)", "", "![L1](regularization_l1.png)", ""]
    return "\n".join(lines)
