"""Shared pieces of the seed-002 studies: data, small MLPs (optional BatchNorm/LayerNorm), optax
training, dense GGN curvature, condition numbers under diagonal scaling, report writing.

Curvature is the Gauss–Newton matrix G = Jᵀ H_out J of the mean softmax cross entropy (PSD,
unlike the indefinite Hessian of a network away from a minimum), made dense with
``precond.curvature.ggn_operator`` + ``precond.linalg.to_dense`` and diagonalized exactly with
``numpy.linalg.eigvalsh`` (the networks have a few thousand parameters).  G is singular
(ReLU rescaling symmetries, dead units, the scale invariance of normalized layers, rank ≤
N·(C−1)), so two condition numbers are reported:

* κ_δ(S A S) = λ_max/λ_min of S (G + δI) S — G of the damped objective CE + (δ/2)‖p‖²;
* κ_+(S G S) = λ_1/λ_r over the r numerically nonzero eigenvalues of G (r fixed on G itself
  with threshold ``rank_rtol``·λ_max; S G S has the same rank r by Sylvester's law of inertia).

S = D^{-1/2} for a positive diagonal D (M = D⁻¹ the optimizer's preconditioner); D⁻¹A is
similar to S A S, so these are the condition numbers preconditioned gradient descent sees.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from precond.curvature import ggn_operator
from precond.linalg import to_dense
from precond.validation import check_int, check_key, check_nonnegative

from ..store import atomic_write

NORMS = ("none", "batch", "layer")
DATASETS = ("digits", "fashion")
NORM_EPS = 1e-5


# ----------------------------------------------------------------------------- data
class Data(NamedTuple):
    """Train/test rows (N, d) float64 and integer labels; ``name`` says what was loaded."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    name: str


