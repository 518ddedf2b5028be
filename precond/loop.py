"""The one host driver: ahead-of-time compilation, timers, progress bars and epoch loops.

precond's numerical layers (``optim``, ``stochastic``, ``composite``) are pure: each offers a
jittable ``init``/``epoch`` (or ``step``) pair.  The host-side loop around them — compile once
and time it apart, run an epoch, block until it is done, record the wall time, show a progress
bar, stop on a non-finite or exploding objective — is written once, here.  The driver knows
nothing of models or solvers: it takes their compiled functions as arguments.

Example:
  >>> import jax.numpy as jnp
  >>> from precond.loop import run_epochs
  >>> def epoch(k, x):                    # one epoch: halve x, report the objective x²
  ...     x = x / 2
  ...     return x, float(x**2)
  >>> run = run_epochs(epoch, jnp.asarray(1.0), num_epochs=3, objective=lambda r: r)
  >>> [round(r, 4) for r in run.records], str(run.status)
  ([0.25, 0.0625, 0.0156], 'success')
"""

from __future__ import annotations

import contextlib
import itertools
import math
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax

from precond.linalg.status import Status
from precond.validation import check_positive

__all__ = ["DIVERGENCE_FACTOR", "EpochRun", "ProgressBar", "compile_ahead", "progress_bar",
           "run_epochs", "timed"]

# An objective that grows past this factor of its start (in absolute value, with 1 as a floor
# so a start near 0 does not trip it) is reported as DIVERGED rather than run to the end.
DIVERGENCE_FACTOR = 1e6


def compile_ahead(fn: Callable, *args, **kwargs) -> tuple[Callable, float]:
    """(compiled ``fn`` for these arguments, seconds spent compiling).

    ``fn`` must be a ``jax.jit``-wrapped function; static arguments go in ``kwargs`` as for the
    call.  Compile time is kept out of every timing and reported apart.
    """
    t0 = time.perf_counter()
    compiled = fn.lower(*args, **kwargs).compile()
    return compiled, time.perf_counter() - t0


def timed(fn: Callable, *args, **kwargs) -> tuple[Any, float]:
    """(``fn(*args)`` with every output array ready, wall seconds it took)."""
    t0 = time.perf_counter()
    out = jax.block_until_ready(fn(*args, **kwargs))
    return out, time.perf_counter() - t0


class ProgressBar:
    """A rich progress bar that does nothing when disabled (the numerical core never logs)."""

    def __init__(self, enabled: bool, description: str, total: int):
        self._bar = self._task = None
        if enabled:
            from rich.progress import Progress

            self._bar = Progress(transient=False)
            self._task = self._bar.add_task(description, total=total)

    def advance(self, description: str | None = None) -> None:
        if self._bar is not None:
            kw = {} if description is None else {"description": description}
            self._bar.update(self._task, advance=1, **kw)

    def __enter__(self) -> ProgressBar:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()


@contextlib.contextmanager
def progress_bar(enabled: bool, description: str, total: int) -> Iterator[ProgressBar]:
    """``with progress_bar(show, "training", epochs) as bar: … bar.advance()``."""
    with ProgressBar(enabled, description, total) as bar:
        yield bar


class EpochRun(NamedTuple):
    """What :func:`run_epochs` returns.

    ``state``: the state after the last epoch that was kept (the last good one when the run
    stopped on a bad epoch and ``keep_bad`` was False); ``records``: one per epoch run; ``times``:
    cumulative wall seconds after each epoch; ``status``: ``SUCCESS`` (all epochs ran),
    ``CONVERGED`` (``converged`` said so; ``SUCCESS`` too when the time budget ended the run, the
    message then says so), ``DIVERGED`` (non-finite objective, or one that
    grew past ``divergence_factor`` × |start|), or ``NONFINITE``; ``message``: one line saying why.
    """

    state: Any
    records: list
    times: list
    status: Status
    message: str


