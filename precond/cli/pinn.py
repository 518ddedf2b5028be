"""``precond pinn PDE``: Adam → L-BFGS → NNCG on a PINN benchmark (convection, reaction, wave).

Default: the reduced protocol that fits a small CPU (``precond.experiments.pinn.reduced_config``);
``--quick`` a smoke run; ``--full`` the paper's schedule and sizes (meant for a GPU).  Prints loss
and relative L2 error after each stage, NNCG vs L-BFGS time per step, and the Hessian spectrum
summary; writes ``pinn-PDE.json`` and the loss and spectral-density plots to ``--out``.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from precond.problems.pinn import PDES


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``pinn`` subcommand to the ``precond`` parser.

    Args:
      sub: the ``argparse`` subparsers of the ``precond`` parser.
    """
    p = sub.add_parser("pinn", help="Adam → L-BFGS → NNCG on the PINN benchmarks",
                       description=__doc__)
    p.add_argument("pde", choices=PDES)
    p.add_argument("--out", required=True, help="directory for the JSON record and plots")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="tiny smoke run")
    size.add_argument("--full", action="store_true", help="the paper's protocol (GPU-sized)")
    p.add_argument("--mu", type=float, help="NNCG damping μ")
    p.add_argument("--rank", type=int, help="Nyström rank")
    p.add_argument("--adam-steps", type=int)
    p.add_argument("--lbfgs-steps", type=int)
    p.add_argument("--nncg-steps", type=int)
    p.add_argument("--seed", type=int)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run Adam → L-BFGS → NNCG on ``args.pde``; print the tables, write the record and plots.

    Args:
      args: the parsed command line.

    Returns:
      The exit status (0).
    """
    from precond.experiments.pinn import (
        PAPER_RESULTS,
        paper_config,
        quick_config,
        reduced_config,
        run_pinn,
        with_overrides,
    )
    from precond.validation import check_int, check_positive

    from ._args import check_out_dir

    make = paper_config if args.full else quick_config if args.quick else reduced_config
    config = with_overrides(make(args.pde), mu=args.mu, rank=args.rank,
                            adam_steps=args.adam_steps, lbfgs_steps=args.lbfgs_steps,
                            nncg_steps=args.nncg_steps, seed=args.seed)
    for name in ("adam_steps", "lbfgs_steps", "nncg_steps", "rank"):
        check_int(getattr(config, name), f"--{name.replace('_', '-')}", low=1)
    check_positive(config.mu, "--mu")
    check_int(config.seed, "--seed")
    check_out_dir(args.out)
    console = Console()
    console.print(f"PINN {args.pde}, float64, sizes {config.sizes}")
    total = config.adam_steps * len(config.adam_lrs) + config.lbfgs_steps + config.nncg_steps
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("training", total=total)
        res = run_pinn(config, args.out, tick=lambda k: bar.advance(task, k))
    table = Table(title=f"{args.pde}: loss / L2RE after each stage (paper's beside)")
    for col in ("stage", "steps", "loss", "L2RE", "s/step", "compile s", "paper loss / L2RE"):
        table.add_column(col)
    paper = PAPER_RESULTS[args.pde]
    for stage in ("adam", "lbfgs", "nncg"):
        s = res["stages"][stage]
        ref = {"lbfgs": paper["adam_lbfgs"], "nncg": paper["nncg"]}.get(stage)
        table.add_row(stage, str(s["steps"]), f"{s['loss']:.3e}", f"{s['l2re']:.3e}",
                      f"{s['time_per_step_s']:.3g}", f"{s['compile_s']:.1f}",
                      f"{ref[0]:.2e} / {ref[1]:.2e}" if ref else "")
    console.print(table)
    n = res["stages"]["nncg"]
    console.print(f"NNCG / L-BFGS time per step: {res['time_ratio_nncg_over_lbfgs']:.1f}× "
                  f"(paper, Titan V, convection: 0.25 s / 0.046 s = 5.4×); NNCG stop: "
                  f"{n['stop']}, mean CG iterations {n['mean_cg_iterations']:.1f}, "
                  f"negative-curvature steps {n['negative_curvature_steps']}, "
                  f"fallback steps {n['fallback_steps']}, μ {n['mu_used']}")
    sp = res["spectrum"]
    console.print(f"Hessian Ritz values: H in [{sp['before']['min']:.2e}, "
                  f"{sp['before']['max']:.2e}], preconditioned in [{sp['after']['min']:.2e}, "
                  f"{sp['after']['max']:.2e}] (μ = {sp['mu']:.0e}, rank {sp['rank']})")
    console.print(f"wrote {args.out}/pinn-{args.pde}.json, -loss.png, -spectrum.png")
    return 0
