"""What the training paths add to the mesh: its record for reports, and a sampler whose
mini-batches land row-sharded.

The training rule (``precond.optim.train``, ``precond compare``, ``precond advise``): every
mini-batch is split along its batch axis over ``"data"`` (axis 1 of a stack (S, b, …) of S
mini-batches, axis 0 of one batch (b, …)); parameters, optimizer state and preconditioner state
— moments, Kronecker factors, Nyström factors — are replicated.  A loss averaged over the batch,
its gradient, a Hessian- or GGN-vector product and a Kronecker factor AᵀA/b are then sums over
the batch axis, which XLA computes as a local sum per device and one all-reduce, so every device
holds the same (replicated) result and applies the same update.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from jax.sharding import Mesh

from .sharding import row_sharding, shard_batch

__all__ = ["mesh_info", "describe_mesh", "sharded_sampler"]


def mesh_info(mesh: Mesh | None) -> dict:
    """The mesh as JSON-ready data for a report: device count, platform, axis names, shape.

    ``None`` (no mesh: the default single-device placement) is recorded as one device.

    Args:
      mesh: a :class:`jax.sharding.Mesh` or ``None``.

    Example:
      >>> from precond.distributed import data_mesh
      >>> from precond.distributed.training import mesh_info
      >>> mesh_info(data_mesh(1))["shape"]
      {'data': 1}
    """
    if mesh is None:
        return {"devices": 1, "platform": jax.default_backend(), "axis_names": [],
                "shape": {}}
    devices = list(mesh.devices.flat)
    return {"devices": len(devices), "platform": devices[0].platform,
            "axis_names": [str(a) for a in mesh.axis_names],
            "shape": {str(k): int(v) for k, v in mesh.shape.items()}}


def describe_mesh(info: dict) -> str:
    """:func:`mesh_info`'s record in words, e.g. "4 cpu devices, mesh axes ('data',), shape
    {'data': 4}".

    Args:
      info: what :func:`mesh_info` returned (or the same read back from JSON).
    """
    n = info["devices"]
    head = f"{n} {info['platform']} device{'s' if n != 1 else ''}"
    if not info["axis_names"]:
        return f"{head} (no mesh)"
    return f"{head}, mesh axes {tuple(info['axis_names'])}, shape {info['shape']}"


def sharded_sampler(sample_batch: Callable, mesh: Mesh) -> Callable:
    """``key -> batch`` whose batches are row-sharded over ``mesh``'s ``"data"`` axis.

    Each leaf of ``sample_batch(key)`` is split along its axis 0 (the batch axis) by
    :func:`~precond.distributed.shard_batch` (each leaf on its own rows), which raises when a
    leaf's row count is not a multiple of the devices on the axis.

    Args:
      sample_batch: ``sample_batch(key) -> batch`` (a pytree of arrays (b, …)).
      mesh: a mesh with a ``"data"`` axis.
    """
    row_sharding(mesh)  # a mesh without a "data" axis fails here, not at the first draw

    def sample(key):
        return shard_batch(sample_batch(key), mesh)

    return sample
