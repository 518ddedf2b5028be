"""SciML benchmark problems: losses vanish at exact solutions, exact Green's function is right."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from precond.problems.franke import franke_function
from precond.problems.green import exact_green, green_outputs, green_problem
from precond.problems.poisson import exact_solution, poisson_outputs
from precond.problems.registry import PROBLEMS, get_problem

TINY = {"franke": {"width": 4, "num_points": 32},
        "poisson": {"width": 4, "num_interior": 16, "num_boundary": 8},
        "green-diffusion": {"width": 4, "num_uniform": 16, "num_diagonal": 8, "num_boundary": 8},
        "green-convection": {"width": 4, "num_uniform": 16, "num_diagonal": 8,
                             "num_boundary": 8}}


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_problem_runs_and_is_float64(name):
    p = get_problem(name, quick=True, **TINY[name])
    params = p.init_params(jax.random.key(0))
    batch = p.sample_batch(jax.random.key(1))
    loss = jax.jit(p.loss)(params, batch)
    assert loss.dtype == jnp.float64 and np.isfinite(loss) and loss > 0
    g = jax.jit(jax.grad(p.loss))(params, batch)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(g))
    # fresh sample per key, same sample for the same key
    b2 = p.sample_batch(jax.random.key(2))
    assert not np.allclose(jax.tree.leaves(batch)[0], jax.tree.leaves(b2)[0])
    np.testing.assert_array_equal(jax.tree.leaves(batch)[0],
                                  jax.tree.leaves(p.sample_batch(jax.random.key(1)))[0])
    assert p.metric is not None and np.isfinite(jax.jit(p.metric)(params))
    assert p.num_params() == sum(x.size for x in jax.tree.leaves(params))


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="width"):
        get_problem("poisson", width=0)
    with pytest.raises(TypeError, match="unknown option num_interior; valid options: noise"):
        get_problem("franke", num_interior=3)
    with pytest.raises(TypeError, match="width must be an int"):
        get_problem("franke", width=2.5)
    with pytest.raises(ValueError, match="noise must be a finite number > 0"):
        get_problem("franke", noise=float("nan"))
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        green_problem(0.0)
    with pytest.raises(ValueError, match="unknown problem"):
        get_problem("heat")


def test_poisson_loss_zero_at_exact_solution():
    p = get_problem("poisson", width=4, num_interior=64, num_boundary=32)
    inputs, targets = p.sample_batch(jax.random.key(3))
    out = jax.jit(lambda i: poisson_outputs(exact_solution, i, p.sizes["boundary_weight"]))(inputs)
    loss_exact = 0.5 * jnp.mean((out - targets) ** 2)
    assert loss_exact < 1e-20
    params = p.init_params(jax.random.key(0))
    assert jax.jit(p.loss)(params, (inputs, targets)) > 1.0  # an untrained net is far from it


def test_franke_loss_at_exact_surface_is_noise_floor():
    sigma = 0.1
    p = get_problem("franke", num_points=20000, noise=sigma)
    pts, y = p.sample_batch(jax.random.key(4))
    loss = 0.5 * jnp.mean((franke_function(pts[:, 0], pts[:, 1]) - y) ** 2)
    assert abs(loss / (0.5 * sigma**2) - 1) < 0.05  # σ²/2 within sampling error (≈2%)


def _fd_green(eps, y, n=4000):
    """Finite-difference solve of −εu'' + u' = δ(x−y), u(0) = u(1) = 0 (upwind-free central)."""
    h = 1.0 / n
    x = np.linspace(0, 1, n + 1)[1:-1]
    main = 2 * eps / h**2 * np.ones(n - 1)
    lo = (-eps / h**2 - 1 / (2 * h)) * np.ones(n - 2)
    up = (-eps / h**2 + 1 / (2 * h)) * np.ones(n - 2)
    A = np.diag(main) + np.diag(lo, -1) + np.diag(up, 1)
    b = np.zeros(n - 1)
    b[int(round(y * n)) - 1] = 1 / h
    return x, np.linalg.solve(A, b)


@pytest.mark.parametrize("eps", [1.0, 0.1])
def test_exact_green_matches_finite_differences(eps):
    for y in (0.25, 0.6):
        x, u = _fd_green(eps, y)
        G = np.asarray(exact_green(jnp.asarray(x), y, eps))
        assert np.max(np.abs(G - u)) / np.max(np.abs(u)) < 1e-3


def test_exact_green_stable_for_small_eps_and_satisfies_bcs():
    y = jnp.linspace(0.01, 0.99, 50)
    for eps in (1.0, 0.1, 1e-3):
        G = exact_green(jnp.linspace(0, 1, 50)[:, None], y[None, :], eps)
        assert np.all(np.isfinite(G))
        np.testing.assert_allclose(exact_green(0.0, y, eps), 0, atol=1e-14)
        np.testing.assert_allclose(exact_green(1.0, y, eps), 0, atol=1e-14)
    # jump condition −ε[G_x] = 1 across x = y
    eps, y0, d = 0.1, 0.4, 1e-6
    gx = jax.grad(lambda x: exact_green(x, y0, eps))
    jump = -eps * (gx(y0 + d) - gx(y0 - d))
    assert abs(jump - 1) < 1e-4


@pytest.mark.parametrize("name", ["green-diffusion", "green-convection"])
def test_green_residual_zero_at_exact_away_from_diagonal(name):
    p = get_problem(name, width=4, num_uniform=64, num_diagonal=16, num_boundary=16)
    eps = p.sizes["eps"]
    (res, bnd), targets = p.sample_batch(jax.random.key(5))
    far = np.abs(np.asarray(res[:, 0] - res[:, 1])) > 10 * p.sizes["delta_width"]
    res = res[far]
    g = lambda q: exact_green(q[0], q[1], eps)  # noqa: E731
    out = jax.jit(lambda r, b: green_outputs(g, (r, b), eps, p.sizes["boundary_weight"]))(res, bnd)
    # δ_σ is < 1e-20 this far from the diagonal, so the residual should vanish
    assert np.max(np.abs(out)) < 1e-8
