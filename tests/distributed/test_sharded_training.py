"""The training paths on a device mesh (issue 23, part B): ``precond.optim.train``, ``precond
compare`` (the protocol) and the ``--devices`` flag of compare/advise/ridge.

Everything runs in ONE subprocess with four host devices
(``--xla_force_host_platform_device_count=4``) and float64; the tests below read its JSON.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

_SCRIPT = textwrap.dedent(r'''
    import contextlib, io, json, sys, tempfile
    from pathlib import Path

    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from jax.flatten_util import ravel_pytree

    from precond.distributed import data_mesh, shard_rows
    from precond.optim import get_optimizer, train

    out = {"devices": jax.device_count()}
    mesh = data_mesh()

    def model_fn(p, x):
        return jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"]

    specs, phase = [], [None]  # the batch's sharding inside each compiled program, per run

    def loss_fn(p, batch):
        x, y = batch
        jax.debug.inspect_array_sharding(x, callback=lambda s: specs.append(
            (phase[0], str(getattr(s, "spec", "replicated")))))
        return 0.5 * jnp.mean(jnp.sum((model_fn(p, x) - y) ** 2, -1))

    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    params = {"W1": 0.5 * jax.random.normal(k1, (3, 5)), "b1": jnp.zeros(5),
              "W2": 0.5 * jax.random.normal(k2, (5, 2))}
    data = (jax.random.normal(k3, (2, 16, 3)), jax.random.normal(k4, (2, 16, 2)))

    def rel(a, b):
        a, b = ravel_pytree(a)[0], ravel_pytree(b)[0]
        return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(a)))

    def replicated(tree):
        return all(x.sharding.is_fully_replicated and len(x.sharding.device_set) == 4
                   for x in jax.tree.leaves(tree) if isinstance(x, jax.Array))

    # CG's damping keeps its inner solve well conditioned: the test is about the sums across
    # devices, not about CG's sensitivity to the order of additions (κ·ε).
    options, opts = {"cg-ggn": {"damping": 0.1}}, {}
    for name in ("sgd", "adam", "cg-ggn", "kfac"):
        opt = opts[name] = get_optimizer(name, 0.05, loss_fn=loss_fn, model_fn=model_fn,
                                         output_loss="mse", key=jax.random.key(3),
                                         **options.get(name, {}))
        phase[0] = f"{name} one"
        one = train(loss_fn, params, opt, data, num_epochs=2)
        phase[0] = f"{name} four"
        four = train(loss_fn, params, opt, data, num_epochs=2, mesh=mesh)
        phase[0] = None
        out[name] = {"rel": rel(one.params, four.params), "status": [str(one.status),
                     str(four.status)], "losses": [one.losses.tolist(), four.losses.tolist()],
                     "params_replicated": replicated(four.params),
                     "state_replicated": replicated(four.opt_state)}
    out["specs"] = specs

    # Already-sharded data without mesh=: kept sharded, parameters replicated onto its mesh
    # (sgd's programs of above serve both runs).
    opt = opts["sgd"]
    ref = train(loss_fn, params, opt, data, num_epochs=2)
    given = train(loss_fn, params, opt, shard_rows(data, mesh, axis=1), num_epochs=2)
    out["presharded"] = {"rel": rel(ref.params, given.params),
                         "replicated": replicated(given.params)}

    def error(fn):
        try:
            fn()
        except (ValueError, TypeError) as e:
            return f"{type(e).__name__}: {e}"
        return None

    # A batch of two point sets of different sizes (a PINN's interior and boundary points):
    # each leaf is split on its own rows (shard_batch), not required to match the others.
    def loss_points(p, batch):
        (x, y), x_boundary = batch
        return loss_fn(p, (x, y)) + 0.1 * jnp.mean(model_fn(p, x_boundary) ** 2)

    points = (data, data[0][:, :8])
    ref = train(loss_points, params, opt, points, num_epochs=1)
    given = train(loss_points, params, opt, points, num_epochs=1, mesh=mesh)
    out["point_sets_rel"] = rel(ref.params, given.params)

    odd = (data[0][:, :6], data[1][:, :6])  # 6 rows per batch on 4 devices
    out["err_rows"] = error(lambda: train(loss_fn, params, opt, odd, mesh=mesh))
    other = jax.sharding.Mesh(np.asarray(jax.devices()), ("model",))
    out["err_axis"] = error(lambda: train(loss_fn, params, opt, data, mesh=other))

    # The command line: compare on the mesh, then the same protocol on one device in-process.
    from precond.cli import build_parser, main
    from precond.cli.compare import config_from_args
    from precond.experiments.protocol import run_protocol
    from precond.experiments.store import ResultsStore

    tmp = Path(tempfile.mkdtemp())
    # adam: Phase II reuses Phase I's compiled step (one compilation per mesh).
    argv = ["compare", "franke", "--quick", "--methods", "adam", "--seeds", "1",
            "--phase1-epochs", "2", "--phase2-epochs", "2", "--out", str(tmp / "four")]
    with contextlib.redirect_stdout(io.StringIO()):
        out["compare_rc"] = main(argv + ["--devices", "4"])
    out["report"] = (tmp / "four" / "report.md").read_text()
    config = config_from_args(build_parser().parse_args(argv))
    run_protocol(config, tmp / "one")
    rels = {}
    for u in ResultsStore(tmp / "one").all_units():
        if u.get("kind") in ("phase1", "phase2"):
            uid = u["unit"]
            v = ResultsStore(tmp / "four").load_unit(uid)
            a, b = np.asarray(u["loss"], float), np.asarray(v["loss"], float)
            rels[uid] = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
    out["compare_rel"] = rels
    from precond.problems.registry import get_problem

    odd_problem = get_problem("franke", quick=True, num_points=250)
    out["err_protocol"] = error(lambda: run_protocol(config, tmp / "odd", problem=odd_problem,
                                                     mesh=mesh))

    def cli(args):
        err = io.StringIO()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            rc = main(args)
        return rc, err.getvalue()

    out["ridge_rows"] = cli(["ridge", "--n", "66", "--d", "8", "--ranks", "4", "--devices", "4"])
    out["compare_many"] = cli(argv[:-1] + [str(tmp / "x"), "--devices", "8"])
    # A built-in problem on 2 of the 4 devices: Phase I, the measurement and the advice.json.
    out["advise_builtin"] = cli(["advise", "franke", "--quick", "--warmup", "2", "--candidates",
                                 "sgd", "--budget-seconds", "0.2", "--batches", "2",
                                 "--devices", "2", "--out", str(tmp / "adv")])
    out["advise_mesh"] = json.loads((tmp / "adv" / "advice.json").read_text())["info"]["mesh"]
    cli(["advise", "franke", "--quick", "--warmup", "2", "--candidates", "sgd",
         "--budget-seconds", "0.2", "--batches", "2", "--devices", "1", "--out", str(tmp / "adv1")])
    out["advise_measured"] = [
        {k: json.loads((tmp / d / "advice.json").read_text())["advice"]["measurements"][0][k]
         for k in ("L_hat", "c_hat", "K", "alpha")} for d in ("adv1", "adv")]
    out["advise_many"] = cli(["advise", "--script", "examples/advise_script.py",
                              "--devices", "5"])
    print("RESULT" + json.dumps(out))
''')


@pytest.fixture(scope="module")
def result():
    flags = os.environ.get("XLA_FLAGS", "")
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONWARNINGS="ignore",
               XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count=4".strip())
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True,
                          env=env, cwd=os.path.dirname(os.path.dirname(os.path.dirname(
                              os.path.abspath(__file__)))))
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


@pytest.mark.parametrize("name", ["sgd", "adam", "cg-ggn", "kfac"])
def test_train_on_four_devices_equals_one(result, name):
    r = result[name]
    assert result["devices"] == 4
    assert r["status"] == ["success", "success"]
    assert r["rel"] < 1e-10
    np.testing.assert_allclose(r["losses"][1], r["losses"][0], rtol=1e-10)
    assert r["params_replicated"] and r["state_replicated"]


@pytest.mark.parametrize("name", ["sgd", "adam", "cg-ggn", "kfac"])
def test_the_batch_stays_sharded_inside_the_step(result, name):
    # The one-device program sees a replicated batch, the mesh's every use of the step's batch
    # (b, d) — the gradient's, the curvature's — split along b over "data".
    seen = {}
    for phase, spec in result["specs"]:
        seen.setdefault(phase, []).append(spec)
    assert seen[f"{name} one"] and all("data" not in s for s in seen[f"{name} one"])
    assert seen[f"{name} four"] and all(s.startswith("P('data'") for s in seen[f"{name} four"])


def test_presharded_data_keeps_its_mesh(result):
    assert result["presharded"]["rel"] < 1e-10 and result["presharded"]["replicated"]


def test_point_sets_of_different_sizes_train_on_the_mesh(result):
    assert result["point_sets_rel"] < 1e-10


def test_bad_input_is_a_clear_error(result):
    assert "6 rows are not a multiple of the 4 devices" in result["err_rows"]
    assert result["err_axis"].startswith("ValueError") and "'data'" in result["err_axis"]
    assert "franke: its mini-batches cannot be split over the mesh (use fewer devices): " \
        "shard_rows: 250 rows are not a multiple of the 4 devices" in result["err_protocol"]
    rc, err = result["ridge_rows"]
    assert rc == 2 and "--n 66 is not a multiple of the 4 devices" in err
    rc, err = result["compare_many"]
    assert rc == 2 and "--devices 8: only 4 cpu devices" in err and "\n" == err[-1]
    rc, err = result["advise_many"]
    assert rc == 2 and "--devices 5" in err


def test_advise_on_a_builtin_problem_on_the_mesh(result):
    rc, err = result["advise_builtin"]
    assert rc == 0, err
    assert result["advise_mesh"]["shape"] == {"data": 2}
    one, two = result["advise_measured"]  # L̂, ĉ, K, α: the same batches, the same numbers
    for k in one:
        np.testing.assert_allclose(two[k], one[k], rtol=1e-10, err_msg=k)


def test_compare_on_the_mesh(result):
    assert result["compare_rc"] == 0
    assert "- devices: 4 cpu devices, mesh axes ('data',), shape {'data': 4}" in result["report"]
    rels = result["compare_rel"]
    assert len(rels) == 4  # Phase I and the three rates of adam's quick grid
    assert max(rels.values()) < 1e-10, rels
