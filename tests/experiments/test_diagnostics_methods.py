"""The protocol's L̂/K diagnostics for a method built on a gradient-statistics preconditioner."""

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

from precond.experiments.protocol import CURVATURE_METHODS, ProtocolConfig, _diagnostics
from precond.problems.registry import get_problem


def test_shampoo_diagnostics():
    sizes = {"width": 4, "num_points": 16}
    problem = get_problem("franke", quick=True, **sizes)
    config = ProtocolConfig(problem="franke", quick=True, sizes=sizes, noise_batches=3,
                            method_options={"shampoo": {"block_size": 4, "momentum": 0.9}})
    flat = np.asarray(ravel_pytree(problem.init_params(jax.random.key(0)))[0])
    assert "shampoo" in CURVATURE_METHODS
    d = _diagnostics(problem, config, "shampoo", flat, jax.random.key(1))
    for k in ("L_hat_identity", "L_hat_preconditioned", "K_identity", "K_preconditioned"):
        assert np.isfinite(d[k]) and d[k] > 0, k
    assert d["L_reduction"] == d["L_hat_identity"] / d["L_hat_preconditioned"]
    assert d["block_size"] == 4 and "momentum" not in d  # M's options only
