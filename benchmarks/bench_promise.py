"""PROMISE on real data (offline): epochs and seconds to a 1e-4 optimality gap for the four
Sketchy methods with default hyperparameters vs SGD/SVRG/SAGA with grid-tuned step sizes and vs
scikit-learn's saga, on ℓ2-regularized logistic regression with μ = 1e-2/n.

    python benchmarks/bench_promise.py --out docs/bench/promise.md [--quick]
"""

from __future__ import annotations

import argparse
import os
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
# lr = c / L, L = λ_max(∇²F(0)): factor-2 steps from 1/4 to 1024 (L at 0 overstates the
# curvature near the optimum of nearly separable data 100-fold); the order only saves time.
GRID = (2.0, 8.0, 32.0, 128.0, 4.0, 16.0, 64.0, 1.0, 256.0, 0.5, 512.0, 0.25, 1024.0)
SGD_DECAY = 0.9  # the opt-in SketchySGD row (lr_decay); not a default


def datasets(features: int):
    """(name, X, y): Fashion-MNIST T-shirt vs shirt with ``features`` RBF random features, KEEL
    magic (standardized + intercept), KEEL mushroom one-hot (sparse CSR + intercept)."""
    X, y = load_fashion_mnist("train")
    keep = (y == 0) | (y == 6)
    Xf = random_features(X[keep], features, seed=0)
    yield (f"Fashion-MNIST 0 vs 6, {features} RBF features", Xf, (y[keep] == 0).astype(float))
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


def summarize(hits):
    """Per-seed hits → medians over the seeds of (epochs, data passes, seconds), a run that
    missed counting as +∞ in each; None when the median epoch count is +∞ (most seeds missed)."""
    med = [float(np.median([h[i] if h else np.inf for h in hits])) for i in range(3)]
    return tuple(med) if np.isfinite(med[0]) else None


def per_seed(hits, budget):
    return ", ".join(str(h[0]) if h else f">{budget}" for h in hits)


