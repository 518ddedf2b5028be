"""The ``precond`` command.

Each subcommand lives in its own module of this package with ``register(subparsers)`` and
``run(args)``; the module names are listed in ``COMMANDS``.  The CLI runs in float64 (as seed 001
did) and says so; a user error (``ValueError``, ``TypeError``, ``FileNotFoundError``) prints one
line and exits with status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

COMMANDS = ("demo", "ridge", "osgm", "compare", "report", "study", "pinn", "quadratic")


def build_parser() -> argparse.ArgumentParser:
    """The ``precond`` argument parser with every subcommand of ``COMMANDS``."""
    parser = argparse.ArgumentParser(
        prog="precond",
        description="Measure what a preconditioner does, solve with the best one, and show the "
                    "evidence.  All commands compute in float64.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def _version() -> str:
    from precond import __version__
    return f"precond {__version__}"


def main(argv: list[str] | None = None) -> int:
    """Run the ``precond`` command in float64 (on the CPU unless ``JAX_PLATFORMS`` says otherwise).

    Args:
      argv: the arguments after ``precond`` (default ``sys.argv[1:]``).

    Returns:
      The exit status: 0 on success, 2 on a user error (reported in one line on stderr).

    Example:
      >>> from precond.cli import build_parser
      >>> build_parser().parse_args(["report", "runs/demo"]).dir
      'runs/demo'
    """
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax

    jax.config.update("jax_enable_x64", True)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"precond {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
