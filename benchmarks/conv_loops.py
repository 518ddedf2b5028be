"""XLA:CPU convolutions inside control flow against the same ops at a program's top level.

Why the Fashion-MNIST CNN of bench_kronecker.py dispatches its steps one by one (``STEP_LOOP``)
and why K-FAC's refresh (under ``lax.cond``) is slow on a CNN (jax-ml/jax#12868, open).  Times,
one XLA thread, best of 5 (compile apart):

* Adam on the CNN: per step in a 25-step ``lax.scan``, unrolled in one jit, and one jitted step;
* a 3×3×16→32 convolution on 128×28×28×16 inputs, stride 1 and 2: ∂/∂W and ∂/∂x at the top
  level and inside a ``lax.cond`` branch;
* the CNN's whole gradient and its forward pass, at the top level and inside ``lax.cond``.

Usage: python benchmarks/conv_loops.py   (prints a markdown table; a supporting measurement,
not one of `make bench`'s bench_*.py sections)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import _threads  # noqa: F401  one thread for XLA and BLAS, before jax
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine  # noqa: E402
from bench_kronecker import cnn, init_cnn  # noqa: E402

from precond import optim  # noqa: E402


def best(f, *args, repeats: int = 5) -> float:
    """Seconds of the fastest of ``repeats`` calls of ``f(*args)`` after one warm-up call."""
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    return min(times)


def cnn_steps(chunk: int = 25, batch: int = 128) -> list[tuple[str, float]]:
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.normal(size=(6000, 784)).astype(np.float32))
    y = jnp.asarray(rng.integers(0, 10, 6000))
    params = init_cnn(jax.random.key(0))

    def loss_fn(p, b):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(cnn(p, b[0]), b[1]))

    opt = optax.adam(1e-3)
    state = opt.init(params)
    step = optim.make_step(loss_fn, opt)

    @jax.jit
    def scanned(p, s, idx):
        def body(c, i):
            p, s, loss, _ = step(*c, (X[i], y[i]))
            return (p, s), loss
        return jax.lax.scan(body, (p, s), idx)

    @jax.jit
    def unrolled(p, s, idx):
        for k in range(idx.shape[0]):
            p, s, _, _ = step(p, s, (X[idx[k]], y[idx[k]]))
        return p, s

    idx = jnp.asarray(rng.integers(0, 6000, (chunk, batch)))
    one = jax.jit(step)
    return [(f"Adam CNN step, {chunk}-step lax.scan", best(scanned, params, state, idx) / chunk),
            ("Adam CNN step, unrolled in one jit", best(unrolled, params, state, idx) / chunk),
            ("Adam CNN step, one jitted step", best(one, params, state, (X[idx[0]], y[idx[0]])))]


def conv_grads() -> list[tuple[str, float]]:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(128, 28, 28, 16)).astype(np.float32))
    w = jnp.asarray(rng.normal(size=(3, 3, 16, 32)).astype(np.float32))
    rows = []
    for stride in (1, 2):
        def loss(w, x, stride=stride):
            out = jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME",
                                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
            return jnp.sum(out ** 2)

        for name, arg in (("∂/∂W", 0), ("∂/∂x", 1)):
            g = jax.grad(loss, arg)
            top = jax.jit(g)
            inside = jax.jit(lambda w, x, c, g=g, arg=arg: jax.lax.cond(
                c, lambda: g(w, x), lambda: (w, x)[arg]))
            rows.append((f"conv 3×3 stride {stride} {name}, top level", best(top, w, x)))
            rows.append((f"conv 3×3 stride {stride} {name}, inside lax.cond",
                         best(inside, w, x, True)))
    return rows


def cnn_grad() -> list[tuple[str, float]]:
    p = init_cnn(jax.random.key(0))
    X = jnp.asarray(np.random.default_rng(0).normal(size=(128, 784)).astype(np.float32))
    y = jnp.zeros(128, jnp.int32)

    def loss(p):
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(cnn(p, X), y))

    g = jax.jit(jax.grad(loss))
    g_cond = jax.jit(lambda p, c: jax.lax.cond(c, lambda: jax.grad(loss)(p), lambda: p))
    f = jax.jit(lambda p: cnn(p, X))
    f_cond = jax.jit(lambda p, c: jax.lax.cond(c, lambda: cnn(p, X), lambda: jnp.zeros((128, 10))))
    return [("CNN gradient, top level", best(g, p)),
            ("CNN gradient, inside lax.cond", best(g_cond, p, True)),
            ("CNN forward, top level", best(f, p)),
            ("CNN forward, inside lax.cond", best(f_cond, p, True))]


def main() -> int:
    print(f"Machine: {machine()}; one XLA thread; best of 5, compile apart.\n")
    print("| what | ms |\n|---|---|")
    for name, t in cnn_steps() + conv_grads() + cnn_grad():
        print(f"| {name} | {1e3 * t:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
