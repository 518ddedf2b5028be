"""The preconditioned noise level K = tr(M⁻¹Σ) from mini-batch gradient samples."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._operators import as_square_operator, check_finite_array, is_pytree


@jax.jit
def _apply_rows(M, D):
    """M⁻¹ applied to each row of D (B, n): one linearization of M, then B products."""
    return jax.vmap(M.linearize().matvec)(D)

__all__ = ["NoiseLevel", "noise_level", "stack_gradients"]


class NoiseLevel(NamedTuple):
    """K̂ (unbiased for tr(M⁻¹Σ)) and its standard error; ``num_samples`` = B."""

    K: float
    stderr: float
    num_samples: int = 0


def stack_gradients(grad_samples) -> jax.Array:
    """The gradient samples as a (B, n) array, each row in ``ravel_pytree`` order.

    A Python ``list`` holds B samples, one per element (each an array or a pytree of one
    gradient) — the one meaning of a list in :mod:`precond.diagnostics`.  Anything else is
    stacked: a (B, n) array, or a pytree (dict, tuple, …) whose leaves have the sample index
    on axis 0.

    Args:
      grad_samples: a list of B gradients, a (B, n) array or a stacked pytree.
    """
    if isinstance(grad_samples, list):
        if not grad_samples:
            raise ValueError("grad_samples is an empty list")
        rows = [ravel_pytree(g)[0] for g in grad_samples]
        sizes = sorted({int(r.size) for r in rows})
        if len(sizes) != 1:
            raise ValueError("the gradients in the list grad_samples must all have the same size "
                             f"(one per mini-batch), got sizes {sizes}")
        return jnp.stack(rows)
    leaves = jax.tree.leaves(grad_samples)
    if not leaves:
        raise ValueError("grad_samples has no array leaves")
    if hasattr(grad_samples, "ndim") and grad_samples.ndim != 2:
        raise ValueError(f"grad_samples must be (B, n), got shape {tuple(grad_samples.shape)}")
    B = {int(jnp.shape(x)[0]) if jnp.ndim(x) > 0 else -1 for x in leaves}
    if len(B) != 1 or -1 in B:
        raise ValueError("grad_samples leaves must share their leading (sample) axis, got "
                         f"leading sizes {sorted(B)}")
    b = B.pop()
    if b == 0:
        raise ValueError("grad_samples holds no samples (leading axis of size 0)")
    return jnp.concatenate([jnp.reshape(jnp.asarray(x), (b, -1)) for x in leaves], axis=1)


def noise_level(grad_samples, M_inv=None) -> NoiseLevel:
    """K̂ = 1/(B−1) Σ_b (g_b − ḡ)ᵀ M⁻¹ (g_b − ḡ), unbiased for tr(M⁻¹Σ), Σ = Cov(g).

    ``grad_samples``: B ≥ 2 mini-batch gradients at the same point: a Python list of B
    gradients (one per element, each an array or pytree), rows of a (B, n) array, or a
    stacked pytree (leaves (B, …), e.g. from ``jax.vmap(jax.grad(loss))``); flattened per row
    in ``ravel_pytree`` order, the order of precond.curvature's flat operators.  ``M_inv``:
    operator or callable applying M⁻¹ to flat (n,) vectors; None means M = I.

    The standard error treats t_b = B/(B−1)·(g_b − ḡ)ᵀM⁻¹(g_b − ḡ) (whose mean is K̂) as
    independent: std(t)/√B; for Gaussian gradients it estimates √(2 tr((M⁻¹Σ)²)/B).
    M⁻¹ is applied to the B rows in one compiled program (``M_inv.linearize()`` once).

    Args:
      grad_samples: the g_b: a list of B gradients, (B, n) or a stacked pytree, B ≥ 2.
      M_inv: M⁻¹ (operator, array, scipy operator or callable), shape (n, n); None: M = I.
    """
    G = stack_gradients(grad_samples)
    B, n = G.shape
    if B < 2:
        raise ValueError(f"noise_level needs at least 2 gradient samples (a variance), got {B}")
    check_finite_array(G, "grad_samples")
    D = G - jnp.mean(G, axis=0)
    if M_inv is None:
        MD = D
    else:
        M = as_square_operator(M_inv, "M_inv", n, G.dtype)
        MD = _apply_rows(M, D) if is_pytree(M) else jax.vmap(M.linearize().matvec)(D)
        check_finite_array(MD, "M_inv applied to the centred gradients")
    q = jnp.sum(D * MD, axis=1)
    scale = jnp.maximum(jnp.max(jnp.abs(q)), jnp.finfo(q.dtype).tiny)
    if bool(jnp.any(q < -1e-10 * scale)):
        raise ValueError("M_inv is not positive semi-definite: (g_b − ḡ)ᵀM⁻¹(g_b − ḡ) < 0 for "
                         "some sample; a preconditioner M⁻¹ must be SPD")
    t = q * B / (B - 1)
    K = float(jnp.mean(t))
    se = float(jnp.std(t, ddof=1) / jnp.sqrt(B))
    return NoiseLevel(K, se, int(B))
