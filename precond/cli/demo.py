"""``precond demo``: the main job on its built-in default (what ``make demo`` runs)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the main job on its built-in default")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from . import ridge

    return ridge.run(argparse.Namespace(n=4000, d=800, lam=1e-4, ranks=[50, 100], tol=1e-6,
                                        seed=0))