def load_data(dataset: str = "digits", *, n_train: int | None = None, n_test: int | None = None,
              pool: int = 4, seed: int = 0) -> Data:
    """scikit-learn's digits (8×8, pixels/16, stratified 80/20 split) or Fashion-MNIST (Debian
    package; images average-pooled ``pool``×``pool``, so 28/pool squared features), subsampled
    to ``n_train``/``n_test`` rows with a seeded permutation.

    Args:
      dataset: ``"digits"`` or ``"fashion"``.
      n_train: keep this many training rows (default all).
      n_test: keep this many test rows (default all).
      pool: the average-pooling window for Fashion-MNIST, a divisor of 28 (1, 2, 4, 7).
      seed: the seed of the split and the subsets.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    rng = np.random.default_rng(seed)
    if dataset == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        Xtr, Xte, ytr, yte = train_test_split(X / 16.0, y, test_size=0.2, stratify=y,
                                              random_state=seed)
        name = "digits (sklearn, 8×8, /16)"
    else:
        from precond.problems.data import load_fashion_mnist

        if pool not in (1, 2, 4, 7):
            raise ValueError(f"pool must divide 28 (1, 2, 4, 7), got {pool}")
        Xtr, ytr = load_fashion_mnist("train")
        Xte, yte = load_fashion_mnist("test")

        def _pool(X):
            s = 28 // pool
            return X.reshape(-1, s, pool, s, pool).mean(axis=(2, 4)).reshape(-1, s * s)

        Xtr, Xte = _pool(Xtr), _pool(Xte)
        name = f"Fashion-MNIST ({28 // pool}×{28 // pool} after {pool}×{pool} average pooling)"
    if n_train is not None:
        idx = rng.permutation(len(Xtr))[:n_train]
        Xtr, ytr = Xtr[idx], ytr[idx]
    if n_test is not None:
        idx = rng.permutation(len(Xte))[:n_test]
        Xte, yte = Xte[idx], yte[idx]
    return Data(np.asarray(Xtr, np.float64), np.asarray(ytr, np.int64),
                np.asarray(Xte, np.float64), np.asarray(yte, np.int64), name)


# ----------------------------------------------------------------------------- MLP
def init_mlp(key: jax.Array, sizes: tuple[int, ...], norm: str = "none") -> dict:
    """He-initialized ReLU MLP in float64; with ``norm`` ≠ "none" each hidden activation is
    normalized and gets a learnable gain g (ones) and shift b (zeros).

    Args:
      key: a ``jax.random`` key.
      sizes: ``(d, h_1, …, C)``, at least two positive widths.
      norm: one of ``NORMS``: ``"none"``, ``"batch"`` (BatchNorm), ``"layer"`` (LayerNorm).

    Returns:
      ``{"layers": [{"W" (a, b), "b" (b,)}, …]}`` plus ``"norms": [{"g", "b"}, …]`` with a norm.
    """
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must list ≥ 2 positive layer widths, got {sizes}")
    params: dict[str, Any] = {"layers": []}
    keys = jax.random.split(key, len(sizes) - 1)
    for k, (a, b) in zip(keys, zip(sizes[:-1], sizes[1:], strict=True), strict=True):
        W = jax.random.normal(k, (a, b), jnp.float64) * np.sqrt(2.0 / a)
        params["layers"].append({"W": W, "b": jnp.zeros(b, jnp.float64)})
    if norm != "none":
        params["norms"] = [{"g": jnp.ones(h, jnp.float64), "b": jnp.zeros(h, jnp.float64)}
                           for h in sizes[1:-1]]
    return params


def _normalize(h, norm):
    axis = 0 if norm == "batch" else -1  # BatchNorm: over the batch; LayerNorm: over features
    mu = jnp.mean(h, axis=axis, keepdims=True)
    var = jnp.var(h, axis=axis, keepdims=True)
    return (h - mu) / jnp.sqrt(var + NORM_EPS)


def mlp_apply(params: dict, X: jax.Array, norm: str = "none") -> jax.Array:
    """Logits (N, C).  Hidden layer: h ← ReLU(h W + b), then (if ``norm``) h ← g·N(h) + b with
    N the batch (BatchNorm, statistics of the batch X — training mode) or feature (LayerNorm)
    standardization, so the next linear layer sees normalized hidden variables as in seed 002's
    analysis.  Gradients and curvature flow through the batch statistics.

    Args:
      params: as :func:`init_mlp` returns.
      X: inputs (N, d).
      norm: the ``norm`` the parameters were made with.
    """
    layers = params["layers"]
    h = X
    for i, layer in enumerate(layers[:-1]):
        h = jax.nn.relu(h @ layer["W"] + layer["b"])
        if norm != "none":
            nrm = params["norms"][i]
            h = nrm["g"] * _normalize(h, norm) + nrm["b"]
    return h @ layers[-1]["W"] + layers[-1]["b"]


def hidden_inputs(params: dict, X: jax.Array, norm: str = "none") -> list[np.ndarray]:
    """The input matrix of every linear layer (N, fan_in): X, then each (normalized) hidden
    variable matrix — seed 002's H in ∇²L = H_e S H_eᵀ.

    Args:
      params: as :func:`init_mlp` returns.
      X: inputs (N, d).
      norm: the ``norm`` the parameters were made with.
    """
    out = [np.asarray(X)]
    h = X
    for i, layer in enumerate(params["layers"][:-1]):
        h = jax.nn.relu(h @ layer["W"] + layer["b"])
        if norm != "none":
            nrm = params["norms"][i]
            h = nrm["g"] * _normalize(h, norm) + nrm["b"]
        out.append(np.asarray(h))
    return out


def extended_condition(Hm: np.ndarray) -> dict:
    """For the extended hidden-variable matrix H_e = [H, 1] (N samples × h+1 features):
    κ = σ_max/σ_min (inf when singular), the spread max/min of its feature (column here; the
    paper's rows) norms — what BatchNorm equalizes — and of its sample norms — what LayerNorm
    equalizes.

    Args:
      Hm: a hidden-variable matrix H (N, h).

    Returns:
      ``{"kappa", "feature_spread", "sample_spread"}``.
    """
    He = np.hstack([Hm, np.ones((Hm.shape[0], 1))])
    s = np.linalg.svd(He, compute_uv=False)
    feat = np.linalg.norm(He, axis=0)
    samp = np.linalg.norm(He, axis=1)
    return dict(kappa=float(s[0] / s[-1]) if s[-1] > 1e-12 * s[0] else float("inf"),
                feature_spread=float(feat.max() / feat.min()) if feat.min() > 0 else float("inf"),
                sample_spread=float(samp.max() / samp.min()))


def cross_entropy(logits: jax.Array, y: jax.Array) -> jax.Array:
    """The mean softmax cross entropy.

    Args:
      logits: (N, C).
      y: integer labels (N,).
    """
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def accuracy(params: dict, X: np.ndarray, y: np.ndarray, norm: str = "none") -> float:
    """The fraction of rows whose arg-max logit is their label.

    Args:
      params: as :func:`init_mlp` returns.
      X: inputs (N, d).
      y: integer labels (N,).
      norm: the ``norm`` the parameters were made with.
    """
    return float(jnp.mean(jnp.argmax(mlp_apply(params, jnp.asarray(X), norm), -1) == y))


# ----------------------------------------------------------------------------- training
class Trajectory(NamedTuple):
    """Per-epoch curves and the snapshots at the checkpoint epochs.

    Attributes:
      train_loss: full-batch training CE after each epoch (epoch 0 = the initialization).
      test_acc: the test accuracy after each epoch.
      snapshots: ``(epoch, params, opt_state)`` at each checkpoint.
    """

    train_loss: list[float]
    test_acc: list[float]
    snapshots: list[tuple[int, Any, Any]]


def train(params: dict, opt: optax.GradientTransformation, data: Data, *, epochs: int,
          batch_size: int, key: jax.Array, norm: str = "none", checkpoints: tuple[int, ...] = (),
          l2: float = 0.0, l1: float = 0.0, on_epoch: Callable | None = None) -> Trajectory:
    """Minibatch training of CE + (l2/2)‖p‖² + l1‖p‖₁ with optax ``opt``: one jitted
    ``lax.scan`` over the batches of an epoch, a Python loop over epochs.  Curves record the
    full-batch training CE (without the penalty) and the test accuracy after each epoch;
    epoch 0 is the initialization.

    Args:
      params: the initial parameters (:func:`init_mlp`).
      opt: the optax optimizer.
      data: the data set.
      epochs: the number of epochs.
      batch_size: rows per minibatch (the last partial batch of an epoch is dropped).
      key: a ``jax.random`` key for the shuffles.
      norm: the ``norm`` the parameters were made with.
      checkpoints: the epochs whose (params, opt_state) are kept (0 = the initialization).
      l2: the penalty weight λ₂ of (λ₂/2)‖p‖².
      l1: the penalty weight λ₁ of λ₁‖p‖₁.
      on_epoch: called without arguments after each epoch (progress bars).

    Raises:
      ValueError: the training loss turned non-finite (the learning rate is too large).
    """
    epochs = check_int(epochs, "epochs", low=0)
    batch_size = check_int(batch_size, "batch_size", low=1)
    key = check_key(key)
    check_nonnegative(l2, "l2")
    check_nonnegative(l1, "l1")
    Xtr, ytr = jnp.asarray(data.X_train), jnp.asarray(data.y_train)
    n = Xtr.shape[0]
    nb = max(n // batch_size, 1)

    def objective(p, Xb, yb):
        val = cross_entropy(mlp_apply(p, Xb, norm), yb)
        flat = ravel_pytree(p)[0]
        if l2:
            val = val + 0.5 * l2 * jnp.sum(flat ** 2)
        if l1:
            val = val + l1 * jnp.sum(jnp.abs(flat))
        return val

    @jax.jit
    def epoch(p, s, k):
        perm = jax.random.permutation(k, n)[: nb * batch_size].reshape(nb, batch_size)

        def step(carry, idx):
            p, s = carry
            g = jax.grad(objective)(p, Xtr[idx], ytr[idx])
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (p, s), _ = jax.lax.scan(step, (p, s), perm)
        return p, s

    full_loss = jax.jit(lambda p: cross_entropy(mlp_apply(p, Xtr, norm), ytr))
    state = opt.init(params)
    losses = [float(full_loss(params))]
    accs = [accuracy(params, data.X_test, data.y_test, norm)]
    snaps = [(0, params, state)] if 0 in checkpoints else []
    for e in range(1, epochs + 1):
        key, k = jax.random.split(key)
        params, state = epoch(params, state, k)
        losses.append(float(full_loss(params)))
        accs.append(accuracy(params, data.X_test, data.y_test, norm))
        if not np.isfinite(losses[-1]):
            raise ValueError(f"training diverged (non-finite loss) at epoch {e}; lower the "
                             "learning rate")
        if e in checkpoints:
            snaps.append((e, params, state))
        if on_epoch is not None:
            on_epoch()
    return Trajectory(losses, accs, snaps)


def preconditioner_diagonal(kind: str, opt_state: Any, params: dict) -> np.ndarray:
    """The diagonal D (flat, ravel_pytree order) that optax's ``kind`` divides the gradient by:
    adam: √v̂ + ε (v̂ = ν/(1 − β₂ᵗ), β₂ = 0.999, ε = 1e-8); rmsprop: √(ν + ε) (ε = 1e-8, optax's
    eps_in_sqrt); adagrad: √(Σg² + ε) (ε = 1e-7, accumulator started at 0.1).

    Args:
      kind: ``"adam"``, ``"adamw"``, ``"rmsprop"`` or ``"adagrad"`` (optax defaults assumed).
      opt_state: that optimizer's state.
      params: the parameters (for the flattening order).

    Returns:
      D (n,), positive.
    """
    unravel_like = lambda t: np.asarray(ravel_pytree(t)[0])  # noqa: E731
    if kind in ("adam", "adamw"):
        st = [s for s in jax.tree_util.tree_leaves(
            opt_state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
            if isinstance(s, optax.ScaleByAdamState)][0]
        t = int(st.count)
        nu = unravel_like(st.nu) / max(1.0 - 0.999 ** max(t, 1), 1e-300)
        return np.sqrt(nu) + 1e-8
    if kind == "rmsprop":
        return np.sqrt(unravel_like(optax.tree_utils.tree_get(opt_state, "nu")) + 1e-8)
    if kind == "adagrad":
        return np.sqrt(unravel_like(optax.tree_utils.tree_get(opt_state, "sum_of_squares"))
                       + 1e-7)
    raise ValueError(f"kind must be adam, adamw, rmsprop or adagrad, got {kind!r}")


# ----------------------------------------------------------------------------- curvature
def dense_ggn(params: dict, X: np.ndarray, y: np.ndarray, norm: str = "none") -> np.ndarray:
    """Dense GGN (n, n) of the mean CE on (X, y) via precond.curvature.ggn_operator (jitted;
    the compile is shared by calls with the same shapes and ``norm``).

    Args:
      params: the MLP's parameters (n of them once flattened).
      X: inputs (N, d).
      y: integer labels (N,).
      norm: the ``norm`` the parameters were made with.

    Returns:
      G (n, n), symmetrized.
    """
    G = np.asarray(_dense_ggn(params, jnp.asarray(X), jnp.asarray(y), norm))
    return 0.5 * (G + G.T)


@partial(jax.jit, static_argnames="norm")
def _dense_ggn(params, X, y, norm):
    op = ggn_operator(lambda p, x: mlp_apply(p, x, norm), "softmax_cross_entropy", params, (X, y))
    return to_dense(op)


class Kappa(NamedTuple):
    """Condition numbers under a diagonal scaling S = D^{-1/2} (module docstring).

    Attributes:
      kappa_damped: κ_δ = λ_max/λ_min of S(G + δI)S.
      kappa_plus: κ_+ = λ_1/λ_r of S G S (r = the numerical rank of G).
      lam_max: λ_max of S(G + δI)S.
    """

    kappa_damped: float
    kappa_plus: float
    lam_max: float


def numerical_rank(G: np.ndarray, rank_rtol: float = 1e-9) -> int:
    """The number r of eigenvalues above ``rank_rtol``·λ_max.

    Args:
      G: a symmetric matrix (n, n).
      rank_rtol: the relative threshold.
    """
    ev = np.linalg.eigvalsh(G)
    return int(np.sum(ev > rank_rtol * ev[-1]))


def kappas(G: np.ndarray, d: np.ndarray | None, delta: float, rank: int) -> Kappa:
    """Condition numbers of D⁻¹(G + δI) and D⁻¹G (rank-r part) via S = D^{-1/2} (see module).

    Args:
      G: the GGN (n, n), symmetric PSD.
      d: the diagonal D (n,) > 0, or None for D = I.
      delta: the damping δ ≥ 0.
      rank: r, the numerical rank of G (:func:`numerical_rank`).
    """
    n = G.shape[0]
    s = np.ones(n) if d is None else 1.0 / np.sqrt(np.asarray(d, np.float64))
    SGS = s[:, None] * G * s[None, :]
    ev = np.linalg.eigvalsh(SGS)
    ev_d = np.linalg.eigvalsh(SGS + delta * np.diag(s * s))
    top = ev[::-1][:rank]
    return Kappa(float(ev_d[-1] / ev_d[0]), float(top[0] / top[-1]), float(ev_d[-1]))


def regularized_hessians(H: np.ndarray, d: np.ndarray, lam: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """z-space Hessians with p = P z, P = D^{-1/2} (M = PPᵀ = D⁻¹ Adam's preconditioner):
    AdamW (L2 on z): PᵀHP + λI;  Adam + L2 (L2 on p): PᵀHP + λPᵀP.

    Args:
      H: the Hessian (or GGN) in p (n, n).
      d: Adam's divisor D (n,) > 0.
      lam: the L2 strength λ.

    Returns:
      ``(PᵀHP + λI, PᵀHP + λPᵀP)``.
    """
    P = 1.0 / np.sqrt(np.asarray(d, np.float64))
    PHP = P[:, None] * H * P[None, :]
    n = H.shape[0]
    return PHP + lam * np.eye(n), PHP + lam * np.diag(P * P)


def cond_sym(A: np.ndarray) -> float:
    """λ_max/λ_min of a symmetric positive definite matrix (inf when λ_min ≤ 0).

    Args:
      A: the matrix (n, n); its symmetric part is used.
    """
    ev = np.linalg.eigvalsh(0.5 * (A + A.T))
    return float(ev[-1] / ev[0]) if ev[0] > 0 else float("inf")


# ----------------------------------------------------------------------------- output
def write_outputs(out: str | os.PathLike, stem: str, report: str, payload: dict) -> None:
    """Write ``report.md`` and ``<stem>.json`` (numpy values converted) to a folder.

    Args:
      out: the folder (created if missing).
      stem: the JSON file's name without ``.json``.
      report: the Markdown text.
      payload: the JSON-ready results.
    """
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "report.md", report)
    atomic_write(out / f"{stem}.json", json.dumps(payload, indent=1, default=_json_default))


def save_png(fig, path: str | os.PathLike, dpi: int = 80) -> None:
    """Write a matplotlib figure as a PNG atomically (temporary file, then renamed).

    Args:
      fig: the figure.
      path: the PNG file.
      dpi: its resolution.
    """
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi))


def _json_default(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(type(x))


def md_table(header: list[str], rows: list[list]) -> str:
    """A Markdown table; floats printed with 3 significant digits.

    Args:
      header: the column titles.
      rows: the rows, one list of cells each.

    Example:
      >>> from precond.experiments.study.common import md_table
      >>> print(md_table(["norm", "κ"], [["none", 1234.5]]))
      | norm | κ |
      |---|---|
      | none | 1.23e+03 |
    """
    def fmt(v):
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def n_params(params: Any) -> int:
    """The number of scalar parameters.

    Args:
      params: a parameter pytree.
    """
    return int(ravel_pytree(params)[0].size)
