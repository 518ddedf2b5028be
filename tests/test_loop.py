"""The host driver's wall-time budget (run_epochs(max_seconds=…), train(budget_seconds=…))."""

import time

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from precond.linalg import Status
from precond.loop import run_epochs
from precond.optim import train


def _slow_epoch(k, x):
    time.sleep(0.01)
    return x + 1, float(k)


def test_run_epochs_stops_after_the_epoch_that_crosses_the_budget():
    run = run_epochs(_slow_epoch, jnp.asarray(0.0), None, max_seconds=0.035,
                     objective=lambda r: r)
    assert run.status == Status.SUCCESS
    assert "time budget" in run.message
    assert run.times[-1] >= 0.035 and all(t < 0.035 for t in run.times[:-1])
    assert len(run.records) == len(run.times) == int(run.state)


def test_run_epochs_budget_not_reached_and_bad_arguments():
    run = run_epochs(_slow_epoch, jnp.asarray(0.0), 2, max_seconds=100.0)
    assert run.status == Status.SUCCESS and run.message == "completed 2 epochs"
    with pytest.raises(ValueError, match="max_seconds"):
        run_epochs(_slow_epoch, jnp.asarray(0.0), None)
    with pytest.raises(ValueError, match="max_seconds"):
        run_epochs(_slow_epoch, jnp.asarray(0.0), 2, max_seconds=0.0)


def test_train_budget_seconds_runs_until_the_budget():
    loss = lambda w, b: jnp.sum((w - b) ** 2)  # noqa: E731
    data = jnp.ones((4, 3))
    out = train(loss, jnp.zeros(3), optax.sgd(0.1), data, num_epochs=None, budget_seconds=1e-9)
    assert out.status == Status.SUCCESS and "time budget" in out.message
    assert out.steps == 4 and out.times.shape == (4,) and np.all(np.diff(out.times) >= 0)
    out = train(loss, jnp.zeros(3), optax.sgd(0.1), data, num_epochs=3, budget_seconds=60.0)
    assert out.steps == 12 and "time budget" not in out.message
    with pytest.raises(TypeError, match="num_epochs"):
        train(loss, jnp.zeros(3), optax.sgd(0.1), data, num_epochs=None)


def test_budget_counts_the_epochs_own_seconds_not_their_data_draw():
    """An epoch that spends 10 ms drawing its data and 1 ms stepping: a 5 ms budget of step
    time takes 5 epochs (the whole call's wall time would have stopped after the first)."""
    def epoch(k, x):
        time.sleep(0.01)  # the draw: not the method's work
        return x, {"step_seconds": 0.001}

    out = run_epochs(epoch, 0, None, max_seconds=0.005,
                     seconds=lambda record: record["step_seconds"])
    assert len(out.records) == 5 and out.status == Status.SUCCESS
    assert out.times[-1] == pytest.approx(0.005)
