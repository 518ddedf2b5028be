"""Issue 19 regressions for the diagnostics: one meaning for lists, symmetric H, NaN scalars."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from precond.diagnostics import local_conditioning, noise_level, spectral_densities


def test_noise_level_list_of_6_gradients_is_B_6():
    """A Python list of 6 gradients of size 5 is B = 6 samples (it was read as B = 5)."""
    rng = np.random.default_rng(0)
    G = rng.standard_normal((6, 5))
    as_list = noise_level([g for g in G])
    assert as_list.num_samples == 6
    assert as_list.K == pytest.approx(noise_level(G).K, rel=1e-12)
    # a list of pytree gradients: one sample per element too
    trees = [{"a": g[:2], "b": g[2:]} for g in G]
    assert noise_level(trees).K == pytest.approx(noise_level(G).K, rel=1e-12)
    with pytest.raises(ValueError, match="same size"):
        noise_level([G[0], G[1][:3]])


def test_local_conditioning_non_symmetric_H_raises():
    """A non-symmetric H returned L̂ = 20.05 (true 12.8) and blamed indefiniteness."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((6, 6))
    H = A @ A.T + np.triu(rng.standard_normal((6, 6)), 1) * 5.0
    with pytest.raises(ValueError, match="not symmetric"):
        local_conditioning(H, key=jax.random.key(0))
    # (symmetric H pass the probe: every other local_conditioning test)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_nan_scalars_in_diagnostics_are_value_errors(bad):
    H = jnp.eye(3)
    with pytest.raises(ValueError, match="tol"):
        local_conditioning(H, key=jax.random.key(0), tol=bad)
    with pytest.raises(ValueError, match="pl_rtol"):
        local_conditioning(H, key=jax.random.key(0), pl_rtol=bad)
    with pytest.raises(ValueError, match="sigma"):
        spectral_densities(H, H, jax.random.key(0), sigma=bad)


def test_noise_level_with_zero_samples_is_a_value_error():
    """A (0, n) array divided by zero inside jnp.reshape (ZeroDivisionError)."""
    with pytest.raises(ValueError, match="no samples"):
        noise_level(np.ones((0, 5)))
