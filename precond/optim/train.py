"""A training loop for any optax optimizer: jit-compiled steps, epochs in ``lax.scan``, per-step
loss and wall time, and a clean stop when the loss turns non-finite.

Each step evaluates ℓ_k = loss_fn(w_k, batch_k) and its gradient, calls the optimizer with
``batch`` and the work-saving extras ``value``, ``grad`` (and ``value_fn`` for optax's own
``optax.lbfgs``), and applies the update.  A step is *good* when ℓ_k, the gradient and w_{k+1}
are all finite; at the first bad step k the run stops ("diverged at step k"), the update is not
applied, and the result keeps the last parameters (all finite) and the optimizer state that went
with them.  A loss that stays finite but grows past ``precond.loop.DIVERGENCE_FACTOR`` times its
start (the epoch's last loss against ℓ_0, with 1 as a floor) also stops the run, after that
epoch, as diverged.

The jitted step and epoch live here; the host loop around them (compile ahead, time each epoch,
progress bar, stop) is ``precond.loop``'s.

**On a device mesh** (``mesh=precond.distributed.data_mesh()``): every epoch's mini-batches are
split along their batch axis over the mesh's ``"data"`` axis (axis 1 of the (S, b, …) stack, so
each step's batch (b, …) is row-sharded), and the parameters and the optimizer state —
moments, K-FAC's and Shampoo's Kronecker factors, Nyström factors, CG's curvature — are
replicated, also on output.  The batch mean in the loss makes the gradient, the Hessian- and
GGN-vector products and the factors sums over the batch: XLA computes each as a local sum per
device plus one all-reduce, so every device applies the same update and the run equals the
single-device run up to the order of the additions.  Data that is already row-sharded (its
leaves spread over several devices) keeps its sharding without ``mesh``; the parameters are then
replicated onto its mesh.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh

from precond.distributed import check_same_mesh, replicate, replicated_sharding, shard_batch
from precond.linalg import Status, check_status
from precond.loop import compile_ahead, run_epochs, timed
from precond.validation import check_int

__all__ = ["TrainResult", "make_step", "train"]


class TrainResult(NamedTuple):
    """What :func:`train` returns.

    ``losses`` (steps,) ℓ_k at the parameters before step k (NaN after a stop); ``times``
    (steps,) cumulative wall seconds of training (compilation excluded, reported apart in
    ``compile_time``); ``status`` ``Status.SUCCESS`` when all steps ran, ``Status.DIVERGED`` on
    a non-finite loss/gradient/update, or when an epoch's last loss grew past
    ``precond.loop.DIVERGENCE_FACTOR``·max(1, |ℓ_0|) (checked once per epoch; the run stops
    after that epoch); ``message`` says which; ``steps`` the good steps taken.  A second run of
    the same ``loss_fn`` and ``optimizer`` objects reuses the compiled program (its
    ``compile_time`` is then ≈ 0).
    """

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

    def check(self) -> TrainResult:
        """Return self when every step ran; raise :class:`precond.linalg.SolverError` if not."""
        check_status(self.status, self.message)
        return self


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def make_step(loss_fn: Callable, optimizer: optax.GradientTransformation) -> Callable:
    """``step(params, opt_state, batch) -> (params, opt_state, loss, ok)``, pure (jit it).

    ``ok`` is False when the loss, the gradient or the new parameters are not finite; the
    returned params/state are then the old ones.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``.
      optimizer: any optax transformation; it gets ``batch``, ``value``, ``grad`` and
        ``value_fn`` as extra arguments (transforms that do not use one ignore it).
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


def _jit(loss_fn, optimizer, scan: bool, mesh):
    step = make_step(loss_fn, optimizer)
    fn = _epoch_fn(step) if scan else step
    if mesh is None:
        return jax.jit(fn)
    # Every output (params, state, losses, flags) replicated: the state stays where it started.
    return jax.jit(fn, out_shardings=replicated_sharding(mesh))


_cached_jit = functools.lru_cache(maxsize=32)(_jit)


def _jitted(loss_fn, optimizer, scan: bool, mesh=None):
    """The jitted epoch (or step) of ``optimizer`` on ``loss_fn`` (outputs replicated over
    ``mesh`` when given): one per (loss_fn, optimizer, mesh), so training the same pair again
    (seeds of an equal-time comparison) reuses its compiled program; unhashable ones get a
    fresh one."""
    try:
        return _cached_jit(loss_fn, optimizer, scan, mesh)
    except TypeError:
        return _jit(loss_fn, optimizer, scan, mesh)


