"""A training loop for any optax optimizer: jit-compiled steps, epochs in ``lax.scan``, per-step
loss and wall time, and a clean stop when the loss turns non-finite.

Each step evaluates ℓ_k = loss_fn(w_k, batch_k) and its gradient, calls the optimizer with the
extras every optimizer here understands (``batch``, ``value``, ``grad``, ``value_fn``), and
applies the update.  A step is *good* when ℓ_k, the gradient and w_{k+1} are all finite; at
the first bad step k the run stops ("diverged at step k"), the update is not applied, and the
result keeps the last parameters (all finite) and the optimizer state that went with them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from precond.linalg import Status

__all__ = ["TrainResult", "make_step", "train"]


class TrainResult(NamedTuple):
    """``losses`` (steps,) ℓ_k at the parameters before step k (NaN after a stop); ``times``
    (steps,) cumulative wall seconds of training (compilation excluded, reported apart in
    ``compile_time``); ``status`` ``Status.MAX_ITERATIONS`` when all steps ran,
    ``Status.DIVERGED`` on a non-finite loss/gradient/update; ``steps`` the good steps taken."""

    params: Any
    opt_state: Any
    losses: np.ndarray
    times: np.ndarray
    status: Status
    message: str
    steps: int
    compile_time: float

    @property
    def diverged(self) -> bool:
        return self.status == Status.DIVERGED


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_step(loss_fn: Callable, optimizer: optax.GradientTransformation) -> Callable:
    """``step(params, opt_state, batch) -> (params, opt_state, loss, ok)``, pure (jit it).

    ``ok`` is False when the loss, the gradient or the new parameters are not finite; the
    returned params/state are then the old ones.
    """
    def step(params, opt_state, batch):
        value, grads = jax.value_and_grad(loss_fn)(params, batch)
        updates, new_state = optimizer.update(
            grads, opt_state, params, batch=batch, value=value, grad=grads,
            value_fn=lambda p: loss_fn(p, batch))
        new_params = optax.apply_updates(params, updates)
        ok = jnp.isfinite(value) & _all_finite(grads) & _all_finite(new_params)
        params, opt_state = lax.cond(ok, lambda: (new_params, new_state),
                                     lambda: (params, opt_state))
        return params, opt_state, value, ok

    return step


def _epoch_fn(step):
    def epoch(params, opt_state, stopped, batches):
        def body(carry, batch):
            params, opt_state, stopped = carry
            new_params, new_state, loss, ok = step(params, opt_state, batch)
            params, opt_state = lax.cond(stopped, lambda: (params, opt_state),
                                         lambda: (new_params, new_state))
            loss = jnp.where(stopped, jnp.nan, loss)
            return (params, opt_state, stopped | ~ok), (loss, ok | stopped)

        (params, opt_state, stopped), (losses, oks) = lax.scan(
            body, (params, opt_state, stopped), batches)
        return params, opt_state, stopped, losses, oks

    return epoch


def train(loss_fn: Callable, params, optimizer: optax.GradientTransformation, data, *,
          num_epochs: int = 1, key: jax.Array | None = None, scan: bool = True,
          progress: bool = False, opt_state=None) -> TrainResult:
    """Train ``params`` on ``loss_fn(params, batch)`` with ``optimizer``.

    Args:
      data: the mini-batches of one epoch as one pytree whose leaves have the step index on the
        leading axis (S, …) — reused every epoch — or a function ``data(key) -> such pytree``
        called once per epoch with ``jax.random.fold_in(key, epoch)`` (data resampled every
        epoch, as seed 001's protocol does).  For full-batch training pass the batch with a
        leading axis of size 1.
      num_epochs: epochs (≥ 1); the step count is num_epochs·S.
      key: needed when ``data`` is a function.
      scan: run each epoch as one jitted ``lax.scan`` (fast; per-step times are the epoch's
        time spread evenly) or step by step in Python (exact per-step times).
      progress: show a rich progress bar (outside the jitted code).
      opt_state: continue from this optimizer state (default ``optimizer.init(params)``).
    """
    if not isinstance(num_epochs, int) or num_epochs < 1:
        raise ValueError(f"num_epochs must be an int ≥ 1, got {num_epochs!r}")
    if callable(data):
        if key is None:
            raise TypeError("data is a function: pass key=jax.random.key(…) to resample it")
        get = lambda e: data(jax.random.fold_in(key, e))  # noqa: E731
    else:
        get = lambda e: data  # noqa: E731
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    step = make_step(loss_fn, optimizer)
    batches = get(0)
    S = int(jax.tree.leaves(batches)[0].shape[0])
    stopped = jnp.asarray(False)

    t0 = time.perf_counter()
    if scan:
        run = jax.jit(_epoch_fn(step)).lower(params, opt_state, stopped, batches).compile()
    else:
        first = jax.tree.map(lambda a: a[0], batches)
        run = jax.jit(step).lower(params, opt_state, first).compile()
    compile_time = time.perf_counter() - t0

    losses, times, elapsed, bad_step = [], [], 0.0, None
    bar = _progress(progress, num_epochs)
    try:
        for e in range(num_epochs):
            batches = batches if e == 0 else get(e)
            jax.block_until_ready(batches)
            if scan:
                t = time.perf_counter()
                params, opt_state, stopped, ls, oks = jax.block_until_ready(
                    run(params, opt_state, stopped, batches))
                dt = time.perf_counter() - t
                ls, oks = np.asarray(ls), np.asarray(oks)
                times.extend(elapsed + dt * (np.arange(S) + 1) / S)
                elapsed += dt
            else:
                ls, oks = np.full(S, np.nan), np.ones(S, bool)
                for s in range(S):
                    t = time.perf_counter()
                    b = jax.tree.map(lambda a, s=s: a[s], batches)
                    params, opt_state, loss, ok = jax.block_until_ready(
                        run(params, opt_state, b))
                    elapsed += time.perf_counter() - t
                    times.append(elapsed)
                    ls[s], oks[s] = float(loss), bool(ok)
                    if not ok:
                        break
            losses.extend(ls)
            if not oks.all():
                bad_step = e * S + int(np.argmin(oks))
            if bar is not None:
                bar[0].update(bar[1], advance=1, description=f"loss {ls[np.isfinite(ls)][-1:]}")
            if bad_step is not None:
                break
    finally:
        if bar is not None:
            bar[0].stop()

    losses = np.asarray(losses, float)
    times = np.asarray(times, float)[: losses.size]
    if bad_step is not None:
        losses[bad_step + 1:] = np.nan
        return TrainResult(params, opt_state, losses, times, Status.DIVERGED,
                           f"diverged at step {bad_step}: the loss, gradient or update was not "
                           "finite; lower the learning rate or add damping", bad_step,
                           compile_time)
    return TrainResult(params, opt_state, losses, times, Status.MAX_ITERATIONS,
                       f"completed {losses.size} steps", losses.size, compile_time)


def _progress(enabled: bool, total: int):
    if not enabled:
        return None
    from rich.progress import Progress

    bar = Progress()
    task = bar.add_task("training", total=total)
    bar.start()
    return bar, task