def ablations(out: str) -> int:
    """The checks behind docs/results/promise.md, written to ``out``: (a) SketchySAGA on magic
    with the defaults, a larger b_H with r = d, a larger ρ, and an exact Newton preconditioner
    (b_H = n, r = d) at 1, 2 and 4 times its η̂, against SAGA at the tuned and at its default
    step, keys 0–7 — is the epoch count limited by P, by η or by SAGA's table?
    (b) SketchyKatyusha on mushroom with θ₁ from n/b_g (the minibatch reading of L-Katyusha)
    against the default θ₁ = min(½, √(2nσ/3)).  (c) SketchySGD with lr_decay
    γ ∈ {1, 0.9, 0.8, 0.7} on all three sets.
    Epochs to F − F* ≤ 1e-4 per jax key, budget 100."""
    import jax.numpy as jnp

    t0 = time.perf_counter()
    sets = {name: (X, y) for name, X, y in datasets(500)}
    keys = range(4)
    text = ["## PROMISE ablations", ""]

    def prep(name):
        X, y = sets[name]
        mu = 1e-2 / X.shape[0]
        return ps.logistic(X, y, mu), reference(X, y, mu)[0], X.shape[0]

    def epochs(solver, problem, f_star, n, seeds=keys, **kw):
        return per_seed([hit(solver(problem, epochs=100, key=jax.random.key(k),
                                    target=f_star + GAP, **kw), f_star, n) for k in seeds], 100)

    problem, f_star, n = prep("KEEL magic, standardized")
    d = problem.d
    bh = int(np.sqrt(n))
    magic_keys = range(8)  # the 5-vs-6 question is a coin flip per key: more keys than (b), (c)
    r0 = ps.sketchy_saga(problem, epochs=1, key=jax.random.key(0), hessian_batch_size=n, rank=d)
    eta = float(r0.lr[1])
    L0 = float(power_iteration(problem.hessian(np.zeros(d)), jax.random.key(0), maxiter=500,
                               tol=1e-8).eigenvalue)

    def row(label, step, solver=ps.sketchy_saga, **kw):
        got = epochs(solver, problem, f_star, n, seeds=magic_keys, **kw)
        text.append(f"| {label} | {step} | {got} |")

    text += ["(a) SketchySAGA on KEEL magic, epochs to 1e-4 per key " + str(list(magic_keys))
             + ":", "", "| preconditioner | step | epochs |", "|---|---|---|"]
    row(f"defaults (b_H = ⌊√n⌋ = {bh}, r = 10, ρ = μ)", "η̂ (default)")
    row(f"b_H = 4⌊√n⌋ = {4 * bh}, r = d = {d}", "η̂", hessian_batch_size=4 * bh, rank=d)
    row(f"ρ = 0.1·L = {0.1 * L0:.3g}", "η̂", rho=0.1 * L0)
    for c in (1, 2, 4):
        row(f"exact: b_H = n, r = d = {d}", f"{c}·η̂₀ = {c * eta:.3g}", hessian_batch_size=n,
            rank=d, lr=c * eta)
    row("none (SAGA)", "2/L (tuned)", ps.saga, lr=2 / L0)
    row("none (SAGA)", "η̂ = ½/λ̂_max(H_S′ + μI) (its default)", ps.saga)
    print("\n".join(text[-11:]), flush=True)

    problem, f_star, n = prep("KEEL mushroom one-hot (sparse)")
    default = ps.SketchyKatyusha.hyper

    def minibatch_theta(L_hat, lr, defaults, problem, epoch=0):
        hp = default(L_hat, lr, defaults, problem, epoch)
        theta1 = jnp.minimum(0.5, jnp.sqrt(2.0 * hp.sigma / (3.0 * hp.p)))
        return hp._replace(theta1=theta1, eta=hp.theta2 / ((1.0 + hp.theta2) * theta1))

    rows = []
    for label, hyper in (("min(½, √(2σ/(3p))), p = b_g/n", minibatch_theta),
                         ("min(½, √(2nσ/3)) (default)", default)):
        gaps = []
        for k in keys:
            res = ps.solve(ps.SketchyKatyusha._replace(hyper=hyper), problem, epochs=50,
                           key=jax.random.key(k))
            ok = np.nonzero(res.objective - f_star <= GAP)[0]
            gaps.append((str(int(ok[0])) if len(ok) else ">50",
                         f"{res.objective[-1] - f_star:.1e}"))
        rows.append(f"| {label} | {', '.join(g[0] for g in gaps)} | "
                    f"{', '.join(g[1] for g in gaps)} |")
    text += ["", "(b) SketchyKatyusha on KEEL mushroom, 50 epochs per key:", "",
             "| θ₁ | epochs to 1e-4 | F − F* after 50 epochs |", "|---|---|---|", *rows]
    print("\n".join(text[-4:]), flush=True)

    text += ["", "(c) SketchySGD with lr_decay γ (epoch k uses γᵏη̂ₖ), epochs to 1e-4 per key:", "",
             "| γ | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    probs = [prep(name) for name in sets]
    for gamma in (1.0, 0.9, 0.8, 0.7):
        text.append(f"| {gamma:g} | " + " | ".join(
            epochs(ps.sketchy_sgd, p_, f_, n_, lr_decay=gamma) for p_, f_, n_ in probs) + " |")
        print(text[-1], flush=True)
    total = time.perf_counter() - t0
    load = os.getloadavg()
    text[1:1] = ["", f"Command: `python benchmarks/bench_promise.py --ablations --out {out}` "
                 f"({total:.0f} s; load average {load[0]:.1f} at the end).  Machine: "
                 f"{machine()}.  μ = 1e-2/n, target F − F* ≤ 1e-4, Fashion-MNIST with 500 RBF "
                 "features.", ""]
    pathlib.Path(out).write_text("\n".join(text) + "\n")
    print(f"wrote {out} in {total:.0f} s")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/bench/promise.md")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 20-epoch budget, 1 seed, 100 random features")
    ap.add_argument("--epochs", type=int, default=200, help="epoch budget of every run")
    ap.add_argument("--seeds", type=int, default=3, help="seeds (jax keys 0, 1, …) per method")
    ap.add_argument("--features", type=int, default=500, help="Fashion-MNIST random features")
    ap.add_argument("--ablations", action="store_true",
                    help="run the checks behind docs/results/promise.md instead")
    args = ap.parse_args()
    if args.ablations:
        return ablations(args.out)
    budget = 20 if args.quick else args.epochs
    seeds = range(1 if args.quick else args.seeds)
    features = 100 if args.quick else args.features
    key0 = jax.random.key(0)
    t_start = time.perf_counter()
    lines, verdicts = [], []
    for name, X, y in datasets(features):
        n, d = X.shape
        mu = 1e-2 / n
        problem = ps.logistic(X, y, mu)
        f_star, gnorm = reference(X, y, mu)
        L0 = float(power_iteration(problem.hessian(np.zeros(d)), key0, maxiter=500,
                                   tol=1e-8).eigenvalue)
        print(f"{name}: n={n} d={d} F*={f_star:.10g} (‖∇F‖={gnorm:.1e}) L={L0:.3g}", flush=True)
        rows = {}

        def run_seeds(solver, problem=problem, f_star=f_star, n=n, **kw):
            return [hit(solver(problem, epochs=budget, key=jax.random.key(s),
                               target=f_star + GAP, **kw), f_star, n) for s in seeds]

        for label, solver in SKETCHY.items():
            rows[label] = (run_seeds(solver), "defaults")
            print(f"  {label}: {rows[label][0]}", flush=True)
        hits = run_seeds(ps.sketchy_sgd, lr_decay=SGD_DECAY)
        rows[f"SketchySGD, lr_decay = {SGD_DECAY:g}"] = (hits, "opt-in decay, not a default")
        print(f"  SketchySGD decay: {hits}", flush=True)
        for label, solver in TUNED.items():
            best, closest = None, np.inf
            for c in GRID:  # tuned on seed 0
                # prune: a step size is only worth running until it beats the best so far
                cap = budget if best is None else max(best[0][0], 1)
                r = solver(problem, epochs=cap, key=key0, lr=c / L0, target=f_star + GAP)
                closest = min(closest, float(np.nanmin(r.objective - f_star)))
                h = hit(r, f_star, n)
                if h is not None and (best is None or (h[1], h[2]) < (best[0][1], best[0][2])):
                    best = (h, c)
            if best is None:
                rows[label] = ([None] * len(seeds), f"none of {len(GRID)} reached on seed 0 "
                               f"(best gap {closest:.1e})")
            else:
                c = best[1]
                hits = [best[0]] + [hit(solver(problem, epochs=budget,
                                               key=jax.random.key(s),
                                               lr=c / L0, target=f_star + GAP), f_star, n)
                                    for s in seeds if s > 0]
                rows[label] = (hits, f"lr = {c:g}/L (best on seed 0)")
            print(f"  {label}: {rows[label]}", flush=True)
        sk = sklearn_saga(X, y, mu, f_star, 4 * budget)
        rows["sklearn saga"] = ([sk], "sklearn defaults (b = 1), random_state=0")
        print(f"  sklearn saga: {sk}", flush=True)
        lines.append(f"\n**{name}** — n = {n}, d = {d}, μ = 1e-2/n = {mu:.2e}, "
                     f"F* = {f_star:.10g} (Newton, ‖∇F*‖ = {gnorm:.0e}), "
                     f"L = λ_max(∇²F(0)) = {L0:.3g}\n")
        lines.append("| method | hyperparameters | epochs to 1e-4, per seed | epochs (median) | "
                     "data passes (median) | seconds (median) | passes / tuned SAGA |")
        lines.append("|---|---|---|---:|---:|---:|---:|")
        summ = {label: summarize(h) for label, (h, _) in rows.items()}
        saga = summ["SAGA"]
        for label, (h, how) in rows.items():
            m = summ[label]
            if m is None:
                lines.append(f"| {label} | {how} | {per_seed(h, budget)} | not in {budget} | — "
                             "| — | — |")
                continue
            ratio = f"{m[1] / saga[1]:.2f}" if saga else "—"
            lines.append(f"| {label} | {how} | {per_seed(h, budget)} | {m[0]:g} | {m[1]:.1f} | "
                         f"{m[2]:.3f} | {ratio} |")
        for label in SKETCHY:
            m = summ[label]
            if saga is None:
                verdicts.append(f"{name}: tuned SAGA did not reach 1e-4 within {budget} epochs "
                                f"(median of seeds); {label} {'did' if m else 'did not'}.")
                continue
            if m is None:
                why = (" (constant step: noise floor above 1e-4)" if label == "SketchySGD"
                       else "")
                verdicts.append(f"{name}: {label} MISSED — no 1e-4 gap within {budget} epochs"
                                f"{why}; tuned SAGA: {saga[0]:g} epochs.")
                continue
            ep = "met" if m[0] <= saga[0] else "MISSED"
            pa = "met" if m[1] <= saga[1] else "MISSED"
            verdicts.append(f"{name}: {label} {m[0]:g} epochs vs tuned SAGA {saga[0]:g} (epochs "
                            f"target {ep}); {m[1]:.3f} vs {saga[1]:.3f} data passes (passes "
                            f"{pa}).")
        if sk is not None:
            best = min((summ[lb] for lb in SKETCHY if summ[lb]), key=lambda m: m[1],
                       default=None)
            if best is not None:
                verdicts.append(f"{name}: best Sketchy method {best[1]:.1f} data passes vs "
                                f"scikit-learn saga {sk[1]:.0f} (single-sample steps).")
    total = time.perf_counter() - t_start
    cmd = ("python benchmarks/bench_promise.py --out " + args.out
           + (" --quick" if args.quick else "")
           + ("" if args.quick or args.epochs == 200 else f" --epochs {args.epochs}")
           + ("" if args.quick or args.seeds == 3 else f" --seeds {args.seeds}")
           + ("" if args.quick or args.features == 500 else f" --features {args.features}"))
    load = os.getloadavg()
    grid = ", ".join(f"{c:g}" for c in sorted(GRID))
    text = [
        "## PROMISE: Sketchy methods with default hyperparameters vs tuned SGD/SVRG/SAGA",
        "",
        f"Command: `{cmd}` ({total:.0f} s in all; load average {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f} at the end).  Machine: {machine()}.  float64.",
        "",
        "ℓ2-regularized logistic regression, μ = 1e-2/n, no intercept beyond an explicit column "
        "of ones; target F − F* ≤ 1e-4 with F* from a Newton solve.  Every run has the same "
        f"budget of {budget} epochs and stops as soon as the target is met.  Sketchy methods: "
        "precond.stochastic defaults, no tuning (b_g = 256, b_H = ⌊√n⌋, r = 10, ρ = μ, "
        "refresh every epoch, η = ½/λ̂_max(P⁻¹(H_S′ + μI)), Katyusha θ₁ = min(½, √(2nσ/3))), "
        f"run with jax keys {list(seeds)}.  SGD/SVRG/SAGA (precond.stochastic, b_g = 256): "
        f"step lr = c/L for c in {{{grid}}}, tuned on key 0 (best by data passes; each grid "
        "point after the first is capped at the best epoch count so far), then the winner run "
        "with the other keys.  Medians over the keys; a key that missed counts as +∞.  "
        "scikit-learn saga: C = 1/(nμ), fit_intercept=False, its own step rule, single-sample "
        "steps; epochs = smallest max_iter within the gap (found by doubling and bisection), "
        "seconds = one fit with that max_iter.  An *epoch* is the solver's outer loop: ⌊n/b_g⌋ "
        "minibatch steps; SVRG (epoch-based) and loopless Katyusha spend ≈ 3 data passes per "
        "epoch, SGD/SAGA 1 (SAGA +1 for its table at x₀, so its data passes = epochs + 1); "
        "*data passes* = gradient evaluations / n.  Seconds: solver work with "
        "`block_until_ready`, compilation (reported by the solvers apart) and per-epoch "
        "objective evaluations excluded; noisy on a shared machine.",
        *lines,
        "",
        "Verdicts (target: defaults need no more epochs than tuned SAGA on every data set; "
        "medians over keys):",
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
