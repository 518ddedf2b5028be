"""Equal-time comparison (``precond compare --budget-seconds``) and ``precond advise``: the mode
is recorded and said, budget units are never mixed with equal-epoch ones, the CLI's bad input
gives one-line errors, and a user's script file trains with a tiny budget."""

import pytest

from precond.cli import main
from precond.experiments.protocol import ProtocolConfig, run_protocol
from precond.experiments.report import write_report
from precond.experiments.store import ResultsStore

SIZES = {"width": 4, "num_points": 16}


def _config(**kw):
    base = dict(problem="franke", quick=True, sizes=SIZES, methods=("sgd",), seeds=1,
                phase1_epochs=3, phase2_epochs=100_000, noise_batches=3, tail=2,
                grids={"sgd": (1e-2,)})
    base.update(kw)
    return ProtocolConfig(**base)


def _one_line_error(capsys, argv, *needles):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"precond {argv[0]}: error:"), err
    for n in needles:
        assert n in err, err
    return err


def test_compare_equal_time_mode_recorded_and_units_not_mixed(tmp_path):
    cache: dict = {}
    timed = _config(budget_seconds=0.05)
    run_protocol(timed, tmp_path / "t", compile_cache=cache)
    runs = [u for u in ResultsStore(tmp_path / "t").all_units() if u.get("kind") == "phase2"]
    assert len(runs) == 1 and runs[0]["budget_seconds"] == 0.05
    assert runs[0]["unit"].endswith("t0.05s") and "budget" in runs[0]["message"]
    assert 0.05 <= runs[0]["time"][-1] and runs[0]["epochs"] < 100_000  # the budget ended it
    report = write_report(tmp_path / "t").read_text()
    assert "Comparison mode: **equal wall time (0.05 s" in report
    # an equal-epoch experiment in the same directory is refused (the budget is fingerprinted) …
    with pytest.raises(ValueError, match="different configuration"):
        run_protocol(_config(phase2_epochs=3), tmp_path / "t", compile_cache=cache)
    # … and its units have other ids and say so in their report
    run_protocol(_config(phase2_epochs=3), tmp_path / "e", compile_cache=cache)
    (epoch_run,) = [u for u in ResultsStore(tmp_path / "e").all_units()
                    if u.get("kind") == "phase2"]
    assert epoch_run["budget_seconds"] is None and epoch_run["epochs"] == 3
    assert epoch_run["unit"] != runs[0]["unit"]
    assert _config(phase2_epochs=3).mode() == "equal epochs (3 per run)"


@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_compare_budget_not_positive(capsys, tmp_path, value):
    _one_line_error(capsys, ["compare", "franke", "--budget-seconds", value, "--out",
                             str(tmp_path / "c")], "--budget-seconds")
    assert not (tmp_path / "c").exists()  # checked before any work


def test_logistic_problem_and_missing_fashion_mnist(monkeypatch, tmp_path):
    import jax
    import numpy as np

    import precond.problems.data as data
    from precond.problems.registry import get_problem

    p = get_problem("logistic", quick=True, batch_size=8)
    params = p.init_params(jax.random.key(0))
    x, y = p.sample_batch(jax.random.key(1))
    assert x.shape == (8, 30) and set(np.unique(y)) <= {0.0, 1.0}
    assert np.isclose(p.loss(params, (x, y)), np.log(2.0))  # w = 0: every p = ½
    assert 0 < p.metric(params) < 1
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path)  # the Debian package is absent
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        get_problem("fashion-mnist-mlp", quick=True)
