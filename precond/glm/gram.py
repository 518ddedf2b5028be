"""The Gram operator G = c·Aᵀ diag(w) A + μI of a GLM, matrix-free or formed.

One operator serves every GLM solver: the Hessian of ℓ(Ax) is Aᵀ diag(ℓ″(Ax)) A (NysADMM's
x-step, w = the loss's ``hess_diag``); the subsampled Hessian of a finite-sum GLM is
(1/|S|) X_Sᵀ diag(φ″(X_S x)) X_S + μI (the PROMISE family, ``mean=True``, ``mu=μ``); the
linear kernel XXᵀ is (Xᵀ)ᵀ I Xᵀ.  :class:`GramOperator` applies it as Aᵀ(w ⊙ (Av)), never forming
it; :func:`dense_gram` forms it (d, d) by one GEMM when a direct solve beats PCG.

Example:
  >>> import jax.numpy as jnp
  >>> from precond.glm import GramOperator, data_operator
  >>> A = data_operator(jnp.array([[1.0, 0.0], [1.0, 2.0]]))
  >>> G = GramOperator(A, jnp.array([1.0, 0.5]), mu=1.0)    # AᵀWA + I
  >>> G.matvec(jnp.array([1.0, 0.0])).tolist()
  [2.5, 1.0]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.tree_util import register_pytree_node_class

from precond.linalg import DenseOperator, LinearOperator
from precond.linalg._checks import as_array

from .data import CenteredOperator

__all__ = ["GramOperator", "dense_gram", "has_dense_gram"]


@register_pytree_node_class
class GramOperator(LinearOperator):
    """G = c·Aᵀ diag(w) A + μI (d, d), applied as c·Aᵀ(w ⊙ (Av)) + μv; never formed.

    Args:
      A: the data operator (m, d) (any precond ``LinearOperator`` with ``.T``).
      weights: w (m,), e.g. a loss's ``hess_diag`` at Ax.
      mu: the shift μ (a scalar), or None for no shift term.
      mean: c = 1/m (a sample average) when True, else c = 1.
    """

    def __init__(self, A, weights, mu=None, *, mean: bool = False):
        self.A, self.weights, self.mu, self.mean = A, weights, mu, bool(mean)
        self.shape = (A.shape[1], A.shape[1])
        self.dtype = A.dtype

    @property
    def plain(self) -> bool:
        """Whether G is exactly AᵀWA (no 1/m, no shift)."""
        return self.mu is None and not self.mean

    def _finish(self, out, v):
        if self.mean:
            out = out / self.weights.shape[0]
        if self.mu is not None:
            out = out + self.mu * v
        return out

    def matvec(self, v):
        return self._finish(self.A.T.matvec(self.weights * self.A.matvec(v)), v)

    def matmat(self, V):
        return self._finish(self.A.T.matmat(self.weights[:, None] * self.A.matmat(V)), V)

    @property
    def T(self):
        return self

    def tree_flatten(self):
        return (self.A, self.weights, self.mu), self.mean

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(*children, mean=aux)


# ----------------------------------------------------------------------------- formed


def has_dense_gram(A) -> bool:
    """Whether :func:`dense_gram` can form AᵀWA for this operator (dense data, maybe centered)."""
    if isinstance(A, CenteredOperator) and not A.transposed:
        return isinstance(A.A, DenseOperator)
    return isinstance(A, DenseOperator)


def dense_gram(A, w) -> jax.Array:
    """G = Aᵀdiag(w)A (d, d) formed once by one GEMM (m·d² work).

    For centered dense data A − 1x̄ᵀ, G = MᵀWM − x̄sᵀ − sx̄ᵀ + (Σw)x̄x̄ᵀ with s = MᵀW1, so the
    centered matrix is never formed.  Concrete CPU data takes the host BLAS (numpy's SYRK), the
    fastest kernel for the largest single cost of a lasso solved with a Cholesky x-step
    (docs/bench/nysadmm.md); traced data takes XLA's GEMM.

    Args:
      A: a ``DenseOperator`` (m, d) or a ``CenteredOperator`` of one (:func:`has_dense_gram`).
      w: weights (m,).

    Returns:
      G (d, d), exactly symmetric.
    """
    mean = None
    if isinstance(A, CenteredOperator):
        A, mean = A.A, A.mean
    if not isinstance(A, DenseOperator):
        raise TypeError(f"dense_gram needs dense data, got {type(A).__name__}")
    M = A.matrix
    G = _host_gram(M, w)  # exactly symmetric (numpy's SYRK fills one triangle from the other)
    if G is None:
        G = _symmetric_gram(M * w[:, None], M)
        G = 0.5 * (G + G.T)  # exactly symmetric (the diagonal blocks are not, by rounding)
    if mean is not None:
        s = w @ M  # (vᵀM, not Mᵀv: XLA on CPU would copy the transpose)
        G = G - jnp.outer(mean, s) - jnp.outer(s, mean) + jnp.sum(w) * jnp.outer(mean, mean)
        G = 0.5 * (G + G.T)
    return G


def _on_host_cpu(*arrays) -> bool:
    """Concrete (not traced) arrays that live in host memory: numpy, or jax arrays on the CPU —
    on one device: row-sharded data stays on its devices (XLA's GEMM and one all-reduce)."""
    for a in arrays:
        if isinstance(a, jax.core.Tracer):
            return False
        if isinstance(a, jax.Array) and len(a.devices()) > 1:
            return False
        if isinstance(a, jax.Array) and any(dev.platform != "cpu" for dev in a.devices()):
            return False
    return True


def _host_gram(M, w):
    """MᵀWM by the host BLAS (numpy's ``Xᵀ @ X`` is a SYRK) when M and w are concrete CPU arrays,
    else None.  On CPU the host SYRK is faster than XLA's GEMM (:func:`_symmetric_gram`); the
    measured stage timings are in docs/bench/nysadmm.md."""
    if not _on_host_cpu(M, w):
        return None
    M = np.asarray(M)
    w = np.asarray(w)
    if np.all(w == 1):
        G = M.T @ M
    elif np.all(w >= 0):
        S = M * np.sqrt(w)[:, None]
        G = S.T @ S
    else:
        G = (M * w[:, None]).T @ M
        G = 0.5 * (G + G.T)
    return as_array(G)


def _symmetric_gram(WM, M):
    """WMᵀM for symmetric WMᵀM, by column blocks: only the blocks on and above the diagonal are
    multiplied (about (1 + 1/nb)/2 of the GEMM work for nb blocks), the rest are transposes."""
    d = M.shape[1]
    nb = max(1, min(8, d // 256))
    b = -(-d // nb)
    dot = lambda P, Q: lax.dot_general(P, Q, (((0,), (0,)), ((), ())))  # noqa: E731  PᵀQ
    upper = [dot(WM[:, i * b:(i + 1) * b], M[:, i * b:]) for i in range(nb)]  # (b, d − ib)
    rows = []
    for i in range(nb):
        left = [upper[j][:, (i - j) * b:(i - j + 1) * b].T for j in range(i)]
        rows.append(jnp.concatenate(left + [upper[i]], 1) if left else upper[i])
    return jnp.concatenate(rows, 0)
