"""``precond quadratic``: the quadratic diagnostic of seed 001 §4.1 (three panels)."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``quadratic`` subcommand to the ``precond`` parser.

    Args:
      sub: the ``argparse`` subparsers of the ``precond`` parser.
    """
    p = sub.add_parser("quadratic", help="the quadratic diagnostic: measured floors vs exact "
                       "(Lyapunov) vs Theorem 3.2's bound, three panels", description=__doc__)
    p.add_argument("--out", required=True, help="output folder (results.json, panel_*.png, "
                   "report.md)")
    p.add_argument("--runs", type=int, default=30, help="runs per preconditioner (default 30)")
    p.add_argument("--d", type=int, default=100, help="dimension (default 100)")
    p.add_argument("--steps", type=int, default=20000, help="SGD steps (default 20000)")
    p.add_argument("--alpha", type=float, default=None,
                   help="fixed step for every preconditioner (default 1/λ_max(H) = 0.01)")
    p.add_argument("--noise", choices=("paper", "talk"), default="paper",
                   help="Σ = σ²H (paper, default) or Σ = σ²I (talk)")
    p.add_argument("--sigma", type=float, default=1.0, help="noise scale σ (default 1)")
    p.add_argument("--record-every", type=int, default=20, help="loss recorded every N steps")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the three panels, print one table per panel, write the outputs to ``--out``.

    Args:
      args: the parsed command line.

    Returns:
      The exit status (0).
    """
    from precond.validation import check_int, check_positive

    from ._args import check_out_dir

    check_int(args.runs, "--runs", low=2)
    check_int(args.d, "--d", low=10)
    check_int(args.steps, "--steps", low=1)
    check_int(args.record_every, "--record-every", low=1)
    if args.steps % args.record_every:
        raise ValueError("--record-every must divide --steps")
    check_positive(args.sigma, "--sigma")
    if args.alpha is not None:
        check_positive(args.alpha, "--alpha")
    check_int(args.seed, "--seed", low=0)
    check_out_dir(args.out)
    from precond.experiments.quadratic import run_quadratic

    console = Console()
    res = run_quadratic(args.out, d=args.d, runs=args.runs, steps=args.steps, alpha=args.alpha,
                        noise=args.noise, sigma=args.sigma, seed=args.seed,
                        record_every=args.record_every, console=console)
    for p in res["panels"].values():
        t = Table("M", "κ̂", "K", "measured floor", "Lyapunov", "bound", "meas./Lyap.",
                  "bound/meas.", title=p["title"])
        for r in p["entries"]:
            t.add_row(r["label"], f"{r['kappa']:.4g}", f"{r['K']:.5g}",
                      f"{r['measured_floor']:.4g} ± {r['measured_floor_stderr']:.1g}",
                      f"{r['lyapunov_floor']:.4g}", f"{r['bound']:.4g}",
                      f"{r['measured_over_lyapunov']:.3f}", f"{1 / r['measured_over_bound']:.4g}")
        console.print(t)
        console.print(f"measured order = exact order: {p['measured_order_matches_lyapunov']}; "
                      f"= bound order: {p['measured_order_matches_bound']}")
    console.print(f"wrote {args.out}/results.json, panel_*.png, report.md")
    return 0
