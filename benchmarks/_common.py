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


def time_alternately(fa: Callable[[], object], fb: Callable[[], object], *, repeats: int
                     ) -> tuple[float, float]:
    """Median seconds of ``fa`` and of ``fb`` over ``repeats`` calls made alternately (a, b, a,
    b, …), so that drifts of a shared machine's speed hit both alike.  Call after a warm-up."""
    ta, tb = [], []
    for _ in range(repeats):
        for f, ts in ((fa, ta), (fb, tb)):
            t0 = time.perf_counter()
            block(f())
            ts.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


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
