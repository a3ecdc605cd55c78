"""Several processes as one run: joining them, which one writes, and barriers.

A run over N hosts is N copies of the same command, one per process, joined by
``jax.distributed``. Every process computes on its own devices (its slice of each
batch, see ``sharding``) and saves and restores checkpoints together with the
others; only the primary process (index 0) writes ``config.json``,
``metrics.jsonl``, summaries, plots and progress lines. With one process the
functions but ``initialize`` are no-ops or trivially true.

Within one process, XLA's CPU backend can split the host into several devices;
``host_environment`` gives their count and the timeouts of their collectives in
``XLA_FLAGS``, and a thread pool large enough that their collectives cannot starve
(``PJRT_NPROC``); XLA reads both when JAX creates its CPU client, at the first computation.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

HOST_DEVICE_COUNT_FLAG = '--xla_force_host_platform_device_count'
# How long a collective (an all-reduce between host devices) waits for a late peer before
# XLA ends the process (40 s by default), and before it warns that one is stuck. Long
# enough that a loaded machine slows a run down instead of ending it; short enough that a
# collective that will never complete (docs/allreduce_hang.md: a deadlock, now prevented
# by ``host_environment``'s thread pool) ends the process within minutes, and its rerun
# resumes.
COLLECTIVE_TIMEOUTS = {
  '--xla_cpu_collective_call_terminate_timeout_seconds': 600,
  '--xla_cpu_collective_call_warn_stuck_timeout_seconds': 120,
}


# The CPU client's thread pool: PJRT_NPROC threads when set, else max(cores, devices).
# Before jaxlib STARVATION_FIXED_IN, each device's part of a launch holds a pool thread, and
# a launch beyond 32 in flight per device waits for its turn on that thread: queued
# launches can hold every thread while a device that has yet to join an all-reduce waits
# for one, and the all-reduce never completes. Two threads per device leave one for
# every device (docs/allreduce_hang.md: the cause, the evidence, the versions).
THREAD_POOL_VARIABLE = 'PJRT_NPROC'
THREADS_PER_DEVICE = 2
STARVATION_FIXED_IN = (0, 12, 0)


def with_host_defaults(xla_flags: str, device_count: int) -> str:
  """``xla_flags`` plus ``device_count`` host devices and ``COLLECTIVE_TIMEOUTS``, each
  flag unless ``xla_flags`` already gives it."""
  defaults = {HOST_DEVICE_COUNT_FLAG: device_count, **COLLECTIVE_TIMEOUTS}
  added = [f'{flag}={value}' for flag, value in defaults.items() if flag not in xla_flags]
  return ' '.join([xla_flags, *added]).strip()


def host_environment(
  environ: Mapping[str, str],
  device_count: int,
  jaxlib_version: str | None = None,
  threads_per_device: int = THREADS_PER_DEVICE,
) -> dict[str, str]:
  """The variables to set for ``device_count`` host devices (unless ``environ``'s
  ``XLA_FLAGS`` gives a count): ``XLA_FLAGS`` by ``with_host_defaults``, and where the
  installed jaxlib (or ``jaxlib_version``) can starve a collective and ``environ`` does not
  set it, ``PJRT_NPROC``: ``threads_per_device`` threads per device, never fewer than the
  cores this process may use (1: XLA's own pool, written out so that child processes get
  the same).

  The pool's size also sizes XLA's Eigen pool, which changes float32 rounding: two programs
  compared to the last bit must run with the same ``PJRT_NPROC``."""
  xla_flags = with_host_defaults(environ.get('XLA_FLAGS', ''), device_count)
  variables = {'XLA_FLAGS': xla_flags}
  if THREAD_POOL_VARIABLE not in environ and pool_can_starve(jaxlib_version):
    devices = int(re.findall(rf'{HOST_DEVICE_COUNT_FLAG}=(\d+)', xla_flags)[-1])
    variables[THREAD_POOL_VARIABLE] = str(
      max(threads_per_device * devices, len(os.sched_getaffinity(0)))
    )
  return variables


def pool_can_starve(jaxlib_version: str | None = None) -> bool:
  """Whether this jaxlib (``jaxlib_version``, else the installed one) is older than
  ``STARVATION_FIXED_IN``."""
  version = jaxlib_version or importlib.metadata.version('jaxlib')
  release = tuple(int(part) for part in re.findall(r'\d+', version)[:3])
  return release < STARVATION_FIXED_IN


def initialize(
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
) -> None:
  """Joins the processes of a multi-host run; call before any other JAX work.

  With ``coordinator_address`` (``HOST:PORT`` of process 0), the three values
  describe the run (``jax.distributed`` fills in what a managed cluster such as
  SLURM or a TPU pod provides). Without it, the cluster is detected from the
  environment and, where none is found, the run is one process.
  """
  if num_processes == 1:
    return
  if coordinator_address is None and num_processes is None and process_id is None:
    try:
      jax.distributed.initialize()
    except ValueError as error:
      if 'coordinator_address should be defined' not in str(error):
        raise  # a cluster was detected but is incomplete: not silently one process
    return
  if coordinator_address is None:
    raise ValueError(
      '--num_processes/--process_id need --coordinator_address HOST:PORT (the address of process 0)'
    )
  if num_processes is not None and process_id is not None and not (0 <= process_id < num_processes):
    raise ValueError(f'--process_id {process_id} is not in [0, --num_processes {num_processes})')
  jax.distributed.initialize(coordinator_address, num_processes, process_id)


def is_primary() -> bool:
  """Whether this process writes the run's files and progress lines."""
  return jax.process_index() == 0


def primary_only(report: Callable[[str], Any]) -> Callable[[str], Any]:
  """``report`` on the primary process; elsewhere a function that drops its line."""
  return report if is_primary() else (lambda line: None)


def worst(code: int) -> int:
  """The largest of every process's ``code``: a decision all processes take together."""
  if jax.process_count() == 1:
    return code
  from jax.experimental import multihost_utils

  return int(np.max(multihost_utils.process_allgather(np.int32(code))))


def barrier(name: str) -> None:
  """Waits until every process has reached ``barrier(name)``."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)
