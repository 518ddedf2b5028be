"""Shared helpers for benchmarks: timing with compile time apart, machine description."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable

import jax


def block(x):
    """Wait for every array in a pytree: a timing without this measures dispatch, not work."""
    return jax.block_until_ready(x)


def time_call(fn: Callable[[], object], *, repeats: int = 5, warmup: bool = True
              ) -> tuple[float, float, object]:
    """(first-call seconds, median seconds of ``repeats`` later calls, last output).

    The first call includes tracing and compilation for jitted code; report it apart.
    """
    t0 = time.perf_counter()
    out = block(fn())
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = block(fn())
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), out


def time_rounds(fns: dict[str, Callable[[], object]], *, repeats: int) -> dict[str, list[float]]:
    """Seconds of each call when every function in ``fns`` is called once per round, in order, for
    ``repeats`` rounds, so that drifts of a shared machine's speed hit all of them alike.  Call
    after a warm-up."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, f in fns.items():
            t0 = time.perf_counter()
            block(f())
            times[name].append(time.perf_counter() - t0)
    return times


def time_alternately(fa: Callable[[], object], fb: Callable[[], object], *, repeats: int
                     ) -> tuple[float, float]:
    """Median seconds of ``fa`` and of ``fb`` over ``repeats`` calls made alternately (a, b, a,
    b, …) by :func:`time_rounds`.  Call after a warm-up."""
    times = time_rounds({"a": fa, "b": fb}, repeats=repeats)
    return statistics.median(times["a"]), statistics.median(times["b"])


def machine() -> str:
    """One line naming the device the numbers were measured on."""
    devices = jax.devices()
    kind = devices[0].device_kind if devices else "?"
    cpu = platform.processor() or platform.machine()
    try:
        model = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        cpu = model or cpu
    except Exception:  # pragma: no cover - informational only
        pass
    return (f"{devices[0].platform} ({kind}); CPU: {cpu}, {os.cpu_count()} cores; "
            f"jax {jax.__version__}")
