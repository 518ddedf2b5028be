"""Shampoo: blocked Kronecker-factored preconditioning with learning-rate grafting.

Each parameter leaf is viewed as a matrix G (m, n): a 2-D leaf as itself, a higher-rank leaf
with all but its last dimension merged (a convolution kernel (h, w, c_in, c_out) becomes
(h·w·c_in, c_out)), a 0-D or 1-D leaf, or a single row (1, n), as a column (n, 1).  Rows and
columns beyond ``block_size`` are split into blocks (the last one zero-padded, which changes
nothing: the padded rows and columns of every factor stay εI and of every direction zero), and
each block b keeps its own Kronecker factors

    L_b = Σ_t G_b,t G_b,tᵀ + εI,   R_b = Σ_t G_b,tᵀ G_b,t + εI

(or with ``beta2``: the sums replaced by exponential moving averages S ← β₂S + (1 − β₂)GGᵀ).  The
preconditioned block is

    P_b = L_b^{-1/4} G_b R_b^{-1/4}        (two-sided, Gupta, Koren, Singer 2018)
    P_b = L_b^{-1/2} G_b                   (one-sided: a block with one column)

so vec(P_b) = (L_b^{-1/4} ⊗ R_b^{-1/4}) vec(G_b) (row-major vec): the block's M⁻¹ is the
Kronecker product of the two inverse roots, and M⁻¹ over all parameters is block diagonal.  The
roots come from eigendecompositions (``jnp.linalg.eigh``, eigenvalues of the accumulated sum
clipped at 0 before ε is added, so rounding cannot make them negative) and are recomputed every
``update_every`` steps (one ``lax.cond`` on the step counter), the factors are accumulated every
step.

**Grafting** (Agarwal, Anil, Hazan, Koren, Zhang 2020): Shampoo fixes the direction of each
block's step, a simpler method its length.  With ``grafting="sgd"`` the block is rescaled to
‖G_b‖, with ``grafting="adam"`` to ‖G_b / (√v̂_b + ε_g)‖ where v̂ is Adam's bias-corrected
second moment (β = ``graft_b2``, ε_g = ``graft_eps``); ``grafting=None`` uses P_b as it is.  The
scale s_b = ‖grafted direction‖ / ‖P_b‖ is computed in ``update`` from the step's gradient and
stored, so ``apply`` and ``inverse_operator`` are the same linear map,

    M⁻¹ = blockdiag_b( s_b · L_b^{-1/4} ⊗ R_b^{-1/4} )     (s_b = 1 without grafting),

symmetric positive definite (s_b > 0; a block whose gradient or direction is zero keeps its
previous scale, 1 at the start).  With grafting, M⁻¹ is this map at the scales of the last
update: the optimizer's step itself is not linear in g (s_b depends on g), but for the
diagnostics (L̂ = λ_max(M⁻¹H), K = tr(M⁻¹Σ)) the frozen-scale map is the preconditioner the
step applied.

Non-finite values: a step whose new factors are not finite (a NaN or inf gradient) leaves the
factors as they were, a refresh whose roots are not finite keeps the old roots; either is
counted in ``ShampooState.nonfinite``.

References:
  Gupta, Koren, Singer, "Shampoo: preconditioned stochastic tensor optimization", ICML 2018;
  Anil, Gupta, Koren, Regan, Singer, "Scalable second order optimization for deep learning",
  arXiv 2002.09018 (blocking, grafting); Agarwal et al., "Disentangling adaptive gradient
  methods from learning rates", arXiv 2002.11803 (grafting); seed 001 §1, App. B.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from precond.linalg import from_matvec
from precond.validation import check_fraction, check_int, check_positive, float_dtype

from .base import Preconditioner, lazily

__all__ = ["ShampooState", "ShampooBlocks", "shampoo"]

GRAFTING = ("adam", "sgd", None)


class ShampooBlocks(NamedTuple):
    """One leaf's blocks: its matrix view G (m, n) cut into (r, c) blocks of (bm, bn).

    ``left``, ``right``: the accumulated factors ΣGGᵀ (r, c, bm, bm) and ΣGᵀG (r, c, bn, bn),
    without εI (``right`` is None for a one-sided leaf, n = 1); ``left_root``, ``right_root``:
    (L + εI)^{-p} and (R + εI)^{-1/4} at the last refresh (p = 1/4, or 1/2 one-sided);
    ``moment``: Adam's second moment for ``grafting="adam"`` (the leaf's shape; else None);
    ``scale``: the grafting scales s_b (r, c); ``shape_of``: an empty (0, *leaf shape) array
    recording the leaf's shape.
    """

    left: jax.Array
    right: jax.Array | None
    left_root: jax.Array
    right_root: jax.Array | None
    moment: jax.Array | None
    scale: jax.Array
    shape_of: jax.Array


class ShampooState(NamedTuple):
    """``blocks``: one :class:`ShampooBlocks` per leaf (``jax.tree.leaves`` order); ``count``:
    updates seen; ``nonfinite``: updates whose factors or roots were not finite (kept old)."""

    blocks: tuple
    count: jax.Array
    nonfinite: jax.Array


class _Spec(NamedTuple):
    m: int  # rows of the matrix view
    n: int  # columns (1: one-sided)
    bm: int  # block rows
    bn: int  # block columns
    r: int  # blocks along the rows
    c: int  # blocks along the columns


def _spec(shape: tuple, block_size: int) -> _Spec:
    """The matrix view and blocking of a leaf of ``shape`` (module docstring)."""
    size = math.prod(shape)
    m, n = (math.prod(shape[:-1]), shape[-1]) if len(shape) >= 2 else (size, 1)
    if m == 1:  # a row: one-sided over its entries, the same flat order as a column
        m, n = n, 1
    bm, bn = min(m, block_size), min(n, block_size)
    return _Spec(m, n, bm, bn, -(-m // bm), -(-n // bn))


def _to_blocks(x, s: _Spec):
    """A leaf → its blocks (r, c, bm, bn), zero-padded."""
    G = jnp.pad(x.reshape(s.m, s.n), ((0, s.r * s.bm - s.m), (0, s.c * s.bn - s.n)))
    return G.reshape(s.r, s.bm, s.c, s.bn).transpose(0, 2, 1, 3)


def _from_blocks(B, s: _Spec, shape):
    G = B.transpose(0, 2, 1, 3).reshape(s.r * s.bm, s.c * s.bn)
    return G[:s.m, :s.n].reshape(shape)


def _inverse_roots(factors: list, powers: list, epsilon) -> list:
    """(S + εI)^{-p} for every stack S (…, k, k) of symmetric PSD factors, with p from
    ``powers``, by ``eigh``; eigenvalues clipped at 0 first (rounding can make the smallest
    slightly negative).  Stacks of equal k share one batched ``eigh`` call: one per distinct
    block size instead of one per leaf and side keeps the compiled program small and, on a GPU,
    the kernel launches few."""
    out: list = [None] * len(factors)
    for k in sorted({S.shape[-1] for S in factors}):
        idx = [i for i, S in enumerate(factors) if S.shape[-1] == k]
        dt = jnp.result_type(*(factors[i] for i in idx))
        flat = [factors[i].reshape(-1, k, k).astype(dt) for i in idx]
        p = jnp.concatenate([jnp.full(f.shape[0], powers[i], dt) for i, f in zip(idx, flat,
                                                                                  strict=True)])
        lam, V = jnp.linalg.eigh(jnp.concatenate(flat))
        d = (jnp.maximum(lam, 0) + epsilon) ** (-p[:, None])
        roots = (V * d[:, None, :]) @ jnp.swapaxes(V, -1, -2)
        start = 0
        for i, f in zip(idx, flat, strict=True):
            out[i] = roots[start:start + f.shape[0]].reshape(factors[i].shape).astype(
                factors[i].dtype)
            start += f.shape[0]
    return out


def _precondition(B, blocks: ShampooBlocks):
    """L^{-p} B R^{-1/4} per block (before grafting)."""
    P = blocks.left_root @ B
    return P if blocks.right_root is None else P @ blocks.right_root


def _block_norms(B):
    return jnp.sqrt(jnp.sum(B * B, axis=(-2, -1)))


def _apply_leaf(x, blocks: ShampooBlocks, block_size: int):
    s = _spec(x.shape, block_size)
    B = _to_blocks(x.astype(blocks.left_root.dtype), s)
    P = _precondition(B, blocks) * blocks.scale[..., None, None]
    return _from_blocks(P, s, x.shape).astype(x.dtype)


@dataclass(frozen=True)
class _KroneckerInverse:
    """v ↦ M⁻¹v on flat vectors (``ravel_pytree`` order).  A frozen dataclass: equal block
    sizes compare equal, so a new operator of the same layout reuses compiled solvers."""

    block_size: int

    def __call__(self, v, blocks):
        out, start = [], 0
        for b in blocks:
            shape = b.shape_of.shape[1:]
            size = math.prod(shape)
            out.append(_apply_leaf(v[start:start + size].reshape(shape), b,
                                   self.block_size).ravel())
            start += size
        return jnp.concatenate(out)


def shampoo(*, update_every: int = 10, epsilon: float = 1e-6, block_size: int = 128,
            grafting: str | None = "adam", beta2: float | None = None,
            graft_b2: float = 0.999, graft_eps: float = 1e-8) -> Preconditioner:
    """Shampoo's blocked Kronecker preconditioner with grafting (module docstring).

    ``update(state, params, grads=g)`` adds the factors of g, refreshes the inverse roots every
    ``update_every`` calls (the first call included) and sets the grafting scales from g
    (``batch`` and ``key`` are ignored); ``apply(state, g)`` is M⁻¹g.

    Args:
      update_every: refresh the inverse roots every this many ``update`` calls (≥ 1); the
        factors are accumulated at every call.
      epsilon: ε > 0 added to the factors' eigenvalues (L + εI, R + εI).
      block_size: the largest factor side (≥ 1); longer rows or columns are split into blocks.
      grafting: "adam", "sgd" or None: whose per-block step length Shampoo's direction takes.
      beta2: None accumulates the sums ΣGGᵀ (Shampoo); β₂ in [0, 1) uses exponential moving
        averages instead.
      graft_b2: β of Adam's second moment for ``grafting="adam"``.
      graft_eps: ε_g added to √v̂ for ``grafting="adam"``.

    Example:
      >>> import jax.numpy as jnp
      >>> from precond import preconditioners as pc
      >>> M = pc.shampoo(epsilon=1e-3, grafting=None)
      >>> params = {"w": jnp.zeros((3, 2)), "b": jnp.zeros(2)}
      >>> g = {"w": jnp.ones((3, 2)), "b": jnp.array([3.0, 4.0])}
      >>> state = M.update(M.init(params), params, grads=g)
      >>> d = M.apply(state, g)
      >>> print(d["w"].shape, d["b"].shape, int(state.nonfinite))
      (3, 2) (2,) 0
    """
    update_every = check_int(update_every, "update_every", low=1)
    block_size = check_int(block_size, "block_size", low=1)
    epsilon = check_positive(epsilon, "epsilon")
    if grafting not in GRAFTING:
        raise ValueError(f"grafting must be one of {GRAFTING}, got {grafting!r}")
    if beta2 is not None:
        beta2 = check_fraction(beta2, "beta2")
    graft_b2 = check_fraction(graft_b2, "graft_b2")
    graft_eps = check_positive(graft_eps, "graft_eps", allow_zero=True)

    def init_leaf(x):
        s = _spec(x.shape, block_size)
        dt = float_dtype(x)
        eye = lambda k: jnp.broadcast_to(jnp.eye(k, dtype=dt), (s.r, s.c, k, k))  # noqa: E731
        zeros = lambda k: jnp.zeros((s.r, s.c, k, k), dt)  # noqa: E731
        two = s.n > 1
        return ShampooBlocks(
            left=zeros(s.bm), right=zeros(s.bn) if two else None,
            left_root=eye(s.bm), right_root=eye(s.bn) if two else None,
            moment=jnp.zeros(x.shape, dt) if grafting == "adam" else None,
            scale=jnp.ones((s.r, s.c), dt), shape_of=jnp.zeros((0, *x.shape), dt))

    def init(params):
        return ShampooState(tuple(init_leaf(x) for x in jax.tree.leaves(params)),
                            jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def accumulate(old, new):
        return old + new if beta2 is None else beta2 * old + (1 - beta2) * new

    def add_factors(b: ShampooBlocks, B):
        """The factors with this step's blocks added; the old ones if the new are not finite."""
        left = accumulate(b.left, B @ jnp.swapaxes(B, -1, -2))
        right = None if b.right is None else accumulate(b.right, jnp.swapaxes(B, -1, -2) @ B)
        new = [x for x in (left, right) if x is not None]
        ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in new]))
        keep = lambda x, y: None if x is None else jnp.where(ok, x, y)  # noqa: E731
        return b._replace(left=keep(left, b.left), right=keep(right, b.right)), ok

    def graft(b: ShampooBlocks, g, B, count):
        """(scale, moment): s_b = ‖grafted direction_b‖ / ‖P_b‖ (previous s_b where either is
        zero or not finite)."""
        moment = b.moment
        if grafting == "sgd":
            D = B
        else:
            moment = graft_b2 * b.moment + (1 - graft_b2) * g**2
            t = count.astype(g.dtype)
            d = g / (jnp.sqrt(moment / (1 - graft_b2**t)) + graft_eps)
            D = _to_blocks(d, _spec(g.shape, block_size))
        dn, pn = _block_norms(D), _block_norms(_precondition(B, b))
        ok = (dn > 0) & (pn > 0) & jnp.isfinite(dn) & jnp.isfinite(pn)
        return jnp.where(ok, dn / jnp.where(ok, pn, 1), b.scale), moment

    def update(state, params, *, batch=None, key=None, grads=None):
        if grads is None:
            raise TypeError("the Shampoo preconditioner's update needs grads=…")
        leaves = jax.tree.leaves(grads)
        if len(leaves) != len(state.blocks):
            raise ValueError(f"grads has {len(leaves)} leaves, the state {len(state.blocks)}")
        gs = [g.astype(b.left.dtype) for g, b in zip(leaves, state.blocks, strict=True)]
        Bs = [_to_blocks(g, _spec(g.shape, block_size)) for g in gs]
        added = [add_factors(b, B) for b, B in zip(state.blocks, Bs, strict=True)]
        blocks = [b for b, _ in added]
        factors_ok = jnp.all(jnp.stack([ok for _, ok in added]))

        def refresh():
            factors, powers = [], []
            for b in blocks:  # p = 1/4 per side, 1/2 one-sided
                factors.append(b.left)
                powers.append(0.5 if b.right is None else 0.25)
                if b.right is not None:
                    factors.append(b.right)
                    powers.append(0.25)
            fresh = iter(_inverse_roots(factors, powers, epsilon))
            out, oks = [], []
            for b in blocks:  # a leaf whose fresh roots are not finite keeps its old ones
                left = next(fresh)
                right = None if b.right is None else next(fresh)
                ok = jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                                        for x in (left, right) if x is not None]))
                out.append((jnp.where(ok, left, b.left_root),
                            None if right is None else jnp.where(ok, right, b.right_root)))
                oks.append(ok)
            return out, jnp.all(jnp.stack(oks))

        def keep():
            return [(b.left_root, b.right_root) for b in blocks], jnp.array(True)

        new_roots, roots_ok = lazily(state.count, update_every, refresh, keep)
        blocks = [b._replace(left_root=lr, right_root=rr)
                  for b, (lr, rr) in zip(blocks, new_roots, strict=True)]
        if grafting is not None:
            count = state.count + 1
            grafted = [graft(b, g, B, count) for b, g, B in zip(blocks, gs, Bs, strict=True)]
            blocks = [b._replace(scale=sc, moment=mo)
                      for b, (sc, mo) in zip(blocks, grafted, strict=True)]
        bad = (~factors_ok | ~roots_ok).astype(jnp.int32)
        return ShampooState(tuple(blocks), state.count + 1, state.nonfinite + bad)

    def apply(state, g):
        leaves, treedef = jax.tree.flatten(g)
        return jax.tree.unflatten(treedef, [_apply_leaf(x, b, block_size)
                                            for x, b in zip(leaves, state.blocks, strict=True)])

    def inverse_operator(state):
        n = sum(math.prod(b.shape_of.shape[1:]) for b in state.blocks)
        fn = _KroneckerInverse(block_size)
        return from_matvec(fn, state.blocks, size=n, dtype=float_dtype(state.blocks),
                           rmatvec=fn)

    return Preconditioner(init, update, apply, inverse_operator, name="shampoo")
