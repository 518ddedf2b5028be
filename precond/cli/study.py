"""``precond study``: seed 002's three mechanisms measured on small MLPs and real data.

NAME is diagonal (adaptive second moments as diagonal preconditioners), regularization (Adam +
L2 vs AdamW in z-space, and the L1 variant), normalization (none / BatchNorm / LayerNorm),
kronecker (Shampoo, K-FAC and MUON against Adam's diagonal: κ of the preconditioned GGN and K),
or all.  Each writes report.md, a JSON file and PNGs to --out (``all``: one subfolder per study).
"""

from __future__ import annotations

import argparse
import pathlib
import time

from rich.console import Console
from rich.progress import Progress

STUDIES = ("diagonal", "regularization", "normalization", "kronecker")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``study`` subcommand to the ``precond`` parser.

    Args:
      sub: the ``argparse`` subparsers of the ``precond`` parser.
    """
    p = sub.add_parser("study", help="seed 002's mechanisms: diagonal / regularization / "
                       "normalization / kronecker studies", description=__doc__)
    p.add_argument("name", choices=(*STUDIES, "all"), help="which study")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quick", action="store_true",
                   help="scikit-learn digits (default: reduced Fashion-MNIST, average-pooled "
                        "to 7×7, 6000 train / 2000 test rows); run times in "
                        "docs/results/study.md")
    p.add_argument("--dataset", choices=("digits", "fashion"), default=None,
                   help="override the data set of the non-quick size")
    p.add_argument("--tiny", action="store_true", help="the tests' smoke size")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the study ``args.name`` (or all three), each into its folder.

    Args:
      args: the parsed command line.

    Returns:
      The exit status (0).
    """
    from ._args import check_out_dir

    check_out_dir(args.out)
    from precond.experiments.study import diagonal, kronecker, normalization, regularization

    modules = {"diagonal": diagonal, "regularization": regularization,
               "normalization": normalization, "kronecker": kronecker}
    names = STUDIES if args.name == "all" else (args.name,)
    out = pathlib.Path(args.out)
    console = Console()
    for name in names:
        mod = modules[name]
        cfg = mod.config(args.quick, tiny=args.tiny,
                         dataset=args.dataset or (None if args.quick else "fashion"))
        target = out / name if args.name == "all" else out
        t0 = time.perf_counter()
        with Progress(console=console, transient=True) as bar:
            task = bar.add_task(f"study {name} ({cfg['dataset']})", total=None)
            mod.run(target, cfg, progress=lambda k, t=task: bar.advance(t, k))
        console.print(f"study {name}: {cfg['dataset']}, wrote {target / 'report.md'} "
                      f"({time.perf_counter() - t0:.0f} s)")
    return 0
