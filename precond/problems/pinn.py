"""PINN benchmarks of NNCG: convection, reaction and wave in one space and one time dimension.

Set-up of Rathore, Lei, Frangella, Lu and Udell (ICML 2024), following Krishnapriyan et al.
(NeurIPS 2021); points are (x, t):

* convection  u_t + βu_x = 0 on x ∈ [0, 2π], t ∈ [0, 1] (β = ``beta`` = 40); u(x, 0) = sin x;
  periodic u(0, t) = u(2π, t); exact u = sin(x − βt).
* reaction    u_t − ρu(1 − u) = 0 on the same domain (ρ = ``rho`` = 5);
  u(x, 0) = h(x) = exp(−(x − π)²/(2(π/4)²)); periodic; exact u = h e^{ρt}/(h e^{ρt} + 1 − h).
* wave        u_tt − 4u_xx = 0 on x, t ∈ [0, 1] (β = ``beta`` = 5);
  u(x, 0) = sin(πx) + ½ sin(βπx), u_t(x, 0) = 0, u(0, t) = u(1, t) = 0;
  exact u = sin(πx) cos(2πt) + ½ sin(βπx) cos(2βπt).

Points: an ``num_x`` × ``num_t`` grid (paper 257 × 101); residual points are the interior grid
points (x strictly inside, t > 0), all of them or ``num_res`` drawn once (paper 10,000); initial
points are the grid's t = 0 row, boundary points its x-end columns.  Loss = MSE(residual) +
MSE(boundary) + MSE(initial) (the wave's boundary and initial terms are each sums of two MSEs),
exactly as the paper; it is written as ``Problem.loss`` = ½ mean over stacked outputs, each group
k scaled by √(2N/N_k) (N all outputs).  Model: tanh MLP, ``depth`` hidden layers (paper 3) of
``width`` (paper 200), Xavier-normal weights, zero biases.  Metric: relative L2 error against
the exact solution on the full 257 × 101 grid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from precond.validation import check_int, check_real, default_float

from .base import Problem, check_sizes, mlp_apply, mlp_init, relative_l2

__all__ = ["PDES", "PINNProblem", "evaluation_grid", "PAPER_SIZES", "QUICK_SIZES",
           "REDUCED_SIZES", "exact_solution", "pde_residual", "pinn_problem"]

PDES = ("convection", "reaction", "wave")
PAPER_SIZES = {"width": 200, "depth": 3, "num_x": 257, "num_t": 101, "num_res": 10000}
REDUCED_SIZES = {"width": 32, "depth": 3, "num_x": 65, "num_t": 33, "num_res": 1000}
QUICK_SIZES = {"width": 8, "depth": 2, "num_x": 17, "num_t": 9, "num_res": 64}
DEFAULT_COEFFICIENT = {"convection": 40.0, "reaction": 5.0, "wave": 5.0}
_DOMAIN = {"convection": (2 * np.pi, 1.0), "reaction": (2 * np.pi, 1.0), "wave": (1.0, 1.0)}
_TEST_GRID = (257, 101)


@dataclass(frozen=True)
class PINNProblem(Problem):
    """A :class:`Problem` that also knows its PDE and its loss terms.

    Attributes:
      loss_terms: ``loss_terms(θ) -> (residual, boundary, initial)``, the three mean squared
        errors at the (fixed) training points; their sum is ``loss``.
      pde: one of ``PDES``.
    """

    loss_terms: Callable | None = None
    pde: str = ""


def _h(x):
    return jnp.exp(-0.5 * ((x - jnp.pi) / (jnp.pi / 4)) ** 2)


def exact_solution(pde: str, coef: float | None = None) -> Callable[[jax.Array], jax.Array]:
    """The exact solution u* of ``pde`` as a function of points p (..., 2) = (x, t).

    Args:
      pde: one of ``PDES``.
      coef: β (convection, wave) or ρ (reaction); default ``DEFAULT_COEFFICIENT[pde]``.

    Example:
      >>> import jax.numpy as jnp
      >>> from precond.problems.pinn import exact_solution
      >>> u = exact_solution("convection")  # sin(x − 40t)
      >>> float(u(jnp.array([jnp.pi / 2, 0.0])))
      1.0
    """
    c = DEFAULT_COEFFICIENT[_check_pde(pde)] if coef is None else coef
    if pde == "convection":
        return lambda p: jnp.sin(p[..., 0] - c * p[..., 1])
    if pde == "reaction":
        def u(p):
            h, e = _h(p[..., 0]), jnp.exp(c * p[..., 1])
            return h * e / (h * e + 1 - h)
        return u
    return lambda p: (jnp.sin(jnp.pi * p[..., 0]) * jnp.cos(2 * jnp.pi * p[..., 1])
                      + 0.5 * jnp.sin(c * jnp.pi * p[..., 0]) * jnp.cos(2 * c * jnp.pi * p[..., 1]))


def _d(u_point: Callable, i: int) -> Callable:
    """∂u/∂p_i by forward mode."""
    def du(p):
        return jax.jvp(u_point, (p,), (jnp.zeros_like(p).at[i].set(1.0),))[1]
    return du


def pde_residual(pde: str, u_point: Callable, coef: float | None = None) -> Callable:
    """The residual operator r(p) of ``pde`` applied to a point function u (module docstring).

    Args:
      pde: one of ``PDES``.
      u_point: u: (2,) → scalar of p = (x, t).
      coef: β (convection, wave) or ρ (reaction); default ``DEFAULT_COEFFICIENT[pde]``.

    Returns:
      r: (2,) → scalar, zero where u solves the PDE.
    """
    c = DEFAULT_COEFFICIENT[_check_pde(pde)] if coef is None else coef
    if pde == "convection":
        return lambda p: _d(u_point, 1)(p) + c * _d(u_point, 0)(p)
    if pde == "reaction":
        return lambda p: _d(u_point, 1)(p) - c * u_point(p) * (1 - u_point(p))
    return lambda p: _d(_d(u_point, 1), 1)(p) - 4.0 * _d(_d(u_point, 0), 0)(p)


def _points(pde: str, num_x: int, num_t: int, num_res: int, key: jax.Array, dtype):
    X, T = _DOMAIN[pde]
    x = jnp.linspace(0.0, X, num_x, dtype=dtype)
    t = jnp.linspace(0.0, T, num_t, dtype=dtype)
    xm, tm = jnp.meshgrid(x[1:-1], t[1:])
    interior = jnp.stack([xm.ravel(), tm.ravel()], axis=-1)
    if num_res < interior.shape[0]:
        idx = jax.random.choice(key, interior.shape[0], (num_res,), replace=False)
        interior = interior[idx]
    initial = jnp.stack([x, jnp.zeros_like(x)], axis=-1)
    left = jnp.stack([jnp.zeros_like(t), t], axis=-1)
    right = jnp.stack([jnp.full_like(t, X), t], axis=-1)
    return interior, initial, left, right


def evaluation_grid(pde: str, dtype: DTypeLike | None = None) -> jax.Array:
    """The paper's full 257 × 101 grid of ``pde``'s domain, where the relative L2 error is measured.

    Args:
      pde: one of ``PDES``.
      dtype: the grid's float dtype; default the default float (float64 iff x64 is on).

    Returns:
      Points of shape (257 · 101, 2) as (x, t).
    """
    X, T = _DOMAIN[_check_pde(pde)]
    dtype = default_float() if dtype is None else dtype
    xm, tm = jnp.meshgrid(jnp.linspace(0.0, X, _TEST_GRID[0], dtype=dtype),
                          jnp.linspace(0.0, T, _TEST_GRID[1], dtype=dtype))
    return jnp.stack([xm.ravel(), tm.ravel()], axis=-1)


def pinn_problem(pde: str, *, quick: bool = False, coef: float | None = None, seed: int = 0,
                 **sizes: int) -> PINNProblem:
    """The PINN problem ``pde`` at reduced (default), ``quick`` or any sizes.

    The training points are fixed (drawn once from ``seed``), as in the paper, so
    ``sample_batch`` ignores its key.

    Args:
      pde: one of ``PDES``.
      quick: start from ``QUICK_SIZES`` instead of ``REDUCED_SIZES``.
      coef: β (convection, wave) or ρ (reaction); default ``DEFAULT_COEFFICIENT[pde]``.
      seed: the seed that draws the ``num_res`` residual points from the interior grid.
      **sizes: single sizes to override: ``width``, ``depth`` (hidden layers), ``num_x`` and
        ``num_t`` (the grid), ``num_res``; the paper's are ``PAPER_SIZES``.

    Returns:
      A :class:`PINNProblem` in the default float (float64 iff x64 is on).
    """
    pde = _check_pde(pde)
    s = check_sizes(sizes, QUICK_SIZES if quick else REDUCED_SIZES, f"pinn-{pde}")
    c = check_real(DEFAULT_COEFFICIENT[pde] if coef is None else coef, "coef")
    seed = check_int(seed, "seed")
    dtype = default_float()
    widths = (2,) + (s["width"],) * s["depth"] + (1,)
    interior, initial, left, right = _points(pde, s["num_x"], s["num_t"], s["num_res"],
                                             jax.random.key(seed), dtype)
    inputs = (interior, initial, left, right)
    u0 = exact_solution(pde, c)(initial)

    def network(params, pts):
        return mlp_apply(params, pts)[..., 0]

    def groups(params, inputs):
        """(residuals, initial errors, boundary errors) as lists of arrays, one per MSE."""
        interior, initial, left, right = inputs
        u = lambda p: mlp_apply(params, p)[0]  # noqa: E731
        res = jax.vmap(pde_residual(pde, u, c))(interior)
        u_init = jax.vmap(u)(initial)
        if pde == "wave":
            ic = [u_init - u0, jax.vmap(_d(u, 1))(initial)]
            bc = [jax.vmap(u)(left), jax.vmap(u)(right)]
        else:
            ic = [u_init - u0]
            bc = [jax.vmap(u)(left) - jax.vmap(u)(right)]
        return [res], ic, bc

    def model_fn(params, inputs):
        parts = [a for grp in groups(params, inputs) for a in grp]
        n = sum(a.shape[0] for a in parts)
        return jnp.concatenate([jnp.sqrt(2.0 * n / a.shape[0]) * a for a in parts])

    def sample_batch(key):
        del key  # the points are fixed, as in the paper
        n = model_fn_size
        return inputs, jnp.zeros((n,), dtype)

    model_fn_size = interior.shape[0] + initial.shape[0] * (2 if pde == "wave" else 1) \
        + left.shape[0] * (2 if pde == "wave" else 1)
    grid = evaluation_grid(pde, dtype)
    exact = exact_solution(pde, c)(grid)

    def metric(params):
        return relative_l2(network(params, grid), exact)

    def loss_terms(params):
        """(residual, boundary, initial) MSEs at the training points."""
        res, ic, bc = groups(params, inputs)
        mse = lambda grp: sum(jnp.mean(a**2) for a in grp)  # noqa: E731
        return mse(res), mse(bc), mse(ic)

    return PINNProblem(f"pinn-{pde}", lambda key: mlp_init(key, widths), network, model_fn,
                       sample_batch, metric, "relative L2 error vs the exact solution "
                       "(257 × 101 grid)", {**s, "coef": c}, loss_terms=loss_terms, pde=pde)


def _check_pde(pde: str) -> str:
    if pde not in PDES:
        raise ValueError(f"unknown PDE {pde!r}; choose from {PDES}")
    return pde
