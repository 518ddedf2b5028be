"""The adaptive rank's caps, measured: SketchySAGA and SketchySVRG with the defaults (r doubled
on H_S(x₀) up to ⌊b_H/2⌋, b_H = ⌊√n⌋) against r = b_H (the cap before issue 22's last round),
against larger sketches on larger Hessian subsamples (r, b_H) = (min(d, 256), 512),
(min(d, 512), 1024) and against the exact Hessian (r = d, b_H = n), and, on the raw-pixel
set, against larger dampings ρ.

Why: a b_H-sample Hessian has rank ≤ b_H, so the adaptive rank stops at its cap on a spread
spectrum; letting b_H grow with the wanted rank is the obvious change, and r = b_H (the whole
subsample) the obvious cap.  This measures both before making either a default.  Every row:
ℓ2-logistic, μ = 1e-2/n, 40 epochs at most, stop at F − F* ≤ 1e-4 (F* by Newton), jax keys 0
and 1, one untimed warm-up epoch per configuration; b_g by the default rule.

Usage: python benchmarks/promise_rank_cap.py --out docs/bench/promise_rank_cap.md
(a supporting measurement for docs/results/promise.md, not one of `make bench`'s sections)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import _threads  # noqa: F401  one thread for XLA and BLAS, before jax
import jax  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
jax.config.update("jax_enable_x64", True)

from _common import machine  # noqa: E402
from bench_promise import GAP, datasets, hit, reference  # noqa: E402

import precond.stochastic as ps  # noqa: E402
from precond.experiments.store import atomic_write  # noqa: E402

EPOCHS = 40
KEYS = (0, 1)


def configs(n: int, d: int, raw: bool):
    """(label, solver name, keyword arguments) of one data set's rows."""
    rows = []
    bh = int(np.sqrt(n))
    for solver in ("sketchy_saga", "sketchy_svrg"):
        rows += [(f"defaults (b_H = {bh}, r ≤ {bh // 2})", solver, {}),
                 (f"r = b_H = {min(d, bh)}", solver, dict(rank=min(d, bh))),
                 (f"r = {min(d, 256)}, b_H = 512", solver,
                  dict(rank=min(d, 256), hessian_batch_size=512)),
                 (f"r = {min(d, 512)}, b_H = 1024", solver,
                  dict(rank=min(d, 512), hessian_batch_size=1024))]
    # A refresh sketches all n rows at rank d: 10 epochs at most (the column says so).
    rows.append((f"exact Hessian: r = d, b_H = n = {n}, 10 epochs at most", "sketchy_saga",
                 dict(rank=d, hessian_batch_size=n, epochs=10)))
    if raw:
        rows += [(f"defaults, ρ = {rho:g}", "sketchy_saga", dict(rho=rho))
                 for rho in (1e-4, 1e-3, 1e-2)]
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/bench/promise_rank_cap.md")
    args = ap.parse_args()
    t_start = time.perf_counter()
    lines = []
    for name, X, y in datasets(500):
        if "magic" in name:  # d = 11: every cap is d
            continue
        n, d = X.shape
        mu = 1e-2 / n
        problem = ps.logistic(X, y, mu)
        f_star, _ = reference(X, y, mu)
        print(f"{name}: n={n} d={d} F*={f_star:.10g}", flush=True)
        lines += [f"\n**{name}** — n = {n}, d = {d}, μ = {mu:.2e}\n",
                  "| method | sketch | r, b_H, b_g used | epochs to 1e-4 (keys 0, 1) | data passes "
                  "| solver seconds | F − F* after the last epoch |",
                  "|---|---|---|---|---|---|---|"]
        for label, solver, kw in configs(n, d, raw="raw" in name):
            run = getattr(ps, solver)
            kw = dict(kw)
            epochs = kw.pop("epochs", EPOCHS)
            run(problem, epochs=1, key=jax.random.key(0), **kw)  # compile and rank search
            res = [run(problem, epochs=epochs, key=jax.random.key(k), target=f_star + GAP, **kw)
                   for k in KEYS]
            hits = [hit(r, f_star, n) for r in res]

            def each(i, fmt, hits=hits):
                return ", ".join("—" if h is None else fmt.format(h[i]) for h in hits)

            ep = ", ".join(f">{epochs}" if h is None else str(h[0]) for h in hits)
            gaps = ", ".join(f"{r.objective[-1] - f_star:.1e}" for r in res)
            r0 = res[0]
            used = f"{r0.rank}, {r0.hessian_batch_size}, {r0.batch_size}"
            lines.append(f"| {solver} | {label} | {used} | {ep} | {each(1, '{:.1f}')} | "
                         f"{each(2, '{:.2f}')} | {gaps} |")
            print(lines[-1], flush=True)
    total = time.perf_counter() - t_start
    text = ["## PROMISE: the adaptive rank's caps (⌊b_H/2⌋, b_H, a growing b_H)", "",
            f"Command: `python benchmarks/promise_rank_cap.py --out {args.out}` ({total:.0f} s; "
            f"{time.strftime('%Y-%m-%d')}).  Machine: {machine()}.  float64, one thread per "
            f"library.  {EPOCHS} epochs at most, target F − F* ≤ {GAP:g}; seconds are solver "
            "work (compilation and the untimed warm-up apart).", *lines, ""]
    atomic_write(args.out, "\n".join(text))
    print(f"wrote {args.out} in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
