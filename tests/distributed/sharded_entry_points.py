"""Run every data-taking entry point on row-sharded data (4 host devices) and on one device.

Run as a script by test_sharded_solvers.py, in a fresh process whose XLA_FLAGS give 4 CPU
devices and dump every compiled program (``--xla_dump_to``).  Phase 1 runs the sharded calls
only, so every program compiled in it belongs to the sharded path; the dumps of phase 1 are then
searched for an array of X's full shape (m, ·) — a partitioned program holds only (m/4, ·)
blocks of X, so a full-shape X means it was gathered.  Phase 2 runs the same calls on one
device.  Prints one JSON object: relative differences, output shardings, gathers, errors.

Arguments: the entry names to run (default: all); the test runs a subset that fits its CPU
budget, ``python tests/distributed/sharded_entry_points.py`` (with the XLA_FLAGS above) all.
"""

import glob
import json
import os
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

jax.config.update("jax_enable_x64", True)

from precond import composite, stochastic  # noqa: E402
from precond.distributed import data_mesh, replicate, row_mesh, shard_rows  # noqa: E402
from precond.glm import GramOperator, LogisticLoss, data_operator, row_storage  # noqa: E402
from precond.linalg import cg, nystrom_pcg  # noqa: E402

M, D = 96, 12  # shapes seen nowhere else: an [96,…] array in a sharded program is a gathered X
rng = np.random.default_rng(0)
X = rng.standard_normal((M, D))
b = X @ rng.standard_normal(D) + 0.1 * rng.standard_normal(M)
y = np.where(X @ rng.standard_normal(D) + 0.3 * rng.standard_normal(M) > 0, 1.0, -1.0)
X_csr = sp.random(M, D, density=0.3, format="csr", random_state=1)
v = np.linspace(-1.0, 1.0, D)
key = jax.random.key(0)
opts = dict(epochs=2, key=key, rank=4, batch_size=8, hessian_batch_size=16)


def entries(X, b, y, rows):
    """name -> thunk returning the answer, for data X (m, d), targets b, labels y, sparse rows."""
    ones = jnp.ones(M)
    gram = GramOperator(data_operator(X), ones)
    return {
        "xtx_matvec": lambda: gram.matvec(v),
        "glm_hessian": lambda: GramOperator(data_operator(X), LogisticLoss(y, ones).hess_diag(
            data_operator(X).matvec(v)), 1e-2, mean=True).matvec(v),
        "cg": lambda: cg(GramOperator(data_operator(X), ones, 1e-2), v, tol=1e-12).x,
        "nystrom_pcg": lambda: nystrom_pcg(gram, v, 1e-2, 4, key, tol=1e-12).x,
        "lasso_cholesky": lambda: composite.nysadmm(composite.lasso(X, b, 0.5), key=key,
                                                    rank=4, tol=1e-8).x,
        "lasso_pcg": lambda: composite.nysadmm(composite.lasso(X, b, 0.5), key=key, rank=4,
                                               tol=1e-8, x_solver="pcg").x,
        "elastic_net": lambda: composite.nysadmm(composite.elastic_net(X, b, 0.5, 0.1), key=key,
                                                 rank=4, tol=1e-8, x_solver="pcg").x,
        "l1_logistic": lambda: composite.nysadmm(composite.l1_logistic(X, y, 0.5), key=key,
                                                 rank=4, tol=1e-8).x,
        "svm_dual_linear": lambda: composite.nysadmm(composite.svm_dual(
            composite.linear_kernel(X), y, 1.0), key=key, rank=4, tol=1e-8).x,
        "least_squares_sketchy_svrg": lambda: stochastic.sketchy_svrg(
            stochastic.least_squares(X, b, 1e-2), **opts).x,
        "logistic_sketchy_sgd": lambda: stochastic.sketchy_sgd(
            stochastic.logistic(X, y, 1e-2), **opts).x,
        "logistic_sparse_sketchy_saga": lambda: stochastic.sketchy_saga(
            stochastic.logistic(rows, y, 1e-2), **opts).x,
        "logistic_sapphire": lambda: stochastic.sapphire(
            stochastic.logistic(X, y, 1e-2), stochastic.L1(jnp.asarray(1e-3), jnp.ones(D)),
            **opts).x,
    }


