"""The data mesh, row sharding and the checks every sharded entry point shares.

Only :mod:`jax.sharding` placement: a :class:`~jax.sharding.Mesh` with an axis ``"data"``, a
:class:`~jax.sharding.NamedSharding` with ``PartitionSpec("data", None, …)`` for row-indexed
arrays and ``PartitionSpec()`` (replicated) for parameters.  Computation stays in each solver's
``jit``; XLA partitions it from these input shardings.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
import scipy.sparse as sp
from jax.experimental import sparse as jsparse
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from precond.validation import check_int

__all__ = ["DATA_AXIS", "data_mesh", "row_sharding", "replicated_sharding", "shard_rows",
           "shard_batch", "replicate", "mesh_of", "check_same_mesh"]

DATA_AXIS = "data"


def data_mesh(devices: int | Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh with one axis ``"data"`` over ``devices``: the axis rows are split along.

    Args:
      devices: ``None`` for every device (all processes' after ``jax.distributed.initialize``);
        an int N for the first N of ``jax.devices()`` (1 ≤ N ≤ ``jax.device_count()``; with
        several processes N must cover them all: each process runs the same program on its own
        devices); or a sequence of distinct ``jax.Device``.

    Returns:
      ``jax.sharding.Mesh`` of shape ``{"data": P}``.

    Example:
      >>> from precond.distributed import data_mesh
      >>> data_mesh(1).shape
      OrderedDict([('data', 1)])
    """
    if devices is None:
        devs = jax.devices()
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        n = check_int(devices, "devices", low=1, high=jax.device_count())
        devs = jax.devices()[:n]
        if jax.process_count() > 1 and n != jax.device_count():
            raise ValueError(f"devices={n}: with {jax.process_count()} processes the mesh must "
                             f"hold every process's devices ({jax.device_count()} in all); "
                             "pass None")
    elif isinstance(devices, Sequence) and not isinstance(devices, str):
        devs = list(devices)
        if not devs or not all(isinstance(d, jax.Device) for d in devs):
            raise TypeError("devices must be None, an int, or a non-empty sequence of "
                            f"jax.Device, got {[type(d).__name__ for d in devs] or 'empty'}")
        if len({d.id for d in devs}) != len(devs):
            raise ValueError("devices must be distinct, got ids "
                             f"{[d.id for d in devs]}")
    else:
        raise TypeError("devices must be None, an int, or a sequence of jax.Device, got "
                        f"{type(devices).__name__}")
    return Mesh(np.asarray(devs, dtype=object), (DATA_AXIS,))


def _check_mesh(mesh) -> int:
    """The number of devices on the data axis; errors for a non-mesh or a mesh without it."""
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh (precond.distributed.data_mesh()), "
                        f"got {type(mesh).__name__}")
    if DATA_AXIS not in mesh.axis_names:
        raise ValueError(f"mesh must have an axis named {DATA_AXIS!r} (rows are split along "
                         f"it), got axes {tuple(mesh.axis_names)}; use data_mesh()")
    return int(mesh.shape[DATA_AXIS])


