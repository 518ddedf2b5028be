"""``precond report DIR``: re-render report.md, plots and raw results from a results store."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``report`` subcommand to the ``precond`` parser.

    Args:
      sub: the ``argparse`` subparsers of the ``precond`` parser.
    """
    p = sub.add_parser("report", help="re-render an experiment's report from stored results",
                       description=__doc__)
    p.add_argument("dir", help="experiment directory written by `precond compare`")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Re-render the report of the experiment in ``args.dir``.

    Args:
      args: the parsed command line.

    Returns:
      The exit status (0).
    """
    from precond.experiments.report import write_report

    from ._args import check_out_dir

    check_out_dir(args.dir, "DIR", create=False)
    print(f"report: {write_report(args.dir)}")
    return 0
