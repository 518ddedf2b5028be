"""Kronecker-factored and other structured optimizers on real networks: Fashion-MNIST, an MLP
784-512-512-10 (≈ 670k parameters) and a small CNN, batch 128, float32.

Methods: SGD + momentum, Adam, K-FAC and Shampoo (``precond.optim``; the learning rates of
these three picked on small grids by the accuracy reached in a short budget, seed 0), Sophia and
MUON (``optax.contrib`` through ``precond.optim``'s wrappers), and psgd-jax's Kron when it
imports.  Per method and seed:
the steps and the step wall time (compile apart) to 88% test accuracy, the test accuracy after a
fixed wall-time budget, and the step cost as a ratio to Adam's step in the same run (medians of
the timed chunks of ``--chunk`` steps, each step including its share of the refreshes).  Test
accuracy is evaluated on the 10,000 test images after every chunk, outside the timings.

Targets (issue 21): K-FAC or Shampoo reaches 88% in ≤ 0.5× Adam's steps and ≤ 1.0× Adam's wall
time on the MLP; every step costs ≤ 2× Adam's at the default refresh interval.

Usage: python benchmarks/bench_kronecker.py --out docs/bench/kronecker.md [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import _threads  # noqa: F401, E402  one thread for XLA and BLAS/LAPACK (eigh), before jax
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, time_rounds  # noqa: E402

from precond import optim  # noqa: E402
from precond.experiments.store import atomic_write  # noqa: E402
from precond.loop import compile_ahead, timed  # noqa: E402
from precond.problems.data import load_fashion_mnist  # noqa: E402

TARGET = 0.88
SECONDARY = (0.85,)
"""Lower thresholds also recorded: on a loaded machine a short budget may not reach 88%."""
METHODS = ("sgd-momentum", "adam", "kfac", "shampoo", "sophia", "muon", "psgd-kron")


# ----------------------------------------------------------------------------- models
def init_mlp(key, sizes=(784, 512, 512, 10)):
    """He-initialized ReLU MLP, a list of {"w", "b"} dense layers."""
    keys = jax.random.split(key, len(sizes) - 1)
    return [{"w": jax.random.normal(k, (a, b), jnp.float32) * jnp.sqrt(2.0 / a),
             "b": jnp.zeros(b, jnp.float32)}
            for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)]


def mlp(params, x):
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def init_cnn(key):
    """conv 5×5×16 stride 2 → ReLU → conv 3×3×32 stride 2 → ReLU → dense 7·7·32 → 10."""
    k1, k2, k3 = jax.random.split(key, 3)
    he = lambda k, shape, fan: jax.random.normal(k, shape, jnp.float32) * jnp.sqrt(2.0 / fan)  # noqa: E731
    return {"conv1": {"w": he(k1, (5, 5, 1, 16), 25), "b": jnp.zeros(16, jnp.float32)},
            "conv2": {"w": he(k2, (3, 3, 16, 32), 144), "b": jnp.zeros(32, jnp.float32)},
            "dense": {"w": he(k3, (7 * 7 * 32, 10), 7 * 7 * 32), "b": jnp.zeros(10, jnp.float32)}}


def cnn(params, x):
    h = x.reshape(-1, 28, 28, 1)
    for name in ("conv1", "conv2"):
        h = jax.lax.conv_general_dilated(h, params[name]["w"], (2, 2), "SAME",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        h = jax.nn.relu(h + params[name]["b"])
    return h.reshape(h.shape[0], -1) @ params["dense"]["w"] + params["dense"]["b"]


MODELS = {"mlp": (init_mlp, mlp), "cnn": (init_cnn, cnn)}

STEP_LOOP = {"mlp": "scan", "cnn": "dispatch"}
"""How a timed chunk runs its steps.  ``scan``: one jitted ``lax.scan`` over the chunk.
``dispatch``: the one jitted step called once per step from Python.  The CNN dispatches: on
XLA:CPU runs convolution gradients inside a loop body several times slower than the same step
outside one (jax-ml/jax#12868, open; docs/bench/kronecker.md measures it), which would time
XLA's loop lowering rather than the optimizers.  A CNN step is long against a dispatch, so the
per-step dispatch is small beside it."""


# ----------------------------------------------------------------------------- methods
def make_optimizer(name: str, lr: float, model_fn, loss_fn, key):
    """The optax transform for ``name`` (``precond.optim`` where registered), or raise
    ``ImportError``/``KeyError`` with the reason it is unavailable."""
    if name == "sgd-momentum":
        return optax.sgd(lr, momentum=0.9)
    if name == "adam":
        return optax.adam(lr)
    if name == "psgd-kron":
        from psgd_jax.kron import kron  # optional: pip install psgd-jax

        return kron(learning_rate=lr)
    if name not in optim.OPTIMIZERS:
        raise KeyError(f"{name!r} is not in precond.optim.OPTIMIZERS in this build")
    options = {"momentum": 0.9} if name in ("kfac", "shampoo") else {}
    return optim.get_optimizer(name, lr, loss_fn=loss_fn, model_fn=model_fn,
                               output_loss="softmax_cross_entropy", key=key, **options)


GRIDS = {"adam": (1e-3, 3e-3, 3e-4), "kfac": (3e-3, 1e-3, 1e-2),
         "shampoo": (1e-3, 3e-3, 3e-4)}
"""Learning-rate grids (``--grid-points`` k: the first k), each tried on seed 0 for
``--grid-budget`` seconds; the rate with the
best test accuracy at the end is used for all seeds.  K-FAC and Shampoo run with heavy ball
β = 0.9 (Adam's β₁); everything else at its defaults."""

FIXED_LR = {"sgd-momentum": 0.05, "sophia": 1e-3, "muon": 0.02, "psgd-kron": 1e-3}
"""Untuned rates: common defaults (MUON's Adam part on the biases uses the same rate)."""


# ----------------------------------------------------------------------------- one run
def run_one(model: str, name: str, lr: float, seed: int, data, *, budget: float, chunk: int,
            eval_every: int, batch_size: int) -> dict:
    """Train one method for ``budget`` seconds of step time in jitted chunks of ``chunk``
    steps; evaluate the test accuracy every ``eval_every`` steps (and at least 4 times per
    budget, and at the end), outside the timings."""
    init, model_fn = MODELS[model]
    Xtr, ytr, Xte, yte = data
    key = jax.random.key(seed)
    k_init, k_opt = jax.random.split(key)
    params = init(k_init)

    def loss_fn(p, batch):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(model_fn(p, batch[0]),
                                                                        batch[1]))

    try:
        opt = make_optimizer(name, lr, model_fn, loss_fn, k_opt)
        state = opt.init(params)
    except Exception as e:  # noqa: BLE001 - reported in the doc
        return dict(method=name, seed=seed, lr=lr, error=f"{type(e).__name__}: {e}")
    step = optim.make_step(loss_fn, opt)

    @jax.jit
    def run_chunk(p, s, X, y, idx):
        def body(carry, i):
            p, s = carry
            p, s, loss, ok = step(p, s, (X[i], y[i]))
            return (p, s), (loss, ok)

        (p, s), (losses, oks) = jax.lax.scan(body, (p, s), idx)
        return p, s, losses, oks

    @jax.jit
    def accuracy(p, X, y):
        def part(c, xs):
            return c + jnp.sum(jnp.argmax(model_fn(p, xs[0]), -1) == xs[1]), None

        Xs, ys = X.reshape(10, -1, X.shape[1]), y.reshape(10, -1)
        return jax.lax.scan(part, jnp.zeros((), jnp.int32), (Xs, ys))[0] / y.shape[0]

    rng = np.random.default_rng(seed)
    n = Xtr.shape[0]
    order, pos = rng.permutation(n), 0

    def next_idx():
        nonlocal order, pos
        rows = []
        for _ in range(chunk):
            if pos + batch_size > n:
                order, pos = rng.permutation(n), 0
            rows.append(order[pos:pos + batch_size])
            pos += batch_size
        return jnp.asarray(np.stack(rows))

    idx = next_idx()
    try:
        if STEP_LOOP[model] == "scan":
            compiled, t_compile = compile_ahead(run_chunk, params, state, Xtr, ytr, idx)
        else:
            take = jax.jit(lambda X, y, i: (X[i], y[i]))
            one, t_compile = compile_ahead(jax.jit(step), params, state, take(Xtr, ytr, idx[0]))

            def compiled(p, s, X, y, idx):
                out = []
                for i in idx:  # rows of the chunk's (chunk, b) indices, one step each
                    p, s, loss, ok = one(p, s, take(X, y, i))
                    out.append((loss, ok))
                return p, s, jnp.stack([o[0] for o in out]), jnp.stack([o[1] for o in out])
    except Exception as e:  # noqa: BLE001 - reported in the doc
        return dict(method=name, seed=seed, lr=lr, error=f"{type(e).__name__}: {e}"[:300])
    elapsed, steps, chunk_times, since_eval = 0.0, 0, [], 0.0
    curve, hits = [], {t: None for t in (TARGET, *SECONDARY)}
    status = "ok"
    while elapsed < budget:
        (params, state, losses, oks), dt = timed(compiled, params, state, Xtr, ytr, idx)
        elapsed += dt
        since_eval += dt
        steps += chunk
        chunk_times.append(dt)
        if not bool(jnp.all(oks)):
            status = f"diverged (non-finite step) before step {steps}"
            break
        idx = next_idx()
        # evaluate every eval_every steps, and at least every budget/4 seconds of steps
        if steps % eval_every and since_eval < budget / 4 and elapsed < budget:
            continue
        since_eval = 0.0
        acc = float(accuracy(params, Xte, yte))
        curve.append((steps, elapsed, acc))
        for t in hits:
            if hits[t] is None and acc >= t:
                hits[t] = (steps, elapsed)
    hit = hits[TARGET]
    return dict(method=name, seed=seed, lr=lr, compile=t_compile, steps=steps, time=elapsed,
                step_time=statistics.median(chunk_times) / chunk,
                final_acc=curve[-1][2] if curve else float("nan"),
                steps_to_target=hit[0] if hit else None, time_to_target=hit[1] if hit else None,
                secondary={t: hits[t] for t in SECONDARY}, curve=curve, status=status)


REFRESH_EVERY = {"kfac": 10, "shampoo": 10, "sophia": 10}
"""The default refresh interval k of the methods that refresh (K-FAC's factors and inverses,
Shampoo's inverse roots, Sophia's Hessian-diagonal estimate), each on steps 0, k, 2k, …"""


def step_costs(model: str, methods, lrs: dict, data, *, batch_size: int, repeats: int) -> dict:
    """Per method, seconds of one refresh step (from the fresh state, count 0) and of one plain
    step (from the state after it, count 1), one compiled step each, timed interleaved: every
    method's two steps once per round (``_common.time_rounds``), ``repeats`` rounds, medians.
    Amortized at the default interval k: (refresh + (k − 1)·plain)/k."""
    init, model_fn = MODELS[model]
    Xtr, ytr = data[0], data[1]
    batch = (Xtr[:batch_size], ytr[:batch_size])
    params = init(jax.random.key(0))

    def loss_fn(p, b):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(model_fn(p, b[0]),
                                                                        b[1]))

    fns, out, compiles = {}, {}, {}
    for name in methods:
        try:
            opt = make_optimizer(name, lrs[name], model_fn, loss_fn, jax.random.key(1))
            s0 = opt.init(params)
            one, t_compile = compile_ahead(jax.jit(optim.make_step(loss_fn, opt)), params, s0,
                                           batch)
        except Exception as e:  # noqa: BLE001 - reported in the doc
            out[name] = dict(error=f"{type(e).__name__}: {e}"[:300])
            continue
        s1 = one(params, s0, batch)[1]
        fns[f"{name}/refresh"] = lambda one=one, s=s0: one(params, s, batch)
        fns[f"{name}/plain"] = lambda one=one, s=s1: one(params, s, batch)
        compiles[name] = t_compile
    for f in fns.values():  # warm-up
        jax.block_until_ready(f())
    times = time_rounds(fns, repeats=repeats)
    for name in compiles:
        r = statistics.median(times[f"{name}/refresh"])
        q = statistics.median(times[f"{name}/plain"])
        k = REFRESH_EVERY.get(name, 1)
        out[name] = dict(refresh=r, plain=q, every=k, amortized=(r + (k - 1) * q) / k if k > 1
                         else statistics.median(times[f"{name}/refresh"] + times[f"{name}/plain"]),
                         compile=compiles[name])
    return out


