"""Green's function of −εu'' + u' on (0, 1) with zero Dirichlet conditions (seeds 000/001).

G(x, y) solves −ε ∂²ₓG + ∂ₓG = δ(x − y), G(0, y) = G(1, y) = 0.  Training replaces δ by the narrow
Gaussian δ_σ(z) = exp(−z²/2σ²)/(√(2π)σ) (σ is ``delta_width``) and fits a tanh MLP with five hidden
layers on (x, y) pairs drawn afresh every epoch: ``num_uniform`` uniform pairs and
``num_diagonal`` near-diagonal pairs (x = y + 2σ·N(0,1), clipped to [0, 1]) for the residual, and
``num_boundary`` pairs with x ∈ {0, 1}.  Loss, with w_b = ``boundary_weight``:

    L(θ) = ½ mean_residual (−ε∂²ₓG_θ + ∂ₓG_θ − δ_σ(x − y))² + ½ w_b mean_boundary G_θ²,

stacked and rescaled as in :mod:`precond.problems.poisson` so ``model_fn``'s Gauss–Newton matrix
is the PINN's.  Metric: relative L2 error against the exact G on a 64×64 grid.

``green-diffusion`` is ε = 1, ``green-convection`` ε = 0.1 (seed 000's −0.1u'' + 1.0u').
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from precond.validation import check_positive, default_float

from .base import Problem, check_sizes, mlp_apply, mlp_init, relative_l2

__all__ = ["exact_green", "green_outputs", "green_problem", "DEFAULT_SIZES", "QUICK_SIZES"]

DEFAULT_SIZES = {"width": 32, "num_uniform": 1000, "num_diagonal": 500, "num_boundary": 200,
                 "delta_width": 0.02, "boundary_weight": 10.0}
QUICK_SIZES = {"width": 16, "num_uniform": 256, "num_diagonal": 128, "num_boundary": 64,
               "delta_width": 0.05, "boundary_weight": 10.0}
DEPTH = 5  # hidden layers, as in seed 001 App. D.5


def exact_green(x: jax.Array, y: jax.Array, eps: float) -> jax.Array:
    """Exact G(x, y) of −εu'' + u' with G(0, y) = G(1, y) = 0, evaluated stably for small ε.

    x < y: G = (e^{−y/ε} − e^{−1/ε})(e^{x/ε} − 1)/(1 − e^{−1/ε}), expanded so that every
    exponent is ≤ 0: (e^{(x−y)/ε} − e^{(x−1)/ε} − e^{−y/ε} + e^{−1/ε}) / (1 − e^{−1/ε});
    x ≥ y: G = (1 − e^{−y/ε})(1 − e^{(x−1)/ε})/(1 − e^{−1/ε}) (exponents already ≤ 0).
    The denominator is −expm1(−1/ε).  No overflow for any ε > 0.

    Args:
      x: evaluation points in [0, 1], any shape broadcastable with ``y``.
      y: source points in [0, 1].
      eps: the diffusion coefficient ε > 0.
    """
    x, y = jnp.asarray(x), jnp.asarray(y)
    den = -jnp.expm1(-1.0 / eps)
    lo = jnp.minimum(x - y, 0.0)  # guards the unused branch against overflow
    below = (jnp.exp(lo / eps) - jnp.exp((jnp.minimum(x, 1.0) - 1) / eps) - jnp.exp(-y / eps)
             + jnp.exp(-1.0 / eps)) / den
    above = -jnp.expm1(-y / eps) * -jnp.expm1((jnp.minimum(x, 1.0) - 1) / eps) / den
    return jnp.where(x < y, below, above)


def smoothed_delta(z: jax.Array, width: float) -> jax.Array:
    """The Gaussian δ_σ(z) = exp(−z²/2σ²)/(√(2π)σ) that stands in for δ(z) in training.

    Args:
      z: offsets x − y, any shape.
      width: σ > 0.
    """
    return jnp.exp(-0.5 * (z / width) ** 2) / (jnp.sqrt(2 * jnp.pi) * width)


def green_outputs(g_pair: Callable, inputs: tuple[jax.Array, jax.Array], eps: float,
                  boundary_weight: float) -> jax.Array:
    """The stacked, rescaled outputs [√(N/N_r)(−εG_xx + G_x), √(w_b N/N_b) G].

    Their ½·mean squared distance to :func:`green_targets` is the training loss (module
    docstring), so the Gauss–Newton matrix of this map is the PINN's.

    Args:
      g_pair: the pair function G: (2,) → scalar of (x, y).
      inputs: ``(residual pairs (N_r, 2), boundary pairs (N_b, 2))``, pairs as (x, y).
      eps: the diffusion coefficient ε.
      boundary_weight: w_b, the weight of the boundary term.

    Returns:
      Outputs of shape (N_r + N_b,).
    """
    res_pts, bnd_pts = inputs
    nr, nb = res_pts.shape[0], bnd_pts.shape[0]
    n = nr + nb

    def operator(p):
        gx = lambda q: jax.grad(g_pair)(q)[0]  # noqa: E731
        return -eps * jax.grad(gx)(p)[0] + gx(p)

    r = jax.vmap(operator)(res_pts)
    gb = jax.vmap(g_pair)(bnd_pts)
    return jnp.concatenate([jnp.sqrt(n / nr) * r, jnp.sqrt(boundary_weight * n / nb) * gb])


def green_targets(inputs: tuple[jax.Array, jax.Array], width: float) -> jax.Array:
    """The targets [√(N/N_r) δ_σ(x − y), 0] matching :func:`green_outputs`.

    Args:
      inputs: ``(residual pairs (N_r, 2), boundary pairs (N_b, 2))``.
      width: σ of the smoothed delta.
    """
    res_pts, bnd_pts = inputs
    nr, nb = res_pts.shape[0], bnd_pts.shape[0]
    rhs = smoothed_delta(res_pts[:, 0] - res_pts[:, 1], width)
    return jnp.concatenate([jnp.sqrt((nr + nb) / nr) * rhs, jnp.zeros((nb,), res_pts.dtype)])


def green_problem(eps: float, *, quick: bool = False, name: str | None = None,
                  **sizes: float) -> Problem:
    """Learn the Green's function G(x, y) of −εu'' + u' with a five-hidden-layer tanh MLP.

    Args:
      eps: the diffusion coefficient ε > 0 (1 for ``green-diffusion``, 0.1 for
        ``green-convection``).
      quick: start from ``QUICK_SIZES`` instead of ``DEFAULT_SIZES``.
      name: the problem's name (default ``green(eps=…)``).
      **sizes: single sizes to override: ``width``, ``num_uniform``, ``num_diagonal``,
        ``num_boundary`` (pairs drawn per epoch), ``delta_width`` (σ), ``boundary_weight`` (w_b).

    Returns:
      A :class:`~precond.problems.base.Problem` in the default float (float64 iff x64 is on).
    """
    eps = check_positive(eps, "eps")
    name = name or f"green(eps={eps:g})"
    s = check_sizes(sizes, QUICK_SIZES if quick else DEFAULT_SIZES, name)
    s["eps"] = float(eps)
    widths = (2,) + (s["width"],) * DEPTH + (1,)
    nu, nd, nb = s["num_uniform"], s["num_diagonal"], s["num_boundary"]
    width, wb = float(s["delta_width"]), float(s["boundary_weight"])

    def network(params, pts):
        return mlp_apply(params, pts)[..., 0]

    def model_fn(params, inputs):
        return green_outputs(lambda p: mlp_apply(params, p)[0], inputs, eps, wb)

    def sample_batch(key):
        ku, kd, kdy, kb, kby = jax.random.split(key, 5)
        dtype = default_float()
        uni = jax.random.uniform(ku, (nu, 2), dtype)
        yd = jax.random.uniform(kdy, (nd,), dtype)
        xd = jnp.clip(yd + 2 * width * jax.random.normal(kd, (nd,), dtype), 0.0, 1.0)
        res = jnp.concatenate([uni, jnp.stack([xd, yd], axis=-1)])
        xb = jax.random.bernoulli(kb, 0.5, (nb,)).astype(dtype)
        bnd = jnp.stack([xb, jax.random.uniform(kby, (nb,), dtype)], axis=-1)
        inputs = (res, bnd)
        return inputs, green_targets(inputs, width)

    g = jnp.linspace(0.0, 1.0, 64)
    X, Y = jnp.meshgrid(g, g)
    grid = jnp.stack([X.ravel(), Y.ravel()], axis=-1)
    exact = exact_green(grid[:, 0], grid[:, 1], eps)

    def metric(params):
        return relative_l2(network(params, grid), exact)

    return Problem(name, lambda key: mlp_init(key, widths), network, model_fn, sample_batch,
                   metric, "relative L2 error vs the exact Green's function", s)
