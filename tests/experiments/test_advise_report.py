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
    from precond.problems.registry import get_problem

    cache: dict = {}
    shared = {"compile_cache": cache, "problem": get_problem("franke", quick=True, **SIZES)}
    timed = _config(budget_seconds=0.05)
    run_protocol(timed, tmp_path / "t", **shared)
    runs = [u for u in ResultsStore(tmp_path / "t").all_units() if u.get("kind") == "phase2"]
    assert len(runs) == 1 and runs[0]["budget_seconds"] == 0.05
    assert runs[0]["unit"].endswith("t0.05s") and "budget" in runs[0]["message"]
    assert 0.05 <= runs[0]["time"][-1] and runs[0]["epochs"] < 100_000  # the budget ended it
    report = write_report(tmp_path / "t").read_text()
    assert "Comparison mode: **equal wall time (0.05 s" in report
    # an equal-epoch experiment in the same directory is refused (the budget is fingerprinted) …
    with pytest.raises(ValueError, match="different configuration"):
        run_protocol(_config(phase2_epochs=3), tmp_path / "t", **shared)
    # … and its units have other ids and say so in their report
    run_protocol(_config(phase2_epochs=3), tmp_path / "e", **shared)
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
    x, y, loss, error = jax.jit(lambda k: (*p.sample_batch(k), p.loss(p.init_params(k),
                                                                      p.sample_batch(k)),
                                           p.metric(p.init_params(k))))(jax.random.key(1))
    assert x.shape == (8, 30) and set(np.unique(y)) <= {0.0, 1.0}
    assert np.isclose(loss, np.log(2.0)) and 0 < error < 1  # w = 0: every p = ½
    monkeypatch.setattr(data, "FASHION_MNIST_DIR", tmp_path)  # the Debian package is absent
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        get_problem("fashion-mnist-mlp", quick=True)


# ---------------------------------------------------------------------------- precond advise

EXAMPLE = str(__import__("pathlib").Path(__file__).parents[2] / "examples" / "advise_script.py")


def test_advise_script_example_runs_and_reports(tmp_path):
    import json

    out = tmp_path / "adv"
    assert main(["advise", "--script", EXAMPLE, "--budget-seconds", "0.05", "--candidates",
                 "sgd", "--batches", "2", "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert "## Recommendation" in report and "use sgd at α = " in report
    assert (out / "ranking.png").stat().st_size > 0
    saved = json.loads((out / "advice.json").read_text())
    assert saved["advice"]["recommended"] == "sgd" and saved["advise_seconds"] > 0
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # the run reads back from advice.json and renders the same report; summarize takes it
    from precond.experiments.advise import load_advise_run, summarize, write_advice_report

    again = write_advice_report(load_advise_run(out), tmp_path / "again",
                                command=report.splitlines()[4].strip())
    assert again.read_text() == report
    assert "| advise_script.py | 321 | sgd | — |" in summarize([out])


def test_advise_script_lacking_a_name(capsys, tmp_path):
    script = tmp_path / "mine.py"
    script.write_text("import jax.numpy as jnp\nparams = jnp.zeros(2)\n"
                      "def loss_fn(p, b):\n    return jnp.sum(p ** 2)\n")
    err = _one_line_error(capsys, ["advise", "--script", str(script)])
    assert err == f"precond advise: error: {script} does not define sample_batch"
    script.write_text("raise RuntimeError('broken\\nsecond line')\n")
    _one_line_error(capsys, ["advise", "--script", str(script)], "failed to run",
                    "RuntimeError: broken")


@pytest.mark.parametrize("argv, needle", [
    (["advise", "franke", "--candidates", "sgd", "newton"], "unknown candidate 'newton'"),
    (["advise", "franke", "--budget-seconds", "0"], "--budget-seconds"),
    (["advise", "franke", "--budget-seconds", "-3"], "--budget-seconds"),
    (["advise", "franke", "--seeds", "0"], "--seeds"),
    (["advise"], "give either PROBLEM or --script"),
    (["advise", "--script", "no/such/file.py"], "is not a file"),
    (["advise", "--script", EXAMPLE, "--grid"], "--grid needs a built-in PROBLEM"),
])
def test_advise_bad_input_one_line(capsys, argv, needle):
    _one_line_error(capsys, argv, needle)
