"""PINN problems: exact solutions solve the PDE and meet the initial/boundary conditions, the
residual operators on planted polynomials, loss = sum of the three MSEs, bad inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from precond.problems.pinn import (
    PDES,
    evaluation_grid,
    exact_solution,
    pde_residual,
    pinn_problem,
)


@pytest.mark.parametrize("pde", PDES)
def test_exact_solution_has_zero_residual_and_meets_conditions(pde):
    problem = pinn_problem(pde)
    (interior, initial, left, right), _ = problem.sample_batch(None)
    u = exact_solution(pde)
    res = jax.vmap(pde_residual(pde, u))(interior)
    scale = {"convection": 40.0, "reaction": 5.0, "wave": 4 * (5 * np.pi) ** 2}[pde]
    assert float(jnp.max(jnp.abs(res))) < 1e-12 * scale
    if pde == "wave":
        np.testing.assert_allclose(u(left), 0.0, atol=1e-12)
        np.testing.assert_allclose(u(right), 0.0, atol=1e-12)
        u_t0 = jax.vmap(jax.grad(lambda p: u(p), argnums=0))(initial)[:, 1]
        np.testing.assert_allclose(u_t0, 0.0, atol=1e-12)
        x = initial[:, 0]
        np.testing.assert_allclose(u(initial), np.sin(np.pi * x) + 0.5 * np.sin(5 * np.pi * x),
                                   atol=1e-12)
    else:
        np.testing.assert_allclose(u(left), u(right), atol=1e-12)  # periodic in x
        x = initial[:, 0]
        u0 = np.sin(x) if pde == "convection" else np.exp(-0.5 * ((x - np.pi) / (np.pi / 4))**2)
        np.testing.assert_allclose(u(initial), u0, atol=1e-14)


def test_residual_operators_on_planted_polynomial():
    u = lambda p: p[0] ** 2 * p[1] + p[1] ** 3  # noqa: E731  u_x = 2xt, u_t = x² + 3t²
    p = jnp.array([0.7, 0.3])
    x, t = 0.7, 0.3
    uval = x**2 * t + t**3
    assert float(pde_residual("convection", u, 2.0)(p)) == pytest.approx(x**2 + 3 * t**2
                                                                        + 2.0 * 2 * x * t)
    assert float(pde_residual("reaction", u, 3.0)(p)) == pytest.approx(
        x**2 + 3 * t**2 - 3.0 * uval * (1 - uval))
    # u_tt = 6t, u_xx = 2t
    assert float(pde_residual("wave", u)(p)) == pytest.approx(6 * t - 4 * 2 * t)


@pytest.mark.parametrize("pde", PDES)
def test_loss_is_sum_of_three_mses(pde):
    problem = pinn_problem(pde, quick=True)
    params = problem.init_params(jax.random.key(1))
    batch = problem.sample_batch(jax.random.key(2))
    terms = problem.loss_terms(params)
    assert len(terms) == 3
    np.testing.assert_allclose(float(problem.loss(params, batch)), float(sum(terms)), rtol=1e-12)
    assert problem.model_fn(params, batch[0]).shape == batch[1].shape
    assert 0 < float(problem.metric(params)) < np.inf


def test_sizes_points_and_metric_grid():
    problem = pinn_problem("convection", width=16, depth=3, num_x=9, num_t=5, num_res=1000)
    (interior, initial, left, right), _ = problem.sample_batch(None)
    assert interior.shape == (7 * 4, 2)  # all interior points when num_res exceeds them
    assert initial.shape == (9, 2) and left.shape == (5, 2) and right.shape == (5, 2)
    assert float(jnp.min(interior[:, 0])) > 0 and float(jnp.max(interior[:, 0])) < 2 * np.pi
    assert float(jnp.min(interior[:, 1])) > 0
    assert problem.num_params() == 2 * 16 + 16 + 2 * (16 * 16 + 16) + 16 + 1
    assert evaluation_grid("wave").shape == (257 * 101, 2)
    sub = pinn_problem("convection", num_x=9, num_t=5, num_res=10)
    assert sub.sample_batch(None)[0][0].shape == (10, 2)


def test_bad_inputs():
    with pytest.raises(ValueError, match="PDE"):
        pinn_problem("heat")
    with pytest.raises(ValueError, match="width"):
        pinn_problem("wave", width=0)
    with pytest.raises(TypeError, match="unknown option"):
        pinn_problem("wave", layers=3)
