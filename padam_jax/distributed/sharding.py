"""Device mesh and shardings for data parallelism: the one place that decides them.

Batches are split along their leading axis over a 1-D ``data`` mesh of all
devices, of every process in a multi-host run (``hosts``); parameters, optimizer
state and the uint8 dataset are replicated, and each process places its own copy on
its devices (``device_put`` of a host array every process holds). Under ``jit`` XLA
then partitions each step, and BatchNorm's batch statistics become all-reduces: the
result equals one large-batch step on one device.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = 'data'


def make_mesh(devices: Any = None) -> Mesh:
  """A 1-D mesh named ``data`` over ``devices`` (default: all devices)."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Every device holds the whole array."""
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh, batch_size: int) -> NamedSharding:
  """Leading axis split over ``data`` if it divides evenly, else replicated."""
  if batch_size % mesh.size:
    return replicated(mesh)
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def constrain_batch(x: jax.Array, mesh: Mesh) -> jax.Array:
  """Inside ``jit``: ask XLA to split ``x`` along its leading (batch) axis."""
  return jax.lax.with_sharding_constraint(x, batch_sharded(mesh, x.shape[0]))
