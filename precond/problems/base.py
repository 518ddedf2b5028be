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
from jax.typing import DTypeLike

from precond.curvature import get_output_loss
from precond.validation import check_int, check_options, check_positive, default_float

__all__ = ["Problem", "mlp_init", "mlp_apply", "relative_l2"]


@dataclass(frozen=True)
class Problem:
    """A benchmark problem: parameters, model, loss, fresh batches and a metric.

    Pure functions over a parameter pytree θ, so any optimizer or curvature routine can use it
    without knowing how the problem was built (module docstring).

    Attributes:
      name: the registry name, e.g. ``"poisson"``.
      init_params: ``init_params(key) -> θ``, a fresh parameter pytree.
      network: ``network(θ, points (N, 2)) -> (N,)``, the learned function u_θ.
      model_fn: ``model_fn(θ, inputs) -> outputs (N_out,)``, the map whose outputs enter the
        output loss ℓ (its Gauss–Newton matrix Jᵀ H_ℓ J is the problem's).
      sample_batch: ``sample_batch(key) -> (inputs, targets)``, one fresh data set (one per
        epoch); ``targets`` has the shape of ``model_fn``'s outputs.
      metric: ``metric(θ) -> scalar``, e.g. the relative L2 error against the exact solution;
        None when the problem has none.
      metric_name: what ``metric`` measures, in words (None without a metric).
      sizes: the configuration (widths, point counts, weights) as given to the factory.
      output_loss: the name of ℓ in ``precond.curvature.get_output_loss`` (``"mse"``: ½ mean
        of squared errors).
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

    def loss(self, params: Any, batch: tuple) -> jax.Array:
        """The training objective ℓ(model_fn(θ, inputs), targets).

        Args:
          params: the parameter pytree θ.
          batch: ``(inputs, targets)`` as drawn by ``sample_batch``.
        """
        inputs, targets = batch
        return get_output_loss(self.output_loss).value(self.model_fn(params, inputs), targets)

    def problem_kwargs(self, key: jax.Array | None = None) -> dict:
        """The problem's context for ``precond.optim.get_optimizer``.

        Every method takes the parts it uses and ignores the rest (``precond.optim.CONTEXT``);
        options such as ``damping`` go beside them and are checked against the method.

        Args:
          key: a ``jax.random`` key for the randomized methods (Nyström, spectral, NNCG);
            left out when None, so those methods then ask for one.
        """
        kw = {"loss_fn": self.loss, "model_fn": self.model_fn, "output_loss": self.output_loss}
        if key is not None:
            kw["key"] = key
        return kw

    def num_params(self) -> int:
        """The number of scalar parameters n (θ ∈ ℝⁿ once flattened), without building θ."""
        leaves = jax.tree.leaves(jax.eval_shape(self.init_params, jax.random.key(0)))
        return int(sum(x.size for x in leaves))


def mlp_init(key: jax.Array, widths: tuple[int, ...], dtype: DTypeLike | None = None) -> list:
    """Glorot-normal weights and zero biases for an MLP with layer widths ``widths``.

    Args:
      key: a ``jax.random`` key.
      widths: ``(n_in, h_1, …, n_out)``, at least two entries.
      dtype: the parameters' float dtype; default the default float (float64 iff x64 is on).

    Returns:
      A list of ``(W (n_in, n_out), b (n_out,))`` pairs, one per layer.

    Example:
      >>> import jax
      >>> from precond.problems.base import mlp_apply, mlp_init
      >>> params = mlp_init(jax.random.key(0), (2, 8, 1))
      >>> [W.shape for W, b in params]
      [(2, 8), (8, 1)]
      >>> mlp_apply(params, jax.numpy.ones((5, 2))).shape
      (5, 1)
    """
    dtype = default_float() if dtype is None else dtype
    params = []
    for n_in, n_out, k in zip(widths[:-1], widths[1:], jax.random.split(key, len(widths) - 1),
                              strict=True):
        W = jax.random.normal(k, (n_in, n_out), dtype) * jnp.sqrt(2.0 / (n_in + n_out))
        params.append((W, jnp.zeros((n_out,), dtype)))
    return params


def mlp_apply(params: list, x: jax.Array, activation: Callable = jnp.tanh) -> jax.Array:
    """The MLP forward pass, with ``activation`` between layers and a linear last layer.

    Args:
      params: the ``[(W, b), …]`` list of :func:`mlp_init`.
      x: inputs of shape (..., n_in).
      activation: the hidden nonlinearity (tanh for the PINNs, ReLU for Franke).

    Returns:
      Outputs of shape (..., n_out).
    """
    for W, b in params[:-1]:
        x = activation(x @ W + b)
    W, b = params[-1]
    return x @ W + b


def relative_l2(pred: jax.Array, exact: jax.Array) -> jax.Array:
    """The relative L2 error ‖pred − exact‖₂ / ‖exact‖₂ (the problems' metric).

    Args:
      pred: predicted values, any shape.
      exact: exact values, the same shape (not all zero).
    """
    return jnp.linalg.norm(pred - exact) / jnp.linalg.norm(exact)


def check_sizes(given: dict, allowed: dict, problem: str) -> dict:
    """The defaults ``allowed`` updated by the caller's ``given`` sizes, each one checked.

    A size whose default is an int must be an int ≥ 1 (point counts, widths); one whose default
    is a float must be a finite number > 0 (weights, noise levels, widths of smoothed deltas).

    Args:
      given: the sizes the caller passed, name → value.
      allowed: the problem's default sizes, name → value; the names it accepts.
      problem: the problem's name, for the error messages.

    Raises:
      TypeError: an unknown size name (naming the valid ones), or a value of the wrong type.
      ValueError: a value out of range.
    """
    check_options(given, allowed, f"problem {problem!r}")
    out = dict(allowed)
    for k, v in given.items():
        try:
            out[k] = check_int(v, k, low=1) if isinstance(allowed[k], int) \
                else check_positive(v, k)
        except (TypeError, ValueError) as err:
            raise type(err)(f"problem {problem!r}: {err}") from None
    return out
