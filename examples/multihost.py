"""Multi-host precond: one program per process, data rows split across the processes' devices.

Each process runs this same script (JAX's multi-controller model).  ``jax.distributed.initialize``
joins them; ``data_mesh()`` then spans every process's devices, and each process loads only its
own block of rows and hands it to ``shard_rows(..., process_local=True)``, which assembles the
global row-sharded X.  Here every process solves one ridge system (XᵀX + μI)x = b by Nyström PCG
on the matrix-free Gram operator — X is never gathered: each XᵀXv is a local product per device
plus one all-reduce that XLA inserts — and takes one jitted gradient step on a row-sharded
mini-batch.  Process 0 prints the answers beside numpy's as one JSON line.

On one machine, two processes with two CPU devices each (CPU collectives: gloo):

    python examples/multihost.py --process-id 0 --num-processes 2 --coordinator localhost:12355 &
    python examples/multihost.py --process-id 1 --num-processes 2 --coordinator localhost:12355

On a cluster, run it once per host with that host's ``--process-id`` and the first host's address
as ``--coordinator`` (on GPUs drop ``--cpu-devices``: each process then uses its local GPUs).
tests/distributed/test_multihost.py runs the two-process command above.
"""

import argparse
import json
import os

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--process-id", type=int, required=True)
ap.add_argument("--num-processes", type=int, required=True)
ap.add_argument("--coordinator", required=True, help="host:port of process 0")
ap.add_argument("--cpu-devices", type=int, default=2, help="CPU devices per process (0: keep)")
args = ap.parse_args()
if args.cpu_devices:  # must be set before jax starts
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={args.cpu_devices}")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
jax.distributed.initialize(coordinator_address=args.coordinator,
                           num_processes=args.num_processes, process_id=args.process_id,
                           initialization_timeout=120)
jax.config.update("jax_enable_x64", True)

from precond.distributed import data_mesh, replicate, shard_rows  # noqa: E402
from precond.glm import GramOperator, data_operator  # noqa: E402
from precond.linalg import nystrom_pcg  # noqa: E402

M, D, MU = 64, 10, 1e-1
pid, n_proc = jax.process_index(), jax.process_count()
rng = np.random.default_rng(0)  # for the check below every process makes all data; a real
X, b, y = rng.standard_normal((M, D)), rng.standard_normal(D), rng.standard_normal(M)
mine = slice(pid * M // n_proc, (pid + 1) * M // n_proc)  # job would read only its own rows

mesh = data_mesh()  # every process's devices, one "data" axis
Xs, ys, ones = shard_rows((X[mine], y[mine], np.ones(M // n_proc)), mesh, process_local=True)
res = nystrom_pcg(GramOperator(data_operator(Xs), ones), replicate(b, mesh), MU, 4,
                  jax.random.key(0), tol=1e-12)


@jax.jit
def step(w, Xb, yb):
    """One gradient step on the mean squared error of a row-sharded mini-batch."""
    g = jax.grad(lambda w: 0.5 * jnp.mean((Xb @ w - yb) ** 2))(w)
    return w - 0.1 * g


w0 = np.linspace(-1.0, 1.0, D)
w1 = step(replicate(w0, mesh), Xs, ys)

x_ref = np.linalg.solve(X.T @ X + MU * np.eye(D), b)
w1_ref = w0 - 0.1 * X.T @ (X @ w0 - y) / M
out = {
    "processes": n_proc, "devices": jax.device_count(), "local_devices": jax.local_device_count(),
    "X_local_rows": sorted(s.data.shape[0] for s in Xs.addressable_shards),
    "X_spec": str(Xs.sharding.spec), "x_spec": str(res.x.sharding.spec),
    "status": int(res.status),
    "solve_rel": float(np.linalg.norm(np.asarray(res.x) - x_ref) / np.linalg.norm(x_ref)),
    "step_rel": float(np.linalg.norm(np.asarray(w1) - w1_ref) / np.linalg.norm(w1_ref)),
}
if pid == 0:
    print("RESULT " + json.dumps(out), flush=True)
jax.distributed.shutdown()
