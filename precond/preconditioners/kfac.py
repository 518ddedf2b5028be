"""K-FAC: Kronecker-factored curvature of the dense layers, a damped diagonal for the rest.

For a dense layer s = W ã (ã = [a; 1] when the layer has a bias, W holding the bias as its last
column) the Fisher/GGN block of vec(W) is E[ããᵀ ⊗ ggᵀ] with g = ∂ℓ/∂s; K-FAC replaces it by the
Kronecker product of expectations

    A = E[ã ãᵀ]   ((d_in + 1)²),      G = E[g gᵀ]   (d_out²),      block ≈ A ⊗ G,

so that M⁻¹ vec(∇W) = vec(G_λ⁻¹ ∇W A_λ⁻¹) costs two small dense products per layer.  The
layers, a and g come from the model itself (:func:`precond.curvature.capture_dense_layers`: no
tagging), g from one backward pass of

- ``fisher="sampled"``: the gradient of the loss at labels drawn from the model's predictive
  distribution (Gaussian N(f, I) for "mse", categorical for softmax and Bernoulli for sigmoid
  cross-entropy): E[ggᵀ] is then the Fisher's G;
- ``fisher="ggn"``: the columns of a square root of each example's output-loss Hessian
  (∇²_f ℓ = R Rᵀ, from ``output_loss.hessian_vector``; one backward pass per output dimension):
  G is the Gauss–Newton matrix's, exact for any loss, and A ⊗ G *is* the GGN block of a single
  dense layer under a squared loss.

Tikhonov damping λ (``damping``) is split between the factors by π-damping,

    A_λ = A + π√λ I,   G_λ = G + (√λ/π) I,   π = √((tr A / dim A) / (tr G / dim G)),

so that A_λ ⊗ G_λ = A ⊗ G + √λ(π I ⊗ G + A ⊗ I/π) + λI.  A and G are exponential moving
averages (``decay``) over refreshes; refreshes happen on steps 0, k, 2k, … (k =
``update_every``, one ``lax.cond``), and the inverses are computed then only (by
Cholesky or eigendecomposition), so a step between refreshes costs two matrix products per layer.  A
refresh whose factors or inverses are not finite keeps the previous ones and records
``Status.NONFINITE`` in ``state.status``.

Fallback: parameters in no recognised dense layer (convolution kernels, norms, embeddings,
shared weights, kernels with a dimension above ``max_factor_dim``) get M = diag(D) + λ with D an
exponential moving average of the diagonal of the same curvature, estimated from the same
backward pass: (∇_θ ⟨c, f⟩)² with c the sampled-label cotangent (unbiased: the score has mean
zero), or with random signs on the GGN columns (so a key is needed in GGN mode only when some
parameter falls back).

References:
  Martens and Grosse, "Optimizing neural networks with Kronecker-factored approximate
  curvature", ICML 2015 (K-FAC, π-damping); Grosse and Martens, "A Kronecker-factored
  approximate Fisher matrix for convolution layers", ICML 2016.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from precond.curvature import (
    capture_dense_layers,
    find_dense_layers,
    flat_operator,
    get_output_loss,
)
from precond.linalg import Status
from precond.validation import (
    check_callable,
    check_fraction,
    check_int,
    check_key,
    check_positive,
)

from .base import Preconditioner, lazily

__all__ = ["KFACState", "kfac"]

_SAMPLERS: dict[str, Callable] = {
    # y ~ p(·|f) for the negative log-likelihoods precond knows.
    "mse": lambda key, f: f + jax.random.normal(key, f.shape, f.dtype),
    "softmax_cross_entropy": lambda key, f: jax.random.categorical(key, f),
    "sigmoid_cross_entropy": lambda key, f: jax.random.bernoulli(
        key, jax.nn.sigmoid(f)).astype(f.dtype),
}


class KFACState(NamedTuple):
    """K-FAC's state.  Per parameter leaf (in ``jax.tree.leaves`` order), a 2-D leaf of shape
    (d₀, d₁) with max(d₀, d₁) ≤ ``max_factor_dim`` has two factor slots of sizes d₀+1 and d₁+1
    (the input side holds A, with the bias's homogeneous coordinate; the output side G, padded
    with a zero row and column); other leaves have None.

    Attributes:
      factors: per leaf, (S₀, S₁) the moving-average factors, or None.
      inverses: per leaf, the damped inverses ((S₀ + δ₀I)⁻¹, (S₁ + δ₁I)⁻¹), or None.
      diagonal: D, the fallback's diagonal curvature, a pytree like ``params``.
      count: ``update`` calls seen.
      status: ``Status.SUCCESS``, or ``Status.NONFINITE`` when the last refresh was not finite
        (the previous factors and inverses were kept).
    """

    factors: tuple
    inverses: tuple
    diagonal: Any
    count: jax.Array
    status: jax.Array


def _structure(tree) -> tuple:
    leaves, treedef = jax.tree.flatten(tree)
    return treedef, tuple((tuple(x.shape), jnp.result_type(x).name) for x in leaves)


def _damped_inverse(S, shift, method):
    """(S + shift·I)⁻¹ for a symmetric PSD S.  "cholesky": L Lᵀ = S + shift·I, then L⁻ᵀL⁻¹
    (one triangular solve; the faster factorization, on GPUs especially); "eigh": Q(Λ +
    shift)⁻¹Qᵀ with Λ clipped at 0, so rounding cannot make it indefinite (cheaper to compile)."""
    eye = jnp.eye(S.shape[0], dtype=S.dtype)
    if method == "cholesky":
        L = jnp.linalg.cholesky(0.5 * (S + S.T) + shift * eye)
        Li = jax.lax.linalg.triangular_solve(L, eye, left_side=True, lower=True)
        return Li.T @ Li
    lam, Q = jnp.linalg.eigh(0.5 * (S + S.T))
    return (Q / (jnp.maximum(lam, 0) + shift)) @ Q.T


def _embed(M, size):
    pad = size - M.shape[0]
    return jnp.pad(M, ((0, pad), (0, pad)))


@dataclass(frozen=True)
class _Apply:
    """g ↦ M⁻¹g for the layers ``layers`` (static, hashable: one compiled operator)."""

    layers: tuple

    def __call__(self, g, inverses, diagonal, damping):
        leaves, treedef = jax.tree.flatten(g)
        out = [x / (d + damping).astype(x.dtype)
               for x, d in zip(leaves, jax.tree.leaves(diagonal), strict=True)]
        for layer in self.layers:
            V = leaves[layer.kernel]
            (I0, I1), (d0, d1) = inverses[layer.kernel], V.shape
            if layer.bias is None:
                out[layer.kernel] = I0[:d0, :d0] @ V @ I1[:d1, :d1]
            elif layer.in_axis == 0:  # V (d_in, d_out): A⁻¹ [V; bᵀ] G⁻¹
                R = I0 @ jnp.concatenate([V, leaves[layer.bias][None, :]], 0) @ I1[:d1, :d1]
                out[layer.kernel], out[layer.bias] = R[:d0], R[d0]
            else:  # V (d_out, d_in): G⁻¹ [V, b] A⁻¹
                R = I0[:d0, :d0] @ jnp.concatenate([V, leaves[layer.bias][:, None]], 1) @ I1
                out[layer.kernel], out[layer.bias] = R[:, :d1], R[:, d1]
        return jax.tree.unflatten(treedef, out)


def _ggn_cotangents(loss, f, y):
    """(K, *f.shape): column k holds R_i e_k/√n for each example i, R_i R_iᵀ = ∇²ℓ_i (K outputs
    per example), so Σ_k Σ_i (Jᵢᵀ R_i e_k)(…)ᵀ/n is the GGN of the mean loss."""
    n = f.shape[0]
    K = f[0].size
    basis = jnp.broadcast_to(jnp.eye(K, dtype=f.dtype)[:, None, :], (K, n, K))
    # hessian_vector averages over examples: ×n gives each example's own ∇²ℓ_i.
    hv = jax.vmap(lambda u: loss.hessian_vector(f, y, u.reshape(f.shape)))(basis)
    H = jnp.moveaxis(hv.reshape(K, n, K) * n, 0, -1)
    lam, Q = jnp.linalg.eigh(0.5 * (H + jnp.swapaxes(H, -1, -2)))
    R = (Q * jnp.sqrt(jnp.maximum(lam, 0))[..., None, :]) @ jnp.swapaxes(Q, -1, -2)
    return (jnp.moveaxis(R, -1, 0) / jnp.sqrt(n).astype(f.dtype)).reshape((K, *f.shape))


def kfac(model_fn: Callable, output_loss, *, damping: float = 1e-3,
         update_every: int = 10, decay: float = 0.9, fisher: str = "sampled",
         max_factor_dim: int = 4096, inverse: str = "cholesky") -> Preconditioner:
    """K-FAC (module docstring): M = A_λ ⊗ G_λ per dense layer, diag(D) + λ elsewhere.

    ``update(state, params, batch=(inputs, targets), key=…)`` refreshes every
    ``update_every`` calls; ``key`` is needed for ``fisher="sampled"`` (and in GGN mode when
    some parameter falls back to the diagonal).  ``apply`` needs the layer structure that
    ``update`` found for parameters of this structure, so call ``update`` first (the
    protocol's order).

    Args:
      model_fn: ``model_fn(params, inputs) -> outputs`` (N, …): flax, equinox or plain.
      output_loss: ℓ(outputs, targets), a name or a ``precond.curvature.OutputLoss``; for
        ``fisher="sampled"`` one of "mse", "softmax_cross_entropy", "sigmoid_cross_entropy".
      damping: λ > 0, split between A and G by π-damping.
      update_every: k ≥ 1: statistics, moving averages and inverses every k-th update.
      decay: the moving averages' decay in [0, 1) (per refresh; the first refresh sets them).
      fisher: "sampled" (one backward pass, labels from the model) or "ggn" (exact G, one
        backward pass per output dimension).
      max_factor_dim: kernels with a larger dimension use the diagonal fallback (factor memory
        grows as its square).
      inverse: how the damped factors are inverted at a refresh: "cholesky" or "eigh".

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from precond.preconditioners import kfac
      >>> model = lambda p, x: x @ p["W"] + p["b"]
      >>> params = {"W": jnp.zeros((3, 2)), "b": jnp.zeros(2)}
      >>> x = jax.random.normal(jax.random.key(0), (50, 3))
      >>> M = kfac(model, "mse", damping=1e-6, fisher="ggn")
      >>> state = M.update(M.init(params), params, batch=(x, jnp.zeros((50, 2))))
      >>> int(state.status) == 7  # Status.SUCCESS
      True
    """
    check_callable(model_fn, "model_fn", "model_fn(params, inputs)")
    loss = get_output_loss(output_loss)
    damping = check_positive(damping, "damping")
    update_every = check_int(update_every, "update_every", low=1)
    decay = check_fraction(decay, "decay")
    max_factor_dim = check_int(max_factor_dim, "max_factor_dim", low=1)
    if inverse not in ("cholesky", "eigh"):
        raise ValueError(f"inverse must be 'cholesky' or 'eigh', got {inverse!r}")
    if fisher not in ("sampled", "ggn"):
        raise ValueError(f"fisher must be 'sampled' or 'ggn', got {fisher!r}")
    if fisher == "sampled" and loss.name not in _SAMPLERS:
        raise ValueError(f"fisher='sampled' draws labels from the model, which precond can do "
                         f"for {sorted(_SAMPLERS)}, not {loss.name!r}; use fisher='ggn'")
    structures: dict = {}  # params structure -> its layers (found by update, read by apply)

    def eligible(x):
        return jnp.ndim(x) == 2 and max(x.shape) <= max_factor_dim

    def init(params):
        leaves = jax.tree.leaves(params)
        slots = tuple((jnp.zeros((x.shape[0] + 1,) * 2, x.dtype),
                       jnp.zeros((x.shape[1] + 1,) * 2, x.dtype)) if eligible(x) else None
                      for x in leaves)
        eyes = tuple(None if s is None else tuple(jnp.eye(m.shape[0], dtype=m.dtype) for m in s)
                     for s in slots)
        return KFACState(slots, eyes, jax.tree.map(jnp.zeros_like, params),
                         jnp.zeros((), jnp.int32), jnp.asarray(Status.SUCCESS, jnp.int32))

    def layers_of(params, inputs):
        leaves = jax.tree.leaves(params)
        found = tuple(L for L in find_dense_layers(model_fn, params, inputs)
                      if eligible(leaves[L.kernel]))
        structures[_structure(params)] = found
        return found

    def statistics(params, inputs, targets, layers, key):
        """Per layer (A, G) and D's estimate, from one forward and one (vmapped) backward."""
        cap = capture_dense_layers(model_fn, params, inputs)
        f = cap.outputs
        if fisher == "sampled":
            y = _SAMPLERS[loss.name](key, jax.lax.stop_gradient(f))
            c = jax.grad(lambda out: loss.value(out, y))(f) * jnp.sqrt(f.shape[0]).astype(
                f.dtype)
            cots = c[None]
        else:
            cots = _ggn_cotangents(loss, f, targets)
            if key is not None:  # random signs per column and example: unbiased diagonal
                signs = jax.random.rademacher(key, cots.shape[:2], cots.dtype)
                cots = cots * signs.reshape(signs.shape + (1,) * (cots.ndim - 2))
        grads, gs = jax.vmap(cap.vjp)(cots)
        index = {L.kernel: k for k, L in enumerate(cap.layers)}
        stats = []
        for layer in layers:
            k = index[layer.kernel]
            a, g = cap.activations[k], gs[k]
            if layer.bias is not None:
                a = jnp.concatenate([a, jnp.ones((a.shape[0], 1), a.dtype)], 1)
            g = g.reshape(-1, g.shape[-1])
            stats.append((a.T @ a / a.shape[0], g.T @ g))
        return stats, jax.tree.map(lambda x: jnp.sum(x**2, axis=0), grads)

    def inverses_of(S_in, S_out, dims):
        lam = jnp.sqrt(jnp.asarray(damping, S_in.dtype))
        t_in, t_out = jnp.trace(S_in) / dims[0], jnp.trace(S_out) / dims[1]
        ok = (t_in > 0) & (t_out > 0)
        pi = jnp.where(ok, jnp.sqrt(jnp.where(ok, t_in, 1) / jnp.where(ok, t_out, 1)), 1)
        return (_damped_inverse(S_in, pi * lam, inverse),
                _damped_inverse(S_out, lam / pi, inverse))

    def update(state, params, *, batch=None, key=None, grads=None):
        if batch is None:
            raise TypeError("kfac needs batch=(inputs, targets) to capture its layers")
        inputs, targets = batch
        layers = layers_of(params, inputs)
        covered = {L.kernel for L in layers} | {L.bias for L in layers if L.bias is not None}
        if fisher == "sampled" or len(covered) < len(jax.tree.leaves(params)):
            key = check_key(key)
        else:
            key = None

        def refresh():
            stats, diag_est = statistics(params, inputs, targets, layers, key)
            w = jnp.where(state.count == 0, 0.0, decay)
            factors, inverses = list(state.factors), list(state.inverses)
            for layer, (A, G) in zip(layers, stats, strict=True):
                k, ax = layer.kernel, layer.in_axis
                old = state.factors[k]
                new = [None, None]
                new[ax] = _embed(A, old[ax].shape[0])
                new[1 - ax] = _embed(G, old[1 - ax].shape[0])
                S = tuple((w * o + (1 - w) * n).astype(o.dtype) for o, n in zip(old, new,
                                                                                 strict=True))
                factors[k] = S
                inv = inverses_of(S[ax], S[1 - ax], (A.shape[0], G.shape[0]))
                inverses[k] = (inv[0], inv[1]) if ax == 0 else (inv[1], inv[0])
            diagonal = jax.tree.map(lambda o, n: (w * o + (1 - w) * n).astype(o.dtype),
                                    state.diagonal, diag_est)
            new = (tuple(factors), tuple(inverses), diagonal)
            finite = jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x))
                                          for x in jax.tree.leaves(new)]))
            kept = (state.factors, state.inverses, state.diagonal)
            chosen = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, kept)
            status = jnp.where(finite, Status.SUCCESS, Status.NONFINITE).astype(jnp.int32)
            return (*chosen, status)

        def keep():
            return state.factors, state.inverses, state.diagonal, state.status

        factors, inverses, diagonal, status = lazily(state.count, update_every, refresh, keep)
        return KFACState(factors, inverses, diagonal, state.count + 1, status)

    def layers_for(tree):
        try:
            return structures[_structure(tree)]
        except KeyError:
            raise ValueError("kfac: call update(state, params, batch=…) before apply or "
                             "inverse_operator, so that the layers are known") from None

    def apply(state, g):
        return _Apply(layers_for(g))(g, state.inverses, state.diagonal, damping)

    def inverse_operator(state):
        return flat_operator(_Apply(layers_for(state.diagonal)), state.diagonal,
                             state.inverses, state.diagonal, jnp.asarray(damping))

    return Preconditioner(init, update, apply, inverse_operator, name="kfac")
