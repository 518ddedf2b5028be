"""``precond osgm-bench``: the OSGM papers' solved-instances benchmark on offline data sets."""

from __future__ import annotations

import argparse
import json
import sys
import time


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``osgm-bench`` subcommand to the ``precond`` parser.

    Args:
      sub: the ``argparse`` subparsers of the ``precond`` parser.
    """
    p = sub.add_parser("osgm-bench", help="solved instances of OSGM vs GD/AGD/Adam/L-BFGS/BFGS "
                       "on offline classification sets", description=__doc__)
    p.add_argument("--out", required=True, help="output directory (results.json, profile.png, "
                   "report.md)")
    p.add_argument("--quick", action="store_true",
                   help="6 data sets of at most 300 rows (a smoke run)")
    p.add_argument("--max-rows", type=int, default=2000,
                   help="rows kept per data set, a fixed random subset (default 2000)")
    p.add_argument("--max-grad-evals", type=int, default=1000)
    p.add_argument("--gtol", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


SEED_003 = {  # seed 003's table: solved instances in LIBSVM (SVM, logistic regression)
    "GD": (5, 2), "GD-HB": (9, 7), "AGD-CVX": (8, 3), "AGD-SCVX": (7, 6), "Adam": (26, 11),
    "AdaGrad": (9, 8), "L-BFGS-M1": (13, 11), "L-BFGS-M3": (20, 14), "L-BFGS-M5": (26, 16),
    "L-BFGS-M10": (31, 18), "BFGS": (32, 26), "OSGM": (32, 21),
}


def run(args: argparse.Namespace) -> int:
    """Run the solved-instances protocol and write results.json, profile.png and report.md.

    Args:
      args: the parsed command line.

    Returns:
      The exit status (0).
    """
    from precond.validation import check_int, check_positive

    from ._args import check_out_dir

    check_int(args.max_rows, "--max-rows", low=2)
    check_int(args.max_grad_evals, "--max-grad-evals", low=2)
    check_positive(args.gtol, "--gtol")
    check_int(args.seed, "--seed", low=0)
    out = check_out_dir(args.out)

    from rich.progress import Progress

    from precond.experiments.solved_instances import (
        LOSSES,
        METHODS,
        plot_performance_profile,
        run_protocol,
        solved_counts,
    )
    from precond.experiments.store import atomic_write
    from precond.problems.classification import (
        ClassificationSet,
        load_classification_sets,
        normalize,
    )

    sets, skipped = load_classification_sets()
    max_rows = 300 if args.quick else args.max_rows
    if args.quick:
        sets = sets[:6]
    sets = [ClassificationSet(s.name, s.source, *normalize(s.X, y=s.y, max_rows=max_rows,
                                                           seed=args.seed)) for s in sets]
    print(f"{len(sets)} data sets; skipped sources: {skipped or 'none'}; float64")
    t0 = time.perf_counter()
    with Progress() as bar:
        task = bar.add_task("osgm-bench", total=2 * len(sets))
        rows, timing = run_protocol(sets, METHODS, max_grad_evals=args.max_grad_evals,
                                    gtol=args.gtol, seed=args.seed,
                                    progress=lambda _: bar.advance(task))
    wall = time.perf_counter() - t0
    counts = solved_counts(rows)
    plot_performance_profile(rows, METHODS, out / "profile.png")
    meta = {"command": "precond osgm-bench " + " ".join(sys.argv[2:]) if len(sys.argv) > 2
            else "precond osgm-bench", "sets": [(s.name, s.source, *s.X.shape) for s in sets],
            "skipped_sources": skipped, "max_rows": max_rows, "wall_seconds": wall, **timing}
    atomic_write(out / "results.json", json.dumps({"meta": meta, "counts": counts,
                                                   "rows": rows}, indent=1))
    lines = [f"{len(sets)} data sets × {len(LOSSES)} losses; wall {wall:.0f} s "
             f"(compile {timing['compile_seconds']:.0f} s)", "",
             "| method | squared hinge (ours) | logistic (ours) | SVM (seed 003) | "
             "logistic (seed 003) | run seconds |", "|---|---|---|---|---|---|"]
    for m in METHODS:
        c = counts.get(m, {})
        ref = SEED_003.get(m, ("–", "–"))
        lines.append(f"| {m} | {c.get('squared_hinge', 0)}/{len(sets)} | "
                     f"{c.get('logistic', 0)}/{len(sets)} | {ref[0]} | {ref[1]} | "
                     f"{timing['run_seconds'].get(m, 0.0):.1f} |")
    atomic_write(out / "report.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0
