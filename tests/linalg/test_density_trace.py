"""Spectral density by SLQ, and stochastic trace estimators, against dense references."""

import jax
import numpy as np
import pytest

from precond.linalg import Status, hutchinson_trace, hutchpp, hutchpp_trace, spectral_density


def _sym(eigs, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((len(eigs), len(eigs))))
    return (Q * eigs) @ Q.T


EIGS3 = np.repeat([1.0, 5.0, 10.0], [30, 20, 10])  # n = 60, multiplicities 1/2, 1/3, 1/6


def test_density_integrates_to_one_and_sits_on_the_eigenvalues():
    A = _sym(EIGS3, 1)
    sd = spectral_density(A, jax.random.key(0), num_probes=40, num_steps=10)
    assert abs(sd.integral() - 1.0) < 1e-3
    nodes, w = np.asarray(sd.nodes), np.asarray(sd.weights)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-10)  # each probe's weights sum to 1
    for lam, frac in ((1.0, 0.5), (5.0, 1 / 3), (10.0, 1 / 6)):
        mass = w[np.abs(nodes - lam) < 1e-6].sum() / 40
        assert abs(mass - frac) < 0.08, (lam, mass, frac)  # ≈ 4 standard errors
    # essentially no mass away from the eigenvalues
    far = np.min(np.abs(nodes[..., None] - np.array([1.0, 5.0, 10.0])), axis=-1) > 1e-6
    assert w[far].sum() / 40 < 1e-8
    # the smoothed density peaks at the eigenvalues
    grid, dens = np.asarray(sd.grid), np.asarray(sd.density)
    assert abs(grid[np.argmax(dens)] - 1.0) < 0.2
    for lam in (5.0, 10.0):
        near = np.abs(grid - lam) < 0.2
        assert dens[near].max() > 20 * dens[np.abs(grid - 7.5) < 0.2].max()


def test_log_density_for_many_decades():
    eigs = np.concatenate([np.full(20, 1e-6), np.full(20, 1e-2), np.full(20, 1e2)])
    A = _sym(eigs, 2)
    sd = spectral_density(A, jax.random.key(1), num_probes=40, num_steps=10, log=True)
    assert sd.log
    assert abs(sd.integral() - 1.0) < 1e-3
    grid, dens = np.asarray(sd.grid), np.asarray(sd.density)
    for e, gap in ((-6.0, -4.0), (-2.0, 0.0), (2.0, 0.0)):  # peaks at the eigenvalues' decades
        assert dens[np.abs(grid - e) < 0.1].max() > 20 * dens[np.abs(grid - gap) < 0.1].max()


def test_density_bad_arguments():
    A = np.eye(5)
    with pytest.raises(ValueError, match="num_probes"):
        spectral_density(A, jax.random.key(0), num_probes=0, num_steps=3)
    with pytest.raises(ValueError, match="num_steps"):
        spectral_density(A, jax.random.key(0), num_steps=6)
    B = _sym(EIGS3, 1)  # same shapes as the tests above: no new compilation
    with pytest.raises(ValueError, match="sigma"):
        spectral_density(B, jax.random.key(0), num_probes=40, num_steps=10, sigma=-1.0)
    with pytest.raises(ValueError, match="positive"):
        spectral_density(-B, jax.random.key(0), num_probes=40, num_steps=10, log=True)


def test_hutchinson_within_its_standard_error():
    A = _sym(np.linspace(-1.0, 5.0, 80), 3)
    A += 0.5 * np.ones((80, 80))  # off-diagonal mass: Hutchinson's variance 2(‖A‖_F² − Σ A_ii²)
    true = np.trace(A)
    m = 60
    sd_theory = np.sqrt(2 * (np.sum(A**2) - np.sum(np.diag(A) ** 2)) / m)
    z = []
    for seed in range(12):
        est = hutchinson_trace(A, jax.random.key(seed), num_probes=m)
        assert est.num_matvecs == m and est.check().status == Status.SUCCESS
        z.append((float(est.value) - true) / float(est.stderr))
        assert 0.5 * sd_theory < float(est.stderr) < 2 * sd_theory
    z = np.array(z)
    assert np.all(np.abs(z) < 4.5), z
    assert np.mean(z**2) < 3.0, z  # ≈ 1 for an honest standard error


def test_hutchpp_beats_hutchinson_on_decaying_spectrum():
    eigs = np.arange(1, 101, dtype=float) ** -1.5
    A = _sym(eigs, 4)
    true = eigs.sum()
    err_h, err_pp = [], []
    for seed in range(8):
        pp = hutchpp_trace(A, jax.random.key(seed), num_matvecs=30)
        h = hutchinson_trace(A, jax.random.key(seed), num_probes=30)
        assert pp.num_matvecs == 30
        err_pp.append(abs(float(pp.value) - true))
        err_h.append(abs(float(h.value) - true))
        assert err_pp[-1] <= 5 * float(pp.stderr) + 1e-12 * true
    assert np.mean(err_pp) < 0.5 * np.mean(err_h)
    assert np.mean(err_pp) < 0.05 * true
    assert hutchpp is hutchpp_trace


def test_trace_bad_arguments():
    with pytest.raises(ValueError, match="num_probes"):
        hutchinson_trace(np.eye(4), jax.random.key(0), num_probes=1)
    with pytest.raises(ValueError, match="num_matvecs"):
        hutchpp_trace(np.eye(4), jax.random.key(0), num_matvecs=5)
    with pytest.raises(TypeError, match="key"):
        hutchinson_trace(np.eye(4), None)
