"""Benchmark problems by name: ``get_problem("poisson", quick=True)``."""

from __future__ import annotations

from .base import Problem
from .franke import franke_problem
from .green import green_problem
from .poisson import poisson_problem

__all__ = ["PROBLEMS", "get_problem"]

PROBLEMS = {
    "franke": franke_problem,
    "poisson": poisson_problem,
    "green-diffusion": lambda **kw: green_problem(1.0, name="green-diffusion", **kw),
    "green-convection": lambda **kw: green_problem(0.1, name="green-convection", **kw),
}


def get_problem(name: str, *, quick: bool = False, **sizes) -> Problem:
    """The problem ``name`` (one of ``PROBLEMS``) at default or ``quick`` size; ``sizes``
    override single sizes (e.g. ``width=8``)."""
    try:
        factory = PROBLEMS[name]
    except KeyError:
        raise ValueError(f"unknown problem {name!r}; choose from {sorted(PROBLEMS)}") from None
    return factory(quick=quick, **sizes)
