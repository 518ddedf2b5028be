"""Study ``kronecker`` — seed 002's open question: do Kronecker-factored preconditioners
(Shampoo, K-FAC) and MUON reduce the Hessian condition number as diagonal ones (Adam) do?

Same problems, networks and curvature as study ``diagonal`` (see ``common``): a small ReLU MLP
on digits or reduced Fashion-MNIST, the dense GGN G of the mean CE on a fixed batch of training
rows.  Each method trains on its own trajectory (``precond.optim.train``, which hands every
optimizer the mini-batch); at the checkpoints its preconditioner M⁻¹ is read from its state and

* κ_δ = κ(M⁻¹(G + δI)) by ``precond.diagnostics.local_conditioning`` (Lanczos on
  M^{-1/2}(G + δI)M^{-1/2} with n steps, so exact up to rounding);
* κ_+ = λ_1/λ_r of M⁻¹G over the r = rank(G) nonzero eigenvalues, exactly as study
  ``diagonal`` defines it (dense ``eigvalsh`` of M^{-1/2}GM^{-1/2}, the square root from the
  diagnostics' ``spd_sqrt``), so the two studies' numbers compare;
* K = tr(M⁻¹Σ) by ``precond.diagnostics.noise_level`` from ``n_noise`` mini-batch gradients,
  and the scale-free K/L̂ with L̂ = λ_1(M⁻¹G) (K of M normalized so that λ_max(M⁻¹G) = 1: M's
  overall scale is the learning rate's business, so only K/L̂ compares methods; λ_max of the
  damped M⁻¹(G + δI) would not do: for Adam it is δ/ε on the dead coordinates).

The methods and their M⁻¹:

* ``sgd``: M = I.
* ``adam``: M⁻¹ = diag(1/(√v̂ + ε)) from optax's state (study ``diagonal``'s D_opt).
* ``shampoo``, ``kfac``: ``inverse_operator`` of the ``precond.preconditioners`` object the
  optimizer runs (Shampoo's L^{-1/4} ⊗ R^{-1/4} blocks; K-FAC's (A + π√λ I)⁻¹ ⊗
  (G + √λ/π I)⁻¹).  Shampoo's learning-rate grafting rescales each layer's direction by a
  scalar that depends on the gradient; it is not part of M⁻¹ and not measured.
* ``muon`` (``optax.contrib.muon``): its step is not a linear preconditioner M⁻¹g — the
  Newton–Schulz iteration orthogonalizes the momentum m̂ = UΣVᵀ to U f(Σ)Vᵀ.  At a given m̂ that
  output equals m̂·R with R = V diag(f(σ_i)/σ_i) Vᵀ (the smaller side; (a, b) weights), so
  the *polar-factor geometry* M⁻¹ = s·(I ⊗ R) per weight matrix (s = √max(1, b/a), optax's
  width scaling) with the Adam diagonal on the biases (optax routes vectors to Adam) is the
  linear map that reproduces MUON's step at its own momentum.  Measured as such and labelled
  "muon (polar)": it is the metric MUON's step implies at that point, not a preconditioner it
  applies to arbitrary gradients.

References:
  Ye, "Preconditioning for Accelerated Gradient Descent Optimization and Regularization",
  arXiv:2410.00232 (seed 002), the open question of its conclusion.
  Gupta, Koren, Singer, "Shampoo", ICML 2018; Martens and Grosse, "K-FAC", ICML 2015;
  Jordan et al., "Muon", 2024.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from precond import optim
from precond.curvature import minibatch_gradients
from precond.diagnostics import local_conditioning, noise_level
from precond.diagnostics._operators import spd_sqrt
from precond.linalg import DenseOperator, DiagonalOperator, to_dense

from . import common

METHODS = ("sgd", "adam", "shampoo", "kfac", "muon")
"""The methods compared, in report order (those missing from ``precond.optim.OPTIMIZERS`` are
skipped and the report says so)."""

LEARNING_RATES = {"sgd": 0.1, "adam": 3e-3, "shampoo": 3e-3, "kfac": 3e-2, "muon": 2e-2}


def config(quick: bool, tiny: bool = False, dataset: str | None = None) -> dict:
    """The study's configuration at a named size — study ``diagonal``'s problems.

    Args:
      quick: scikit-learn digits (the quick size).
      tiny: the tests' smoke size (overrides the others).
      dataset: ``"digits"`` or ``"fashion"`` for the non-quick size (default digits).
    """
    from .diagonal import config as diagonal_config

    cfg = diagonal_config(quick, tiny=tiny, dataset=dataset)
    cfg.pop("optimizers", None)
    cfg.update(methods=METHODS, n_noise=8 if tiny else 32, rank_rtol=1e-9,
               learning_rates=dict(LEARNING_RATES))
    return cfg


# ----------------------------------------------------------------------------- objective
def _loss(params, batch):
    """Mean CE of the plain MLP on ``batch = (X, y)``."""
    return common.cross_entropy(common.mlp_apply(params, batch[0]), batch[1])


def _epoch_batches(X: jax.Array, y: jax.Array, batch_size: int) -> Callable:
    """``data(key)`` → one epoch of shuffled mini-batches (S, batch_size, …) for ``optim.train``
    (the last partial batch dropped, as in ``common.train``)."""
    n = X.shape[0]
    nb = max(n // batch_size, 1)
    size = min(batch_size, n)

    def data(key):
        perm = jax.random.permutation(key, n)[: nb * size].reshape(nb, size)
        return X[perm], y[perm]

    return data


class Method(NamedTuple):
    """A compared optimizer: the optax transform and the reader of its M⁻¹ (None: M = I)."""

    optimizer: optax.GradientTransformation
    m_inv: Callable[[Any, Any], Any]
    label: str


def _adam_m_inv(state, params):
    return DiagonalOperator(jnp.asarray(1.0 / common.preconditioner_diagonal("adam", state,
                                                                              params)))


def _find(tree, cls):
    """The first node of type ``cls`` in an optimizer state (None if absent)."""
    found = [x for x in jax.tree.leaves(tree, is_leaf=lambda x: isinstance(x, cls))
             if isinstance(x, cls)]
    return found[0] if found else None


def _preconditioner_m_inv(preconditioner):
    """M⁻¹ of a ``precond.preconditioners`` object from the optax state that holds its state."""
    def m_inv(state, params):
        ps = _find(state, optim.PreconditionerState)
        if ps is None:
            raise ValueError(f"no PreconditionerState in the {preconditioner.name} optimizer's "
                             "state")
        return preconditioner.inverse_operator(ps.precond_state)

    return m_inv


def muon_polar_gain(m: np.ndarray, ns_coeffs, ns_steps: int = 5, eps: float = 1e-8
                    ) -> np.ndarray:
    """The symmetric R with NS(m) = m·R (a ≥ b) or L with NS(m) = L·m (a < b) for optax's
    Frobenius-normalized Newton–Schulz orthogonalization of a matrix m (a, b).

    NS acts on the singular values: x = σ/(‖m‖_F + ε), x ← c₀x + c₁x³ + c₂x⁵ (``ns_steps``
    times) = f(σ); so NS(m) = U f(Σ) Vᵀ = m · V diag(f(σ)/σ) Vᵀ, with f(σ)/σ =
    Π_k (c₀ + c₁x_k² + c₂x_k⁴)/(‖m‖_F + ε), finite at σ = 0.

    Args:
      m: the momentum matrix (a, b).
      ns_coeffs: (c₀, c₁, c₂), or one row per step (ns_steps, 3) as optax stores them.
      ns_steps: the iterations.
      eps: optax's ε in the normalization.

    Returns:
      R (b, b) for a ≥ b, else L (a, a); symmetric positive definite when the quintic is
      positive (optax's default coefficients).

    Example:
      >>> import numpy as np
      >>> from precond.experiments.study.kronecker import muon_polar_gain
      >>> m = np.diag([3.0, 1e-3])
      >>> R = muon_polar_gain(m, (3.4445, -4.775, 2.0315))
      >>> bool(np.all(np.linalg.eigvalsh(R) > 0))
      True
    """
    m = np.asarray(m, np.float64)
    c = np.atleast_2d(np.asarray(ns_coeffs, np.float64))
    c = np.broadcast_to(c, (ns_steps, 3)) if c.shape[0] == 1 else c[-ns_steps:]
    left = m.shape[0] < m.shape[1]
    U, s, Vt = np.linalg.svd(m, full_matrices=True)
    basis = U if left else Vt.T
    k = basis.shape[1]
    sig = np.zeros(k)
    sig[: s.size] = s
    x = sig / (np.linalg.norm(m) + eps)
    gain = np.full(k, 1.0 / (np.linalg.norm(m) + eps))
    for c0, c1, c2 in c:
        r = c0 + c1 * x ** 2 + c2 * x ** 4
        gain, x = gain * r, x * r
    return (basis * gain) @ basis.T


def _muon_m_inv(state, params):
    """M⁻¹ of MUON's polar-factor geometry at its bias-corrected momentum (module docstring)."""
    from optax.contrib import MuonState

    ms = _find(state, MuonState)
    adam = _find(state, optax.ScaleByAdamState)
    t = max(int(ms.count), 1)
    beta = 0.95  # optax.contrib.muon's default β (the one the study uses)
    t_adam = max(int(adam.count), 1)
    is_masked = lambda x: type(x).__name__ == "MaskedNode"  # noqa: E731
    mus = jax.tree.leaves(ms.mu, is_leaf=is_masked)
    nus = jax.tree.leaves(adam.nu, is_leaf=is_masked)
    blocks = []
    for p, mu, nu in zip(jax.tree.leaves(params), mus, nus, strict=True):
        if np.ndim(p) == 2 and not is_masked(mu):
            a, b = p.shape
            g = muon_polar_gain(np.asarray(mu) / (1 - beta ** t), np.asarray(ms.ns_coeffs))
            eye = np.eye(a if a >= b else b)
            block = np.kron(eye, g) if a >= b else np.kron(g, eye)
            blocks.append(np.sqrt(max(1.0, b / a)) * block)
        else:
            d = np.sqrt(np.asarray(nu).ravel() / (1 - 0.999 ** t_adam)) + 1e-8
            blocks.append(np.diag(1.0 / d))
    from scipy.linalg import block_diag

    M = block_diag(*blocks)
    return DenseOperator(jnp.asarray(0.5 * (M + M.T)))


def methods(names: tuple[str, ...], lrs: dict, key: jax.Array) -> tuple[dict, dict]:
    """The available methods among ``names`` and, for the others, why they were skipped.

    Args:
      names: method names from :data:`METHODS`.
      lrs: learning rate per name.
      key: a ``jax.random`` key for randomized optimizers.

    Returns:
      ``({name: Method}, {name: reason skipped})``.
    """
    out, skipped = {}, {}
    ctx = dict(loss_fn=_loss, model_fn=common.mlp_apply, output_loss="softmax_cross_entropy",
               key=key)
    for name in names:
        if name not in METHODS:
            raise ValueError(f"methods must be among {METHODS}, got {name!r}")
        lr = lrs[name]
        if name == "sgd":
            out[name] = Method(optax.sgd(lr), lambda s, p: None, "SGD (M = I)")
        elif name == "adam":
            out[name] = Method(optax.adam(lr), _adam_m_inv, "Adam (diagonal)")
        elif name == "muon":
            out[name] = Method(optax.contrib.muon(lr), _muon_m_inv,
                               "MUON (polar-factor geometry)")
        else:
            from precond import preconditioners as pc

            factory = getattr(pc, name, None)
            if factory is None:
                skipped[name] = f"precond.preconditioners.{name} is not in this build"
                continue
            opt, pre = _kronecker_method(name, lr, ctx)
            out[name] = Method(opt, _preconditioner_m_inv(pre),
                               {"kfac": "K-FAC", "shampoo": "Shampoo"}[name])
    return out, skipped


def _kronecker_method(name: str, lr: float, ctx: dict):
    """(optax transform, its Preconditioner) for K-FAC / Shampoo at their defaults, with heavy
    ball β = 0.9 (Adam's β₁) on the directions."""
    from precond import preconditioners as pc

    if name == "kfac":
        pre = pc.kfac(ctx["model_fn"], ctx["output_loss"])
    else:
        pre = pc.shampoo()
    return optim.preconditioned_sgd(lr, pre, momentum=0.9, key=ctx["key"]), pre


# ----------------------------------------------------------------------------- measuring
def measure(G: np.ndarray, M_inv, grads: jax.Array, delta: float, rank_rtol: float,
            key: jax.Array, rank: int | None = None) -> dict:
    """κ_δ, κ_+, L̂, K and K/L̂ of one preconditioner at one point (module docstring).

    Args:
      G: the dense GGN (n, n).
      M_inv: M⁻¹ as an operator or None (M = I).
      grads: B flat mini-batch gradients (B, n) at the same point.

    Returns:
      ``{kappa_damped, kappa_plus, L_hat (λ_max of M⁻¹(G + δI)), lambda_1 (λ_max of M⁻¹G),
      K, K_over_L (K/λ_1)}``.
      delta: the damping δ of κ_δ.
      rank_rtol: the relative threshold of G's numerical rank r (κ_+).
      key: a ``jax.random`` key for the Lanczos starts.
      rank: r when already known (default: computed from G with ``rank_rtol``).
    """
    n = G.shape[0]
    A = jnp.asarray(G + delta * np.eye(n))
    # Every M⁻¹ (I included) densified once for the uses below: one operator type, so one
    # compilation of the Lanczos and noise programs per size n.
    M_inv = DenseOperator(jnp.eye(n, dtype=A.dtype) if M_inv is None else to_dense(M_inv))
    damped = local_conditioning(A, M_inv, key, method="lanczos", num_steps=n, dense_limit=n)
    # κ_+ as study diagonal defines it: r = the numerical rank of G itself, then the top r
    # eigenvalues of S G S (S = M^{-1/2}, same rank by Sylvester's law of inertia).  A PL-style
    # proxy (smallest Ritz value above a threshold) would sit at the threshold: G's spectrum
    # tails off continuously to rounding level.
    S = np.asarray(to_dense(spd_sqrt(M_inv, "M_inv")))
    r = rank if rank is not None else common.numerical_rank(G, rank_rtol)
    SGS = S @ G @ S
    top = np.linalg.eigvalsh(0.5 * (SGS + SGS.T))[::-1][:r]
    K = noise_level(grads, M_inv).K
    return dict(kappa_damped=damped.kappa, kappa_plus=float(top[0] / top[-1]),
                L_hat=damped.L_hat, lambda_1=float(top[0]), K=K, K_over_L=K / float(top[0]))


def run(out: str | pathlib.Path, cfg: dict,
        progress: Callable[[int], object] | None = None) -> dict:
    """Train every method of ``cfg["methods"]`` and measure its M⁻¹ at the checkpoints; the
    payload (also in kronecker.json) and report.md / kronecker_kappa.png land in ``out``.

    Args:
      out: where the files go (created if missing).
      cfg: as :func:`config` builds it.
      progress: gets the number of epochs just trained, and 0 after each measurement.
    """
    key = jax.random.key(cfg["seed"])
    k_init, k_train, k_opt, k_lanczos = jax.random.split(key, 4)
    data = common.load_data(cfg["dataset"], seed=cfg["seed"], pool=cfg["pool"],
                            n_train=cfg["n_train"], n_test=cfg["n_test"])
    sizes = (data.X_train.shape[1], *cfg["hidden"], 10)
    params0 = common.init_mlp(k_init, sizes)
    n = common.n_params(params0)
    Xc, yc = data.X_train[: cfg["n_curv"]], data.y_train[: cfg["n_curv"]]
    Xtr, ytr = jnp.asarray(data.X_train), jnp.asarray(data.y_train)
    batches = _epoch_batches(Xtr, ytr, cfg["batch_size"])
    noise_batches = jax.tree.map(lambda a: a[: cfg["n_noise"]],
                                 batches(jax.random.fold_in(key, 7)))
    full_loss = jax.jit(lambda p: _loss(p, (Xtr, ytr)))
    delta, rtol = cfg["delta"], cfg["rank_rtol"]
    avail, skipped = methods(tuple(cfg["methods"]), cfg["learning_rates"], k_opt)
    results: dict[str, Any] = {}
    for name, meth in avail.items():
        p, state, done, losses, status = params0, None, 0, [], "SUCCESS"
        rows = []
        for c in sorted(set(cfg["checkpoints"])):
            if c > done:
                res = optim.train(_loss, p, meth.optimizer, batches, num_epochs=c - done,
                                  key=jax.random.fold_in(k_train, done), opt_state=state)
                p, state = res.params, res.opt_state
                losses += [float(x) for x in res.losses]
                if progress:
                    progress(c - done)
                if res.diverged:
                    status = res.message
                    break
                done = c
            if state is None:
                continue  # epoch 0: the optimizers have no statistics yet
            G = common.dense_ggn(p, Xc, yc)
            r = common.numerical_rank(G, rtol)
            grads = minibatch_gradients(_loss, p, noise_batches)
            row = dict(epoch=c, train_ce=float(full_loss(p)),
                       test_acc=common.accuracy(p, data.X_test, data.y_test),
                       rank=r, plain=measure(G, None, grads, delta, rtol, k_lanczos, r))
            M_inv = meth.m_inv(state, p)
            row["precond"] = (row["plain"] if M_inv is None else
                              measure(G, M_inv, grads, delta, rtol, k_lanczos, r))
            rows.append(row)
            if progress:
                progress(0)
        results[name] = dict(label=meth.label, lr=cfg["learning_rates"][name], status=status,
                             step_losses=losses, checkpoints=rows)
    payload = dict(study="kronecker", config=cfg, data=data.name, sizes=sizes, n_params=n,
                   n_train=len(data.X_train), n_test=len(data.X_test), results=results,
                   skipped=skipped, conclusion=_conclusion(results))
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _plot(out, payload)
    common.write_outputs(out, "kronecker", _report(payload), payload)
    return payload


def _final(results: dict, name: str) -> dict | None:
    rows = results.get(name, {}).get("checkpoints", [])
    return rows[-1] if rows else None


def _conclusion(results: dict) -> str:
    """One paragraph comparing the last checkpoint's κ and K/L̂ reductions against Adam's."""
    adam = _final(results, "adam")
    if adam is None:
        return "Adam did not run; no comparison."
    red = lambda r, k: r["plain"][k] / r["precond"][k]  # noqa: E731
    parts = [f"At the last checkpoint Adam's diagonal lowers κ_+ {red(adam, 'kappa_plus'):.3g}× "
             f"and κ_δ {red(adam, 'kappa_damped'):.3g}× (K/L̂ {red(adam, 'K_over_L'):.3g}×) "
             "relative to M = I on its own trajectory."]
    for name in ("shampoo", "kfac", "muon"):
        r = _final(results, name)
        if r is None:
            continue
        kp, kd = red(r, "kappa_plus"), red(r, "kappa_damped")
        verdict = ("more than Adam" if kp > red(adam, "kappa_plus") else "less than Adam")
        parts.append(f"{results[name]['label']}: κ_+ {kp:.3g}×, κ_δ {kd:.3g}×, K/L̂ "
                     f"{red(r, 'K_over_L'):.3g}× — κ_+ reduced {verdict}"
                     f" (κ_+ {r['precond']['kappa_plus']:.3g} vs Adam's "
                     f"{adam['precond']['kappa_plus']:.3g}).")
    return " ".join(parts)


def _plot(out: pathlib.Path, payload: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = payload["results"]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
    styles = {"sgd": "k-o", "adam": "r-s", "shampoo": "b-^", "kfac": "g-v", "muon": "m-D"}
    for name, r in res.items():
        rows = r["checkpoints"]
        if not rows:
            continue
        ep = [c["epoch"] for c in rows]
        for ax, kind in zip(axes[:3], ("kappa_plus", "kappa_damped", "K_over_L"), strict=True):
            ax.plot(ep, [c["precond"][kind] for c in rows], styles[name], ms=4,
                    label=r["label"])
            ax.plot(ep, [c["plain"][kind] for c in rows], styles[name][0] + ":", lw=0.8)
    titles = {"kappa_plus": "κ_+ (positive-curvature subspace)",
              "kappa_damped": f"κ_δ (G + δI, δ = {payload['config']['delta']:g})",
              "K_over_L": "K / λ_max(M⁻¹G) (scale-free noise level)"}
    for ax, kind in zip(axes[:3], titles, strict=True):
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(titles[kind] + "\nsolid: M⁻¹(·); dotted: M = I at that point", fontsize=8)
    for name, r in res.items():  # the fourth panel: each run's mini-batch losses
        if r["step_losses"]:
            axes[3].semilogy(r["step_losses"], styles[name][0], lw=0.7,
                             label=f"{r['label']} (lr {r['lr']:g})")
    axes[3].set_xlabel("step")
    axes[3].set_title("mini-batch CE", fontsize=8)
    axes[0].legend(fontsize=7)
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    common.save_png(fig, out / "kronecker_kappa.png")
    plt.close(fig)


def _report(p: dict) -> str:
    c, title = p["config"], f"# Study `kronecker` — {p['data']}"
    lines = [title, "",
             f"MLP {p['sizes']} (ReLU), n = {p['n_params']} parameters; {p['n_train']} train / "
             f"{p['n_test']} test rows; curvature = dense GGN G of the mean CE on {c['n_curv']} "
             f"training rows, δ = {c['delta']:g}; K from {c['n_noise']} mini-batch gradients "
             f"of {c['batch_size']} rows.  κ by Lanczos in the M-geometry "
             "(`precond.diagnostics.local_conditioning`, n steps); 'before' = M = I at the "
             "same point.  K/L̂ is scale-free (M normalized to L̂ = λ_max(M⁻¹G) = 1).",
             ""]
    for name, why in p["skipped"].items():
        lines.append(f"- `{name}` skipped: {why}.")
    rows = []
    for r in p["results"].values():
        for cp in r["checkpoints"]:
            a, b = cp["plain"], cp["precond"]
            rows.append([r["label"], f"{r['lr']:g}", cp["epoch"], cp["train_ce"],
                         cp["test_acc"], a["kappa_plus"], b["kappa_plus"],
                         a["kappa_plus"] / b["kappa_plus"], a["kappa_damped"],
                         b["kappa_damped"], a["kappa_damped"] / b["kappa_damped"],
                         a["K_over_L"] / b["K_over_L"]])
        if r["status"] != "SUCCESS":
            lines.append(f"- {r['label']}: {r['status']}")
    lines += ["", common.md_table(
        ["method", "lr", "epoch", "train CE", "test acc", "κ_+ (M = I)", "κ_+ (M)",
         "κ_+ gain", "κ_δ (M = I)", "κ_δ (M)", "κ_δ gain", "K/L̂ gain"], rows), "",
        "**Conclusion.** " + p["conclusion"], "",
        "![κ, K/λ_1 and the losses over training](kronecker_kappa.png)", ""]
    return "\n".join(lines)
