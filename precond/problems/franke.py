"""Noisy Franke surface regression on [0, 1]² (seed 001 §4.2).

f(x, y) = ¾e^{−((9x−2)²+(9y−2)²)/4} + ¾e^{−(9x+1)²/49 − (9y+1)/10}
        + ½e^{−((9x−7)²+(9y−3)²)/4} − ⅕e^{−(9x−4)²−(9y−7)²},
observed as f + σε, ε ~ N(0, 1), at ``num_points`` uniform points drawn afresh every epoch;
an MLP with two hidden ReLU layers, loss ½·mean (u_θ − y)².  At the exact surface the expected
loss is σ²/2 (the noise), not zero.  Metric: relative L2 error of u_θ against f on a 64×64 grid.

References: R. Franke, "A critical comparison of some methods for interpolation of scattered
data", 1979.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from precond.validation import default_float

from .base import Problem, check_sizes, mlp_apply, mlp_init, relative_l2

__all__ = ["franke_function", "franke_problem", "DEFAULT_SIZES", "QUICK_SIZES"]

DEFAULT_SIZES = {"width": 64, "num_points": 1024, "noise": 0.1}
QUICK_SIZES = {"width": 16, "num_points": 256, "noise": 0.1}


def franke_function(x: jax.Array, y: jax.Array) -> jax.Array:
    """Franke's test surface f(x, y) on [0, 1]² (module docstring).

    Args:
      x, y: coordinates, arrays of one (broadcastable) shape.
    """
    return (0.75 * jnp.exp(-((9 * x - 2) ** 2 + (9 * y - 2) ** 2) / 4)
            + 0.75 * jnp.exp(-((9 * x + 1) ** 2) / 49 - (9 * y + 1) / 10)
            + 0.5 * jnp.exp(-((9 * x - 7) ** 2 + (9 * y - 3) ** 2) / 4)
            - 0.2 * jnp.exp(-((9 * x - 4) ** 2) - (9 * y - 7) ** 2))


def franke_problem(*, quick: bool = False, **sizes: float) -> Problem:
    """Noisy Franke regression y = f(x) + σε with a two-hidden-layer ReLU MLP.

    Args:
      quick: start from ``QUICK_SIZES`` (smaller net and data) instead of ``DEFAULT_SIZES``.
      **sizes: single sizes to override: ``width`` (hidden units per layer), ``num_points``
        (points drawn per epoch), ``noise`` (σ).

    Returns:
      A :class:`~precond.problems.base.Problem` in the default float (float64 iff x64 is on).

    Example:
      >>> import jax
      >>> from precond.problems.franke import franke_problem
      >>> p = franke_problem(quick=True, width=4, num_points=32)
      >>> p.num_params()  # 2·4 + 4, 4·4 + 4, 4·1 + 1
      37
      >>> inputs, targets = p.sample_batch(jax.random.key(0))
      >>> inputs.shape, targets.shape
      ((32, 2), (32,))
    """
    s = check_sizes(sizes, QUICK_SIZES if quick else DEFAULT_SIZES, "franke")
    width, n, sigma = s["width"], s["num_points"], float(s["noise"])
    widths = (2, width, width, 1)

    def network(params, pts):
        return mlp_apply(params, pts, jax.nn.relu)[..., 0]

    def model_fn(params, inputs):
        return network(params, inputs)

    def sample_batch(key):
        kx, ke = jax.random.split(key)
        pts = jax.random.uniform(kx, (n, 2), default_float())
        y = franke_function(pts[:, 0], pts[:, 1]) + sigma * jax.random.normal(ke, (n,), pts.dtype)
        return pts, y

    g = jnp.linspace(0.0, 1.0, 64)
    X, Y = jnp.meshgrid(g, g)
    grid = jnp.stack([X.ravel(), Y.ravel()], axis=-1)

    def metric(params):
        return relative_l2(network(params, grid.astype(jax.tree.leaves(params)[0].dtype)),
                           franke_function(grid[:, 0], grid[:, 1]))

    return Problem("franke", lambda key: mlp_init(key, widths), network, model_fn, sample_batch,
                   metric, "relative L2 error vs the noise-free Franke surface", s)
