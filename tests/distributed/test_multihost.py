"""The multi-host path: examples/multihost.py as two processes over localhost
(``jax.distributed.initialize``, CPU collectives: gloo, 2 devices each), one Nyström PCG solve on
row-sharded X that each process loads half of, and one sharded training step."""

import json
import os
import pathlib
import socket
import subprocess
import sys

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "multihost.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_solve_and_step_on_rows_they_each_hold():
    port = _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "XLA_FLAGS": "--xla_backend_optimization_level=0 "
                        "--xla_llvm_disable_expensive_passes=true"}
    procs = [subprocess.Popen([sys.executable, str(EXAMPLE), "--process-id", str(i),
                               "--num-processes", "2", "--coordinator", f"localhost:{port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    (line,) = [ln for ln in outs[0][0].splitlines() if ln.startswith("RESULT ")]
    r = json.loads(line[len("RESULT "):])
    assert (r["processes"], r["devices"], r["local_devices"]) == (2, 4, 2)
    assert r["X_local_rows"] == [16, 16] and r["X_spec"] == "P('data', None)"
    assert r["x_spec"] == "P()" and r["status"] == 0
    assert r["solve_rel"] < 1e-9, r
    assert r["step_rel"] < 1e-12, r
