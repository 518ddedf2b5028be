"""The ``Problem`` record shared by the SciML benchmarks, and a plain-JAX MLP.

A problem is a set of pure functions over a parameter pytree (no framework object), so
``precond.curvature`` and ``precond.optim`` see it through the usual conventions:

* ``loss(params, batch) = ℓ(model_fn(params, inputs), targets)`` with ``batch = (inputs, targets)``
  and ℓ the output loss named by ``output_loss`` (mean squared error here);
* ``model_fn`` is the map whose outputs enter ℓ — the network itself for regression, the
  (weighted) PDE residuals and boundary values for a PINN — so the Gauss–Newton matrix
  Jᵀ H_ℓ J of ``model_fn`` is the PINN's Gauss–Newton matrix;
* ``network(params, points)`` is the learned function u_θ itself; ``metric(params)`` compares it
  with the exact solution (relative L2 error on a fixed grid) where one exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp

from precond.curvature import get_output_loss

__all__ = ["Problem", "mlp_init", "mlp_apply", "relative_l2"]


@dataclass(frozen=True)
class Problem:
    """A benchmark problem: parameters, model, loss, fresh batches and a metric.

    ``init_params(key) -> params``; ``network(params, points) -> (N,)`` values u_θ;
    ``model_fn(params, inputs) -> outputs``; ``sample_batch(key) -> (inputs, targets)`` draws a
    fresh data set (one per epoch); ``metric(params) -> scalar`` (``metric_name`` says what it
    is, None when the problem has no exact solution); ``sizes`` records the configuration.
    """

    name: str
    init_params: Callable[[jax.Array], Any]
    network: Callable[[Any, jax.Array], jax.Array]
    model_fn: Callable[[Any, Any], jax.Array]
    sample_batch: Callable[[jax.Array], tuple]
    metric: Callable[[Any], jax.Array] | None
    metric_name: str | None
    sizes: dict = field(default_factory=dict)
    output_loss: str = "mse"

    def loss(self, params, batch) -> jax.Array:
        """Training objective ℓ(model_fn(params, inputs), targets)."""
        inputs, targets = batch
        return get_output_loss(self.output_loss).value(self.model_fn(params, inputs), targets)

    def problem_kwargs(self) -> dict:
        """The problem's functions as keyword arguments for ``precond.optim.get_optimizer``."""
        return {"loss_fn": self.loss, "model_fn": self.model_fn, "output_loss": self.output_loss}

    def num_params(self) -> int:
        leaves = jax.tree.leaves(jax.eval_shape(self.init_params, jax.random.key(0)))
        return int(sum(x.size for x in leaves))


def mlp_init(key: jax.Array, widths: tuple[int, ...], dtype=None) -> list:
    """Glorot-normal weights, zero biases: a list of (W (n_in, n_out), b (n_out,))."""
    dtype = dtype or jnp.result_type(float)
    params = []
    for n_in, n_out, k in zip(widths[:-1], widths[1:], jax.random.split(key, len(widths) - 1),
                              strict=True):
        W = jax.random.normal(k, (n_in, n_out), dtype) * jnp.sqrt(2.0 / (n_in + n_out))
        params.append((W, jnp.zeros((n_out,), dtype)))
    return params


def mlp_apply(params, x: jax.Array, activation: Callable = jnp.tanh) -> jax.Array:
    """MLP forward pass; x (..., n_in) → (..., n_out), linear last layer."""
    for W, b in params[:-1]:
        x = activation(x @ W + b)
    W, b = params[-1]
    return x @ W + b


def relative_l2(pred: jax.Array, exact: jax.Array) -> jax.Array:
    """‖pred − exact‖₂ / ‖exact‖₂."""
    return jnp.linalg.norm(pred - exact) / jnp.linalg.norm(exact)


def check_sizes(given: dict, allowed: dict, problem: str) -> dict:
    """Merge ``given`` into the defaults ``allowed``; unknown names or non-positive values raise."""
    out = dict(allowed)
    for k, v in given.items():
        if k not in allowed:
            raise ValueError(f"unknown size {k!r} for problem {problem!r}; allowed: "
                             f"{sorted(allowed)}")
        if isinstance(allowed[k], int):
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"size {k!r} of {problem!r} must be a positive integer, got {v!r}")
        elif not (isinstance(v, int | float) and v > 0):
            raise ValueError(f"size {k!r} of {problem!r} must be a positive number, got {v!r}")
        out[k] = v
    return out
