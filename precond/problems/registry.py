"""The benchmark problems by name: ``get_problem("poisson", quick=True)``.

Seed 001's SciML problems, and two classification problems on real offline data
(:mod:`.classifiers`: ``fashion-mnist-mlp``, ``logistic``).
"""

from __future__ import annotations

from .base import Problem
from .classifiers import fashion_mnist_mlp_problem, logistic_problem
from .franke import franke_problem
from .green import green_problem
from .poisson import poisson_problem

__all__ = ["PROBLEMS", "DATA_PROBLEMS", "get_problem", "problem_names"]

PROBLEMS = {
    "franke": franke_problem,
    "poisson": poisson_problem,
    "green-diffusion": lambda **kw: green_problem(1.0, name="green-diffusion", **kw),
    "green-convection": lambda **kw: green_problem(0.1, name="green-convection", **kw),
}

# Classification on real offline data (their loaders need the data installed, so they are kept
# apart from seed 001's problems, whose tests build every entry of PROBLEMS).
DATA_PROBLEMS = {
    "fashion-mnist-mlp": fashion_mnist_mlp_problem,  # needs Debian's dataset-fashion-mnist
    "logistic": logistic_problem,  # breast cancer, bundled with scikit-learn
}


def problem_names() -> list[str]:
    """Every name :func:`get_problem` knows (``PROBLEMS`` and ``DATA_PROBLEMS``), sorted."""
    return sorted(PROBLEMS | DATA_PROBLEMS)


def get_problem(name: str, *, quick: bool = False, **sizes: float) -> Problem:
    """The benchmark problem ``name`` at its default or ``quick`` size.

    Args:
      name: one of ``PROBLEMS`` (``franke``, ``poisson``, ``green-diffusion``,
        ``green-convection``) or ``DATA_PROBLEMS`` (``fashion-mnist-mlp``, ``logistic``).
      quick: the small sizes of the quick protocol and the demo.
      **sizes: single sizes to override (e.g. ``width=8``); each factory lists its own.

    Raises:
      ValueError: an unknown problem name (naming the valid ones) or a size out of range.
      TypeError: an unknown size name, or a size of the wrong type.

    Example:
      >>> from precond.problems.registry import get_problem
      >>> p = get_problem("green-diffusion", quick=True, width=4)
      >>> p.name, p.sizes["eps"], p.metric_name
      ('green-diffusion', 1.0, "relative L2 error vs the exact Green's function")
    """
    try:
        factory = (PROBLEMS | DATA_PROBLEMS)[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; choose from {problem_names()}") from None
    return factory(quick=quick, **sizes)
