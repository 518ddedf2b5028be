"""``precond demo``: the main job on its built-in default (what ``make demo`` runs).

Runs ``precond compare poisson --quick`` into ./runs/demo: the Poisson PINN is where curvature
(CG-GGN) separates from first-order methods quickly, at a small size (its run time is in
docs/results/compare.md).  Rerunning resumes from the stored units.
"""

from __future__ import annotations

import argparse

DEMO_ARGV = ["compare", "poisson", "--quick", "--methods", "sgd", "adam", "lbfgs", "cg-ggn",
             "--seeds", "2", "--out", "runs/demo"]


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` subcommand to the ``precond`` parser.

    Args:
      sub: the ``argparse`` subparsers of the ``precond`` parser.
    """
    p = sub.add_parser("demo", help="run `precond compare` on the demo problem (quick size)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``precond compare`` with ``DEMO_ARGV``.

    Args:
      args: the parsed command line.

    Returns:
      The exit status (0).
    """
    from . import build_parser, compare

    demo_args = build_parser().parse_args(DEMO_ARGV)
    demo_args.argv = DEMO_ARGV
    return compare.run(demo_args)