def row_sharding(mesh: Mesh, ndim: int = 2, *, axis: int = 0) -> NamedSharding:
    """The sharding of an ``ndim``-array whose dimension ``axis`` is split over ``"data"``.

    Args:
      mesh: a mesh with a ``"data"`` axis (other axes replicate).
      ndim: the array's rank (≥ 1).
      axis: the row dimension, 0 ≤ axis < ndim.
    """
    _check_mesh(mesh)
    ndim = check_int(ndim, "ndim", low=1)
    axis = check_int(axis, "axis", low=0, high=ndim - 1)
    spec = [None] * ndim
    spec[axis] = DATA_AXIS
    return NamedSharding(mesh, PartitionSpec(*spec))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding of parameters and state: a full copy on every device of ``mesh``
    (``out_shardings`` of a jitted training step, so its state stays replicated).

    Args:
      mesh: a mesh with a ``"data"`` axis.
    """
    _check_mesh(mesh)
    return NamedSharding(mesh, PartitionSpec())


def _device_set(x) -> frozenset | None:
    """The devices of a jax array spread over several devices, else None (host or one device)."""
    if isinstance(x, jax.Array) and len(x.sharding.device_set) > 1:
        return frozenset(x.sharding.device_set)
    return None


def _ids(devices) -> list[int]:
    return sorted(d.id for d in devices)


def shard_rows(X, mesh: Mesh, *, axis: int = 0, process_local: bool = False):
    """X's rows (or each leaf's, of a pytree) split in contiguous blocks over ``"data"``.

    Device i of the axis holds rows [i·m/P, (i+1)·m/P) of every leaf, P the axis size; the
    leaves keep their dtype.  A batch ``(X, y)`` or a ``precond.glm`` row store (``DenseRows``,
    ``EllRows``: (m, k) ``cols``/``vals``) is sharded leaf by leaf, all leaves on the same rows.

    Args:
      X: an array (m, …), or a pytree of arrays sharing the row count m along ``axis``.  Not a
        sparse matrix: convert with ``precond.glm.row_storage(X)`` (padded rows), then shard.
      mesh: a mesh with a ``"data"`` axis (:func:`data_mesh`).
      axis: the row dimension of every leaf.
      process_local: X holds only this process's rows (multi-host: each process loads its own
        block; the global array has the processes' blocks in process order).  Default: X is the
        whole array, the same on every process.

    Returns:
      the same structure with ``jax.Array`` leaves sharded by :func:`row_sharding`.

    Raises:
      ValueError: the mesh has no ``"data"`` axis; the row count is not a multiple of P (no
        silent padding: zero rows change averaged losses); leaves disagree on m; a leaf is
        already spread over devices other than the mesh's.
      TypeError: sparse matrices, non-array leaves.
    """
    p = _check_mesh(mesh)
    if sp.issparse(X) or isinstance(X, jsparse.JAXSparse):
        raise TypeError("shard_rows: sparse X has no fixed-shape row blocks; shard "
                        "precond.glm.row_storage(X) instead (padded rows: (m, k) cols and vals)")
    axis = check_int(axis, "axis", low=0)
    leaves, treedef = jax.tree.flatten(X)
    if not leaves:
        raise ValueError("shard_rows: X has no array leaves")
    mesh_devices = frozenset(mesh.devices.flat)
    local_p = sum(d.process_index == jax.process_index() for d in mesh_devices)
    rows = set()
    for leaf in leaves:
        if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
            raise TypeError(f"shard_rows: every leaf must be an array, got {type(leaf).__name__}"
                            "; put scalars and parameters on the mesh with replicate()")
        if leaf.ndim <= axis:
            raise ValueError(f"shard_rows: a leaf of shape {tuple(leaf.shape)} has no axis "
                             f"{axis} to split")
        devs = _device_set(leaf)
        if devs is not None and devs != mesh_devices:
            raise ValueError(f"shard_rows: X is already sharded over devices {_ids(devs)}, the "
                             f"mesh holds {_ids(mesh_devices)}; move it explicitly "
                             "(jax.device_put) or use its own mesh")
        rows.add(leaf.shape[axis])
    if len(rows) > 1:
        raise ValueError(f"shard_rows: the leaves of X have different row counts {sorted(rows)}"
                         f" along axis {axis}")
    (m,) = rows
    parts = local_p if process_local else p
    if m % parts:
        raise ValueError(f"shard_rows: {m} rows are not a multiple of the {parts} devices of the "
                         f"{'process on the ' if process_local else ''}{DATA_AXIS!r} axis; "
                         "drop or pad rows yourself (zero rows leave XᵀX and summed losses "
                         "unchanged but change 1/m-averaged ones)")

    def put(leaf):
        sharding = row_sharding(mesh, leaf.ndim, axis=axis)
        if process_local:
            return jax.make_array_from_process_local_data(sharding, np.asarray(leaf))
        return jax.device_put(leaf, sharding)

    return jax.tree.unflatten(treedef, [put(leaf) for leaf in leaves])


def shard_batch(batch, mesh: Mesh, *, axis: int = 0):
    """Each leaf of a mini-batch split along its own rows over ``"data"``.

    A batch may hold point sets of different sizes (a PINN's interior and boundary points, a
    Green's-function problem's sensor and source points): unlike :func:`shard_rows`, whose
    leaves are rows of one data matrix, each leaf is split on its own, so each leaf's row count
    must be a multiple of the devices, not equal to the others'.

    Args:
      batch: a pytree of arrays, each with its batch rows along ``axis``.
      mesh: a mesh with a ``"data"`` axis (:func:`data_mesh`).
      axis: the batch axis of every leaf (1 for a stack of mini-batches (B, b, …)).

    Returns:
      the same structure with ``jax.Array`` leaves sharded by :func:`row_sharding`.
    """
    _check_mesh(mesh)
    if not jax.tree.leaves(batch):
        raise ValueError("shard_batch: the batch has no array leaves")
    return jax.tree.map(lambda leaf: shard_rows(leaf, mesh, axis=axis), batch)


def replicate(tree, mesh: Mesh):
    """Every leaf of ``tree`` (parameters, right-hand sides, preconditioner state) copied onto
    every device of ``mesh`` (``PartitionSpec()``)."""
    return jax.device_put(tree, replicated_sharding(mesh))


def mesh_of(tree) -> Mesh | None:
    """The mesh that the sharded leaves of ``tree`` live on (``None`` when none is spread over
    several devices); ``ValueError`` when they use different device sets."""
    return check_same_mesh(tree=tree)


def check_same_mesh(**trees) -> Mesh | None:
    """The one mesh the multi-device leaves of every named argument share, or ``None``.

    An entry point calls ``check_same_mesh(X=X, b=b)`` so that arrays sharded on different
    devices fail with a message naming them, before ``jit`` reports incompatible devices.
    """
    found: dict[frozenset, tuple[str, object]] = {}
    for name, tree in trees.items():
        for leaf in jax.tree.leaves(tree):
            devs = _device_set(leaf)
            if devs is not None and devs not in found:
                found[devs] = (name, leaf.sharding)
    if len(found) > 1:
        desc = "; ".join(f"{name} on devices {_ids(d)}" for d, (name, _) in found.items())
        raise ValueError(f"arrays sharded on incompatible meshes: {desc}; put them on one "
                         "mesh (precond.distributed.shard_rows / replicate)")
    if not found:
        return None
    (_, sharding), = found.values()
    return getattr(sharding, "mesh", None)
