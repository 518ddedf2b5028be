"""Classification problems on real offline data, for ``precond advise`` and ``precond compare``.

* ``fashion-mnist-mlp``: Fashion-MNIST (Debian's ``dataset-fashion-mnist``, read by
  :func:`precond.problems.data.load_fashion_mnist`), a one-hidden-layer ReLU MLP 784 → h → 10,
  softmax cross-entropy; each epoch draws a fresh mini-batch (with replacement) from the first
  ``num_train`` training images.  Metric: the error rate on the first ``num_test`` test images.
* ``logistic``: logistic regression on scikit-learn's bundled breast-cancer set (569 × 30,
  features scaled to [−1, 1] by :func:`precond.problems.classification.normalize`), sigmoid
  cross-entropy; a fixed shuffled split holds out ``num_test`` rows for the metric (error rate).

Both are :class:`~precond.problems.base.Problem` records like the SciML problems, so every
optimizer, curvature routine and experiment uses them unchanged.  Nothing downloads: a missing
data set raises ``FileNotFoundError`` with the install command.  The images are kept as uint8
inside the compiled functions (8× smaller constants than float64) and scaled to [0, 1] on use.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from precond.validation import default_float

from .base import Problem, check_sizes, mlp_apply, mlp_init

__all__ = ["fashion_mnist_mlp_problem", "logistic_problem", "FASHION_SIZES",
           "FASHION_QUICK_SIZES", "LOGISTIC_SIZES", "LOGISTIC_QUICK_SIZES"]

FASHION_SIZES = {"width": 128, "num_train": 20_000, "num_test": 10_000, "batch_size": 256}
FASHION_QUICK_SIZES = {"width": 32, "num_train": 5_000, "num_test": 2_000, "batch_size": 128}
LOGISTIC_SIZES = {"num_test": 114, "batch_size": 128}
LOGISTIC_QUICK_SIZES = {"num_test": 114, "batch_size": 64}


def _error_rate(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """The fraction of misclassified rows: argmax of (N, C) logits, or sign of (N,) logits
    against {0, 1} labels."""
    pred = jnp.argmax(logits, axis=-1) if logits.ndim == 2 else (logits > 0).astype(labels.dtype)
    return jnp.mean((pred != labels).astype(logits.dtype))


def fashion_mnist_mlp_problem(*, quick: bool = False, **sizes: int) -> Problem:
    """Fashion-MNIST with a 784 → ``width`` → 10 ReLU MLP and softmax cross-entropy.

    Args:
      quick: start from ``FASHION_QUICK_SIZES`` instead of ``FASHION_SIZES``.
      **sizes: single sizes to override: ``width`` (hidden units), ``num_train`` (training
        images drawn from), ``num_test`` (test images of the metric), ``batch_size`` (images per
        epoch's mini-batch).

    Returns:
      A :class:`~precond.problems.base.Problem`; ``sample_batch(key)`` gives ``(images (b, 784)
      in [0, 1], labels (b,) int)``, ``metric`` the test error rate.

    Raises:
      FileNotFoundError: Debian's ``dataset-fashion-mnist`` is not installed (the message gives
        the install command).
    """
    from .data import load_fashion_mnist

    s = check_sizes(sizes, FASHION_QUICK_SIZES if quick else FASHION_SIZES, "fashion-mnist-mlp")
    X, y = load_fashion_mnist("train")
    X_te, y_te = load_fashion_mnist("test")
    n, m, b = min(s["num_train"], len(X)), min(s["num_test"], len(X_te)), s["batch_size"]
    # uint8 pixels (the files' own values) keep the compiled functions' constants small.
    images = jnp.asarray(np.rint(X[:n] * 255).astype(np.uint8))
    labels = jnp.asarray(y[:n].astype(np.int32))
    test_images = jnp.asarray(np.rint(X_te[:m] * 255).astype(np.uint8))
    test_labels = jnp.asarray(y_te[:m].astype(np.int32))
    widths = (784, s["width"], 10)

    def network(params, inputs):
        return mlp_apply(params, inputs, jax.nn.relu)

    def sample_batch(key):
        i = jax.random.randint(key, (b,), 0, n)
        return images[i].astype(default_float()) / 255.0, labels[i]

    def metric(params):
        dtype = jax.tree.leaves(params)[0].dtype
        return _error_rate(network(params, test_images.astype(dtype) / 255.0), test_labels)

    return Problem("fashion-mnist-mlp", lambda key: mlp_init(key, widths), network, network,
                   sample_batch, metric, f"test error rate ({m} Fashion-MNIST test images)",
                   s, output_loss="softmax_cross_entropy")


def logistic_problem(*, quick: bool = False, **sizes: int) -> Problem:
    """Logistic regression on the breast-cancer set bundled with scikit-learn (569 × 30).

    Features scaled to [−1, 1]; a fixed shuffled split (seed 0) keeps ``num_test`` rows for the
    metric; each epoch draws ``batch_size`` training rows with replacement.

    Args:
      quick: start from ``LOGISTIC_QUICK_SIZES`` instead of ``LOGISTIC_SIZES``.
      **sizes: single sizes to override: ``num_test`` (held-out rows, < 569), ``batch_size``.

    Returns:
      A :class:`~precond.problems.base.Problem` with parameters ``(w (30,), b ())``, output
      loss sigmoid cross-entropy on labels {0, 1}, ``metric`` the held-out error rate.

    Example:
      >>> import jax
      >>> from precond.problems.classifiers import logistic_problem
      >>> p = logistic_problem(quick=True)
      >>> p.num_params(), p.output_loss
      (31, 'sigmoid_cross_entropy')
      >>> x, y = p.sample_batch(jax.random.key(0))
      >>> x.shape, y.shape
      ((64, 30), (64,))
    """
    from sklearn.datasets import load_breast_cancer

    from .classification import normalize

    s = check_sizes(sizes, LOGISTIC_QUICK_SIZES if quick else LOGISTIC_SIZES, "logistic")
    X, y = load_breast_cancer(return_X_y=True)
    if s["num_test"] >= len(X):
        raise ValueError(f"problem 'logistic': num_test must be < {len(X)}, got {s['num_test']}")
    X = normalize(X)
    perm = np.random.default_rng(0).permutation(len(X))
    test, train = perm[:s["num_test"]], perm[s["num_test"]:]
    X_tr, y_tr = jnp.asarray(X[train]), jnp.asarray(y[train].astype(np.float64))
    X_te, y_te = jnp.asarray(X[test]), jnp.asarray(y[test].astype(np.float64))
    n, d, b = len(train), X.shape[1], s["batch_size"]

    def init_params(key):
        dtype = default_float()
        return (jnp.zeros((d,), dtype), jnp.zeros((), dtype))

    def network(params, inputs):
        w, c = params
        return inputs @ w + c

    def sample_batch(key):
        i = jax.random.randint(key, (b,), 0, n)
        return X_tr[i].astype(default_float()), y_tr[i].astype(default_float())

    def metric(params):
        dtype = jax.tree.leaves(params)[0].dtype
        return _error_rate(network(params, X_te.astype(dtype)), y_te.astype(dtype))

    return Problem("logistic", init_params, network, network, sample_batch, metric,
                   f"held-out error rate ({s['num_test']} breast-cancer rows)", s,
                   output_loss="sigmoid_cross_entropy")
