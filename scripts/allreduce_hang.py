"""A jitted data-parallel step over host devices, dispatched without ever blocking.

Each call normalises a batch by its mean and variance over all devices (BatchNorm's
statistics: all-reduces) and takes a gradient through it (more all-reduces); one small
add per call accumulates the loss, as a training loop accumulates its metrics. Python
runs ahead of the devices for ``--seconds``, then waits for the result and prints
``steps N``. On jaxlib releases whose CPU client can starve a collective of threads
(docs/allreduce_hang.md), it hangs within a few dozen steps: XLA then ends the process
after ``--xla_cpu_collective_call_terminate_timeout_seconds``.

    XLA_FLAGS=--xla_force_host_platform_device_count=4 python scripts/allreduce_hang.py

Needs only jax. The device count, the timeouts and ``PJRT_NPROC`` come from the
environment.
"""

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--seconds', type=float, default=20.0, help='How long to dispatch.')
  args = parser.parse_args()
  mesh = Mesh(np.array(jax.devices()), ('data',))
  batch = NamedSharding(mesh, PartitionSpec('data'))
  replicated = NamedSharding(mesh, PartitionSpec())
  w = jax.device_put(jnp.full((32, 32), 0.1), replicated)
  x = jax.device_put(jnp.arange(8 * mesh.size * 32.0).reshape(-1, 32) % 7, batch)

  @jax.jit
  def step(w, x):
    def loss(w):
      h = x @ w
      h = (h - h.mean(0)) / jnp.sqrt(h.var(0) + 1e-5)  # statistics over every device
      return jnp.mean(jax.nn.relu(h) ** 2)

    value, grad = jax.value_and_grad(loss)(w)
    return w - 0.01 * grad, value

  total, steps, start = jnp.zeros(()), 0, time.monotonic()
  while time.monotonic() - start < args.seconds:
    w, value = step(w, x)
    total = total + value
    steps += 1
  jax.block_until_ready(total)
  print(f'steps {steps} on {mesh.size} devices in {time.monotonic() - start:.1f} s', flush=True)


if __name__ == '__main__':
  sys.exit(main())
