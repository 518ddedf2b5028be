"""Sampled rows of row-sharded data: a mini-batch X[idx] without gathering X.

Left to itself, XLA partitions a gather ``X[idx]`` from a row-sharded X with replicated indices
by all-gathering X first (every device then holds all m rows).  :func:`take_rows` instead lets
each device pick the requested rows it owns, zeros elsewhere, and sums over the ``"data"`` axis
(``shard_map`` + ``psum``): the traffic is the (b, …) mini-batch, never X, and the result is
bit-for-bit the single-device gather (one non-zero term per entry).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .sharding import DATA_AXIS, _check_mesh

__all__ = ["row_mesh", "take_rows"]


def row_mesh(x) -> Mesh | None:
    """The mesh whose ``"data"`` axis (of size > 1) splits the rows (axis 0) of the concrete array
    ``x``, else None (a tracer, a host array, one device, or another layout).

    Row stores record it when built (``precond.glm.row_storage``), so that their jitted
    mini-batch gathers can use :func:`take_rows`.
    """
    if not isinstance(x, jax.Array) or isinstance(x, jax.core.Tracer):
        return None
    sharding = x.sharding
    if not isinstance(sharding, NamedSharding) or x.ndim == 0:
        return None
    mesh = sharding.mesh
    if DATA_AXIS not in mesh.axis_names or mesh.shape[DATA_AXIS] == 1:
        return None
    spec = tuple(sharding.spec) + (None,) * x.ndim
    first = spec[0] if isinstance(spec[0], tuple) else (spec[0],)
    if first != (DATA_AXIS,) or any(s is not None for s in spec[1:x.ndim]):
        return None
    return mesh


def take_rows(x: jax.Array, idx: jax.Array, mesh: Mesh) -> jax.Array:
    """``x[idx]`` (b, …) replicated, for x (m, …) row-sharded over ``mesh``'s ``"data"`` axis.

    Args:
      x: the rows, sharded by ``PartitionSpec("data", None, …)`` (traced or concrete).
      idx: (b,) integer row indices in [0, m), replicated (the same on every device).
      mesh: the mesh x is sharded on (:func:`row_mesh` of the concrete array).

    Returns:
      the rows ``x[idx]``, the same on every device; equal to the single-device gather.
    """
    p = _check_mesh(mesh)
    if x.shape[0] % p:
        raise ValueError(f"take_rows: {x.shape[0]} rows are not a multiple of the {p} devices")
    row_spec = PartitionSpec(DATA_AXIS, *([None] * (x.ndim - 1)))

    def local(xl, ids):
        j = ids - lax.axis_index(DATA_AXIS) * xl.shape[0]
        mine = (j >= 0) & (j < xl.shape[0])
        rows = xl[jnp.clip(j, 0, xl.shape[0] - 1)]
        rows = jnp.where(mine.reshape((-1,) + (1,) * (xl.ndim - 1)), rows, jnp.zeros_like(rows))
        return lax.psum(rows, DATA_AXIS)

    return jax.shard_map(local, mesh=mesh, in_specs=(row_spec, PartitionSpec()),
                         out_specs=PartitionSpec())(x, idx)
