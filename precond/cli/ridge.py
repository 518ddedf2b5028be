"""``precond ridge``: ridge regression by CG and by Nyström PCG, side by side.

With ``--devices N`` the rows of X are split over N devices (``precond.distributed``): XᵀX and
Xᵀy are formed from the row blocks (a local product per device, then one all-reduce), so X is
never gathered; the d × d system and the solvers' iterates are replicated.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console
from rich.table import Table

from precond.distributed import shard_rows
from precond.distributed.training import describe_mesh, mesh_info
from precond.linalg import DenseOperator, cg, nystrom_pcg
from precond.validation import check_int, check_nonnegative, check_positive

from . import add_devices_argument, mesh_from_args


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``ridge`` subcommand to the ``precond`` parser.

    Args:
      sub: the ``argparse`` subparsers of the ``precond`` parser.
    """
    p = sub.add_parser("ridge", help="ridge regression solved by CG and by Nyström PCG",
                       description=__doc__)
    p.add_argument("--n", type=int, default=4000, help="samples (default 4000)")
    p.add_argument("--d", type=int, default=800, help="features (default 800)")
    p.add_argument("--lam", type=float, default=1e-4, help="ridge parameter λ (default 1e-4)")
    p.add_argument("--ranks", type=int, nargs="+", default=[50, 100],
                   help="Nyström ranks (default 50 100)")
    p.add_argument("--tol", type=float, default=1e-6, help="relative residual (default 1e-6)")
    p.add_argument("--seed", type=int, default=0)
    add_devices_argument(p)
    p.set_defaults(func=run)


def ridge_data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Built-in ill-conditioned regression data: X = √n U diag(1/i) Vᵀ, y = Xw* + 0.1 ε.

    Args:
      n: samples (rows of X), ≥ d.
      d: features.
      seed: the seed of U, V, w* and the noise ε.

    Returns:
      ``(X (n, d), y (n,))``, float64.
    """
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    X = (U * (1.0 / np.arange(1, d + 1))) @ V.T * np.sqrt(n)
    y = X @ rng.standard_normal(d) + 0.1 * rng.standard_normal(n)
    return X, y


@jax.jit
def _normal_equations(X, y):
    """XᵀX and Xᵀy from row-sharded X, y: replicated results, X never gathered."""
    return X.T @ X, X.T @ y


def _timed(fn, *args):
    out = jax.block_until_ready(fn(*args))  # compile + first run
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - t0


def run(args: argparse.Namespace) -> int:
    """Solve the ridge system by CG and by Nyström PCG at each rank; print one table.

    Args:
      args: the parsed command line.

    Returns:
      The exit status (0).
    """
    check_int(args.n, "--n", low=1)
    check_int(args.d, "--d", low=1, high=args.n)
    check_nonnegative(args.lam, "--lam")
    check_positive(args.tol, "--tol")
    for rank in args.ranks:
        check_int(rank, "--ranks", low=1, high=args.d)
    mesh = mesh_from_args(args)
    P = mesh.devices.size
    if args.n % P:
        raise ValueError(f"--n {args.n} is not a multiple of the {P} devices (--devices): "
                         "the rows of X are split in equal blocks")
    console = Console()
    X, y = shard_rows(ridge_data(args.n, args.d, args.seed), mesh)
    A, b = _normal_equations(X, y)
    op = DenseOperator(A)
    console.print(f"ridge (XᵀX + λI)w = Xᵀy: n={args.n}, d={args.d}, λ={args.lam:g}, "
                  f"singular values of X ∝ 1/i, float64, relative residual {args.tol:g}; "
                  f"rows of X on {describe_mesh(mesh_info(mesh))}")
    table = Table()
    table.add_column("solver", no_wrap=True)
    for heading in ("iterations", "relative residual", "status", "time (s)"):
        table.add_column(heading)
    # The system is an argument, not a closed-over constant: on a mesh it stays replicated.
    solve_cg = jax.jit(lambda op, b: cg(op.shift(args.lam), b, tol=args.tol,
                                        maxiter=20 * args.d))
    res, t = _timed(solve_cg, op, b)
    rows = [("CG", res, t)]
    for rank in args.ranks:
        solve = jax.jit(lambda op, b, r=rank: nystrom_pcg(
            op, b, args.lam, r, jax.random.key(args.seed), tol=args.tol, maxiter=20 * args.d))
        res, t = _timed(solve, op, b)
        rows.append((f"Nyström PCG (rank {rank})", res, t))
    Aw = lambda w: A @ w + args.lam * w  # noqa: E731
    for name, res, t in rows:
        rel = float(jnp.linalg.norm(b - Aw(res.x)) / jnp.linalg.norm(b))
        table.add_row(name, str(int(res.iterations)), f"{rel:.2e}", str(res.reason), f"{t:.3f}")
    console.print(table)
    console.print("Times exclude compilation; Nyström set-up (sketch + factorization) included.")
    return 0