def train(loss_fn: Callable, params, optimizer: optax.GradientTransformation, data, *,
          num_epochs: int | None = 1, key: jax.Array | None = None, scan: bool = True,
          progress: bool = False, opt_state=None, budget_seconds: float | None = None,
          mesh: Mesh | None = None) -> TrainResult:
    """Train ``params`` on ``loss_fn(params, batch)`` with ``optimizer``.

    Args:
      loss_fn: ``loss_fn(params, batch) -> scalar``, the objective the steps report.
      params: the starting parameters (any pytree).
      optimizer: any optax transformation (see :func:`make_step` for its extra arguments).
      data: the mini-batches of one epoch as one pytree whose leaves have the step index on the
        leading axis (S, …) — reused every epoch — or a function ``data(key) -> such pytree``
        called once per epoch with ``jax.random.fold_in(key, epoch)`` (data resampled every
        epoch, as seed 001's protocol does).  For full-batch training pass the batch with a
        leading axis of size 1.
      num_epochs: epochs (≥ 1); the step count is num_epochs·S.  None: as many as
        ``budget_seconds`` allows.
      key: needed when ``data`` is a function.
      scan: run each epoch as one jitted ``lax.scan`` (fast; per-step times are the epoch's
        time spread evenly) or step by step in Python (exact per-step times).  On a CPU,
        pass ``scan=False`` for convolutional models: XLA:CPU runs convolution gradients
        inside a loop body (or a ``lax.cond`` branch) several times slower than the same ops
        outside one (jax-ml/jax#12868; docs/bench/kronecker.md measures it).
      progress: show a rich progress bar (outside the jitted code).
      opt_state: continue from this optimizer state (default ``optimizer.init(params)``).
      budget_seconds: a wall-time budget for the steps (compilation and data sampling not
        counted): the run stops with ``SUCCESS`` after the epoch that reaches it, and the
        message says the budget ended it (equal-time comparisons give every method the same
        budget, with ``num_epochs=None``).  ``times`` records the steps' wall time.
      mesh: a mesh with a ``"data"`` axis (``precond.distributed.data_mesh``): each epoch's
        mini-batches are row-sharded along their batch axis b (a multiple of the devices on
        the axis), parameters and optimizer state replicated (module docstring).  None: the
        data as given — already-sharded data stays sharded, parameters replicated onto its
        mesh.

    Returns:
      A :class:`TrainResult`; ``.check()`` raises unless every step ran.
    """
    if num_epochs is not None or budget_seconds is None:
        check_int(num_epochs, "num_epochs", low=1)
    if callable(data):
        if key is None:
            raise TypeError("data is a function: pass key=jax.random.key(…) to resample it")
        draw = lambda e: data(jax.random.fold_in(key, e))  # noqa: E731
    else:
        draw = lambda e: data  # noqa: E731
    # The stack's axis 1 is each mini-batch's batch axis (outside the timed steps).
    get = draw if mesh is None else (lambda e: shard_batch(draw(e), mesh, axis=1))
    if not all(jnp.issubdtype(jnp.result_type(a), jnp.inexact) for a in jax.tree.leaves(params)):
        raise TypeError("params must be floating-point arrays (gradients need real inputs); "
                        "convert integer or boolean leaves, e.g. jnp.asarray(w, float)")
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    first_batches = get(0)
    place = mesh if mesh is not None else check_same_mesh(data=first_batches, params=params,
                                                          opt_state=opt_state)
    if place is not None:
        params, opt_state = replicate((params, opt_state), place)
    S = int(jax.tree.leaves(first_batches)[0].shape[0])
    if S == 0:
        raise ValueError("data holds no mini-batch: its leading axis (S, the steps per epoch) "
                         "has length 0")
    stopped = jnp.asarray(False)
    if scan:
        run, compile_time = compile_ahead(_jitted(loss_fn, optimizer, True, place), params,
                                          opt_state, stopped, first_batches)
    else:
        first = jax.tree.map(lambda a: a[0], first_batches)
        run, compile_time = compile_ahead(_jitted(loss_fn, optimizer, False, place), params,
                                          opt_state, first)

    def epoch(e, state):
        """One epoch on the host: its batches (not timed), then the steps, each timed."""
        params, opt_state, stopped = state
        batches = jax.block_until_ready(first_batches if e == 0 else get(e))
        if scan:
            (params, opt_state, stopped, ls, oks), dt = timed(run, params, opt_state, stopped,
                                                             batches)
            ls, oks = np.asarray(ls, float), np.asarray(oks)
            dts = np.full(S, dt / S)
        else:
            ls, oks, dts = np.full(S, np.nan), np.ones(S, bool), np.zeros(S)
            for s in range(S):
                b = jax.tree.map(lambda a, s=s: a[s], batches)
                (params, opt_state, loss, ok), dts[s] = timed(run, params, opt_state, b)
                ls[s], oks[s] = float(loss), bool(ok)
                if not ok:
                    stopped = jnp.asarray(True)
                    break
        return (params, opt_state, stopped), (ls, oks, dts)

    def first_loss(record) -> float:
        """ℓ_0, the run's first loss: the growth rule's reference (so a blow-up inside the
        first epoch is caught too)."""
        good = record[0][np.isfinite(record[0])]
        return float(good[0]) if good.size else float("nan")

    def last_loss(record) -> float:
        """The epoch's last loss; NaN when a step of it was bad (the driver then stops)."""
        ls, oks, _ = record
        good = ls[np.isfinite(ls)]
        return float(good[-1]) if oks.all() and good.size else float("nan")

    out = run_epochs(epoch, (params, opt_state, stopped), num_epochs, max_seconds=budget_seconds,
                     objective=last_loss, start=first_loss, progress=progress, name="training",
                     keep_bad=True,  # the epoch itself keeps the last good params
                     seconds=lambda record: float(np.sum(record[2])))  # steps, not the draw
    params, opt_state, _ = out.state
    losses = np.concatenate([r[0] for r in out.records])
    oks = np.concatenate([r[1] for r in out.records])
    times = np.cumsum(np.concatenate([r[2] for r in out.records]))
    if not oks.all():
        bad_step = int(np.argmin(oks))
        losses[bad_step + 1:] = np.nan
        return TrainResult(params, opt_state, losses, times, Status.DIVERGED,
                           f"diverged at step {bad_step}: the loss, gradient or update was not "
                           "finite; lower the learning rate or add damping", bad_step,
                           compile_time)
    if out.status == Status.DIVERGED:  # finite, but grew past DIVERGENCE_FACTOR·max(1, |ℓ_0|)
        return TrainResult(params, opt_state, losses, times, Status.DIVERGED,
                           f"{out.message}; lower the learning rate or add damping",
                           losses.size, compile_time)
    message = f"completed {losses.size} steps"
    if out.message.startswith("the time budget"):
        message += f"; {out.message}"
    return TrainResult(params, opt_state, losses, times, Status.SUCCESS, message, losses.size,
                       compile_time)
