"""Data sharded over devices and hosts with JAX's own sharding: one mesh axis, ``"data"``.

precond's solvers are written for one array; :mod:`jax.sharding` runs them on many devices
unchanged.  This package only *places* data:

* :func:`data_mesh` — a :class:`jax.sharding.Mesh` with one axis ``"data"`` over the devices (all
  of them, local or global after :func:`jax.distributed.initialize`, or the first N).
* :func:`shard_rows` — rows of X (m, d), or of each leaf of a batch pytree (``(X, y)``, a
  ``precond.glm.EllRows``), split in equal contiguous blocks over ``"data"``: device i holds rows
  [i·m/P, (i+1)·m/P).  :func:`replicate` puts parameters on every device.
* :func:`shard_batch` — each leaf of a mini-batch on its own rows (point sets of different
  sizes, e.g. a PINN's interior and boundary points);
* :func:`sharded_sampler` (a ``key → batch`` whose batches are row-sharded),
  :func:`replicated_sharding` (parameters' and state's), :func:`mesh_info` and
  :func:`describe_mesh` (the mesh as reports record it) — the training paths' pieces.
* :func:`row_sharding`, :func:`mesh_of` and :func:`check_same_mesh` — the sharding rule and the
  checks entry points share; :func:`take_rows` (with :func:`row_mesh`) — a sampled mini-batch
  X[idx] from row-sharded X without gathering X (XLA's own partitioning of that gather would).

The rule for the rest (no communication layer of our own: ``jit`` propagates the input shardings
and XLA inserts the reductions):

* X and everything with one entry per row (labels y, weights w, the residual Xv, the GLM's
  curvature weights φ″) are row-sharded; a matrix-free product Xᵀ(Xv) is a local product per
  device followed by one all-reduce of a (d,) vector.  X is never gathered.
* Parameters, right-hand sides b (d,), iterates and preconditioner state are replicated.  A
  Nyström factor of XᵀX + μI (U (d, r), λ̂ (r,)) is replicated: its sketch Y = (XᵀX)Ω is a (d, r)
  all-reduce of per-device XᵢᵀXᵢΩ, the same random Ω (one key) on every device.
* The row count must be a multiple of the devices on the axis: shard_rows raises otherwise
  rather than pad, because zero rows leave XᵀX and a sum of losses unchanged but change every
  1/m-averaged loss (and a mini-batch drawn from padded rows).  Pad or drop rows yourself.
* Sparse X: a scipy/BCOO matrix has no fixed-shape row blocks, so convert it first to
  ``precond.glm.row_storage(X)`` — an ``EllRows`` whose leaves ``cols``, ``vals`` are (m, k)
  padded rows — and shard that: each device then holds a row block of the padded rows.

Multi-host: call ``jax.distributed.initialize(...)`` first; ``data_mesh()`` then spans every
process's devices, and ``shard_rows(X_local, mesh, process_local=True)`` assembles the global
array from each process's own block of rows (process p holds rows p·m/P … in process order).
See docs/distributed.md and examples/multihost.py.

Example:
  >>> import numpy as np
  >>> from precond.distributed import data_mesh, shard_rows
  >>> mesh = data_mesh()
  >>> X = shard_rows(np.ones((8, 3), np.float32), mesh)
  >>> X.sharding.spec
  P('data', None)
"""

from .rows import row_mesh as row_mesh
from .rows import take_rows as take_rows
from .sharding import DATA_AXIS as DATA_AXIS
from .sharding import check_same_mesh as check_same_mesh
from .sharding import data_mesh as data_mesh
from .sharding import mesh_of as mesh_of
from .sharding import replicate as replicate
from .sharding import replicated_sharding as replicated_sharding
from .sharding import row_sharding as row_sharding
from .sharding import shard_batch as shard_batch
from .sharding import shard_rows as shard_rows
from .training import describe_mesh as describe_mesh
from .training import mesh_info as mesh_info
from .training import sharded_sampler as sharded_sampler
