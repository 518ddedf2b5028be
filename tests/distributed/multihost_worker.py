"""One of two JAX processes on this machine joined by ``jax.distributed.initialize`` (CPU
collectives: gloo), each with 2 CPU devices: a mesh of 4 over two processes.

Run by test_multihost.py as ``python multihost_worker.py PROCESS_ID PORT``.  Each process loads
only its own half of the rows (``shard_rows(..., process_local=True)``), solves one ridge system
by Nyström PCG on the matrix-free XᵀX + μI, and takes one jitted gradient step on a row-sharded
mini-batch; process 0 prints the answers next to numpy's as one JSON line.
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_force_host_platform_device_count=2")
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

pid, port = int(sys.argv[1]), int(sys.argv[2])
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                           process_id=pid, initialization_timeout=120)
jax.config.update("jax_enable_x64", True)

from precond.distributed import data_mesh, replicate, shard_rows  # noqa: E402
from precond.glm import GramOperator, data_operator  # noqa: E402
from precond.linalg import nystrom_pcg  # noqa: E402

M, D, MU = 64, 10, 1e-1
rng = np.random.default_rng(0)  # the same data on both processes; each keeps its half
X, b, y = rng.standard_normal((M, D)), rng.standard_normal(D), rng.standard_normal(M)
mine = slice(pid * M // 2, (pid + 1) * M // 2)

mesh = data_mesh()
Xs, ys = shard_rows((X[mine], y[mine]), mesh, process_local=True)
ones = shard_rows(np.ones(M // 2), mesh, process_local=True)
res = nystrom_pcg(GramOperator(data_operator(Xs), ones), replicate(b, mesh), MU, 4,
                  jax.random.key(0), tol=1e-12)
x_ref = np.linalg.solve(X.T @ X + MU * np.eye(D), b)


@jax.jit
def step(w, Xb, yb):
    """One gradient step on the mean squared error of a row-sharded mini-batch."""
    g = jax.grad(lambda w: 0.5 * jnp.mean((Xb @ w - yb) ** 2))(w)
    return w - 0.1 * g


w0 = np.linspace(-1.0, 1.0, D)
w1 = step(replicate(w0, mesh), Xs, ys)
w1_ref = w0 - 0.1 * X.T @ (X @ w0 - y) / M

out = {
    "processes": jax.process_count(), "devices": jax.device_count(),
    "local_devices": jax.local_device_count(),
    "X_local_rows": sorted(s.data.shape[0] for s in Xs.addressable_shards),
    "X_spec": str(Xs.sharding.spec), "x_spec": str(res.x.sharding.spec),
    "status": int(res.status),
    "solve_rel": float(np.linalg.norm(np.asarray(res.x) - x_ref) / np.linalg.norm(x_ref)),
    "step_rel": float(np.linalg.norm(np.asarray(w1) - w1_ref) / np.linalg.norm(w1_ref)),
}
if pid == 0:
    print("RESULT " + json.dumps(out), flush=True)
jax.distributed.shutdown()
