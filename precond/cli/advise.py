"""``precond advise``: which preconditioner, at what step size, for this model — predicted from
the design criteria (L̂, ĉ, κ̂, K and the cost of a step, measured at the start), then verified
by training every candidate for the same wall time.

    precond advise PROBLEM [--quick] [--budget-seconds S] [--verify] [--seeds N]
                   [--candidates NAME ...] [--grid] [--out DIR]
    precond advise --script FILE.py [same options]

``PROBLEM`` is a built-in problem (``precond.problems.registry``), advised at the parameters
after the two-phase protocol's Phase I (Adam warm start, seed 0, ``--warmup`` epochs), so
``--grid`` (each candidate's learning-rate grid of ``precond compare``, trained for the same
budget from the same start) compares like with like.  ``FILE.py`` is a user's problem: it
defines ``loss_fn``, ``params`` and ``sample_batch`` (optionally ``model_fn`` and
``output_loss``); see ``examples/advise_script.py``.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
from pathlib import Path
from types import ModuleType

from . import add_devices_argument, mesh_from_args

REQUIRED = ("loss_fn", "params", "sample_batch")
OPTIONAL = ("model_fn", "output_loss")
DEFAULT_BUDGET = 10.0
DEFAULT_SEEDS = 3


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``advise`` subcommand to the ``precond`` parser.

    Args:
      sub: the ``argparse`` subparsers of the ``precond`` parser.
    """
    from precond.problems.registry import problem_names

    p = sub.add_parser("advise", help="predict the best preconditioner and step size, then "
                                      "verify at equal wall time", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("problem", nargs="?", choices=problem_names(),
                   help="a built-in problem (or --script)")
    p.add_argument("--script", metavar="FILE.py",
                   help="a Python file defining loss_fn, params and sample_batch "
                        "(optionally model_fn, output_loss)")
    p.add_argument("--quick", action="store_true", help="the built-in problem's quick sizes")
    p.add_argument("--budget-seconds", type=float, default=DEFAULT_BUDGET,
                   help=f"training wall time the prediction is for, per candidate "
                        f"(default {DEFAULT_BUDGET:g})")
    p.add_argument("--verify", action="store_true",
                   help="train every candidate for the budget at its recommended step, over "
                        "--seeds seeds, and compare the realized ranking with the predicted one")
    p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                   help=f"seeds of --verify and --grid (default {DEFAULT_SEEDS})")
    p.add_argument("--candidates", nargs="+", default=None,
                   help="optimizers to consider (default: every registered one advise knows)")
    p.add_argument("--grid", action="store_true",
                   help="also grid-tune each candidate's learning rate at the same budget "
                        "(precond compare's grids; built-in problems only) and show it beside "
                        "the recommended one")
    p.add_argument("--warmup", type=int, default=None,
                   help="Adam epochs before advising a built-in problem (Phase I of "
                        "precond compare; default 300 with --quick, else 1000)")
    p.add_argument("--batches", type=int, default=None,
                   help="B, the mini-batches the measurements use (default advise's)")
    p.add_argument("--out", help="directory for report.md, advice.json and the plots")
    add_devices_argument(p)
    p.set_defaults(func=run)


def check_args(args: argparse.Namespace) -> None:
    """Check the ``precond advise`` arguments before any work starts (``ValueError`` or
    ``TypeError`` naming the argument).

    Args:
      args: the parsed ``precond advise`` command line.
    """
    from precond.validation import check_int, check_positive

    from ._args import check_out_dir

    if (args.problem is None) == (args.script is None):
        raise ValueError("give either PROBLEM or --script FILE.py (one of them)")
    if args.script is not None:
        if args.grid:
            raise ValueError("--grid needs a built-in PROBLEM (its grids and Phase I), not "
                             "--script")
        if not Path(args.script).is_file():
            raise ValueError(f"--script {args.script!r} is not a file")
    check_positive(args.budget_seconds, "--budget-seconds")
    check_int(args.seeds, "--seeds", low=1)
    for flag in ("warmup", "batches"):
        if getattr(args, flag) is not None:
            check_int(getattr(args, flag), f"--{flag}", low=1 if flag == "warmup" else 2)
    if args.candidates is not None:
        from precond.advise.registry import resolve

        for name in args.candidates:
            try:
                resolve(name)
            except ValueError as err:
                raise ValueError(f"--candidates: {err}") from None
    if args.out is not None:
        check_out_dir(args.out)


def load_script(path: str | Path) -> dict:
    """The names ``precond advise`` needs from a user's problem file.

    The file is run as a module; it must define ``loss_fn``, ``params`` and ``sample_batch``
    and may define ``model_fn`` and ``output_loss``.

    Args:
      path: the Python file, as the user typed it (errors name it so).

    Returns:
      name → value for the required names and the optional ones the file defines.

    Raises:
      ValueError: the file does not run (the error in one line) or lacks a required name.
    """
    module = _run_file(path)
    missing = [n for n in REQUIRED if not hasattr(module, n)]
    if missing:
        raise ValueError(f"{path} does not define {', '.join(missing)}")
    for n in ("loss_fn", "sample_batch", "model_fn"):
        if hasattr(module, n) and not callable(getattr(module, n)):
            raise ValueError(f"{path}: {n} is not callable")
    return {n: getattr(module, n) for n in REQUIRED + OPTIONAL if hasattr(module, n)}


def _run_file(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"precond_advise_{Path(path).stem}", path)
    if spec is None or spec.loader is None:
        raise ValueError(f"{path} cannot be loaded as a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's code: report it in one line, naming the file
        line = str(err).splitlines()[0] if str(err) else ""
        raise ValueError(f"{path} failed to run: {type(err).__name__}: {line}") from None
    return module


def run(args: argparse.Namespace) -> int:
    """Advise (and with ``--verify`` verify, with ``--grid`` grid-tune) on a built-in problem or
    a user's script; print the ranking and write the report to ``--out``.

    Args:
      args: the parsed command line.

    Returns:
      The exit status (0).
    """
    check_args(args)
    from rich.console import Console

    from precond.distributed import replicate
    from precond.distributed.training import describe_mesh, mesh_info, sharded_sampler
    from precond.experiments.advise import (
        advise_problem,
        advise_script,
        print_advice,
        write_advice_report,
    )

    mesh = mesh_from_args(args)

    console = Console()
    if not console.is_terminal:  # a log file: the table's columns unabbreviated
        console = Console(width=160)
    command = "precond " + " ".join(shlex.quote(a) for a in getattr(args, "argv", ()))
    common = dict(budget_seconds=args.budget_seconds, candidates=args.candidates,
                  verify=args.verify, seeds=args.seeds, num_batches=args.batches,
                  log=console.print)
    if args.script is not None:
        names = load_script(args.script)
        # Mini-batches row-sharded over the mesh, parameters replicated (precond.optim.train's
        # rule): advise's measurements and the verification's training follow the shardings.
        names["sample_batch"] = sharded_sampler(names["sample_batch"], mesh)
        names["params"] = replicate(names["params"], mesh)
        result = advise_script(names, name=Path(args.script).name, **common)
    else:
        result = advise_problem(args.problem, quick=args.quick, warmup=args.warmup,
                                grid=args.grid, mesh=mesh, **common)
    result.info["mesh"] = mesh_info(mesh)  # in advice.json; the report's machine line says it
    result.info["machine"] = f"{result.info['machine']}; {describe_mesh(result.info['mesh'])}"
    print_advice(result, console)
    if args.out is not None:
        path = write_advice_report(result, args.out, command=command)
        console.print(f"report: {path}")
    return 0
