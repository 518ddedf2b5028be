"""2-D Poisson PINN: −Δu = f on [0, 1]², u = 0 on the boundary (seed 001 §4.2).

Exact solution u*(x, y) = sin(πx) sin(πy), so f = 2π² sin(πx) sin(πy).  A tanh MLP with two
hidden layers; ``num_interior`` interior and ``num_boundary`` boundary points are drawn afresh
every epoch.  Loss (w_b is ``boundary_weight``):

    L(θ) = ½ mean_i (−Δu_θ(x_i) − f(x_i))² + ½ w_b mean_j u_θ(x_j)²,

written as ½·mean over the stacked, rescaled outputs r = [√(N/N_i)(−Δu_θ(x_i)),
√(w_b N/N_b) u_θ(x_j)] against targets [√(N/N_i) f(x_i), 0] (N = N_i + N_b), so the Gauss–Newton
matrix of ``model_fn`` (J_rᵀJ_r/N) is the PINN's.  Metric: relative L2 error against u* on a
64×64 grid.  At u = u* the loss is zero up to rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.typing import DTypeLike

from precond.validation import default_float

from .base import Problem, check_sizes, mlp_apply, mlp_init, relative_l2

__all__ = ["exact_solution", "forcing", "poisson_outputs", "poisson_problem", "DEFAULT_SIZES",
           "QUICK_SIZES"]

DEFAULT_SIZES = {"width": 32, "num_interior": 1000, "num_boundary": 200, "boundary_weight": 10.0}
QUICK_SIZES = {"width": 16, "num_interior": 256, "num_boundary": 64, "boundary_weight": 10.0}


def exact_solution(p: jax.Array) -> jax.Array:
    """The exact solution u*(x, y) = sin(πx) sin(πy).

    Args:
      p: points (..., 2) as (x, y).
    """
    return jnp.sin(jnp.pi * p[..., 0]) * jnp.sin(jnp.pi * p[..., 1])


def forcing(p: jax.Array) -> jax.Array:
    """The forcing f = −Δu* = 2π² sin(πx) sin(πy).

    Args:
      p: points (..., 2) as (x, y).
    """
    return 2 * jnp.pi**2 * exact_solution(p)


def _laplacian(u_point: Callable, p: jax.Array) -> jax.Array:
    return jnp.trace(jax.hessian(u_point)(p))


def poisson_outputs(u_point: Callable, inputs: tuple[jax.Array, jax.Array],
                    boundary_weight: float) -> jax.Array:
    """The stacked, rescaled outputs r = [√(N/N_i)(−Δu(x_i)), √(w_b N/N_b) u(x_j)].

    Their ½·mean squared distance to :func:`poisson_targets` is the PINN loss, so the
    Gauss–Newton matrix of this map is the PINN's (module docstring).

    Args:
      u_point: the point function u: (2,) → scalar.
      inputs: ``(interior (N_i, 2), boundary (N_b, 2))``.
      boundary_weight: w_b, the weight of the boundary term.

    Returns:
      r of shape (N_i + N_b,).
    """
    interior, boundary = inputs
    ni, nb = interior.shape[0], boundary.shape[0]
    n = ni + nb
    lap = jax.vmap(lambda p: _laplacian(u_point, p))(interior)
    ub = jax.vmap(u_point)(boundary)
    return jnp.concatenate([-jnp.sqrt(n / ni) * lap, jnp.sqrt(boundary_weight * n / nb) * ub])


def poisson_targets(inputs: tuple[jax.Array, jax.Array]) -> jax.Array:
    """The targets [√(N/N_i) f(x_i), 0] matching :func:`poisson_outputs`.

    Args:
      inputs: ``(interior (N_i, 2), boundary (N_b, 2))``.
    """
    interior, boundary = inputs
    ni, nb = interior.shape[0], boundary.shape[0]
    return jnp.concatenate([jnp.sqrt((ni + nb) / ni) * forcing(interior),
                            jnp.zeros((nb,), interior.dtype)])


def sample_boundary(key: jax.Array, n: int, dtype: DTypeLike) -> jax.Array:
    """``n`` points uniformly on the perimeter of the unit square (side chosen uniformly).

    Args:
      key: a ``jax.random`` key.
      n: the number of points.
      dtype: their float dtype.

    Returns:
      Points of shape (n, 2).
    """
    ks, kt = jax.random.split(key)
    side = jax.random.randint(ks, (n,), 0, 4)
    t = jax.random.uniform(kt, (n,), dtype)
    x = jnp.select([side == 0, side == 1, side == 2], [t, jnp.ones_like(t), t], jnp.zeros_like(t))
    y = jnp.select([side == 0, side == 1, side == 2], [jnp.zeros_like(t), t, jnp.ones_like(t)], t)
    return jnp.stack([x, y], axis=-1)


def poisson_problem(*, quick: bool = False, **sizes: float) -> Problem:
    """The Poisson PINN −Δu = f on [0, 1]², u = 0 on the boundary (module docstring).

    Args:
      quick: start from ``QUICK_SIZES`` instead of ``DEFAULT_SIZES``.
      **sizes: single sizes to override: ``width`` (hidden units per layer),
        ``num_interior`` (N_i) and ``num_boundary`` (N_b) points drawn per epoch,
        ``boundary_weight`` (w_b).

    Returns:
      A :class:`~precond.problems.base.Problem` in the default float (float64 iff x64 is on).
    """
    s = check_sizes(sizes, QUICK_SIZES if quick else DEFAULT_SIZES, "poisson")
    widths = (2, s["width"], s["width"], 1)
    ni, nb, wb = s["num_interior"], s["num_boundary"], float(s["boundary_weight"])

    def network(params, pts):
        return mlp_apply(params, pts)[..., 0]

    def model_fn(params, inputs):
        return poisson_outputs(lambda p: mlp_apply(params, p)[0], inputs, wb)

    def sample_batch(key):
        ki, kb = jax.random.split(key)
        dtype = default_float()
        inputs = (jax.random.uniform(ki, (ni, 2), dtype), sample_boundary(kb, nb, dtype))
        return inputs, poisson_targets(inputs)

    g = jnp.linspace(0.0, 1.0, 64)
    X, Y = jnp.meshgrid(g, g)
    grid = jnp.stack([X.ravel(), Y.ravel()], axis=-1)

    def metric(params):
        return relative_l2(network(params, grid), exact_solution(grid))

    return Problem("poisson", lambda key: mlp_init(key, widths), network, model_fn, sample_batch,
                   metric, "relative L2 error vs u* = sin(πx)sin(πy)", s)
