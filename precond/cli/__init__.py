"""The ``precond`` command.

Each subcommand lives in its own module of this package with ``register(subparsers)`` and
``run(args)``; the module names are listed in ``COMMANDS``.  The CLI runs in float64 (as seed 001
did) and says so.  A user error prints one line ``precond <command>: error: …`` and exits with
status 2, never a traceback: each ``run`` checks its arguments (``precond.validation``) and its
output directory (``_args.check_out_dir``) before any work starts, and ``main`` maps what is left
(``ValueError``, ``TypeError``, any ``OSError`` such as a permission or not-a-directory error,
a damaged stored file) to that line.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import zipfile

COMMANDS = ("demo", "ridge", "osgm", "compare", "report", "study", "pinn", "quadratic",
            "advise")


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
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv  # the command as given, for the reports' "Command:" line
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, zipfile.BadZipFile) as err:
        message = str(err) or type(err).__name__
    except OSError as err:  # PermissionError, NotADirectoryError, FileExistsError, …
        where = f": {err.filename}" if err.filename else ""
        message = f"{err.strerror or err}{where}"
    print(f"precond {args.command}: error: {message.splitlines()[0]}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def add_devices_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--devices N`` (the data mesh's size) to a subcommand's parser.

    Args:
      parser: the subcommand's parser.
    """
    parser.add_argument("--devices", type=int, default=None, metavar="N",
                        help="shard the data over the first N devices, parameters replicated "
                             "(default: all local devices)")


def mesh_from_args(args: argparse.Namespace):
    """The ``jax.sharding.Mesh`` (one axis "data") that ``--devices`` asks for: every local
    device when it is not given; ``ValueError`` naming ``--devices`` when there are fewer.

    Args:
      args: a parsed command line with ``devices`` (:func:`add_devices_argument`).
    """
    import jax

    from precond.distributed import data_mesh
    from precond.validation import check_int

    n = getattr(args, "devices", None)
    if n is None:
        return data_mesh()
    check_int(n, "--devices", low=1)
    have = jax.local_device_count()
    if n > have:
        raise ValueError(f"--devices {n}: only {have} {jax.default_backend()} device"
                         f"{'s' if have != 1 else ''} here (on a CPU, XLA_FLAGS="
                         f"--xla_force_host_platform_device_count={n} makes {n})")
    return data_mesh(n)
