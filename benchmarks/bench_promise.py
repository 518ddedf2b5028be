"""PROMISE on real data (offline): epochs and seconds to a 1e-4 optimality gap for the four
Sketchy methods with default hyperparameters vs SGD/SVRG/SAGA with grid-tuned step sizes and vs
scikit-learn's saga, on ℓ2-regularized logistic regression with μ = 1e-2/n.

    python benchmarks/bench_promise.py --out docs/bench/promise.md [--quick]
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time
import warnings

import jax
import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
jax.config.update("jax_enable_x64", True)

import precond.stochastic as ps  # noqa: E402
from benchmarks._common import machine, time_call  # noqa: E402
from precond.linalg import power_iteration  # noqa: E402
from precond.problems.data import (  # noqa: E402
    load_fashion_mnist,
    load_keel_binary,
    load_keel_onehot,
    random_features,
)

GAP = 1e-4
SKETCHY = {"SketchySGD": ps.sketchy_sgd, "SketchySVRG": ps.sketchy_svrg,
           "SketchySAGA": ps.sketchy_saga, "SketchyKatyusha": ps.sketchy_katyusha}
TUNED = {"SGD": ps.sgd, "SVRG": ps.svrg, "SAGA": ps.saga}
GRID = (2.0, 4.0, 1.0, 8.0)  # lr = c / L, L = λ_max(∇²F(0)); likely winners first (pruning)


REDUCED = (
    "Reduced to fit ~15 minutes on a shared 2-core CPU (load average ≈ 15 during the run): "
    "Fashion-MNIST with 200 random features (not 500), a 50-epoch budget per run, a 4-point "
    "step-size grid run in the order 2, 4, 1, 8 (× 1/L) with each later point capped at the "
    "best epoch count so far; the 1e-4 target stops a run as soon as it is met.")


def datasets(quick: bool):
    """(name, X, y): Fashion-MNIST T-shirt vs shirt with RBF random features, KEEL magic
    (standardized + intercept), KEEL mushroom one-hot (sparse CSR + intercept)."""
    X, y = load_fashion_mnist("train")
    keep = (y == 0) | (y == 6)
    # 200 features: 500 (d = 501) made the untuned-budget grid runs too slow for the 15-minute
    # limit on a shared 2-core machine.
    Xf = random_features(X[keep], 200, seed=0)
    yield ("Fashion-MNIST 0 vs 6, RBF features", Xf, (y[keep] == 0).astype(float))
    Xm, ym = load_keel_binary("magic")
    yield ("KEEL magic, standardized", np.hstack([Xm, np.ones((len(Xm), 1))]), ym)
    Xs, ys = load_keel_onehot("mushroom")
    yield ("KEEL mushroom one-hot (sparse)", sp.hstack([Xs, np.ones((Xs.shape[0], 1))]).tocsr(),
           ys)


def reference(X, y, mu):
    """F* by damped Newton with the exact Hessian (d ≤ 501 here), to ‖∇F‖ ≤ 1e-11."""
    s = 2 * y - 1
    n, d = X.shape
    w = np.zeros(d)

    def fg(w):
        z = s * (X @ w)
        f = np.mean(np.logaddexp(0, -z)) + 0.5 * mu * w @ w
        return f, -(X.T @ (s / (1 + np.exp(z)))) / n + mu * w

    f, g = fg(w)
    for _ in range(200):
        p = 1 / (1 + np.exp(-(X @ w)))
        D = p * (1 - p) / n
        XD = X.multiply(D[:, None]) if sp.issparse(X) else X * D[:, None]
        H = np.asarray((X.T @ XD).todense() if sp.issparse(X) else X.T @ XD) + mu * np.eye(d)
        step = np.linalg.solve(H, g)
        t = 1.0
        while True:
            f_new, g_new = fg(w - t * step)
            if f_new <= f - 1e-4 * t * g @ step or t < 1e-10:
                break
            t *= 0.5
        w, f, g = w - t * step, f_new, g_new
        if np.linalg.norm(g) <= 1e-11:
            break
    return f, float(np.linalg.norm(g))


def hit(res, f_star, n):
    """(epochs, data passes, seconds) at the first epoch with F − F* ≤ GAP, or None."""
    gap = res.objective - f_star
    ok = np.nonzero(gap <= GAP)[0]
    if len(ok) == 0:
        return None
    k = int(ok[0])
    return k, res.grad_evals[k] / n, res.times[k]


def sklearn_saga(X, y, mu, f_star, max_epochs):
    """scikit-learn LogisticRegression(solver="saga") without intercept, C = 1/(nμ): smallest
    max_iter (epochs) whose solution is within GAP, by doubling then bisection."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    n = X.shape[0]
    s = 2 * y - 1

    def fit(k):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            m = LogisticRegression(solver="saga", C=1.0 / (n * mu), fit_intercept=False,
                                   tol=1e-15, max_iter=k, random_state=0)
            m.fit(X, y)
        w = m.coef_.ravel()
        return np.mean(np.logaddexp(0, -s * (X @ w))) + 0.5 * mu * w @ w

    lo, hi = 0, 1
    while fit(hi) - f_star > GAP:
        lo, hi = hi, 2 * hi
        if hi > max_epochs:
            return None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fit(mid) - f_star <= GAP else (mid, hi)
    _, seconds, _ = time_call(lambda: fit(hi), repeats=1, warmup=False)
    return hi, float(hi), seconds


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/bench/promise.md")
    ap.add_argument("--quick", action="store_true", help="20-epoch budget (a smoke run)")
    ap.add_argument("--epochs", type=int, default=50, help="epoch budget per run")
    args = ap.parse_args()
    budget = 20 if args.quick else args.epochs
    key = jax.random.key(0)
    t_start = time.perf_counter()
    lines, verdicts = [], []
    for name, X, y in datasets(args.quick):
        n, d = X.shape
        mu = 1e-2 / n
        problem = ps.logistic(X, y, mu)
        f_star, gnorm = reference(X, y, mu)
        L0 = float(power_iteration(problem.hessian(np.zeros(d)), key, maxiter=500,
                                   tol=1e-8).eigenvalue)
        print(f"{name}: n={n} d={d} F*={f_star:.10g} (‖∇F‖={gnorm:.1e}) L={L0:.3g}", flush=True)
        rows = {}
        for label, solver in SKETCHY.items():
            r = solver(problem, epochs=budget, key=key, target=f_star + GAP)
            rows[label] = (hit(r, f_star, n), "defaults", r.compile_time)
            print(f"  {label}: {rows[label][0]} compile {r.compile_time:.1f}s", flush=True)
        for label, solver in TUNED.items():
            best, closest = None, np.inf
            for c in GRID:
                # prune: a step size is only worth running until it beats the best so far
                cap = budget if best is None else max(best[0][0], 1)
                r = solver(problem, epochs=cap, key=key, lr=c / L0, target=f_star + GAP)
                closest = min(closest, float(np.nanmin(r.objective - f_star)))
                h = hit(r, f_star, n)
                if h is not None and (best is None or (h[1], h[2]) < (best[0][1], best[0][2])):
                    best = (h, f"lr = {c:g}/L", r.compile_time)
            rows[label] = best if best is not None else (
                None, f"none of {len(GRID)} reached (best gap {closest:.1e})", 0.0)
            print(f"  {label}: {rows[label][0]} {rows[label][1]}", flush=True)
        sk = sklearn_saga(X, y, mu, f_star, 4 * budget)
        rows["sklearn saga"] = (sk, "sklearn defaults (b = 1)", 0.0)
        print(f"  sklearn saga: {sk}", flush=True)
        lines.append(f"\n**{name}** — n = {n}, d = {d}, μ = 1e-2/n = {mu:.2e}, "
                     f"F* = {f_star:.10g} (Newton, ‖∇F*‖ = {gnorm:.0e}), "
                     f"L = λ_max(∇²F(0)) = {L0:.3g}\n")
        lines.append("| method | hyperparameters | epochs to 1e-4 | data passes | seconds | "
                     "passes / tuned SAGA |")
        lines.append("|---|---|---:|---:|---:|---:|")
        saga_passes = rows["SAGA"][0][1] if rows["SAGA"][0] else None
        for label, (h, how, _) in rows.items():
            if h is None:
                lines.append(f"| {label} | {how} | not in {budget} | — | — | — |")
                continue
            ratio = f"{h[1] / saga_passes:.2f}" if saga_passes else "—"
            lines.append(f"| {label} | {how} | {h[0]} | {h[1]:.1f} | {h[2]:.3f} | {ratio} |")
        for label in SKETCHY:
            h = rows[label][0]
            if saga_passes is None:
                verdicts.append(f"{name}: tuned SAGA did not reach 1e-4 within {budget} epochs; "
                                f"{label} {'did' if h else 'did not'}.")
                continue
            saga_epochs = rows["SAGA"][0][0]
            if label == "SketchySGD" and h is None:
                verdicts.append(f"{name}: SketchySGD MISSED — its constant step leaves a noise "
                                f"floor above 1e-4 here.")
                continue
            if h is None:
                verdicts.append(f"{name}: {label} MISSED — no 1e-4 gap within {budget} epochs "
                                f"(tuned SAGA: {saga_epochs} epochs).")
            else:
                ep = "met" if h[0] <= saga_epochs else "MISSED"
                pa = "met" if h[1] <= saga_passes else "MISSED"
                verdicts.append(f"{name}: {label} {h[0]} epochs vs tuned SAGA {saga_epochs} "
                                f"(epochs target {ep}); {h[1]:.1f} vs {saga_passes:.1f} data "
                                f"passes (passes target {pa}).")
        if sk is not None:
            best = min((rows[lb][0] for lb in SKETCHY if rows[lb][0]), key=lambda h: h[1],
                       default=None)
            if best is not None:
                verdicts.append(f"{name}: best Sketchy method {best[1]:.1f} data passes vs "
                                f"scikit-learn saga {sk[1]:.0f} (single-sample steps).")
    total = time.perf_counter() - t_start
    cmd = "python benchmarks/bench_promise.py --out " + args.out + (" --quick" if args.quick
                                                                     else "")
    text = [
        "## PROMISE: Sketchy methods with default hyperparameters vs tuned SGD/SVRG/SAGA",
        "",
        f"Command: `{cmd}` ({total:.0f} s in all).  Machine: {machine()}.  float64.",
        "",
        "ℓ2-regularized logistic regression, μ = 1e-2/n, no intercept beyond an explicit column "
        "of ones; target F − F* ≤ 1e-4 with F* from a Newton solve.  Sketchy methods: "
        "precond.stochastic defaults, no tuning (b_g = 256, b_H = ⌊√n⌋, r = 10, ρ = μ, "
        "refresh every epoch, η = ½/λ̂_max(P⁻¹H_S′)).  SGD/SVRG/SAGA (precond.stochastic, "
        f"b_g = 256): step lr = c/L for c in {list(GRID)}, best by data passes.  scikit-learn "
        "saga: C = 1/(nμ), fit_intercept=False, its own step rule, single-sample steps; epochs "
        "= smallest max_iter within the gap (found by doubling and bisection), seconds = one fit "
        "with that max_iter.  An *epoch* is the solver's outer loop: ⌊n/b_g⌋ minibatch steps; "
        "SVRG (epoch-based) and loopless Katyusha spend ≈ 3 data passes per epoch, SGD/SAGA 1 "
        "(SAGA +1 for its table at the start); *data passes* = gradient evaluations / n.  "
        "Seconds: solver work with `block_until_ready`, compilation (reported by the solvers "
        "apart, 1–20 s per solver and shape here) and per-epoch objective evaluations excluded.",
        "",
        REDUCED,
        *lines,
        "",
        "Verdicts (target: defaults need no more epochs than tuned SAGA on every data set):",
        "",
        *[f"- {v}" for v in verdicts],
        "",
        "PROMISE's reference (real-sim, not run here): SketchySAGA 39 epochs, SketchyKatyusha 23, "
        "tuned SAGA 50.",
        "",
    ]
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text("\n".join(text))
    print(f"wrote {args.out} in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
