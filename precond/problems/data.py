"""Real data that loads offline: nothing here downloads at run time.

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` package (``make bench`` installs it;
``apt-get install dataset-fashion-mnist`` by hand).  Random features turn an image set into the
large dense regression/classification problems the randomized solvers are benchmarked on.
"""

from __future__ import annotations

import gzip
import os
import pathlib

import numpy as np

__all__ = ["FASHION_MNIST_DIR", "load_fashion_mnist", "random_features"]

FASHION_MNIST_DIR = pathlib.Path(
    os.environ.get("PRECOND_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))


def _read_idx(path: pathlib.Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(split: str = "train", *, directory: str | os.PathLike | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST images as float64 rows in [0, 1], shape (N, 784), and integer labels (N,).

    ``split`` is "train" (60,000) or "test" (10,000).  Raises ``FileNotFoundError`` with the
    install command when the Debian package is missing.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    d = pathlib.Path(directory) if directory is not None else FASHION_MNIST_DIR
    prefix = "train" if split == "train" else "t10k"
    images, labels = d / f"{prefix}-images-idx3-ubyte.gz", d / f"{prefix}-labels-idx1-ubyte.gz"
    if not images.exists() or not labels.exists():
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {d}; install Debian's package: "
            "apt-get install dataset-fashion-mnist (make bench does), or set "
            "PRECOND_FASHION_MNIST to a directory holding the four idx .gz files")
    X = _read_idx(images).reshape(-1, 28 * 28).astype(np.float64) / 255.0
    y = _read_idx(labels).astype(np.int64)
    return X, y


def random_features(X: np.ndarray, num_features: int, *, seed: int = 0, kind: str = "rbf",
                    bandwidth: float | None = None) -> np.ndarray:
    """Random Fourier features (``kind="rbf"``: √(2/D) cos(XW/σ + b)) or ReLU features of X.

    The RBF bandwidth σ defaults to the median pairwise distance of up to 1,000 rows.  Output
    shape (N, num_features), float64.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    if num_features <= 0:
        raise ValueError(f"num_features must be positive, got {num_features}")
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((X.shape[1], num_features))
    if kind == "rbf":
        if bandwidth is None:
            sub = X[rng.choice(X.shape[0], size=min(1000, X.shape[0]), replace=False)]
            sq = np.sum(sub**2, 1)
            dist2 = np.maximum(sq[:, None] + sq[None] - 2 * sub @ sub.T, 0)
            bandwidth = float(np.sqrt(np.median(dist2[np.triu_indices_from(dist2, 1)])))
        b = rng.uniform(0, 2 * np.pi, num_features)
        return np.sqrt(2.0 / num_features) * np.cos(X @ W / bandwidth + b)
    if kind == "relu":
        return np.maximum(X @ W / np.sqrt(X.shape[1]), 0.0)
    raise ValueError(f"kind must be 'rbf' or 'relu', got {kind!r}")
