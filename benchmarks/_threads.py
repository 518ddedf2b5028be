"""Every library on one thread; import this first in a benchmark, before numpy and jax.

XLA (no multi-threaded Eigen pool, one intra-op thread) and the BLAS/LAPACK behind numpy, scipy,
scikit-learn and jax's CPU eigh/Cholesky (OpenBLAS, OpenMP, MKL): the 2-core machine is shared,
and oversubscribed pools made timings swing between runs (a batched eigh under load was many
times slower with OpenBLAS's own pool).  Every method and every peer library gets the same
footing.  OpenBLAS reads its variable when numpy loads it, and XLA its flags when jax creates
the CPU client: hence before those imports.
"""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                           " intra_op_parallelism_threads=1").strip()
