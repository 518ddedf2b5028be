"""Row-sharded data on 4 host devices gives the single-device answers and is never gathered.

One subprocess (4 CPU devices need XLA_FLAGS before jax starts; float64) runs
``sharded_entry_points.py``: every entry point below on row-sharded X and on one device with the
same key, with XLA dumping the compiled programs so that a gathered X (an array of X's full shape
inside a program of the sharded run) is caught: the operators on X, cg and nystrom_pcg on them,
NysADMM's lasso (both x-steps), elastic net, ℓ1-logistic and linear-kernel SVM, and the
stochastic problems with SketchySVRG, SketchySGD, SketchySAGA (sparse rows) and SAPPHIRE.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).with_name("sharded_entry_points.py")
ENTRIES = ["xtx_matvec", "glm_hessian", "cg", "nystrom_pcg", "lasso_cholesky", "lasso_pcg",
           "elastic_net", "l1_logistic", "svm_dual_linear", "least_squares_sketchy_svrg",
           "logistic_sketchy_sgd", "logistic_sparse_sketchy_saga", "logistic_sapphire"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    dump = tmp_path_factory.mktemp("hlo")
    flags = (f"--xla_force_host_platform_device_count=4 --xla_dump_to={dump} "
             "--xla_dump_hlo_as_text --xla_backend_optimization_level=0 "
             "--xla_llvm_disable_expensive_passes=true")
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu", "PRECOND_DUMP": str(dump)}
    # A program loaded from `make test`'s compilation cache is not compiled, hence not dumped:
    # the gather check needs every program of the run compiled here.
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, str(SCRIPT), *ENTRIES], capture_output=True,
                         text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    return json.loads(line[len("RESULT "):])


def test_four_devices_give_the_single_device_answers(run):
    assert run["devices"] == 4
    assert sorted(run["rel"]) == sorted(ENTRIES)
    for name, rel in run["rel"].items():
        assert rel <= 1e-10, (name, rel)


def test_inputs_and_answers_keep_their_layout(run):
    assert run["inputs_sharded"] == ["P('data', None)", "P('data',)", "P('data',)",
                                     "P('data', None)"]
    assert run["X_still_sharded"] and run["row_store_mesh"]
    assert run["glm_y_sharding"] == ["P('data',)", "P('data',)"]  # y kept on its devices
    # parameters, solutions and matrix-free products are replicated (d,) vectors; the SVM's
    # dual variable has one entry per row, so it stays row-sharded like y
    spec = dict(run["sharding"])
    assert spec.pop("svm_dual_linear") == "P('data',)"
    assert set(spec.values()) == {"P()"}, run["sharding"]


def test_no_program_of_the_sharded_run_holds_all_of_X(run):
    assert run["programs_checked"] > 5  # the dump worked
    assert run["gathered"] == {}


@pytest.mark.parametrize("case, error", [
    ("no_data_axis", "ValueError: mesh must have an axis named 'data'"),
    ("rows_not_divisible", "ValueError: shard_rows: 90 rows are not a multiple of the 4"),
    ("incompatible_mesh", "ValueError: shard_rows: X is already sharded over devices"),
    ("mixed_meshes", "ValueError: arrays sharded on incompatible meshes"),
    ("sparse_direct", "TypeError: shard_rows: sparse X"),
    ("too_many_devices", "ValueError: devices must satisfy"),
    ("nonfinite_sharded", "ValueError: X contains NaN or inf"),
    ("nonfinite_captured", "ValueError: X contains NaN or inf"),
])
def test_bad_input_is_a_clear_error(run, case, error):
    assert run["errors"][case] is not None and run["errors"][case].startswith(error), \
        run["errors"][case]
