"""A user's own problem for ``precond advise --script examples/advise_script.py``.

The file defines what ``precond advise`` needs, and nothing else is assumed of it:

* ``loss_fn(params, batch) -> scalar``: the training loss on one mini-batch;
* ``params``: the parameters to start from (any pytree of arrays);
* ``sample_batch(key) -> batch``: a fresh mini-batch for a ``jax.random`` key;
* optionally ``model_fn(params, inputs) -> outputs`` and ``output_loss`` (a name of
  ``precond.curvature.get_output_loss``) with ``loss_fn(p, (x, y)) = ℓ(model_fn(p, x), y)``:
  then the Gauss–Newton candidates (CG-GGN) are measured too.

Here: a plain-JAX MLP 1 → 16 → 16 → 1 (tanh) fitting y = sin(3x) + 0.1ε on x ∈ [−1, 1],
64 fresh points per mini-batch, loss ½·mean squared error.  ``precond advise`` runs in float64,
so the arrays below are created in float64.

    precond advise --script examples/advise_script.py --budget-seconds 5 --verify --out runs/adv
"""

import jax
import jax.numpy as jnp

WIDTHS = (1, 16, 16, 1)
BATCH = 64
NOISE = 0.1


def _init(key):
    layers = []
    for n_in, n_out, k in zip(WIDTHS[:-1], WIDTHS[1:], jax.random.split(key, len(WIDTHS) - 1),
                              strict=True):
        W = jax.random.normal(k, (n_in, n_out)) * jnp.sqrt(2.0 / (n_in + n_out))
        layers.append({"W": W, "b": jnp.zeros(n_out)})
    return layers


def model_fn(params, x):
    """The network's outputs (N,) at inputs x (N, 1)."""
    for layer in params[:-1]:
        x = jnp.tanh(x @ layer["W"] + layer["b"])
    return (x @ params[-1]["W"] + params[-1]["b"])[:, 0]


output_loss = "mse"  # ½·mean squared error, as loss_fn below


def loss_fn(params, batch):
    """½·mean (model_fn(params, x) − y)² on one mini-batch (x, y)."""
    x, y = batch
    return 0.5 * jnp.mean((model_fn(params, x) - y) ** 2)


def sample_batch(key):
    """BATCH fresh points x ~ U[−1, 1] with noisy targets y = sin(3x) + NOISE·ε."""
    kx, ke = jax.random.split(key)
    x = jax.random.uniform(kx, (BATCH, 1), minval=-1.0, maxval=1.0)
    return x, jnp.sin(3 * x[:, 0]) + NOISE * jax.random.normal(ke, (BATCH,))


params = _init(jax.random.key(0))