def run_epochs(
    epoch: Callable[[int, Any], tuple[Any, Any]],
    state: Any,
    num_epochs: int | None,
    *,
    max_seconds: float | None = None,
    objective: Callable[[Any], float] | None = None,
    start: float | Callable[[Any], float] | None = None,
    converged: Callable[[Any], bool] | None = None,
    divergence_factor: float = DIVERGENCE_FACTOR,
    progress: bool = False,
    name: str = "epochs",
    keep_bad: bool = False,
    evaluate: Callable[[Any, Any], Any] | None = None,
    seconds: Callable[[Any], float] | None = None,
) -> EpochRun:
    """Run ``epoch(k, state) -> (state, record)`` for k = 0 … num_epochs − 1 on the host.

    Each epoch is timed with every output ready (``jax.block_until_ready``); the caller's epoch
    function should be compiled ahead (:func:`compile_ahead`) so compilation is not timed.

    Args:
      epoch: one epoch; ``record`` is anything the caller wants kept per epoch.
      state: the initial state (any pytree).
      num_epochs: epochs to run (≥ 0); None: no limit (then ``max_seconds`` is required).
      max_seconds: a wall-time budget: stop with ``SUCCESS`` after the first epoch whose
        cumulative timed seconds (the epochs' own time, not compilation or ``evaluate``) reach
        it; the message says the budget ended the run.  None: no budget.
      objective: ``record -> float`` for the stop rules; without it the loop never stops early.
      start: the objective at the start, for the divergence rule: a number, or
        ``record -> float`` read from the first epoch's record (e.g. its first step's loss);
        default: the first epoch's objective.
      converged: ``record -> bool``; True stops with ``CONVERGED``.
      divergence_factor: stop with ``DIVERGED`` once |F| > factor·max(1, |F_start|).
      progress: show a rich progress bar named ``name``.
      keep_bad: keep the state of an epoch whose objective is non-finite (default: keep the
        previous state, whose values are all finite).
      evaluate: ``(state, record) -> record``, called on each epoch's output after its timer
        stopped: measurements that are not the method's work (a full objective pass) go here
        and stay out of ``times``; its result is the record kept and judged.
      seconds: ``record -> float``, the epoch's own timed seconds when the epoch times its
        work itself (e.g. its steps, not the drawing of its mini-batches); ``times`` and the
        budget then count these.  Default: the wall time of the whole epoch call.
    """
    if max_seconds is not None:
        check_positive(max_seconds, "max_seconds")
    elif num_epochs is None:
        raise ValueError("num_epochs=None needs max_seconds (a wall-time budget)")
    records, times, elapsed = [], [], 0.0
    status, message = Status.SUCCESS, f"completed {num_epochs} epochs"
    epochs = itertools.count() if num_epochs is None else range(num_epochs)
    with progress_bar(progress, name, num_epochs) as bar:
        for k in epochs:
            (new_state, record), dt = timed(epoch, k, state)
            elapsed += dt if seconds is None else float(seconds(record))
            if evaluate is not None:
                record = evaluate(new_state, record)
            records.append(record)
            times.append(elapsed)
            f = None if objective is None else float(objective(record))
            if f is not None:
                bar.advance(f"{name} F={f:.6g}")
                if start is None:
                    start = f
                elif callable(start):
                    start = float(start(record))
                if not math.isfinite(f):
                    status = Status.DIVERGED
                    message = f"diverged in epoch {k}: the objective became {f}"
                    state = new_state if keep_bad else state
                    break
                if abs(f) > divergence_factor * max(1.0, abs(start)):
                    status = Status.DIVERGED
                    message = (f"diverged in epoch {k}: the objective {f:.3g} grew past "
                               f"{divergence_factor:.0e}× its start {start:.3g}")
                    state = new_state
                    break
            else:
                bar.advance()
            state = new_state
            if converged is not None and converged(record):
                status, message = Status.CONVERGED, f"converged in epoch {k}"
                break
            if max_seconds is not None and elapsed >= max_seconds:
                if num_epochs is None or k + 1 < num_epochs:
                    message = (f"the time budget ended the run after {k + 1} epochs "
                               f"({elapsed:.3g} s ≥ max_seconds={max_seconds:.3g} s)")
                break
    return EpochRun(state, records, times, status, message)
