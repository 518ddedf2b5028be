"""``precond compare PROBLEM``: seed 001's two-phase protocol on a SciML benchmark + report."""

from __future__ import annotations

import argparse
import shlex
from typing import TYPE_CHECKING

from . import add_devices_argument, mesh_from_args
from ._args import check_out_dir

# The epoch cap of an equal-time run when --phase2-epochs is not given: high enough that the
# budget, not the cap, ends every run.
BUDGET_EPOCH_CAP = 1_000_000

if TYPE_CHECKING:
    from precond.experiments.protocol import ProtocolConfig


CG_METHODS = ("cg-hessian", "cg-ggn")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``compare`` subcommand to the ``precond`` parser.

    Args:
      sub: the ``argparse`` subparsers of the ``precond`` parser.
    """
    from precond.experiments.protocol import DEFAULT_METHODS
    from precond.problems.registry import problem_names

    p = sub.add_parser("compare", help="run the two-phase protocol and write a report",
                       description=__doc__)
    p.add_argument("problem", choices=problem_names())
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                   help=f"optimizers from precond.optim (default {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--seeds", type=int, default=None, help="seeds (default 5; 3 with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, 300 + 200 epochs, 3 seeds, shorter grids (the demo)")
    p.add_argument("--phase1-epochs", type=int, default=None)
    p.add_argument("--phase2-epochs", type=int, default=None)
    p.add_argument("--diagnostics-epoch", type=int, default=250,
                   help="Phase II epoch of the L̂/K diagnostics (clipped to the last; default 250)")
    p.add_argument("--budget-seconds", type=float, default=None,
                   help="equal wall time: each Phase II run trains for S seconds of timed steps "
                        "(compilation apart) instead of a fixed number of epochs; "
                        f"--phase2-epochs is then a cap (default {BUDGET_EPOCH_CAP})")
    p.add_argument("--cg-iters", type=int, default=None, help="CG budget of the CG methods")
    p.add_argument("--damping", type=float, default=None, help="damping λ of the CG methods")
    p.add_argument("--out", required=True, help="experiment directory (resumed if it exists)")
    add_devices_argument(p)
    p.set_defaults(func=run)


class _RichProgress:
    """The protocol's progress hooks drawn as a ``rich`` progress bar, one task per unit."""

    def __init__(self, bar):
        self.bar, self.task = bar, None

    def start_unit(self, label, total_epochs):
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(label, total=total_epochs)

    def advance(self, n=1):
        if self.task is not None:
            self.bar.update(self.task, advance=n)

    def end_unit(self, label, skipped):
        if skipped:
            self.bar.console.log(f"[dim]skip {label} (already in the store)")


def config_from_args(args: argparse.Namespace) -> ProtocolConfig:
    """The :class:`~precond.experiments.protocol.ProtocolConfig` the command line asks for.

    Args:
      args: the parsed ``precond compare`` command line.
    """
    from precond.experiments.protocol import ProtocolConfig

    kw = {"methods": tuple(args.methods), "diagnostics_epoch": args.diagnostics_epoch}
    if args.seeds is not None:
        kw["seeds"] = args.seeds
    if args.phase1_epochs is not None:
        kw["phase1_epochs"] = args.phase1_epochs
    if args.phase2_epochs is not None:
        kw["phase2_epochs"] = args.phase2_epochs
    if getattr(args, "budget_seconds", None) is not None:
        kw["budget_seconds"] = args.budget_seconds
        kw.setdefault("phase2_epochs", BUDGET_EPOCH_CAP)
    opts = {}
    if args.cg_iters is not None:
        opts["maxiter"] = args.cg_iters
    if args.damping is not None:
        opts["damping"] = args.damping
    if opts:
        # --damping and --cg-iters are the CG methods' options (kfac and shampoo, also
        # curvature methods for the diagnostics, keep their own defaults).
        kw["method_options"] = {m: dict(opts) for m in CG_METHODS}
    if args.quick:
        return ProtocolConfig.quick_config(args.problem, **kw)
    return ProtocolConfig(problem=args.problem, **kw)


def check_args(args: argparse.Namespace) -> None:
    """Check the ``precond compare`` arguments before any work starts (``ValueError`` or
    ``TypeError`` naming the argument).

    Args:
      args: the parsed ``precond compare`` command line.
    """
    from precond.optim import OPTIMIZERS
    from precond.validation import check_int, check_positive

    unknown = [m for m in args.methods if m not in OPTIMIZERS]
    if unknown:
        raise ValueError(f"--methods: unknown method(s) {unknown}; choose from "
                         f"{sorted(OPTIMIZERS)}")
    for flag, low in (("seeds", 1), ("phase1_epochs", 1), ("phase2_epochs", 2),
                      ("diagnostics_epoch", 0), ("cg_iters", 1)):
        value = getattr(args, flag)
        if value is not None:
            check_int(value, "--" + flag.replace("_", "-"), low=low)
    if args.damping is not None:
        check_positive(args.damping, "--damping")
    if getattr(args, "budget_seconds", None) is not None:
        check_positive(args.budget_seconds, "--budget-seconds")


def run(args: argparse.Namespace) -> int:
    """Run (or resume) the two-phase protocol into ``--out``, then write its report.

    Args:
      args: the parsed command line.

    Returns:
      The exit status (0).
    """
    check_args(args)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from precond.distributed.training import describe_mesh, mesh_info
    from precond.experiments.protocol import run_protocol
    from precond.experiments.report import write_report

    config = config_from_args(args)
    mesh = mesh_from_args(args)
    check_out_dir(args.out)
    console = Console()
    console.print(f"precond compare {config.problem}: {len(config.methods)} methods, "
                  f"{config.seeds} seeds, Phase I {config.phase1_epochs} epochs, Phase II "
                  f"{config.mode()}, float64, {describe_mesh(mesh_info(mesh))} → {args.out}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as bar:
        run_protocol(config, args.out, progress=_RichProgress(bar), mesh=mesh)
    command = "precond " + " ".join(shlex.quote(a) for a in getattr(args, "argv", ()))
    path = write_report(args.out, command=command)
    console.print(f"report: {path}")
    return 0
