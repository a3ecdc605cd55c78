"""The test suite's first tier, cold, in one process and in worker processes.

    python -m benchmarks.bench_suite [--workers 1,2 --repeats 1 --marker "not e2e"]

Runs ``pytest -q -m MARKER`` from the repository root once per entry of ``--workers``
(1: one process, as plain ``pytest``; N > 1: ``-n N --dist loadfile``, as the README's
command), ``--repeats`` times, interleaved, each with an empty compilation cache of its
own, so that every run compiles what a new machine compiles. Prints pytest's own time of
each run, and each setting's median time over the first's. An untimed collection first
writes Python's bytecode, the one thing the runs share.
"""

from __future__ import annotations

import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

_WORKERS = flags.DEFINE_list('workers', ['1', '2'], 'Worker counts to compare; 1 is one process.')
_REPEATS = flags.DEFINE_integer('repeats', 1, 'Runs of each worker count, interleaved.')
_MARKER = flags.DEFINE_string('marker', 'not e2e', "pytest's -m expression.")

ROOT = pathlib.Path(__file__).resolve().parents[1]
_PYTEST_TIME = re.compile(r' in ([0-9.]+)s\b')


def command(workers: int, marker: str) -> list[str]:
  """The pytest command line of one run."""
  spread = ['-n', str(workers), '--dist', 'loadfile'] if workers > 1 else []
  return [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', *spread, '-m', marker]


def run_once(workers: int, marker: str) -> tuple[float, float]:
  """``(pytest's seconds, wall seconds)`` of one cold run; fails if a test fails."""
  with tempfile.TemporaryDirectory() as cache:
    env = {**os.environ, 'PADAM_TEST_JAX_CACHE': cache}
    start = time.perf_counter()
    result = subprocess.run(
      command(workers, marker), cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
  found = _PYTEST_TIME.findall(result.stdout)
  if result.returncode or not found:
    raise SystemExit(
      f'pytest with {workers} worker(s) failed (exit {result.returncode}):\n'
      f'{result.stdout[-3000:]}{result.stderr[-2000:]}'
    )
  return float(found[-1]), wall


def cpu_name() -> str:
  """The CPU's model name (``/proc/cpuinfo``, as ``lscpu`` shows it) and the cores this
  process may use."""
  name = 'unknown CPU'
  if os.path.exists('/proc/cpuinfo'):
    with open('/proc/cpuinfo') as f:
      name = next(
        (line.split(':', 1)[1].strip() for line in f if line.startswith('model name')), name
      )
  return f'{name}, {len(os.sched_getaffinity(0))} cores'


def main(argv: list[str]) -> None:
  del argv
  counts = [int(w) for w in _WORKERS.value]
  if not counts or min(counts) < 1 or len(set(counts)) < len(counts):
    raise app.UsageError(f'--workers must list distinct counts of at least 1, not {counts}')
  if _REPEATS.value < 1:
    raise app.UsageError(f'--repeats must be at least 1, not {_REPEATS.value}')
  subprocess.run([*command(1, _MARKER.value), '--collect-only'], cwd=ROOT, capture_output=True)
  print(f'CPU: {cpu_name()}', flush=True)
  times: dict[int, list[float]] = {w: [] for w in counts}
  for repeat in range(_REPEATS.value):
    for workers in counts:
      seconds, wall = run_once(workers, _MARKER.value)
      times[workers].append(seconds)
      print(
        f'run {repeat + 1}, {workers} worker(s): pytest {seconds:.1f} s, wall {wall:.1f} s',
        flush=True,
      )
  base = statistics.median(times[counts[0]])
  print(f'\n| workers | median pytest s | ratio to {counts[0]} worker(s) |')
  print('|---:|---:|---:|')
  for workers in counts:
    median = statistics.median(times[workers])
    print(f'| {workers} | {median:.1f} | {median / base:.2f} |')


if __name__ == '__main__':
  app.run(main)