def cost_table(costs: dict, repeats: int, batch: int) -> list[str]:
    adam = costs.get("adam", {}).get("amortized")
    lines = [f"Step cost, timed apart and interleaved (one compiled step per method; each "
             f"method's refresh and plain step once per round, {repeats} rounds, medians; batch "
             f"of {batch} training images):", "",
             "| method | refresh step (ms) | plain step (ms) | refresh every | amortized step (ms) "
             "| × Adam's amortized | plain × Adam's | compile (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, c in costs.items():
        if "error" in c:
            lines.append(f"| {name} | not run: {c['error'][:120]} | | | | | | |")
            continue
        ratio = _fmt(c["amortized"] / adam, ".2f") if adam else "—"
        plain = _fmt(c["plain"] / adam, ".2f") if adam else "—"
        lines.append(f"| {name} | {1e3 * c['refresh']:.1f} | {1e3 * c['plain']:.1f} | "
                     f"{c['every'] if c['every'] > 1 else '—'} | {1e3 * c['amortized']:.1f} | "
                     f"{ratio} | {plain} | {c['compile']:.1f} |")
    return lines + [""]


# ----------------------------------------------------------------------------- report
def _fmt(x, spec=".3g"):
    return "—" if x is None or (isinstance(x, float) and not np.isfinite(x)) else format(x, spec)


def _median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def section(model: str, rows: list[dict], grids: dict, args) -> list[str]:
    by = {}
    for r in rows:
        by.setdefault(r["method"], []).append(r)
    adam = by.get("adam", [])
    adam_step = {r["seed"]: r["step_time"] for r in adam if "error" not in r}
    adam_hit = {r["seed"]: r for r in adam if "error" not in r}
    n = sum(x.size for x in jax.tree.leaves(MODELS[model][0](jax.random.key(0))))
    desc = ("MLP 784-512-512-10" if model == "mlp" else
            "CNN conv 5×5×16 stride 2 → conv 3×3×32 stride 2 → dense 10") + \
        f" (ReLU, {n:,} parameters)"
    lines = [f"### {desc}", "",
             f"Learning-rate grids (seed 0, test accuracy after {args.grid_budget:g} s): "
             + "; ".join(f"{name} " + ", ".join(f"{lr:g} → {acc:.3f}" for lr, acc in g.items())
                         for name, g in grids.items()) + ".", "",
             "| method | lr | seeds reaching 88% | steps to 88% (median) | × Adam's steps | "
             "time to 88% (s) | × Adam's time | seeds reaching 85% | steps to 85% | "
             "time to 85% (s) | acc. after budget (median, min–max) | "
             "step (ms) | × Adam's step | compile or cache load (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for name in METHODS:
        rs = by.get(name, [])
        if not rs:
            continue
        errs = [r for r in rs if "error" in r]
        if errs:
            notes.append(f"- **{name}** not run: {errs[0]['error']}")
            continue
        hits = [r for r in rs if r["steps_to_target"] is not None]
        ratio_steps = [r["steps_to_target"] / adam_hit[r["seed"]]["steps_to_target"]
                       for r in hits if r["seed"] in adam_hit
                       and adam_hit[r["seed"]]["steps_to_target"]]
        ratio_time = [r["time_to_target"] / adam_hit[r["seed"]]["time_to_target"]
                      for r in hits if r["seed"] in adam_hit
                      and adam_hit[r["seed"]]["time_to_target"]]
        step_ratio = [r["step_time"] / adam_step[r["seed"]] for r in rs if r["seed"] in adam_step]
        accs = [r["final_acc"] for r in rs]
        sec = [r["secondary"][SECONDARY[0]] for r in rs if r["secondary"][SECONDARY[0]]]
        lines.append(
            f"| {name} | {rs[0]['lr']:g} | {len(hits)}/{len(rs)} | "
            f"{_fmt(_median([r['steps_to_target'] for r in hits]), '.0f')} | "
            f"{_fmt(_median(ratio_steps), '.2f')} | "
            f"{_fmt(_median([r['time_to_target'] for r in hits]), '.1f')} | "
            f"{_fmt(_median(ratio_time), '.2f')} | {len(sec)}/{len(rs)} | "
            f"{_fmt(_median([h[0] for h in sec]), '.0f')} | "
            f"{_fmt(_median([h[1] for h in sec]), '.1f')} | "
            f"{statistics.median(accs):.3f} ({min(accs):.3f}–{max(accs):.3f}) | "
            f"{1e3 * statistics.median(r['step_time'] for r in rs):.1f} | "
            f"{_fmt(_median(step_ratio), '.2f')} | "
            f"{statistics.median(r['compile'] for r in rs):.1f} |")
        for r in rs:
            if r["status"] != "ok":
                notes.append(f"- {name} seed {r['seed']}: {r['status']}")
    return lines + [""] + notes + [""]


def verdicts(rows: list[dict], costs: dict) -> list[str]:
    """The issue's targets on the MLP, from the per-seed ratios (steps, time) and the
    interleaved step costs (amortized at the default refresh interval)."""
    by = {}
    for r in rows:
        if "error" not in r:
            by.setdefault(r["method"], {})[r["seed"]] = r
    adam = by.get("adam", {})
    out = []
    for name in ("kfac", "shampoo"):
        rs = by.get(name)
        if not rs:
            out.append(f"- {name}: not run (see above).")
            continue
        s_ratio, t_ratio = [], []
        for seed, r in rs.items():
            a = adam.get(seed)
            if a is None:
                continue
            if r["steps_to_target"] and a["steps_to_target"]:
                s_ratio.append(r["steps_to_target"] / a["steps_to_target"])
                t_ratio.append(r["time_to_target"] / a["time_to_target"])
        reached = sum(r["steps_to_target"] is not None for r in rs.values())
        ms, mt = _median(s_ratio), _median(t_ratio)
        mc = (costs[name]["amortized"] / costs["adam"]["amortized"]
              if "amortized" in costs.get(name, {}) and "amortized" in costs.get("adam", {})
              else None)
        ok_s = ms is not None and ms <= 0.5 and reached == len(rs)
        ok_t = mt is not None and mt <= 1.0 and reached == len(rs)
        out.append(f"- {name}: 88% reached by {reached}/{len(rs)} seeds; steps × Adam "
                   f"{_fmt(ms, '.2f')} (target ≤ 0.5: {'met' if ok_s else 'MISSED'}), wall time "
                   f"× Adam {_fmt(mt, '.2f')} (target ≤ 1.0: {'met' if ok_t else 'MISSED'}), "
                   f"amortized step cost × Adam {_fmt(mc, '.2f')} (target ≤ 2: "
                   f"{'met' if mc is not None and mc <= 2 else 'MISSED'}).")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 seed, 3 s budgets, the MLP only")
    ap.add_argument("--models", nargs="+", default=["mlp", "cnn"], choices=tuple(MODELS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=40.0,
                    help="seconds of step time per run (evaluation and compile not counted)")
    ap.add_argument("--grid-budget", type=float, default=10.0)
    ap.add_argument("--grid-points", type=int, default=3, help="the first k rates of each grid")
    ap.add_argument("--chunk", type=int, default=25, help="steps per jitted, timed chunk")
    ap.add_argument("--eval-every", type=int, default=100, help="steps between evaluations")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--cost-repeats", type=int, default=7,
                    help="rounds of the interleaved step-cost timing")
    ap.add_argument("--compile-cache", type=Path, default=Path("/tmp/bench_kronecker_cache"),
                    help="jax's persistent compilation cache: the seeds' runs of one method "
                         "compile the same program (the first compiles, the others load it)")
    args = ap.parse_args(argv)
    jax.config.update("jax_compilation_cache_dir", str(args.compile_cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    if args.quick:
        args.seeds, args.budget, args.grid_budget, args.models = 1, 3.0, 2.0, ["mlp"]
        args.grid_points, args.cost_repeats = 1, 2
    Xtr, ytr = load_fashion_mnist("train")
    Xte, yte = load_fashion_mnist("test")
    data = (jnp.asarray(Xtr, jnp.float32), jnp.asarray(ytr, jnp.int32),
            jnp.asarray(Xte, jnp.float32), jnp.asarray(yte, jnp.int32))
    t_start = time.time()
    load0 = os.getloadavg()
    kw = dict(chunk=args.chunk, eval_every=args.eval_every, batch_size=args.batch_size)
    sections, all_rows, all_costs = [], {}, {}
    for model in args.models:
        grids, lrs = {}, dict(FIXED_LR)
        for name, grid in GRIDS.items():
            if name not in args.methods:
                continue
            acc = {}
            for lr in grid[:1 if name == "shampoo" else args.grid_points]:
                r = run_one(model, name, lr, 0, data, budget=args.grid_budget, **kw)
                acc[lr] = r.get("final_acc", float("nan"))
                print(f"[{model}] {name} grid lr {lr:g}: {acc[lr]:.3f} "
                      f"{r.get('status', r.get('error'))}", flush=True)
            grids[name] = acc
            lrs[name] = max(acc, key=lambda k, a=acc: (np.nan_to_num(a[k], nan=-1.0), -k))
        costs = step_costs(model, args.methods, lrs, data, batch_size=args.batch_size,
                           repeats=args.cost_repeats)
        print("\n".join(cost_table(costs, args.cost_repeats, args.batch_size)), flush=True)
        all_costs[model] = costs
        rows = []
        for seed in range(args.seeds):
            for name in args.methods:
                r = run_one(model, name, lrs[name], seed, data, budget=args.budget, **kw)
                rows.append(r)
                print(f"[{model}] {name} seed {seed}: " + (
                    r["error"] if "error" in r else
                    f"acc {r['final_acc']:.3f}, 88% at {r['steps_to_target']} steps / "
                    f"{_fmt(r['time_to_target'])} s, step {1e3 * r['step_time']:.1f} ms"),
                    flush=True)
        all_rows[model] = rows
        sections += section(model, rows, grids, args) + cost_table(
            costs, args.cost_repeats, args.batch_size)
    load1 = os.getloadavg()
    cmd = "python benchmarks/bench_kronecker.py " + " ".join(sys.argv[1:] if argv is None
                                                               else argv)
    lines = ["## Kronecker-factored optimizers on Fashion-MNIST (K-FAC, Shampoo, Sophia, MUON)",
             "", f"Command: `{cmd}`; {time.strftime('%Y-%m-%d', time.gmtime())}; "
             f"{(time.time() - t_start) / 60:.0f} min.", "",
             f"Machine: {machine()}; one XLA thread; load average {load0[0]:.1f} at the start, "
             f"{load1[0]:.1f} at the end (the 2 cores were shared with other jobs, so absolute "
             "times are noisy; all methods ran interleaved per seed in one run, so the "
             "ratios compare like with like).", "",
             f"float32, batch {args.batch_size}, {args.seeds} seed(s); each run trains for "
             f"{args.budget:g} s of step time (compile apart), test accuracy on the 10,000 test "
             f"images every {args.eval_every} steps and at least 4 times per budget (not "
             f"timed), so steps to a threshold are multiples of {args.chunk} (the "
             f"timed chunk; steps: {', '.join(f'{m} {STEP_LOOP[m]}' for m in args.models)}, "
             "see STEP_LOOP).  Step time: median over chunks, per step, refreshes included.  "
             "Ratios to Adam are per seed, then the median.", ""]
    lines += sections
    if "mlp" in all_rows:
        lines += ["Targets on the MLP (issue 21):", ""] + verdicts(
            all_rows["mlp"], all_costs["mlp"]) + [""]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
