"""Issue 19 regression for the data problems: normalization never drops a column silently."""

import numpy as np
import pytest

from precond.problems.classification import normalize


def test_normalize_column_with_one_nan_is_an_error_naming_it():
    X = np.array([[0.0, 5.0, 1.0], [2.0, np.nan, 3.0], [1.0, 4.0, 2.0]])
    with pytest.raises(ValueError, match=r"column\(s\) 1 "):
        normalize(X)
    X[1, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        normalize(X)
    X[1, 1] = 4.5  # finite: nothing is dropped but the constant columns (none here)
    assert normalize(X).shape == (3, 3)


def test_normalize_empty_X_or_mismatched_y_is_an_error_naming_it():
    with pytest.raises(ValueError, match="N ≥ 1"):
        normalize(np.ones((0, 3)))  # was numpy's "zero-size array to reduction operation"
    with pytest.raises(ValueError, match="y has shape"):
        normalize(np.eye(4), y=np.ones(3))  # was returned as is
