"""Collectives between host devices cannot deadlock: the launchers' thread pool."""

import os
import re

import pytest
from conftest import run_python

from padam_jax.distributed import hosts

# Short collective timeouts: a starved all-reduce ends the child within seconds (exit 134).
_FLAGS = (
  '--xla_force_host_platform_device_count=4 '
  '--xla_cpu_collective_call_terminate_timeout_seconds=10 '
  '--xla_cpu_collective_call_warn_stuck_timeout_seconds=5'
)
_UNDER_LAUNCH_DEFAULTS = (
  'import runpy, sys; from experiments import launch; launch.use_host_defaults(); '
  'sys.argv = ["allreduce_hang.py", "--seconds", sys.argv[1]]; '
  'runpy.run_path("scripts/allreduce_hang.py", run_name="__main__")'
)


def test_dispatching_ahead_never_starves_an_all_reduce():
  """scripts/allreduce_hang.py for 8 s under the launchers' environment (4 host devices).

  Without the thread pool of ``hosts.host_environment`` it hangs within about 30 steps on
  jaxlib 0.10.2, and XLA ends it after 10 s (docs/allreduce_hang.md).
  """
  env = {
    k: v for k, v in os.environ.items() if k != hosts.THREAD_POOL_VARIABLE
  }  # this suite's own pool is not the launchers'
  env['XLA_FLAGS'] = _FLAGS
  result = run_python('-c', _UNDER_LAUNCH_DEFAULTS, '8', env=env, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  steps = int(re.search(r'steps (\d+) on 4 devices', result.stdout).group(1))
  assert steps > 64, result.stdout  # well past 32 launches in flight per device


@pytest.mark.parametrize(
  'jaxlib, environ, cores, expected',
  [
    ('0.10.2', {}, 2, '8'),  # two threads per device
    ('0.10.2', {}, 16, '16'),  # never fewer than the cores
    ('0.10.2', {'XLA_FLAGS': '--xla_force_host_platform_device_count=3'}, 2, '6'),
    ('0.10.2', {'PJRT_NPROC': '5'}, 2, None),  # the user's, kept
    ('0.11.2', {}, 2, '8'),
    ('0.12.0', {}, 2, None),  # not needed
    ('0.12.0.1', {}, 2, None),
  ],
)
def test_host_environment_sizes_the_pool_where_needed(
  monkeypatch, jaxlib, environ, cores, expected
):
  monkeypatch.setattr(os, 'sched_getaffinity', lambda _: set(range(cores)))
  variables = hosts.host_environment(environ, device_count=4, jaxlib_version=jaxlib)
  assert variables.get(hosts.THREAD_POOL_VARIABLE) == expected
  assert '--xla_force_host_platform_device_count' in variables['XLA_FLAGS']


def test_one_thread_per_device_writes_out_xlas_own_pool(monkeypatch):
  monkeypatch.setattr(os, 'sched_getaffinity', lambda _: {0, 1})
  own = hosts.host_environment({}, 4, jaxlib_version='0.10.2', threads_per_device=1)
  assert own[hosts.THREAD_POOL_VARIABLE] == '4'  # max(devices, cores), as XLA sizes it