def error_of(fn):
    try:
        fn()
    except (ValueError, TypeError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def main():
    dump = os.environ["PRECOND_DUMP"]
    mesh = data_mesh()
    out = {"devices": jax.device_count(), "sharded": {}, "plain": {}, "rel": {},
           "sharding": {}}
    Xs, bs, ys = shard_rows((X, b, y), mesh)
    rows_s = shard_rows(row_storage(X_csr), mesh)
    setup = set(glob.glob(os.path.join(dump, "*after_optimizations.txt")))  # placing the data
    names = sys.argv[1:] or list(entries(Xs, bs, ys, rows_s))
    out["inputs_sharded"] = [str(a.sharding.spec) for a in (Xs, bs, ys, rows_s.vals)]
    out["row_store_mesh"] = row_storage(rows_s).mesh is not None and row_mesh(Xs) is mesh
    out["glm_y_sharding"] = [str(stochastic.logistic(Xs, ys, 1e-2).y.sharding.spec),
                             str(stochastic.least_squares(Xs, bs, 1e-2).y.sharding.spec)]
    for name, fn in entries(Xs, bs, ys, rows_s).items():
        if name not in names:
            continue
        r = fn()
        out["sharded"][name] = np.asarray(r).tolist()
        out["sharding"][name] = str(r.sharding.spec) if hasattr(r.sharding, "spec") else "?"
    blocks = [s.data.shape for s in Xs.addressable_shards]
    out["X_still_sharded"] = Xs.sharding.spec == jax.P("data", None) and blocks == [(M // 4, D)] * 4
    gathered = {}
    k = rows_s.vals.shape[1]
    full = re.compile(rf"\[{M},({D}|{k})\]|\[({D}|{k}),{M}\]")
    programs = set(glob.glob(os.path.join(dump, "*after_optimizations.txt"))) - setup
    for f in programs:
        hits = [ln.strip()[:200] for ln in open(f) if full.search(ln)]
        if hits:
            gathered[os.path.basename(f)] = hits[:2]
    out["gathered"] = gathered
    out["programs_checked"] = len(programs)

    for name, fn in entries(jnp.asarray(X), jnp.asarray(b), jnp.asarray(y),
                            row_storage(X_csr)).items():
        if name not in names:
            continue
        p = np.asarray(fn())
        s = np.asarray(out["sharded"][name])
        out["rel"][name] = float(np.linalg.norm(s - p) / max(np.linalg.norm(p), 1e-300))
    del out["sharded"]

    mesh2 = data_mesh(2)
    Xnan = shard_rows(np.where(np.arange(M)[:, None] == 50, np.nan, X), mesh)
    out["errors"] = {
        "no_data_axis": error_of(lambda: shard_rows(X, jax.sharding.Mesh(
            np.array(jax.devices()), ("batch",)))),
        "rows_not_divisible": error_of(lambda: shard_rows(X[:90], mesh)),
        "incompatible_mesh": error_of(lambda: shard_rows(Xs, mesh2)),
        "mixed_meshes": error_of(lambda: __import__("precond.distributed").distributed
                                 .check_same_mesh(X=Xs, b=replicate(jnp.ones(D), mesh2))),
        "sparse_direct": error_of(lambda: shard_rows(X_csr, mesh)),
        "too_many_devices": error_of(lambda: data_mesh(5)),
        "nonfinite_sharded": error_of(lambda: data_operator(shard_rows(
            np.where(np.arange(M)[:, None] == 50, np.nan, X), mesh))),
        # A sharded constant captured by a jitted function is checked too (not a tracer error).
        "nonfinite_captured": error_of(lambda: jax.jit(lambda: data_operator(Xnan).matvec(bs))()),
    }
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    main()
